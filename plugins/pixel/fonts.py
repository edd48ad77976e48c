"""Font discovery, character coverage (the ``cmap`` table) and a drawn hex replacement box.

Pillow cannot tell whether a font has a glyph for a character (it silently draws ``.notdef``),
so :func:`coverage` reads the font's ``cmap`` table (formats 4 and 12, the ones Unifont and
DejaVu use) with a few lines of ``struct`` instead of depending on fontTools.
"""

from __future__ import annotations

import functools
import hashlib
import os
import struct
from pathlib import Path

import numpy as np

__all__ = [
    "FONT_DIRS",
    "HEX_FONT_DIRS",
    "advances",
    "coverage",
    "font_sha256",
    "glyph_ids",
    "hex_box",
    "read_combining_offsets",
    "read_hex_font",
    "resolve_font",
    "resolve_hex_font",
]

#: Where short font names are looked up (first hit wins); ``POLYMODAL_FONT_PATH`` (os.pathsep
#: separated) is searched first.
FONT_DIRS = (
    "/usr/share/fonts/opentype/unifont",
    "/usr/share/fonts/truetype/unifont",
    "/usr/share/fonts/truetype/dejavu",
    "/usr/share/fonts/TTF",
    "/usr/share/fonts/OTF",
    "/usr/local/share/fonts",
    "~/.local/share/fonts",
    "/Library/Fonts",
    "C:/Windows/Fonts",
)

#: Where :func:`resolve_hex_font` looks for GNU Unifont's own bitmap distribution (``unifont.hex``,
#: Debian package ``unifont``), after ``POLYMODAL_FONT_PATH``.
NO_OFFSET = 1  # :func:`read_combining_offsets` for a codepoint that is not a zero-advance mark
HEX_FONT_DIRS = ("/usr/share/unifont", "/usr/local/share/unifont", "~/.local/share/unifont")

#: Short names -> file names.
FONT_NAMES = {
    "unifont": ("unifont.otf", "unifont.ttf", "Unifont.otf"),
    "unifont_upper": ("unifont_upper.otf", "unifont_upper.ttf"),
    "dejavu": ("DejaVuSans.ttf",),
    "dejavu-sans": ("DejaVuSans.ttf",),
    "dejavu-mono": ("DejaVuSansMono.ttf",),
    "dejavu-serif": ("DejaVuSerif.ttf",),
}

INSTALL_HINT = {
    "unifont": "install it with `apt-get install fonts-unifont` (Debian/Ubuntu)",
    "unifont_upper": "install it with `apt-get install fonts-unifont` (Debian/Ubuntu)",
}


def _search_dirs() -> list[Path]:
    extra = [p for p in os.environ.get("POLYMODAL_FONT_PATH", "").split(os.pathsep) if p]
    return [Path(d).expanduser() for d in (*extra, *FONT_DIRS)]


def resolve_font(font: str | os.PathLike[str], required: bool = True) -> Path | None:
    """A font file from a path or a short name (``"unifont"``, ``"dejavu"``, a file name).

    Raises:
        FileNotFoundError: ``required`` and the font is not installed (with an install hint).
    """
    text = os.fspath(font)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    names = FONT_NAMES.get(text.lower(), (text,))
    for directory in _search_dirs():
        for name in names:
            candidate = directory / name
            if candidate.is_file():
                return candidate
    if not required:
        return None
    hint = INSTALL_HINT.get(text.lower(), "give a path to a .ttf/.otf file or set POLYMODAL_FONT_PATH")
    raise FileNotFoundError(f"font {text!r} not found in {', '.join(map(str, _search_dirs()))}; {hint}")


@functools.lru_cache(maxsize=16)
def font_sha256(path: str) -> str:
    """SHA-256 of a font file (saved with models so a different font version is noticed)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resolve_hex_font(name: str = "unifont.hex") -> Path | None:
    """GNU Unifont's ``.hex`` bitmap file (``apt-get install unifont``), or None when not installed."""
    extra = [p for p in os.environ.get("POLYMODAL_FONT_PATH", "").split(os.pathsep) if p]
    for directory in (*extra, *HEX_FONT_DIRS):
        candidate = Path(directory).expanduser() / name
        if candidate.is_file():
            return candidate
    return None


_NIBBLE = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789ABCDEF"):
    _NIBBLE[_c] = _i
for _i, _c in enumerate(b"abcdef"):
    _NIBBLE[_c] = 10 + _i


@functools.lru_cache(maxsize=4)
def read_hex_font(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All glyphs of a GNU Unifont ``.hex`` file, parsed in a few vectorised NumPy passes.

    Each line is ``CODEPOINT:BITMAP``: 4-6 hex digits, a colon, then 32 hex digits (an 8x16 glyph)
    or 64 (16x16), rows top to bottom, most significant bit leftmost.

    Returns:
        ``(codepoints (N,) int64, cells (N, 16, 16) uint8 ink in {0, 255}, widths (N,) int64 of 8 or 16)``.

    Raises:
        ValueError: ``<path>:<line>: ...`` for the first malformed line.
    """
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise ValueError(f"{path}: empty hex font")
    data = data[data != 13]  # tolerate CRLF line ends
    if data[-1] != 10:
        data = np.append(data, np.uint8(10))
    ends = np.flatnonzero(data == 10)
    starts = np.concatenate(([0], ends[:-1] + 1))
    colons = np.flatnonzero(data == 58)
    nib = _NIBBLE[data]
    # each line must have exactly one colon, after 4-6 hex digits, followed by 32 or 64 hex digits
    line_of_colon = np.searchsorted(ends, colons)
    per_line = np.bincount(line_of_colon, minlength=len(ends))
    first_colon = np.full(len(ends), -1, dtype=np.int64)
    first_colon[line_of_colon[::-1]] = colons[::-1]
    hex_count = np.add.reduceat((nib != 255).astype(np.int64), starts)
    filled = ends > starts  # blank lines are skipped
    lines = np.flatnonzero(filled)  # 0-based line numbers, for errors
    starts, ends, first_colon, per_line, hex_count = (
        a[filled] for a in (starts, ends, first_colon, per_line, hex_count)
    )
    cp_len = first_colon - starts
    glyph_len = ends - first_colon - 1
    ok = (per_line == 1) & (cp_len >= 4) & (cp_len <= 6) & ((glyph_len == 32) | (glyph_len == 64))
    ok &= hex_count == cp_len + glyph_len
    if not ok.all():
        line = int(lines[np.flatnonzero(~ok)[0]])
        raise ValueError(f"{path}:{line + 1}: expected 'CODEPOINT:BITMAP' (4-6 hex digits, ':', 32 or 64 hex digits)")
    codepoints = np.zeros(len(starts), dtype=np.int64)
    for k in range(6):
        has = cp_len > k
        digit = nib[np.minimum(starts + k, len(data) - 1)].astype(np.int64)
        codepoints = np.where(has, codepoints * 16 + digit, codepoints)
    cells = np.zeros((len(starts), 16, 16), dtype=np.uint8)
    for length, width in ((32, 8), (64, 16)):
        rows = np.flatnonzero(glyph_len == length)
        digits = nib[(first_colon[rows] + 1)[:, None] + np.arange(length)[None, :]]  # (n, length)
        packed = (digits[:, 0::2] << 4) | digits[:, 1::2]  # (n, length / 2) bytes
        cells[rows, :, :width] = np.unpackbits(packed, axis=1).reshape(len(rows), 16, width) * np.uint8(255)
    widths = np.where(glyph_len == 32, 8, 16).astype(np.int64)
    return codepoints, cells, widths


@functools.lru_cache(maxsize=4)
def read_combining_offsets(path: str) -> np.ndarray:
    """Unifont's ``plane00-combining.txt``: the x offset (pixels, <= 0) at which each combining mark of
    the ``.hex`` file is drawn relative to the pen, for the marks that take no advance.

    Returns:
        ``(0x10000,)`` int16: the offset, or ``NO_OFFSET`` (a spacing glyph) for codepoints not listed.

    Raises:
        ValueError: ``<path>:<line>: ...`` for the first malformed line.
    """
    out = np.full(0x10000, NO_OFFSET, dtype=np.int16)
    with open(path, encoding="ascii", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            text = line.strip()
            if not text:
                continue
            cp, sep, offset = text.partition(":")
            try:
                if not sep or len(cp) not in (4, 5, 6):
                    raise ValueError
                value, shift = int(cp, 16), int(offset)
            except ValueError:
                raise ValueError(
                    f"{path}:{number}: expected 'CODEPOINT:OFFSET' (hex codepoint, integer pixels)"
                ) from None
            if value <= 0xFFFF and -64 <= shift <= 0:
                out[value] = shift
    return out


def _tables(data: bytes, path: str) -> dict[bytes, int]:
    if len(data) < 12:
        raise ValueError(f"{path}: not a font file")
    (num_tables,) = struct.unpack_from(">H", data, 4)
    out = {}
    for i in range(num_tables):
        tag, _check, offset, _length = struct.unpack_from(">4sIII", data, 12 + 16 * i)
        out[tag] = offset
    return out


@functools.lru_cache(maxsize=16)
def glyph_ids(path: str) -> np.ndarray:
    """Glyph index of every codepoint (``int32``, 0x110000 entries; 0 = no glyph) from the cmap.

    Reads the best Unicode subtable (format 12 if present, else format 4).

    Raises:
        ValueError: the file is not an OpenType/TrueType font or has no Unicode cmap.
    """
    data = Path(path).read_bytes()
    tables = _tables(data, path)
    if b"cmap" not in tables:
        raise ValueError(f"{path}: font has no cmap table")
    cmap_offset = tables[b"cmap"]
    (_version, n_sub) = struct.unpack_from(">HH", data, cmap_offset)
    best: tuple[int, int] | None = None  # (format, absolute offset)
    for i in range(n_sub):
        platform, encoding, sub_off = struct.unpack_from(">HHI", data, cmap_offset + 4 + 8 * i)
        absolute = cmap_offset + sub_off
        (fmt,) = struct.unpack_from(">H", data, absolute)
        unicode_table = platform == 0 or (platform == 3 and encoding in (1, 10))
        if unicode_table and fmt in (4, 12) and (best is None or fmt > best[0]):
            best = (fmt, absolute)
    if best is None:
        raise ValueError(f"{path}: font has no Unicode cmap subtable of format 4 or 12")
    ids = np.zeros(0x110000, dtype=np.int32)
    fmt, off = best
    if fmt == 12:
        (n_groups,) = struct.unpack_from(">I", data, off + 12)
        groups = np.frombuffer(data, dtype=">u4", count=3 * n_groups, offset=off + 16).reshape(-1, 3)
        for start, end, glyph in groups.tolist():
            end = min(end, 0x10FFFF)
            ids[start : end + 1] = np.arange(glyph, glyph + end - start + 1)
        return ids
    # format 4: segments of (end, start, delta, range offset)
    (seg_x2,) = struct.unpack_from(">H", data, off + 6)
    n = seg_x2 // 2
    ends = np.frombuffer(data, dtype=">u2", count=n, offset=off + 14).astype(np.int64)
    starts = np.frombuffer(data, dtype=">u2", count=n, offset=off + 16 + seg_x2).astype(np.int64)
    deltas = np.frombuffer(data, dtype=">i2", count=n, offset=off + 16 + 2 * seg_x2).astype(np.int64)
    ro_pos = off + 16 + 3 * seg_x2
    range_offsets = np.frombuffer(data, dtype=">u2", count=n, offset=ro_pos).astype(np.int64)
    for k in range(n):
        start, end = int(starts[k]), int(ends[k])
        if start == 0xFFFF:
            continue
        cps = np.arange(start, end + 1)
        if range_offsets[k] == 0:
            ids[cps] = (cps + deltas[k]) & 0xFFFF
            continue
        addr = ro_pos + 2 * k + int(range_offsets[k]) + 2 * (cps - start)
        raw = np.frombuffer(data, dtype=">u2", count=int(addr.max() - addr.min()) // 2 + 1, offset=int(addr.min()))
        glyph = raw[(addr - addr.min()) // 2].astype(np.int64)
        ids[cps] = np.where(glyph != 0, (glyph + deltas[k]) & 0xFFFF, 0)
    return ids


@functools.lru_cache(maxsize=16)
def coverage(path: str) -> np.ndarray:
    """Boolean array over all 0x110000 codepoints: True where the font's cmap maps to a glyph."""
    return glyph_ids(path) > 0


@functools.lru_cache(maxsize=16)
def advances(path: str) -> tuple[np.ndarray, int]:
    """``(advance width per glyph index in font units, units per em)`` from ``hmtx``/``hhea``/``head``."""
    data = Path(path).read_bytes()
    tables = _tables(data, path)
    for tag in (b"head", b"hhea", b"hmtx", b"maxp"):
        if tag not in tables:
            raise ValueError(f"{path}: font has no {tag.decode()} table")
    (upem,) = struct.unpack_from(">H", data, tables[b"head"] + 18)
    (n_metrics,) = struct.unpack_from(">H", data, tables[b"hhea"] + 34)
    (n_glyphs,) = struct.unpack_from(">H", data, tables[b"maxp"] + 4)
    metrics = np.frombuffer(data, dtype=">u2", count=2 * n_metrics, offset=tables[b"hmtx"])[::2].astype(np.int64)
    adv = np.full(max(n_glyphs, n_metrics), metrics[-1], dtype=np.int64)
    adv[:n_metrics] = metrics
    return adv, int(upem)


# 3x5 pixel hex digits, rows top to bottom, 3 bits per row (MSB = left column).
_HEX_DIGITS = {
    "0": (7, 5, 5, 5, 7),
    "1": (2, 6, 2, 2, 7),
    "2": (7, 1, 7, 4, 7),
    "3": (7, 1, 3, 1, 7),
    "4": (5, 5, 7, 1, 1),
    "5": (7, 4, 7, 1, 7),
    "6": (7, 4, 7, 5, 7),
    "7": (7, 1, 1, 2, 2),
    "8": (7, 5, 7, 5, 7),
    "9": (7, 5, 7, 1, 7),
    "A": (2, 5, 7, 5, 5),
    "B": (6, 5, 6, 5, 6),
    "C": (3, 4, 4, 4, 3),
    "D": (6, 5, 5, 5, 6),
    "E": (7, 4, 6, 4, 7),
    "F": (7, 4, 6, 4, 4),
}


_DIGIT_BITMAPS = {
    d: np.array([[255 if bits & (4 >> x) else 0 for x in range(3)] for bits in rows], dtype=np.uint8)
    for d, rows in _HEX_DIGITS.items()
}
_BOX_FRAME = np.zeros((16, 16), dtype=np.uint8)
_BOX_FRAME[1, :] = _BOX_FRAME[14, :] = 255
_BOX_FRAME[1:15, 0] = _BOX_FRAME[1:15, 15] = 255


def hex_box(codepoint: int, height: int = 16) -> np.ndarray:
    """A visible replacement glyph: a box with the codepoint's hex digits (Unifont's convention).

    Four digits (two rows of two) for the BMP, six (two rows of three) above it. The box is
    ``height`` pixels tall and ``height`` pixels wide (16 at the native Unifont size).

    Returns:
        ``(height, width)`` uint8 ink (255 = ink, 0 = background).
    """
    digits = f"{codepoint:04X}" if codepoint <= 0xFFFF else f"{codepoint:06X}"
    per_row = len(digits) // 2
    box = _BOX_FRAME.copy()
    w = 16
    for k, digit in enumerate(digits):
        r, c = divmod(k, per_row)
        y0, x0 = 3 + 6 * r, (4 + 6 * c) if per_row == 2 else (2 + 4 * c)
        box[y0 : y0 + 5, x0 : x0 + 3] = _DIGIT_BITMAPS[digit]
    if height != 16:
        from PIL import Image

        new_w = max(1, round(w * height / 16))
        box = np.asarray(Image.fromarray(box).resize((new_w, height), Image.Resampling.NEAREST))
    return box
