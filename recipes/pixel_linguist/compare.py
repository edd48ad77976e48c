"""Run both Pixel-Linguist stages for the pixel ViT and the token-id baseline, side by side.

    python -m polymodal.recipes.pixel_linguist.compare --out runs/pixel_linguist-compare [--threads 1]

Stage 1 runs ``unsup.yaml`` and ``text_unsup.yaml`` in two processes at once, stage 2 runs
``nli.yaml`` and ``text_nli.yaml`` (each starting from its stage-1 export). Every run validates
on STS-B dev; ``results.json`` in ``--out`` collects each run's Spearman curve, final
Spearman, wall time and parameter count.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_one(config: str, out: Path, threads: int) -> None:
    import torch

    from polymodal.cli import main

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    cli = main(["fit", "--config", config])
    wall = time.perf_counter() - t0
    root = Path(cli.trainer.default_root_dir)
    metrics = sorted(root.glob("logs/version_*/metrics.csv"))[-1]
    curve = []
    with open(metrics) as fh:
        for row in csv.DictReader(fh):
            if row.get("val/spearman"):
                curve.append((int(row["step"]), float(row["val/spearman"])))
    result = {
        "config": Path(config).name,
        "params": sum(p.numel() for p in cli.model.parameters()),
        "wall_s": round(wall, 1),
        "threads": threads,
        "steps": cli.trainer.global_step,
        "spearman_curve": curve,
        "final_spearman": curve[-1][1] if curve else None,
    }
    (out / f"{Path(config).stem}.json").write_text(json.dumps(result, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/pixel_linguist-compare")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--run", help=argparse.SUPPRESS)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.run:
        run_one(args.run, out, args.threads)
        return
    results = {}
    for stage in (("unsup", "text_unsup"), ("nli", "text_nli")):
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "polymodal.recipes.pixel_linguist.compare",
                    "--run",
                    str(HERE / f"{n}.yaml"),
                    "--out",
                    str(out),
                    "--threads",
                    str(args.threads),
                ],
                env={**os.environ, "OMP_NUM_THREADS": str(args.threads)},
            )
            for n in stage
        ]
        codes = [p.wait() for p in procs]
        if any(codes):
            raise SystemExit(f"stage {stage} failed (exit codes {codes})")
        for n in stage:
            results[n] = json.loads((out / f"{n}.json").read_text())
            r = results[n]
            print(f"{n:11s} STS-B dev Spearman {r['final_spearman']:.4f} after {r['steps']} steps, {r['wall_s']} s")
    (out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
