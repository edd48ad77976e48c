"""Train the glyph and the trainable-embedding LM side by side, then plot and sample.

    python -m polymodal.recipes.glyph_lm.compare --out runs/glyph_lm-compare [--threads 1] [extra CLI args]

Runs ``polymodal fit`` for ``glyph.yaml`` and ``trainable.yaml`` in two processes at once (same
seed, tokenizer, steps; ``--threads`` torch threads each), then writes to ``--out``:
``results.json`` (validation curves, final loss/perplexity, wall time, parameter counts,
samples) and ``val_loss.png`` (validation loss against step for both runs). Extra arguments are
passed to both fits (e.g. ``--trainer.max_steps=100``).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

PROMPTS = ["ROMEO:\n", "First Citizen:\nWe are", "KING HENRY:\nThe"]


def run_one(config: str, out: Path, threads: int, extra: list[str]) -> None:
    """One fit (in this process); writes ``out/<name>.json``."""
    import torch

    from polymodal.cli import main

    torch.set_num_threads(threads)
    name = Path(config).stem
    root = out / name
    t0 = time.perf_counter()
    cli = main(
        [
            "fit",
            "--config",
            config,
            f"--trainer.default_root_dir={root}",
            f"--trainer.logger.init_args.save_dir={root}",
            "--trainer.log_every_n_steps=10",
            *extra,
        ]
    )
    wall = time.perf_counter() - t0
    lm = cli.model.model
    curve, train = [], []
    logged = sorted(root.glob("logs/version_*/metrics.csv"))  # none when the run was shorter than one log interval
    rows = []
    if logged:
        with open(logged[-1]) as fh:
            rows = list(csv.DictReader(fh))
    for row in rows:
        if row.get("val/loss"):
            curve.append((int(row["step"]), float(row["val/loss"])))
        if row.get("train/loss"):
            train.append((int(row["step"]), float(row["train/loss"])))
    samples = {p: lm.generate_text(p, max_new_tokens=60, temperature=0.8, top_k=40, seed=0) for p in PROMPTS}
    result = {
        "config": config,
        "embeddings": lm.embeddings,
        "params_total": lm.num_parameters(),
        "params_trainable": lm.num_parameters(trainable_only=True),
        "wall_s": round(wall, 1),
        "threads": threads,
        "val_curve": curve,
        "train_curve": train,
        "final_val_loss": curve[-1][1] if curve else None,
        "final_val_ppl": math.exp(curve[-1][1]) if curve else None,
        "samples": samples,
    }
    (out / f"{name}.json").write_text(json.dumps(result, indent=2))


def plot(results: dict[str, dict], path: Path) -> None:
    """Validation loss vs step for each run, drawn with Pillow (no plotting dependency)."""
    from PIL import Image, ImageDraw, ImageFont

    W, H, left, right, top, bottom = 640, 400, 70, 20, 40, 50
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    points = [p for r in results.values() for p in r["val_curve"]]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = 0, max(xs)
    y0, y1 = math.floor(min(ys) * 4) / 4, math.ceil(max(ys) * 4) / 4

    def to_px(x: float, y: float) -> tuple[float, float]:
        return (
            left + (x - x0) / max(1e-9, x1 - x0) * (W - left - right),
            top + (y1 - y) / max(1e-9, y1 - y0) * (H - top - bottom),
        )

    d.rectangle([left, top, W - right, H - bottom], outline="black")
    for k in range(6):
        y = y0 + (y1 - y0) * k / 5
        _, py = to_px(x0, y)
        d.line([left - 4, py, left, py], fill="black")
        d.text((5, py - 6), f"{y:.2f}", fill="black", font=font)
        x = x0 + (x1 - x0) * k / 5
        px, _ = to_px(x, y0)
        d.line([px, H - bottom, px, H - bottom + 4], fill="black")
        d.text((px - 10, H - bottom + 8), f"{int(x)}", fill="black", font=font)
    d.text((W // 2 - 20, H - 20), "step", fill="black", font=font)
    d.text((left, 10), "Tiny Shakespeare validation loss (nats/token), BPE-1024", fill="black", font=font)
    colours = {"glyph": (200, 30, 30), "trainable": (30, 80, 200)}
    for i, r in enumerate(results[k] for k in sorted(results)):
        c = colours.get(r["embeddings"], (0, 0, 0))
        pts = [to_px(x, y) for x, y in r["val_curve"]]
        if len(pts) > 1:
            d.line(pts, fill=c, width=2)
        for px, py in pts:
            d.ellipse([px - 2, py - 2, px + 2, py + 2], fill=c)
        label = f"{r['embeddings']} embeddings: final {r['final_val_loss']:.3f} (ppl {r['final_val_ppl']:.1f})"
        d.line([W - 330, top + 15 + 16 * i, W - 310, top + 15 + 16 * i], fill=c, width=2)
        d.text((W - 305, top + 9 + 16 * i), label, fill="black", font=font)
    img.save(path, optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/glyph_lm-compare")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--run", help=argparse.SUPPRESS)  # internal: one fit in this process
    ap.add_argument("--plot", help="also copy the plot here (e.g. docs/glyph_lm_val_loss.png)")
    args, extra = ap.parse_known_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.run:
        run_one(args.run, out, args.threads, extra)
        return
    here = Path(__file__).resolve().parent
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "polymodal.recipes.glyph_lm.compare",
                "--run",
                str(here / f"{name}.yaml"),
                "--out",
                str(out),
                "--threads",
                str(args.threads),
                *extra,
            ],
            env={**os.environ, "OMP_NUM_THREADS": str(args.threads)},
        )
        for name in ("glyph", "trainable")
    ]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"a run failed (exit codes {codes})")
    results = {name: json.loads((out / f"{name}.json").read_text()) for name in ("glyph", "trainable")}
    plot(results, out / "val_loss.png")
    if args.plot:
        plot(results, Path(args.plot))
    for name, r in results.items():
        print(
            f"{name:9s} params {r['params_trainable']:,}/{r['params_total']:,} trainable, "
            f"val loss {r['final_val_loss']:.4f} ppl {r['final_val_ppl']:.2f}, {r['wall_s']} s"
        )
    (out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
