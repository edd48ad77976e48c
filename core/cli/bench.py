"""``polymodal bench``: score models on the MMTEB-style task suite, cache the results, write the leaderboard."""

from __future__ import annotations

import argparse
import json
import sys
import time

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        help="model to score (repeatable): a name (minilm-l6), a model folder, st:NAME_OR_FOLDER for "
        "sentence-transformers, TEXT+IMAGE for two towers; options after @: dim=N, layer=K, recipe=NAME, label=TEXT",
    )
    parser.add_argument("--tasks", nargs="+", default=None, help="task names (default: all the models can run)")
    parser.add_argument("--lite", action="store_true", help="only the tasks kept by the MMTEB-style selection")
    parser.add_argument("--out", default="results", help="results folder (cache, leaderboard, charts)")
    parser.add_argument(
        "--data-root", default=None, help="folder of the data folders (default $POLYMODAL_DATA or ../shared/data)"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--refresh", action="store_true", help="score again even when a cached result matches")
    parser.add_argument("--leaderboard", action="store_true", help="rebuild the leaderboard from cached results only")
    parser.add_argument("--select", action="store_true", help="run the greedy task selection over cached results")
    parser.add_argument("--threshold", type=float, default=0.9, help="ranking Spearman floor of --select")
    parser.add_argument("--list", action="store_true", help="print the task cards and exit")


def _cards() -> int:
    from polymodal.bench import LITE_TASKS, TASKS

    for name, task in TASKS.items():
        c = task.card
        flags = ["lite"] * (name in LITE_TASKS and len(LITE_TASKS) < len(TASKS)) + [
            f"in-domain for {', '.join(c.trained_by)}"
        ] * c.in_domain
        print(
            f"{name}  [{c.type}, {c.metric}, {'+'.join(c.modalities)}]" + (f"  ({'; '.join(flags)})" if flags else "")
        )
        print(f"    {c.description}")
        print(f"    data: {c.folder}/{', '.join(c.files)} -- {c.source}")
        print(f"    split: {c.split}; size: {c.size}")
    return 0


def run(ns: argparse.Namespace) -> int:
    from polymodal.bench import Leaderboard, load_results

    if ns.list:
        return _cards()
    if ns.leaderboard or ns.select:
        if ns.model:
            raise ValueError("--leaderboard / --select read cached results only; drop --model")
        board = Leaderboard(load_results(ns.out))
        if ns.select:
            return _select(board, ns)
        for path in board.write(ns.out):
            print(f"wrote {path}", file=sys.stderr)
        print(board.markdown(), end="")
        return 0
    if not ns.model:
        raise ValueError("give at least one --model (or --leaderboard / --select / --list)")
    import torch

    from polymodal.bench import LITE_TASKS, TASKS, default_data_root, get_tasks, load_models
    from polymodal.bench import run as run_bench
    from polymodal.bench.runner import supports

    if ns.threads:
        torch.set_num_threads(ns.threads)
    tasks = get_tasks(ns.tasks, lite=ns.lite)  # bad names and missing data fail before any model loads
    if ns.lite and set(LITE_TASKS) == set(TASKS):
        print("polymodal bench: no lite selection recorded yet: --lite runs the whole suite", file=sys.stderr)
    data_root = ns.data_root or default_data_root()
    for task in tasks:
        task.folder(data_root)
    _quiet_loading()
    start = time.perf_counter()
    models = load_models(ns.model)
    default_suite = ns.tasks is None  # every task each model's modalities allow, decided per model
    if default_suite:
        fits = {(id(m), t.name): supports(m, t) for m in models for t in tasks}
        nobody = [t.name for t in tasks if not any(fits[id(m), t.name] for m in models)]
        if nobody:
            print(f"polymodal bench: skipping {', '.join(nobody)} (no model has the modalities)", file=sys.stderr)
        tasks = [t for t in tasks if t.name not in nobody]
        for m in models:
            skipped = [t.name for t in tasks if not fits[id(m), t.name]]
            if skipped:
                mods = "+".join(sorted(m.modalities))
                print(f"polymodal bench: {m.label} ({mods}) skips {', '.join(skipped)}", file=sys.stderr)
    records = run_bench(
        models,
        tasks,
        data_root,
        out=ns.out,
        batch_size=ns.batch_size,
        refresh=ns.refresh,
        skip_unsupported=default_suite,
    )
    seconds = time.perf_counter() - start
    board = Leaderboard(load_results(ns.out))
    for path in board.write(ns.out):
        print(f"wrote {path}", file=sys.stderr)
    print(Leaderboard(records).markdown(), end="")
    print(
        json.dumps(
            {"models": [m.label for m in models], "tasks": [t.name for t in tasks], "seconds": round(seconds, 1)}
        )
    )
    return 0


def _quiet_loading() -> None:
    """No tqdm bars from transformers while loading weights: the log stays one line per result."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


def _select(board, ns: argparse.Namespace) -> int:
    from pathlib import Path

    from polymodal.bench import select_tasks
    from polymodal.io import atomic_path

    sel = select_tasks(board, threshold=ns.threshold)
    print(f"task selection over {len(sel.models)} models: {', '.join(sel.models)}")
    for task, p, corr in sel.removed:
        print(f"  drop {task}: predictability {p:.3f}, ranking Spearman after dropping {corr:.3f}")
    print(f"kept ({len(sel.kept)}): {', '.join(sel.kept)}")
    path = Path(ns.out).expanduser() / "selection.json"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(sel.as_dict(), indent=2) + "\n")
    print(f"wrote {path}", file=sys.stderr)
    return 0
