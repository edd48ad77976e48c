"""Glyph table build time: every BMP codepoint (57,086 with a Unifont glyph), cold and from cache, vs two peers.

    python benchmarks/glyph_table.py [--repeats 3]

Cold = a fresh cache folder (the table is drawn and written; the fonts' cmap and advances are parsed
once per process, as in any real use); cached = the same call again (read from disk). Peers draw the
same Unifont glyphs (no classification, no table):

* ``ImageDraw.text`` per glyph: one 16x16 image, one ``text`` call and one ``np.asarray`` per codepoint;
* lean ``font.getmask2`` per glyph: FreeType's bitmap of each glyph copied into its cell, no image;
* when GNU Unifont's bitmap file is installed (``apt-get install unifont``; ours then reads it instead of
  rasterising, see ``GlyphRasterizer(bitmaps=True)``): a per-line parse of ``unifont.hex``
  (``bytes.fromhex`` + ``np.unpackbits``), timed against our vectorised ``read_hex_font`` alone
  (parse-only, like for like), since the full table build does more (treatment rules, hex boxes, marks,
  scaling, the cache write).

All sides run ``--repeats`` times in alternation in one process, one thread (PIL and FreeType are
single-threaded here); min / median and the load average are printed. Our cells are compared with the
lean peer's on every glyph drawn from the font (pixel-exact). Goals: cold < 3 s, cached < 0.2 s,
cold >= 5x the ``ImageDraw.text`` loop. Ends with ``ratio: X`` = lean peer / our cold time (the strongest
peer), after ``ratio ImageDraw:``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from PIL import Image, ImageDraw, ImageFont

    from polymodal.plugins.glyph import CodepointTokenizer, build_glyph_table
    from polymodal.plugins.pixel.fonts import coverage, resolve_font

    tok = CodepointTokenizer(0xFFFF)
    font_path = str(resolve_font("unifont"))
    cps = np.flatnonzero(coverage(font_path)[:0x10000]).tolist()
    font = ImageFont.truetype(font_path, 16, layout_engine=ImageFont.Layout.BASIC)
    ascent, _ = font.getmetrics()

    from polymodal.plugins.glyph import table as glyph_table
    from polymodal.plugins.pixel import fonts

    hex_path = fonts.resolve_hex_font()

    def ours_cold() -> np.ndarray:
        # the bitmap file, its mark offsets and the treatment table are read again, as in a new process
        for cached in (fonts.read_hex_font, fonts.read_combining_offsets, glyph_table._bmp_treatments):
            cached.cache_clear()
        with tempfile.TemporaryDirectory() as cache:
            return build_glyph_table(tok, cache=cache)

    def peer_draw() -> np.ndarray:
        out = np.zeros((len(cps), 16, 16), dtype=np.uint8)
        for i, cp in enumerate(cps):
            img = Image.new("L", (16, 16), 0)
            ImageDraw.Draw(img).text((0, 0), chr(cp), font=font, fill=255)
            out[i] = np.asarray(img)
        return out

    def peer_lean() -> np.ndarray:
        out = np.zeros((len(cps), 16, 16), dtype=np.uint8)
        for i, cp in enumerate(cps):
            mask, (x, y) = font.getmask2(chr(cp), mode="L", anchor="ls")
            w, h = mask.size
            if w and h:
                bitmap = np.asarray(mask, dtype=np.uint8).reshape(h, w)
                top, left = ascent + y, x
                ys, xs = slice(max(0, top), min(16, top + h)), slice(max(0, left), min(16, left + w))
                out[i, ys, xs] = bitmap[ys.start - top : ys.stop - top, xs.start - left : xs.stop - left]
        return out

    def ours_parse() -> np.ndarray:
        assert hex_path is not None
        codepoints, cells, _ = fonts.read_hex_font.__wrapped__(str(hex_path))
        return cells[np.searchsorted(codepoints, cps)]

    def peer_hex() -> np.ndarray:
        assert hex_path is not None
        out = np.zeros((len(cps), 16, 16), dtype=np.uint8)
        position = {cp: i for i, cp in enumerate(cps)}
        with open(hex_path, encoding="ascii") as fh:
            for line in fh:
                code, bits = line.rstrip("\n").split(":")
                i = position.get(int(code, 16))
                if i is not None:
                    w = len(bits) // 4
                    out[i, :, :w] = np.unpackbits(np.frombuffer(bytes.fromhex(bits), np.uint8)).reshape(16, w) * 255
        return out

    sides = {"ours cold": ours_cold, "ImageDraw.text per glyph": peer_draw, "getmask2 per glyph": peer_lean}
    if hex_path is not None:
        sides |= {"ours hex parse": ours_parse, "hex per line": peer_hex}
    print(f"bitmap file: {hex_path or 'not installed (ours rasterises with FreeType)'}")
    times: dict[str, list[float]] = {k: [] for k in sides}
    results = {}
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for _ in range(args.repeats):
        for name, fn in sides.items():
            start = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as cache:
        build_glyph_table(tok, cache=cache)
        warm = []
        for _ in range(3):
            start = time.perf_counter()
            build_glyph_table(tok, cache=cache)
            warm.append(time.perf_counter() - start)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    table = results["ours cold"]
    ours_cells = (np.rint(table[cps] * (255 / table.max())).reshape(len(cps), 16, 16)).astype(np.uint8)
    lean = results["getmask2 per glyph"]
    same = int((ours_cells == lean).all(axis=(1, 2)).sum())
    print(f"table: {table.shape[0]} rows x {table.shape[1]} (all BMP codepoints; {len(cps)} have a Unifont glyph)")
    print(f"cells equal to the lean peer's: {same} of {len(cps)} glyphs")
    for name, ts in times.items():
        print(f"{name:26s} min {min(ts):7.2f} s  median {statistics.median(ts):7.2f} s")
    print(f"ours cached : {min(warm):.3f} s  (goal < 0.2 s)")
    best = {k: min(v) for k, v in times.items()}
    if hex_path is not None:
        parse_same = np.array_equal(results["ours hex parse"], results["hex per line"])
        print(f"hex parse equal to the per-line parse: {parse_same}")
        print(f"ratio hex parse: {best['hex per line'] / best['ours hex parse']:.2f} (parse only)")
    print(f"ratio ImageDraw: {best['ImageDraw.text per glyph'] / best['ours cold']:.2f} (goal >= 5)")
    print(f"ratio: {best['getmask2 per glyph'] / best['ours cold']:.2f}")


if __name__ == "__main__":
    main()
