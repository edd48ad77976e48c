"""Glyph table build time: every BMP codepoint (57,086 with a Unifont glyph), cold and from cache.

    python benchmarks/glyph_table.py

Cold = a fresh cache folder in this process (fonts, cmap and advances parsed, every glyph drawn,
the table written); cached = the same call again (read from disk). The peer is the plain way of
drawing the same glyphs: one ``ImageDraw.text`` call and one ``np.asarray`` per codepoint into
a 16x16 image (Unifont glyphs only, no classification, no table). Goals: cold < 3 s, cached
< 0.2 s. Ends with ``ratio: X`` = peer time / our cold time.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np


def main() -> None:
    from polymodal.plugins.glyph import CodepointTokenizer, build_glyph_table
    from polymodal.plugins.pixel.fonts import coverage, resolve_font

    with tempfile.TemporaryDirectory() as cache:
        tok = CodepointTokenizer(0xFFFF)
        t = time.perf_counter()
        table = build_glyph_table(tok, cache=cache)
        cold = time.perf_counter() - t
        warm = min(
            (lambda t0: (build_glyph_table(tok, cache=cache), time.perf_counter() - t0)[1])(time.perf_counter())
            for _ in range(3)
        )
    font_path = str(resolve_font("unifont"))
    n_font = int(coverage(font_path)[:0x10000].sum())
    print(f"table: {table.shape[0]} rows x {table.shape[1]} (all BMP codepoints; {n_font} have a Unifont glyph)")
    print(f"ours cold   : {cold:.2f} s  (goal < 3 s)")
    print(f"ours cached : {warm:.3f} s  (goal < 0.2 s)")

    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(font_path, 16, layout_engine=ImageFont.Layout.BASIC)
    cps = np.flatnonzero(coverage(font_path)[:0x10000]).tolist()
    t = time.perf_counter()
    out = np.zeros((len(cps), 16, 16), dtype=np.uint8)
    for i, cp in enumerate(cps):
        img = Image.new("L", (16, 16), 0)
        ImageDraw.Draw(img).text((0, 0), chr(cp), font=font, fill=255)
        out[i] = np.asarray(img)
    peer = time.perf_counter() - t
    print(f"peer (ImageDraw.text per glyph, {len(cps)} glyphs): {peer:.2f} s")
    print(f"ratio: {peer / cold:.2f}")


if __name__ == "__main__":
    main()
