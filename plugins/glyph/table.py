"""Glyph bitmaps for codepoints and tokens, and the frozen glyph embedding table built from them.

Following Bochkov (2025), "Emergent Semantics Beyond Token Embeddings: Transformer LMs with
Frozen Visual Unicode Representations" (https://arxiv.org/abs/2507.04886), every token's
characters are drawn with Unifont into a fixed-size bitmap, which is flattened and (when the
model width differs) multiplied by a fixed, seeded Gaussian projection. Nothing is learned; the
same (tokenizer, font, size, width, seed) always gives the same table, so tables are cached on
disk under that key.

**Codepoint treatment** (``TREATMENT_VERSION`` 1; every rule yields a visible, per-codepoint
distinct bitmap unless stated):

==============================  =================================================================
codepoint                       drawn as
==============================  =================================================================
graphic BMP character           its Unifont glyph (8 or 16 px wide)
outside the BMP (> U+FFFF)      its Unifont Upper glyph if that font is installed and covers it,
                                else a 6-digit hex box
unassigned (``Cn``, per the     a hex box with its number (Unifont's own convention for missing
Python ``unicodedata``          glyphs): the font is not consulted, so tables do not change when
version in the cache key)       a newer font adds glyphs
private use (``Co``)            a hex box (private meanings are not shared, so no font glyph)
surrogates (``Cs``)             a hex box
C0 controls and DEL             the Unicode *Control Pictures* glyph (U+2400 + cp, U+2421 for
                                DEL): ``\\n`` is drawn as ␊
C1 controls (U+0080-U+009F)     a hex box
combining marks (``Mn``/``Me``  the mark on a dotted circle U+25CC, as in the Unicode code
and any with a combining        charts -- also inside a token, so a mark never vanishes into its
class)                          neighbour
space U+0020                    blank (8 px); it shifts the following glyphs, so " the" and
                                "the" differ; a token that is only spaces embeds to zeros
other space separators (``Zs``) a hex box (they would all be blank otherwise)
character the font lacks        a hex box
raw byte (byte-level BPE piece  a byte box: its two hex digits in a box with a bar on top
that is not valid UTF-8)        (distinct from every codepoint box)
==============================  =================================================================

A token is its characters' cells side by side (8 or 16 px each) on a ``size x width`` canvas;
a token wider than the canvas is squeezed horizontally (box filter) to fit. Special tokens are
drawn as their text (``<pad>``, ``[CLS]``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import unicodedata
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.plugins.pixel.fonts import (
    _HEX_DIGITS,
    NO_OFFSET,
    advances,
    font_sha256,
    glyph_ids,
    hex_box,
    read_combining_offsets,
    read_hex_font,
    resolve_font,
    resolve_hex_font,
)

__all__ = [
    "TREATMENT_VERSION",
    "GlyphRasterizer",
    "build_glyph_table",
    "byte_box",
    "cache_dir",
    "treatment",
]

TREATMENT_VERSION = 1
DOTTED_CIRCLE = "\u25cc"


def cache_dir() -> Path:
    """``$POLYMODAL_CACHE/glyph`` (default ``~/.cache/polymodal/glyph``)."""
    root = os.environ.get("POLYMODAL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "polymodal"
    )
    return Path(root) / "glyph"


def treatment(codepoint: int) -> str:
    """How ``codepoint`` is drawn: ``"font"``, ``"control_picture"``, ``"combining"``,
    ``"space"`` or ``"hexbox"`` (see the module docstring)."""
    ch = chr(codepoint)
    cat = unicodedata.category(ch)
    if cat in ("Cn", "Co", "Cs"):
        return "hexbox"
    if cat == "Cc":
        return "control_picture" if codepoint < 0x20 or codepoint == 0x7F else "hexbox"
    if cat == "Zs":
        return "space" if codepoint == 0x20 else "hexbox"
    if cat in ("Mn", "Me") or unicodedata.combining(ch):
        return "combining"
    return "font"


_KINDS = ("font", "control_picture", "combining", "space", "hexbox")
_FONT, _CONTROL, _COMBINING, _SPACE, _HEXBOX = range(len(_KINDS))


@functools.lru_cache(maxsize=1)
def _bmp_treatments() -> np.ndarray:
    """:func:`treatment` of every BMP codepoint as an index into ``_KINDS`` (int8, 0x10000 entries)."""
    return np.fromiter((_KINDS.index(treatment(cp)) for cp in range(0x10000)), dtype=np.int8, count=0x10000)


def _treatments(codepoints: np.ndarray) -> np.ndarray:
    """Vectorised :func:`treatment` (indices into ``_KINDS``)."""
    out = _bmp_treatments()[np.minimum(codepoints, 0xFFFF)]
    for k in np.flatnonzero(codepoints > 0xFFFF).tolist():
        out[k] = _KINDS.index(treatment(int(codepoints[k])))
    return out


def byte_box(value: int, size: int = 16) -> np.ndarray:
    """A raw byte (not valid UTF-8 on its own): two hex digits in a box with a bar on top.

    Returns:
        ``(size, size)`` uint8 ink in {0, 255}.
    """
    box = np.zeros((16, 16), dtype=np.uint8)
    box[1, :] = box[14, :] = 255
    box[1:15, 0] = box[1:15, 15] = 255
    box[3:5, 2:14] = 255  # the bar that sets byte boxes apart from codepoint boxes
    for c, digit in enumerate(f"{value:02X}"):
        x0 = 4 + 5 * c
        for dy, bits in enumerate(_HEX_DIGITS[digit]):
            for dx in range(3):
                if bits & (4 >> dx):
                    box[7 + dy, x0 + dx] = 255
    if size != 16:
        from PIL import Image

        box = np.asarray(Image.fromarray(box).resize((size, size), Image.Resampling.NEAREST))
    return box


class GlyphRasterizer:
    """Draws codepoints into ``size x size`` cells following :func:`treatment`.

    Args:
        font: primary font (name or path); Unifont by default.
        size: pixels (Unifont is exact at 16).
        upper_font: font for codepoints above the BMP (skipped if not installed).
        bitmaps: take the glyphs of a Unifont font at 16 px from GNU Unifont's own bitmap file
            (``unifont.hex``, Debian package ``unifont``) when it is installed, instead of rasterising
            the outlines with FreeType: the same pixels (checked on a sample at first use, and on every
            glyph in the tests) at ~10x the speed. Only glyphs whose font advance equals the bitmap
            width are taken from the file; FreeType draws the rest.
    """

    #: glyphs compared with FreeType before the bitmap file is trusted
    BITMAP_CHECK = 64

    def __init__(
        self,
        font: str = "unifont",
        size: int = 16,
        upper_font: str | None = "unifont_upper",
        bitmaps: bool = True,
    ) -> None:
        from PIL import ImageFont

        self.size = int(size)
        self.font_path = resolve_font(font)
        self.upper_path = resolve_font(upper_font, required=False) if upper_font else None
        stem = self.font_path.stem.lower()
        self.bitmap_path = (
            resolve_hex_font(f"{stem}.hex")
            if bitmaps and self.size == 16 and stem in ("unifont", "unifont_jp")
            else None
        )
        self._bitmaps: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None] | None = None
        self._bitmaps_checked = False
        self._fonts: list[tuple[Path, Any, np.ndarray]] = []
        for path in (self.font_path, self.upper_path):
            if path is not None:
                f = ImageFont.truetype(str(path), self.size, layout_engine=ImageFont.Layout.BASIC)
                self._fonts.append((path, f, glyph_ids(str(path))))
        ascent, descent = self._fonts[0][1].getmetrics()
        self.baseline = max(0, (self.size - ascent - descent) // 2) + ascent

    def identity(self) -> dict[str, Any]:
        """What the pixels depend on (part of the cache key and of saved configs)."""
        return {
            "font": self.font_path.name,
            "font_sha256": font_sha256(str(self.font_path)),
            "upper_font": None if self.upper_path is None else self.upper_path.name,
            "upper_sha256": None if self.upper_path is None else font_sha256(str(self.upper_path)),
            "size": self.size,
            "unicode": unicodedata.unidata_version,
            "treatment": TREATMENT_VERSION,
            **({} if self.bitmap_path is None else {"bitmaps_sha256": font_sha256(str(self.bitmap_path))}),
        }

    def _font_indices(self, codepoints: np.ndarray) -> np.ndarray:
        """Index of the font that draws each codepoint (-1: none); above the BMP the upper font first."""
        out = np.full(len(codepoints), -1, dtype=np.int64)
        for i in reversed(range(len(self._fonts))):
            has = self._fonts[i][2][codepoints] > 0
            if i == 0 and len(self._fonts) > 1:
                has &= codepoints <= 0xFFFF
            out[has] = i
        return out

    def cells(self, codepoints: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Draw codepoints.

        Returns:
            ``(cells (N, size, size) uint8 ink in [0, 255], widths (N,) int)``: the glyph occupies
            ``cells[i, :, :widths[i]]``.
        """
        cps = np.asarray(codepoints if isinstance(codepoints, np.ndarray) else list(codepoints), dtype=np.int64)
        S = self.size
        cells = np.zeros((len(cps), S, S), dtype=np.uint8)
        widths = np.zeros(len(cps), dtype=np.int64)
        kinds = _treatments(cps)
        drawn = cps.copy()  # the codepoint whose glyph is drawn
        control = kinds == _CONTROL
        drawn[control] = np.where(cps[control] == 0x7F, 0x2421, 0x2400 + cps[control])
        kinds[control] = _FONT
        widths[kinds == _SPACE] = S // 2
        index = self._font_indices(drawn)
        index[(kinds != _FONT) & (kinds != _COMBINING)] = -1
        for i in np.flatnonzero((kinds != _SPACE) & (index < 0)).tolist():
            box = hex_box(int(cps[i]), S)
            cells[i, :, : box.shape[1]] = box[:, :S]
            widths[i] = min(S, box.shape[1])
        for f in range(len(self._fonts)):
            rows = np.flatnonzero((kinds == _FONT) & (index == f))
            if len(rows):
                self._draw_lines(f, rows, drawn[rows], cells, widths)
        marks = np.flatnonzero((kinds == _COMBINING) & (index >= 0))
        if len(marks) and self.bitmap_path is not None:
            marks = self._compose_marks(marks, drawn, index, cells, widths)
        for i in marks.tolist():
            self._draw_one(int(index[i]), DOTTED_CIRCLE + chr(int(drawn[i])), cells, widths, i)
        return cells, widths

    def _advance_px(self, index: int, codepoints: np.ndarray) -> np.ndarray | None:
        path, _f, ids = self._fonts[index]
        adv, upem = advances(str(path))
        px = adv[ids[codepoints]] * self.size / upem
        return px.astype(np.int64) if np.all(px == np.round(px)) else None

    def _draw_lines(self, index: int, rows: np.ndarray, cps: np.ndarray, cells: np.ndarray, widths: np.ndarray) -> None:
        """Glyphs ``cps`` into ``cells[rows]``: from the bitmap file where it has them, else many glyphs per
        ``ImageDraw.text`` call (one line per 512 glyphs, one canvas for all)."""
        S = self.size
        adv = self._advance_px(index, cps)
        if adv is None:  # fractional advances (not Unifont at a multiple of 16 px): one by one
            for i, cp in zip(rows.tolist(), cps.tolist()):
                self._draw_one(index, chr(cp), cells, widths, i)
            return
        odd = (adv > S) | (adv <= 0)  # zero-width or over-wide glyphs: one by one
        for i, cp in zip(rows[odd].tolist(), cps[odd].tolist()):
            self._draw_one(index, chr(cp), cells, widths, i)
        rows, cps, adv = rows[~odd], cps[~odd], adv[~odd]
        if index == 0 and self.bitmap_path is not None and len(rows):
            left = self._copy_bitmaps(rows, cps, adv, cells, widths)
            rows, cps, adv = rows[left], cps[left], adv[left]
        if len(rows):
            self._draw_lines_freetype(index, rows, cps, adv, cells, widths)

    def _load_bitmaps(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None] | None:
        """The bitmap file as (row of each BMP codepoint or -1, cells, widths, mark offsets or None), once
        checked against FreeType on a sample of glyphs (and of composed marks)."""
        if self._bitmaps_checked:
            return self._bitmaps
        self._bitmaps_checked = True
        assert self.bitmap_path is not None
        codepoints, cells, widths = read_hex_font(str(self.bitmap_path))
        keep = codepoints <= 0xFFFF
        row = np.full(0x10000, -1, dtype=np.int64)
        row[codepoints[keep]] = np.flatnonzero(keep)
        offsets_file = self.bitmap_path.with_name("plane00-combining.txt")
        offsets = read_combining_offsets(str(offsets_file)) if offsets_file.is_file() else None
        self._bitmaps = (row, cells, widths, offsets)
        ids = self._fonts[0][2]
        spread = codepoints[keep][np.linspace(0, keep.sum() - 1, 4 * self.BITMAP_CHECK).astype(int)]
        kinds = _treatments(spread)
        sample = spread[(ids[spread] > 0) & (kinds == _FONT)][: self.BITMAP_CHECK]
        marks = spread[(ids[spread] > 0) & (kinds == _COMBINING)][: self.BITMAP_CHECK // 4]
        adv = self._advance_px(0, sample)
        n = len(sample) + len(marks)
        ours = np.zeros((n, self.size, self.size), dtype=np.uint8)
        theirs = np.zeros_like(ours)
        ours_w, theirs_w = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        if adv is not None:
            at = np.arange(len(sample))
            self._draw_lines_freetype(0, at, sample, adv, theirs, theirs_w)
            unchecked = set(np.flatnonzero(self._copy_bitmaps(at, sample, adv, ours, ours_w)).tolist())
        else:
            unchecked = set(range(len(sample)))
        mark_rows = np.arange(len(sample), n)
        drawn = np.concatenate([sample, marks])
        for i in self._compose_marks(mark_rows, drawn, np.zeros(n, dtype=np.int64), ours, ours_w).tolist():
            unchecked.add(i)
        for i in mark_rows.tolist():
            self._draw_one(0, DOTTED_CIRCLE + chr(int(drawn[i])), theirs, theirs_w, i)
        for k in range(n):
            if k not in unchecked and not (np.array_equal(ours[k], theirs[k]) and ours_w[k] == theirs_w[k]):
                warnings.warn(
                    f"{self.bitmap_path}: glyph U+{int(drawn[k]):04X} differs from {self.font_path}; "
                    "drawing with FreeType",
                    stacklevel=3,
                )
                self._bitmaps = None
                break
        return self._bitmaps

    def _compose_marks(
        self, rows: np.ndarray, drawn: np.ndarray, index: np.ndarray, cells: np.ndarray, widths: np.ndarray
    ) -> np.ndarray:
        """Combining marks on a dotted circle from the bitmap file, placed as the font places them (a
        zero-advance mark at its listed offset from the pen, a spacing one after the circle); returns the
        rows left for FreeType."""
        bitmaps = self._load_bitmaps()
        if bitmaps is None or bitmaps[3] is None:
            return rows
        row, hex_cells, hex_widths, offsets = bitmaps
        assert offsets is not None
        S = self.size
        circle = int(row[ord(DOTTED_CIRCLE)])
        cps = drawn[rows]
        ok = (index[rows] == 0) & (cps <= 0xFFFF) & (circle >= 0)
        ok[ok] = row[cps[ok]] >= 0
        adv = self._advance_px(0, np.where(ok, cps, 0))
        if adv is None or circle < 0:
            return rows
        pen = int(hex_widths[circle])
        for k in np.flatnonzero(ok).tolist():
            cp = int(cps[k])
            mark, width = hex_cells[row[cp]], int(hex_widths[row[cp]])
            shift = int(offsets[cp])
            zero_advance = shift != NO_OFFSET
            if zero_advance != (adv[k] == 0) or (not zero_advance and adv[k] != width):
                ok[k] = False  # the font disagrees with the offsets file: let FreeType draw it
                continue
            canvas = np.zeros((S, 4 * S), dtype=np.uint8)  # the pen starts at column S
            canvas[:, S : S + pen] = hex_cells[circle][:, :pen]
            x0 = S + pen + (shift if zero_advance else 0)
            canvas[:, x0 : x0 + width] |= mark[:, :width]
            advance = min(S, max(1, pen + int(adv[k])))
            i = int(rows[k])
            cells[i, :, :advance] = canvas[:, S : S + advance]
            widths[i] = advance
        return rows[~ok]

    def _copy_bitmaps(
        self, rows: np.ndarray, cps: np.ndarray, adv: np.ndarray, cells: np.ndarray, widths: np.ndarray
    ) -> np.ndarray:
        """Fill the cells the bitmap file has (same advance); return the mask of those left for FreeType."""
        bitmaps = self._load_bitmaps()
        if bitmaps is None:
            return np.ones(len(rows), dtype=bool)
        row, hex_cells, hex_widths, _ = bitmaps
        source = np.where(cps <= 0xFFFF, row[np.minimum(cps, 0xFFFF)], -1)
        take = source >= 0
        take[take] = hex_widths[source[take]] == adv[take]
        cells[rows[take]] = hex_cells[source[take]]
        widths[rows[take]] = adv[take]
        return ~take

    def _draw_lines_freetype(
        self, index: int, rows: np.ndarray, cps: np.ndarray, adv: np.ndarray, cells: np.ndarray, widths: np.ndarray
    ) -> None:
        from PIL import Image, ImageDraw

        S = self.size
        per_line = 512
        n_lines = -(-len(rows) // per_line)
        line_width = int(max(adv[k : k + per_line].sum() for k in range(0, len(rows), per_line)))
        canvas = Image.new("L", (line_width + S, n_lines * S), 0)
        draw = ImageDraw.Draw(canvas)
        font = self._fonts[index][1]
        for line in range(n_lines):
            text = "".join(map(chr, cps[line * per_line : (line + 1) * per_line].tolist()))
            draw.text((0, line * S + self.baseline), text, font=font, fill=255, anchor="ls")
        pixels = np.asarray(canvas)
        for line in range(n_lines):
            sl = slice(line * per_line, (line + 1) * per_line)
            a = adv[sl]
            x = np.cumsum(a) - a
            band = pixels[line * S : (line + 1) * S]
            # gather each glyph's advance box into its cell (vectorised over the line)
            cols = x[:, None] + np.arange(S)[None, :]  # (n, S)
            valid = np.arange(S)[None, :] < a[:, None]
            block = band[:, np.minimum(cols, band.shape[1] - 1)].transpose(1, 0, 2)  # (n, S, S)
            cells[rows[sl]] = np.where(valid[:, None, :], block, 0)
            widths[rows[sl]] = a

    def _draw_one(self, index: int, text: str, cells: np.ndarray, widths: np.ndarray, i: int) -> None:
        from PIL import Image, ImageDraw

        S = self.size
        font = self._fonts[index][1]
        canvas = Image.new("L", (4 * S, S), 0)
        ImageDraw.Draw(canvas).text((S, self.baseline), text, font=font, fill=255, anchor="ls")
        advance = int(min(S, max(1, round(font.getlength(text)))))
        cells[i, :, :advance] = np.asarray(canvas)[:, S : S + advance]
        widths[i] = advance


def _squeeze(img: np.ndarray, width: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((width, img.shape[0]), Image.Resampling.BOX))


def token_bitmaps(units: Sequence[Sequence[int]], rasterizer: GlyphRasterizer, width: int) -> np.ndarray:
    """Bitmaps ``(V, size, width)`` uint8 ink in [0, 255] for tokens given as units.

    A unit ``>= 0`` is a codepoint, ``-(b + 1)`` a raw byte ``b``.
    """
    S = rasterizer.size
    first = np.fromiter((t[0] if len(t) == 1 else -1 for t in units), dtype=np.int64, count=len(units))
    simple = first >= 0  # one codepoint: its cell, placed at the left (cells are blank past their width)
    others = [k for k in np.flatnonzero(~simple).tolist() if units[k]]
    extra = {u for k in others for u in units[k] if u >= 0}
    unique = np.unique(np.concatenate([first[simple], np.fromiter(extra, dtype=np.int64, count=len(extra))]))
    cells, widths = rasterizer.cells(unique) if len(unique) else (np.zeros((0, S, S), np.uint8), np.zeros(0, np.int64))
    out = np.zeros((len(units), S, width), dtype=np.uint8)
    out[simple, :, :S] = cells[np.searchsorted(unique, first[simple])]
    where = {cp: k for k, cp in enumerate(unique.tolist())} if others else {}
    byte_cells: dict[int, np.ndarray] = {}
    for k in others:
        pieces = []
        for u in units[k]:
            if u >= 0:
                j = where[u]
                pieces.append(cells[j, :, : widths[j]])
            else:
                if u not in byte_cells:
                    byte_cells[u] = byte_box(-u - 1, S)
                pieces.append(byte_cells[u])
        img = np.concatenate(pieces, axis=1)
        if img.shape[1] > width:
            img = _squeeze(img, width)
        out[k, :, : img.shape[1]] = img
    return out


def _scaled_table(bitmaps: np.ndarray, dim: int, seed: int) -> np.ndarray:
    """``(V, d_in)`` uint8 bitmaps -> the float32 table: ink in [0, 1], projected to ``dim`` if it differs,
    times the one constant that makes its root-mean-square value 1."""
    table = bitmaps / np.float32(255)
    if dim != bitmaps.shape[1]:
        table = table @ _projection(bitmaps.shape[1], dim, seed)
    flat = table.reshape(-1)
    rms = float(np.sqrt(float(np.dot(flat, flat)) / max(1, flat.size)))
    if rms > 0:
        table *= np.float32(1.0 / rms)
    return np.ascontiguousarray(table, dtype=np.float32)


def _projection(d_in: int, d_out: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((d_in, d_out), dtype=np.float32) / np.float32(np.sqrt(d_out))).astype(np.float32)


def build_glyph_table(
    tokenizer: Any,
    dim: int | None = None,
    font: str = "unifont",
    size: int = 16,
    width: int | None = None,
    seed: int = 0,
    cache: bool | str | os.PathLike[str] = True,
) -> np.ndarray:
    """The frozen embedding table ``(vocab_size, dim)`` float32 for a tokenizer.

    Rows are the flattened token bitmaps (``size * width`` values in [0, 1]), multiplied by a
    fixed Gaussian projection seeded with ``seed`` when ``dim`` differs from ``size * width``,
    then scaled by one constant so that the table's root-mean-square value is 1.

    Args:
        tokenizer: a :class:`~polymodal.plugins.glyph.tokenizers.GlyphTokenizer` or anything
            :func:`~polymodal.plugins.glyph.tokenizers.as_glyph_tokenizer` accepts.
        dim: model width; default ``size * width`` (raw pixels, no projection).
        font: primary font (Unifont).
        size: glyph cell size in pixels.
        width: token canvas width in pixels; default ``size`` for single-codepoint
            vocabularies, ``4 * size`` otherwise.
        seed: projection seed.
        cache: True (the default folder, see :func:`cache_dir`), a folder, or False.
    """
    from polymodal.plugins.glyph.tokenizers import as_glyph_tokenizer

    tok = as_glyph_tokenizer(tokenizer)
    raster = GlyphRasterizer(font, size)
    if width is None:
        width = size if tok.max_units == 1 else 4 * size
    d_in = size * width
    dim = int(dim or d_in)
    key_data = {
        "tokenizer": tok.identity(),
        "raster": raster.identity(),
        "width": width,
        "dim": dim,
        "seed": seed if dim != d_in else None,
        "scale": "rms1",
    }
    key = hashlib.sha256(json.dumps(key_data, sort_keys=True).encode()).hexdigest()[:24]
    path = None
    if cache:
        folder = cache_dir() if cache is True else Path(cache)
        path = folder / f"glyph-{key}.npy"
        if path.is_file():
            try:
                stored = np.load(path, allow_pickle=False)
                if stored.shape == (tok.vocab_size, dim):
                    # raw-pixel tables are stored as their uint8 bitmaps (a quarter of the bytes)
                    return _scaled_table(stored, dim, seed) if stored.dtype == np.uint8 else stored
            except (OSError, ValueError):
                pass  # a torn or foreign file: rebuild it
    bitmaps = token_bitmaps(tok.units(), raster, width).reshape(tok.vocab_size, d_in)
    table = _scaled_table(bitmaps, dim, seed)
    if path is not None:
        from polymodal.io import atomic_path

        try:
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, bitmaps if dim == d_in else table, allow_pickle=False)
            (path.with_suffix(".json")).write_text(json.dumps(key_data, indent=2, sort_keys=True))
        except OSError:
            pass  # a read-only cache is not an error: the table is still returned
    return table
