"""Run tasks on models; one JSON result per (task, model fingerprint), reused while task, data and weights match.

Results live in ``<out>/results/<task>/<fingerprint[:16]>.json``. A cached result is reused only when
its task version, data digest (SHA-256 of the task's files) and model fingerprint all match, so a
retrained model, a changed task definition or changed data is scored again.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from polymodal.bench.models import BenchModel
from polymodal.bench.tasks import Task

__all__ = ["RESULT_FORMAT", "check_modalities", "result_path", "run"]

#: Version of the result JSON layout.
RESULT_FORMAT = 1


def result_path(out: str | os.PathLike[str], task: str, fingerprint: str) -> Path:
    return Path(out).expanduser() / "results" / task / f"{fingerprint[:16]}.json"


def supports(model: BenchModel, task: Task) -> bool:
    """Whether ``model`` encodes every modality ``task`` feeds it."""
    return set(task.card.modalities) <= model.modalities


def check_modalities(models: Sequence[BenchModel], tasks: Sequence[Task]) -> None:
    """Every model can encode every task's modalities, else one line naming both."""
    for model in models:
        for task in tasks:
            if not supports(model, task):
                raise ValueError(
                    f"task {task.name} needs a {'+'.join(task.card.modalities)} model; "
                    f"{model.label} encodes {'+'.join(sorted(model.modalities))}"
                )


def _read_cached(path: Path, task: Task, digest: str, fingerprint: str) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    ok = (
        isinstance(record, dict)
        and record.get("format") == RESULT_FORMAT
        and record.get("task_version") == task.card.version
        and record.get("data_digest") == digest
        and record.get("fingerprint") == fingerprint
    )
    return record if ok else None


def run(
    models: Sequence[BenchModel],
    tasks: Sequence[Task],
    data_root: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    batch_size: int = 64,
    refresh: bool = False,
    progress: Callable[[str], None] | None = None,
    skip_unsupported: bool = False,
) -> list[dict[str, Any]]:
    """Score every model on every task; returns one result record per pair (cached or fresh).

    Args:
        models: from :func:`polymodal.bench.load_models`.
        tasks: from :func:`polymodal.bench.get_tasks`.
        data_root: folder holding the tasks' data folders (``../shared/data``).
        out: results folder (``None``: nothing is read or written).
        batch_size: encoding batch size.
        refresh: score again even when a matching cached result exists.
        progress: called with one line when a (model, task) starts and one when it ends (cached: one line);
            default prints to stderr, flushed, so a non-TTY log shows where a long run is.
        skip_unsupported: leave out the (model, task) pairs whose modalities the model lacks (a board mixing text
            and text+image models) instead of failing.
    """
    if not skip_unsupported:
        check_modalities(models, tasks)
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    digests = {t.name: t.data_digest(data_root) for t in tasks}  # checks every data folder up front
    data: dict[str, Any] = {}
    records = []
    pairs = [(m, t) for m in models for t in tasks if not skip_unsupported or supports(m, t)]
    total, done = len(pairs), 0
    for model, task in pairs:
        done += 1
        path = result_path(out, task.name, model.fingerprint) if out is not None else None
        cached = None if refresh or path is None else _read_cached(path, task, digests[task.name], model.fingerprint)
        if cached is not None:
            cached["label"], cached["recipe"] = model.label, model.recipe
            records.append(cached)
            score = cached["main_score"]
            say(f"[{done}/{total}] {model.label} {task.name}: {task.card.metric} {score:.4f} (cached)")
            continue
        say(f"[{done}/{total}] {model.label} {task.name}: running ({task.card.size})")
        start, encoded = time.perf_counter(), model.encode_seconds
        if task.name not in data:
            data[task.name] = task.load(task.folder(data_root))
        scores = task.score(model, data[task.name], batch_size)
        seconds = time.perf_counter() - start
        record = {
            "format": RESULT_FORMAT,
            "task": task.name,
            "task_type": task.card.type,
            "task_version": task.card.version,
            "data_digest": digests[task.name],
            "metric": task.card.metric,
            "main_score": float(scores[task.card.metric]),
            "scores": {k: float(v) for k, v in scores.items()},
            "label": model.label,
            "spec": model.spec,
            "recipe": model.recipe,
            "fingerprint": model.fingerprint,
            "seconds": round(seconds, 3),
            "encode_seconds": round(model.encode_seconds - encoded, 3),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        if path is not None:
            from polymodal.io import atomic_path

            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps(record, indent=2) + "\n")
        records.append(record)
        say(
            f"[{done}/{total}] {model.label} {task.name}: {task.card.metric} {record['main_score']:.4f} "
            f"({seconds:.1f} s)"
        )
    return records
