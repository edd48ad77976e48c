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

import hashlib
import json
import os
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.plugins.pixel.fonts import _HEX_DIGITS, advances, font_sha256, glyph_ids, hex_box, resolve_font

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
    """

    def __init__(self, font: str = "unifont", size: int = 16, upper_font: str | None = "unifont_upper") -> None:
        from PIL import ImageFont

        self.size = int(size)
        self.font_path = resolve_font(font)
        self.upper_path = resolve_font(upper_font, required=False) if upper_font else None
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
        }

    def _font_index(self, codepoint: int) -> int | None:
        for i, (_p, _f, ids) in enumerate(self._fonts):
            if codepoint > 0xFFFF and i == 0 and len(self._fonts) > 1:
                continue  # above the BMP, prefer the upper font
            if ids[codepoint] > 0:
                return i
        return None

    def cells(self, codepoints: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Draw codepoints.

        Returns:
            ``(cells (N, size, size) uint8 ink in [0, 255], widths (N,) int)``: the glyph occupies
            ``cells[i, :, :widths[i]]``.
        """
        cps = np.asarray(list(codepoints), dtype=np.int64)
        S = self.size
        cells = np.zeros((len(cps), S, S), dtype=np.uint8)
        widths = np.zeros(len(cps), dtype=np.int64)
        # (index, text to draw, font index) for font-drawn items
        batched: dict[int, list[tuple[int, str]]] = {}
        single: list[tuple[int, str, int]] = []
        for i, cp in enumerate(cps.tolist()):
            kind = treatment(cp)
            if kind == "control_picture":
                kind, cp = "font", (0x2421 if cp == 0x7F else 0x2400 + cp)
            if kind == "space":
                widths[i] = S // 2
                continue
            text = chr(cp) if kind == "font" else DOTTED_CIRCLE + chr(cp)
            index = None
            if kind in ("font", "combining"):
                index = self._font_index(cp)
            if index is None:
                box = hex_box(cp, S)
                cells[i, :, : box.shape[1]] = box[:, :S]
                widths[i] = min(S, box.shape[1])
                continue
            if kind == "font":
                batched.setdefault(index, []).append((i, text))
            else:
                single.append((i, text, index))
        for index, items in batched.items():
            self._draw_lines(index, items, cells, widths)
        for i, text, index in single:
            self._draw_one(index, text, cells, widths, i)
        return cells, widths

    def _advance_px(self, index: int, codepoints: np.ndarray) -> np.ndarray | None:
        path, _f, ids = self._fonts[index]
        adv, upem = advances(str(path))
        px = adv[ids[codepoints]] * self.size / upem
        return px.astype(np.int64) if np.all(px == np.round(px)) else None

    def _draw_lines(self, index: int, items: list[tuple[int, str]], cells: np.ndarray, widths: np.ndarray) -> None:
        """Many glyphs per ``ImageDraw.text`` call (one line per 512 glyphs, one canvas for all)."""
        from PIL import Image, ImageDraw

        S = self.size
        cps = np.fromiter((ord(t) for _, t in items), dtype=np.int64, count=len(items))
        adv = self._advance_px(index, cps)
        if adv is None:  # fractional advances (not Unifont at a multiple of 16 px): one by one
            for i, text in items:
                self._draw_one(index, text, cells, widths, i)
            return
        odd = (adv > S) | (adv <= 0)  # zero-width or over-wide glyphs: one by one
        if odd.any():
            for k in np.flatnonzero(odd).tolist():
                self._draw_one(index, items[k][1], cells, widths, items[k][0])
            items = [it for it, o in zip(items, odd.tolist()) if not o]
            adv = adv[~odd]
            if not items:
                return
        per_line = 512
        n_lines = -(-len(items) // per_line)
        line_width = int(max(adv[k : k + per_line].sum() for k in range(0, len(items), per_line)))
        canvas = Image.new("L", (line_width + S, n_lines * S), 0)
        draw = ImageDraw.Draw(canvas)
        font = self._fonts[index][1]
        for line in range(n_lines):
            text = "".join(t for _, t in items[line * per_line : (line + 1) * per_line])
            draw.text((0, line * S + self.baseline), text, font=font, fill=255, anchor="ls")
        pixels = np.asarray(canvas)
        idx = np.fromiter((i for i, _ in items), dtype=np.int64, count=len(items))
        for line in range(n_lines):
            sl = slice(line * per_line, (line + 1) * per_line)
            a = adv[sl]
            x = np.cumsum(a) - a
            rows = pixels[line * S : (line + 1) * S]
            # gather each glyph's advance box into its cell (vectorised over the line)
            cols = x[:, None] + np.arange(S)[None, :]  # (n, S)
            valid = np.arange(S)[None, :] < a[:, None]
            block = rows[:, np.minimum(cols, rows.shape[1] - 1)].transpose(1, 0, 2)  # (n, S, S)
            cells[idx[sl]] = np.where(valid[:, None, :], block, 0)
            widths[idx[sl]] = a

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
    """Bitmaps ``(V, size, width)`` float32 in [0, 1] for tokens given as units.

    A unit ``>= 0`` is a codepoint, ``-(b + 1)`` a raw byte ``b``.
    """
    S = rasterizer.size
    unique = sorted({u for token in units for u in token if u >= 0})
    cells, widths = rasterizer.cells(unique) if unique else (np.zeros((0, S, S), np.uint8), np.zeros(0, np.int64))
    where = {cp: k for k, cp in enumerate(unique)}
    byte_cells = {}
    out = np.zeros((len(units), S, width), dtype=np.float32)
    single_cell = width == S
    simple: list[int] = []
    if single_cell:  # fast path: one codepoint per token (codepoint tokenizers)
        simple = [k for k, t in enumerate(units) if len(t) == 1 and t[0] >= 0]
        if simple:
            out[simple] = cells[[where[units[k][0]] for k in simple]] / np.float32(255)
    done = set(simple)
    for k, token in enumerate(units):
        if k in done or not token:
            continue
        pieces = []
        for u in token:
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
        out[k, :, : img.shape[1]] = img / np.float32(255)
    return out


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
                table = np.load(path, allow_pickle=False)
                if table.shape == (tok.vocab_size, dim):
                    return table
            except (OSError, ValueError):
                pass  # a torn or foreign file: rebuild it
    bitmaps = token_bitmaps(tok.units(), raster, width).reshape(tok.vocab_size, d_in)
    table = bitmaps if dim == d_in else bitmaps @ _projection(d_in, dim, seed)
    flat = table.reshape(-1)
    rms = float(np.sqrt(float(np.dot(flat, flat)) / max(1, flat.size)))
    if rms > 0:
        table *= np.float32(1.0 / rms)
    table = np.ascontiguousarray(table, dtype=np.float32)
    if path is not None:
        from polymodal.io import atomic_path

        try:
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, table, allow_pickle=False)
            (path.with_suffix(".json")).write_text(json.dumps(key_data, indent=2, sort_keys=True))
        except OSError:
            pass  # a read-only cache is not an error: the table is still returned
    return table
