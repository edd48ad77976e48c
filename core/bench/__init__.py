"""``polymodal bench``: an offline, MMTEB-style evaluation suite over every modality, with a leaderboard.

Tasks (:mod:`polymodal.bench.tasks`) follow MMTEB's task types and metrics on the team's offline data;
models are anything :func:`polymodal.load` accepts, sentence-transformers folders (``st:``) and
text + image tower pairs (:mod:`polymodal.bench.models`); results are cached per (task, model
fingerprint) (:mod:`polymodal.bench.runner`); :mod:`polymodal.bench.leaderboard` builds the tables,
charts and the ``--lite`` task selection.

Example:
    >>> from polymodal import bench
    >>> models = bench.load_models(["minilm-l6", "st:minilm-l6"])
    >>> records = bench.run(models, bench.get_tasks(["stsb"]), data_root="../shared/data", out="results")
    >>> print(bench.Leaderboard(records).markdown())
"""

from __future__ import annotations

from polymodal.bench.leaderboard import Leaderboard, Selection, load_results, select_tasks
from polymodal.bench.models import BenchModel, ModelSpec, load_models, parse_spec
from polymodal.bench.runner import run
from polymodal.bench.tasks import (
    LITE_TASKS,
    TASK_TYPES,
    TASKS,
    Task,
    TaskCard,
    default_data_root,
    get_tasks,
    sample_data_root,
)

__all__ = [
    "LITE_TASKS",
    "TASKS",
    "TASK_TYPES",
    "BenchModel",
    "Leaderboard",
    "ModelSpec",
    "Selection",
    "Task",
    "TaskCard",
    "default_data_root",
    "get_tasks",
    "load_models",
    "load_results",
    "parse_spec",
    "run",
    "sample_data_root",
    "select_tasks",
]
