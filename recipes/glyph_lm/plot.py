"""Validation-loss curves of a glyph_lm sweep (``recipes/glyph_lm/sweep.yaml``), one line per run.

python -m polymodal.recipes.glyph_lm.plot runs/sweeps/glyph_lm --out docs/glyph_lm_val_loss.png
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

__all__ = ["curves", "plot"]


def curves(root: str | Path, metric: str = "val/loss") -> dict[str, list[tuple[int, float]]]:
    """Run name (with its seed when the sweep has several) -> ``(step, value)`` from the newest CSV log."""
    out: dict[str, list[tuple[int, float]]] = {}
    for seed_dir in sorted(Path(root).glob("*/seed*")):
        for log in sorted(seed_dir.glob("logs/version_*/metrics.csv"), key=lambda p: p.stat().st_mtime)[-1:]:
            with open(log) as fh:
                points = [(int(r["step"]), float(r[metric])) for r in csv.DictReader(fh) if r.get(metric)]
            out[f"{seed_dir.parent.name}/{seed_dir.name}"] = points
    if not out:
        raise FileNotFoundError(f"{root}: no <run>/seed<n>/logs/version_*/metrics.csv (run the sweep first)")
    return out


def plot(root: str | Path, out: str | Path | None = None, metric: str = "val/loss") -> Path:
    """Draw ``metric`` against step for every run of the sweep in ``root``; returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from polymodal.io import atomic_path

    target = Path(out) if out else Path(root) / "val_loss.png"
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100, layout="tight")
    for name, points in curves(root, metric).items():
        steps, values = zip(*points) if points else ((), ())
        ax.plot(steps, values, marker="o", markersize=3, label=f"{name}: final {values[-1]:.3f}" if values else name)
    ax.set(xlabel="step", ylabel=f"{metric} (nats/token)", title="Tiny Shakespeare validation loss, BPE-1024")
    ax.grid(alpha=0.3)
    ax.legend()
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return target


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", help="the sweep's output folder (runs/sweeps/glyph_lm)")
    ap.add_argument("--out", default=None, help="PNG to write (default <root>/val_loss.png)")
    args = ap.parse_args()
    print(plot(args.root, args.out))
