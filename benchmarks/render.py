"""Rendering speed: polymodal's glyph-atlas renderer vs per-sentence ``ImageDraw.text``.

Both render every STS-B dev sentence (3,000: both columns of 1,500 pairs) into a 16-px strip
with the same font (Unifont if installed, else DejaVu Sans) on ONE core, and both end with a
numpy array. The peer is the plain Pillow way: a new image per sentence (as narrow as the text allows),
``ImageDraw.text``, ``np.asarray``. Ours runs as the data pipeline does (``render_batch`` over batches of 64, which
also builds patches, the black end patch and the mask); the per-sentence ``render`` figure and
the cold first pass (empty atlas) are printed too. Repeats alternate between the sides (min of
each). Before timing, the outputs are compared pixel by pixel on every sentence.

    python benchmarks/render.py [--data PATH] [--repeats 3]

Ends with ``ratio: X`` = ours (batched, warm) / peer, in sentences per second.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "stsb" / "sts-dev.csv.gz"


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    from PIL import Image, ImageDraw, ImageFont

    from polymodal.data import read_table
    from polymodal.plugins.pixel import TextRenderer
    from polymodal.plugins.pixel.fonts import resolve_font

    df = read_table(args.data, layout="stsb")
    texts = df["sentence1"].tolist() + df["sentence2"].tolist()
    primary = "unifont" if resolve_font("unifont", required=False) else "dejavu"
    max_patches = 529
    renderer = TextRenderer(fonts=(primary, "dejavu"), max_patches=max_patches)
    font_path = str(renderer._fonts[0].path)
    font = ImageFont.truetype(font_path, renderer._fonts[0].size, layout_engine=ImageFont.Layout.BASIC)
    H, P = renderer.config.height, renderer.config.patch_size
    W = max_patches * P

    def peer() -> list[np.ndarray]:
        out = []
        for t in texts:
            # the tightest canvas (whole patches), which favours the peer over a fixed 529-patch strip
            width = min(W, (int(font.getlength(t)) // P + 2) * P)
            img = Image.new("L", (width, H), 255)
            ImageDraw.Draw(img).text((0, renderer.baseline), t, font=font, fill=0, anchor="ls")
            out.append(np.asarray(img))
        return out

    def ours_batched() -> None:
        for i in range(0, len(texts), args.batch_size):
            renderer.render_batch(texts[i : i + args.batch_size]).patches()

    def ours_single() -> None:
        for t in texts:
            renderer.render(t)

    # correctness first: every sentence, pixel by pixel (text region; ours adds the end patch)
    t0 = time.perf_counter()
    ours_batched()
    cold = time.perf_counter() - t0
    ref = peer()
    differing = 0
    for t, r in zip(texts, ref):
        mine = renderer.render(t)
        n_text = mine.shape[1] - renderer.config.patch_size
        differing += int(mine.shape[1] > r.shape[1] or (mine[:, :n_text] != r[:, :n_text]).any())
    print(f"font: {Path(font_path).name}; sentences: {len(texts)}; mean length {np.mean([len(t) for t in texts]):.1f}")
    print(f"pixel-exact: {len(texts) - differing}/{len(texts)} sentences identical to ImageDraw.text")

    # alternated repeats (peer, batched, single, peer, ...): load swings hit every side alike; min per side
    times: dict[str, list[float]] = {"peer": [], "batch": [], "single": []}
    for _ in range(args.repeats):
        for name, fn in (("peer", peer), ("batch", ours_batched), ("single", ours_single)):
            times[name].append(best_of(fn, 1))
    t_peer, t_batch, t_single = (min(times[k]) for k in ("peer", "batch", "single"))
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; repeats: {args.repeats} (alternated)")
    n = len(texts)
    print(f"ImageDraw.text per sentence : {n / t_peer:10.0f} sentences/s")
    print(f"ours, render() per sentence : {n / t_single:10.0f} sentences/s ({t_peer / t_single:.1f}x)")
    print(f"ours, render_batch({args.batch_size})      : {n / t_batch:10.0f} sentences/s ({t_peer / t_batch:.1f}x)")
    print(f"ours, cold first pass       : {n / cold:10.0f} sentences/s (atlas built on the fly)")
    print(f"ratio: {t_peer / t_batch:.2f}")


if __name__ == "__main__":
    main()
