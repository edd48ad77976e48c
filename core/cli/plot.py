"""``polymodal plot RUN_DIR``: redraw ``curves.png`` and print the summary of a run's metrics.csv."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_arguments", "find_metrics", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="a fit's folder (trainer.default_root_dir) or a metrics.csv")
    parser.add_argument("--output", type=Path, default=None, help="PNG to write (default RUN_DIR/curves.png)")


def find_metrics(path: Path) -> Path:
    """``path`` itself, ``path/metrics.csv``, or the newest ``metrics.csv`` below ``path`` (CSVLogger's)."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"run folder not found: {path}")
    if (path / "metrics.csv").is_file():
        return path / "metrics.csv"
    found = sorted(path.rglob("metrics.csv"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(f"no metrics.csv in {path} (a `polymodal fit` writes one into its default_root_dir)")
    return found[-1]


def run(ns: argparse.Namespace) -> int:
    from polymodal.callbacks import draw_curves, read_metrics, summary_table

    metrics = find_metrics(ns.run_dir)
    frame = read_metrics(metrics)
    target = ns.output or metrics.parent / "curves.png"
    draw_curves(frame, target, title=str(metrics.parent))
    print(f"curves of {metrics} -> {target}")
    print(summary_table(frame))
    return 0
