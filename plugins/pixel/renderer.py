"""PIXEL-style text rendering with a glyph atlas.

Text becomes a one-line strip, ``height`` pixels tall, cut into ``patch_size``-wide patches:
black text on white, left to right, then one all-black end-of-sequence patch; patches after it
are padding (white) and masked out. This is the input format of PIXEL (Rust et al., 2023,
https://arxiv.org/abs/2207.06991) and Pixel-Linguist (Xiao et al., 2024,
https://arxiv.org/abs/2402.08183).

Speed comes from never calling the font engine per sentence. Each character is rasterised
once, by the same Pillow call a plain ``ImageDraw.text`` would make, and stored in an atlas:
the columns inside the glyph's advance box go into one array, ink outside it (combining marks,
overhanging italics) is kept aside. A batch of sentences is then one vectorised gather of atlas
columns (numpy fancy indexing) plus a short loop over the rare overhangs, which are composed
with ``max`` exactly as FreeType glyphs are composed by Pillow. For Unifont (integer advances, no
kerning) the result is pixel-identical to ``ImageDraw.text`` of the whole string.

Fonts are tried in order per character (default: Unifont, Unifont Upper, DejaVu Sans), so any
codepoint a font covers renders; the rest become a visible hex-code box (see
:func:`~polymodal.plugins.pixel.fonts.hex_box`), never ``.notdef`` and never an error.
"""

from __future__ import annotations

import unicodedata
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.plugins.pixel.fonts import coverage, font_sha256, hex_box, resolve_font

__all__ = ["DEFAULT_FONTS", "RenderedBatch", "RendererConfig", "TextRenderer"]

#: Per-character fallback order; missing fonts are skipped (at least one must exist).
DEFAULT_FONTS: tuple[str, ...] = ("unifont", "unifont_upper", "dejavu")

#: Characters drawn as a plain space (line breaks and tabs inside a sentence).
_WHITESPACE_CONTROLS = frozenset("\t\n\v\f\r\x1c\x1d\x1e\x1f\x85\u2028\u2029")


@dataclass(frozen=True)
class RendererConfig:
    """Everything that determines the pixels; saved with a model.

    Attributes:
        fonts: font names or paths, tried per character in order.
        font_size: font size in pixels (Unifont is exact at 16 and its multiples).
        height: strip height in pixels.
        patch_size: patch width in pixels (patches are ``height x patch_size``).
        max_patches: patches per strip including the end-of-sequence patch (PIXEL: 529).
    """

    fonts: tuple[str, ...] = DEFAULT_FONTS
    font_size: int = 16
    height: int = 16
    patch_size: int = 16
    max_patches: int = 529

    def __post_init__(self) -> None:
        object.__setattr__(self, "fonts", tuple(self.fonts))
        for name in ("font_size", "height", "patch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"RendererConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_patches < 2:
            raise ValueError(f"RendererConfig.max_patches must be >= 2 (text + end patch), got {self.max_patches}")
        if not self.fonts:
            raise ValueError("RendererConfig.fonts is empty")


@dataclass
class RenderedBatch:
    """Rendered strips of a batch.

    Stored column-major as ink (what the atlas gather produces); :attr:`pixels` and
    :meth:`patches` convert with one fused pass each.

    Attributes:
        ink: ``(B, T * patch_size, height)`` uint8, 255 = ink; ``T`` is the largest patch count
            in the batch.
        num_patches: ``(B,)`` patches in use per strip, end-of-sequence patch included.
        truncated: ``(B,)`` bool, True where the text did not fit in ``max_patches - 1`` patches.
        patch_size: patch width in pixels.
    """

    ink: np.ndarray
    num_patches: np.ndarray
    truncated: np.ndarray
    patch_size: int = 16

    @property
    def pixels(self) -> np.ndarray:
        """``(B, height, T * patch_size)`` uint8, 255 = white background, 0 = ink."""
        B, W, H = self.ink.shape
        out = np.empty((B, H, W), dtype=np.uint8)
        np.subtract(255, self.ink.transpose(0, 2, 1), out=out)
        return out

    def patches(self) -> np.ndarray:
        """``(B, T, height * patch_size)`` uint8 pixels: each patch flattened row-major."""
        B, W, H = self.ink.shape
        P = self.patch_size
        out = np.empty((B, W // P, H, P), dtype=np.uint8)
        np.subtract(255, self.ink.reshape(B, W // P, P, H).transpose(0, 1, 3, 2), out=out)
        return out.reshape(B, W // P, H * P)

    def mask(self) -> np.ndarray:
        """``(B, T)`` bool attention mask over used patches."""
        T = self.ink.shape[1] // self.patch_size
        return np.arange(T)[None, :] < self.num_patches[:, None]


@dataclass
class _Font:
    path: Path
    size: int
    covered: np.ndarray
    font: Any = None  # PIL FreeTypeFont, loaded lazily (not pickled)


class TextRenderer:
    """Render text to PIXEL-style patch strips, fast (see the module docstring).

    Args:
        fonts: font names/paths in fallback order; missing ones are skipped with a warning.
        font_size: pixels.
        height: strip height in pixels.
        patch_size: patch width in pixels.
        max_patches: maximum patches per strip (end-of-sequence patch included); longer text is
            cut at a character boundary.

    Example:
        >>> r = TextRenderer()
        >>> batch = r.render_batch(["Hello world", "Grüße"])
        >>> batch.pixels.shape  # (2, 16, T * 16)
    """

    def __init__(
        self,
        fonts: Sequence[str] = DEFAULT_FONTS,
        font_size: int = 16,
        height: int = 16,
        patch_size: int = 16,
        max_patches: int = 529,
    ) -> None:
        self.config = RendererConfig(tuple(fonts), int(font_size), int(height), int(patch_size), int(max_patches))
        self._fonts: list[_Font] = []
        missing = []
        for name in self.config.fonts:
            path = resolve_font(name, required=False)
            if path is None:
                missing.append(name)
                continue
            self._fonts.append(_Font(path=path, size=self.config.font_size, covered=coverage(str(path))))
        if not self._fonts:
            resolve_font(self.config.fonts[0])  # raises with the install hint
        if missing:
            warnings.warn(
                f"fonts {missing} not found; rendering with {[f.path.name for f in self._fonts]}",
                stacklevel=2,
            )
        self._fit_fonts()
        self._reset_atlas()

    # ------------------------------------------------------------------ fonts
    def _load(self, f: _Font) -> Any:
        if f.font is None:
            from PIL import ImageFont

            f.font = ImageFont.truetype(str(f.path), f.size, layout_engine=ImageFont.Layout.BASIC)
        return f.font

    def _fit_fonts(self) -> None:
        """Shrink fonts until they fit the strip; all share the primary font's baseline."""
        H = self.config.height
        primary = self._fonts[0]
        while True:
            ascent, descent = self._load(primary).getmetrics()
            if ascent + descent <= H or primary.size <= 4:
                break
            primary.size -= 1
            primary.font = None
        top = max(0, (H - ascent - descent) // 2)
        self.baseline = top + ascent
        for f in self._fonts[1:]:
            while f.size > 4:
                a, d = self._load(f).getmetrics()
                if a <= self.baseline and d <= H - self.baseline:
                    break
                f.size -= 1
                f.font = None

    @property
    def font_files(self) -> list[dict[str, Any]]:
        """The fonts actually used: file name, size and SHA-256 (saved with models)."""
        return [{"file": f.path.name, "size": f.size, "sha256": font_sha256(str(f.path))} for f in self._fonts]

    # ------------------------------------------------------------------ atlas
    def _reset_atlas(self) -> None:
        H = self.config.height
        self._lut = np.full(0x110000, -1, dtype=np.int32)  # codepoint -> glyph id
        self._cols = np.zeros((256, H), dtype=np.uint8)  # atlas, one row per pixel column (ink)
        self._n_cols = 0
        self._start: list[int] = []
        self._width: list[int] = []
        self._overhang: dict[int, list[tuple[int, np.ndarray]]] = {}
        self._start_arr = np.zeros(0, dtype=np.int64)
        self._width_arr = np.zeros(0, dtype=np.int64)
        self._has_overhang = np.zeros(0, dtype=bool)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_fonts"] = [_Font(f.path, f.size, f.covered, None) for f in self._fonts]
        return state

    def font_for(self, codepoint: int) -> int | None:
        """Index of the first font that covers ``codepoint`` (None: drawn as a hex box)."""
        ch = chr(codepoint)
        category = unicodedata.category(ch)
        if category in ("Cc", "Cs"):
            return None
        for i, f in enumerate(self._fonts):
            if f.covered[codepoint]:
                return i
        return None

    def _rasterise(self, codepoint: int) -> tuple[np.ndarray, int, int]:
        """``(ink (H, W), pen offset of column 0, advance)`` of one character."""
        from PIL import Image, ImageDraw

        H = self.config.height
        ch = chr(codepoint)
        if ch in _WHITESPACE_CONTROLS:
            ch, codepoint = " ", 0x20
        index = self.font_for(codepoint)
        if index is None:
            box = hex_box(codepoint, H)
            return box, 0, box.shape[1]
        font = self._load(self._fonts[index])
        size = self._fonts[index].size
        pad = 2 * size + 8
        canvas = Image.new("L", (2 * pad + 4 * size, H), 0)
        ImageDraw.Draw(canvas).text((pad, self.baseline), ch, font=font, fill=255, anchor="ls")
        advance = int(round(font.getlength(ch)))
        return np.asarray(canvas), -pad, advance

    def _add(self, codepoint: int) -> int:
        ink, origin, advance = self._rasterise(codepoint)
        H = self.config.height
        gid = len(self._start)
        # Columns inside the advance box go to the atlas; ink outside it is an overhang.
        box = np.zeros((H, advance), dtype=np.uint8)
        x = np.arange(ink.shape[1]) + origin  # pen-relative column of each ink column
        inside = (x >= 0) & (x < advance)
        box[:, x[inside]] = ink[:, inside]
        outside = np.flatnonzero(~inside & ink.any(axis=0))
        if outside.size:
            lo, hi = outside.min(), outside.max() + 1
            piece = ink[:, lo:hi].copy()
            piece[:, inside[lo:hi]] = 0
            self._overhang[gid] = [(int(x[lo]), piece)]
        while self._n_cols + advance > len(self._cols):
            self._cols = np.concatenate([self._cols, np.zeros_like(self._cols)])
        self._cols[self._n_cols : self._n_cols + advance] = box.T
        self._start.append(self._n_cols)
        self._width.append(advance)
        self._n_cols += advance
        self._lut[codepoint] = gid
        return gid

    def _ensure(self, codepoints: np.ndarray) -> np.ndarray:
        gids = self._lut[codepoints]
        if (gids < 0).any():
            for cp in np.unique(codepoints[gids < 0]).tolist():
                self._add(int(cp))
            self._start_arr = np.asarray(self._start, dtype=np.int64)
            self._width_arr = np.asarray(self._width, dtype=np.int64)
            self._has_overhang = np.zeros(len(self._start), dtype=bool)
            self._has_overhang[list(self._overhang)] = True
            gids = self._lut[codepoints]
        return gids

    @property
    def num_glyphs(self) -> int:
        """Glyphs rasterised so far (the atlas grows lazily)."""
        return len(self._start)

    # ----------------------------------------------------------------- render
    def render_batch(self, texts: Sequence[str]) -> RenderedBatch:
        """Render a batch of strings; the strip width is the batch's largest patch count.

        Raises:
            TypeError: an item is not a string.
        """
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"item {i}: the pixel renderer expects strings, got {type(t).__name__}: {t!r:.60}")
        H, P = self.config.height, self.config.patch_size
        B = len(texts)
        lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=B)
        cps = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.int64)
        gids = self._ensure(cps) if cps.size else np.zeros(0, dtype=np.int64)
        width = self._width_arr[gids]  # (N,)
        tid = np.repeat(np.arange(B), lengths)  # text of each character
        ends = np.cumsum(width)
        text_first = np.cumsum(lengths) - lengths  # index of each text's first character
        offset = np.zeros(B, dtype=np.int64)
        nonempty = lengths > 0
        offset[nonempty] = (ends - width)[text_first[nonempty]]
        end_in_text = ends - offset[tid]
        keep = end_in_text <= (self.config.max_patches - 1) * P
        truncated = np.zeros(B, dtype=bool)
        truncated[tid[~keep]] = True
        gids, width, tid, end_in_text = gids[keep], width[keep], tid[keep], end_in_text[keep]
        pos = end_in_text - width
        text_px = np.bincount(tid, weights=width, minlength=B).astype(np.int64)
        n_text = -(-text_px // P)
        num_patches = n_text + 1
        T = int(num_patches.max()) if B else 1
        ink = np.zeros((B, T * P, H), dtype=np.uint8)  # column-major strips
        total = int(width.sum())
        if total:
            # one 16-byte item per pixel column (a void view), flat indices: a single gather/scatter pass
            column = np.dtype((np.void, H))
            step = np.arange(total) - np.repeat(np.cumsum(width) - width, width)  # column within its glyph
            src = np.repeat(self._start_arr[gids], width) + step
            dst = np.repeat(tid * (T * P) + pos, width) + step
            ink.reshape(B * T * P, H).view(column)[dst, 0] = self._cols[: self._n_cols].view(column)[src, 0]
        over = np.flatnonzero(self._has_overhang[gids]) if len(gids) else np.zeros(0, dtype=np.int64)
        for k in over.tolist():
            for dx, piece in self._overhang[int(gids[k])]:
                x0 = int(pos[k]) + dx
                lo, hi = max(0, x0), min(T * P, x0 + piece.shape[1])
                if lo < hi:
                    dst = ink[tid[k], lo:hi]
                    np.maximum(dst, piece[:, lo - x0 : hi - x0].T, out=dst)
        ink.reshape(B, T, P, H)[np.arange(B), n_text] = 255  # the black end-of-sequence patch
        return RenderedBatch(ink=ink, num_patches=num_patches, truncated=truncated, patch_size=P)

    def render(self, text: str) -> np.ndarray:
        """One strip ``(height, num_patches * patch_size)`` uint8, end patch included."""
        batch = self.render_batch([text])
        return batch.pixels[0, :, : int(batch.num_patches[0]) * self.config.patch_size]

    def render_image(self, text: str):
        """One strip as a ``PIL.Image`` (mode ``"L"``), for looking at."""
        from PIL import Image

        return Image.fromarray(self.render(text))

    def num_patches(self, texts: Sequence[str]) -> list[int]:
        """Patches each text uses (end patch included, capped at ``max_patches``) without drawing."""
        P, limit = self.config.patch_size, self.config.max_patches
        lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
        cps = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.int64)
        gids = self._ensure(cps) if cps.size else np.zeros(0, dtype=np.int64)
        tid = np.repeat(np.arange(len(texts)), lengths)
        px = np.bincount(tid, weights=self._width_arr[gids], minlength=len(texts))
        return np.minimum(limit, np.ceil(px / P).astype(np.int64) + 1).tolist()

    # ----------------------------------------------------------------- config
    def get_config(self) -> dict[str, Any]:
        """JSON config (renderer arguments plus the resolved font files and their hashes)."""
        cfg = asdict(self.config)
        cfg["fonts"] = list(cfg["fonts"])
        cfg["font_files"] = self.font_files
        return cfg

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TextRenderer:
        """Rebuild from :meth:`get_config`; warns when the installed fonts differ from the saved ones."""
        args = {k: config[k] for k in ("fonts", "font_size", "height", "patch_size", "max_patches") if k in config}
        renderer = cls(**args)
        saved = config.get("font_files")
        if saved:
            now = renderer.font_files
            if [(f["file"], f["sha256"]) for f in saved] != [(f["file"], f["sha256"]) for f in now]:
                warnings.warn(
                    f"the model was saved with fonts {[f['file'] for f in saved]} but this machine renders with "
                    f"{[f['file'] for f in now]} (or different versions of them): pixels may differ",
                    stacklevel=2,
                )
        return renderer
