"""``polymodal sweep``: run a sweep file's named override sets and collect one results table."""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="sweep file (YAML): configs, runs (name -> overrides), seeds, metrics")
    parser.add_argument("--only", nargs="+", default=None, help="run only these runs (others' results are kept)")
    parser.add_argument(
        "--seeds", nargs="+", type=int, default=None, help="run only these seeds (others' results are kept)"
    )
    parser.add_argument("--root", default=None, help="output folder (default: runs/sweeps/<recipe>[/<file stem>])")
    parser.add_argument("--dry-run", action="store_true", help="print the commands without running them")


def run(ns: argparse.Namespace) -> int:
    from polymodal.experiments import load_sweep, run_sweep

    sweep = load_sweep(ns.file, root=ns.root)
    run_sweep(sweep, only=ns.only, dry_run=ns.dry_run, seeds=ns.seeds)
    if not ns.dry_run:
        print(f"polymodal sweep: results in {sweep.root}/results.md and results.json")
    return 0
