"""Tokenizers seen as sequences of drawable units (codepoints or raw bytes) per token id.

:class:`CodepointTokenizer` is a pure Unicode tokenizer (one id per codepoint, every codepoint
up to ``max_codepoint``). :class:`HFGlyphTokenizer` wraps any Hugging Face ``tokenizers``
tokenizer: byte-level BPE pieces (GPT-2's byte-to-unicode alphabet) are mapped back to bytes and
decoded as UTF-8, bytes that are not valid UTF-8 on their own become raw-byte units; SentencePiece
``▁`` becomes a space; other vocabularies (WordPiece ``##`` included) are drawn as written.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from functools import cached_property
from typing import Any

__all__ = ["CodepointTokenizer", "GlyphTokenizer", "HFGlyphTokenizer", "as_glyph_tokenizer"]


class GlyphTokenizer:
    """What the glyph table needs from a tokenizer (and what processors use to encode)."""

    vocab_size: int
    pad_id: int

    def units(self) -> list[list[int]]:
        """Per token id: codepoints (``>= 0``) and raw bytes (``-(b + 1)``) to draw."""
        raise NotImplementedError

    def identity(self) -> str:
        """A string that changes whenever the vocabulary changes (part of the cache key)."""
        raise NotImplementedError

    @property
    def max_units(self) -> int:
        return max((len(u) for u in self.units()), default=0)

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: Sequence[int]) -> str:
        raise NotImplementedError


class CodepointTokenizer(GlyphTokenizer):
    """One token per codepoint: ids ``0..max_codepoint`` are the codepoints themselves, followed
    by ``<pad>``, ``<unk>`` (codepoints above ``max_codepoint``), ``<bos>``, ``<eos>``.

    Args:
        max_codepoint: largest codepoint with its own id; ``0xFFFF`` (the BMP, 65,540 ids) by
            default, ``0x10FFFF`` covers all of Unicode (1,114,116 ids).
    """

    SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")

    def __init__(self, max_codepoint: int = 0xFFFF) -> None:
        if not 0x7F <= max_codepoint <= 0x10FFFF:
            raise ValueError(f"max_codepoint must be in [0x7F, 0x10FFFF], got {max_codepoint:#x}")
        self.max_codepoint = int(max_codepoint)
        base = self.max_codepoint + 1
        self.pad_id, self.unk_id, self.bos_id, self.eos_id = base, base + 1, base + 2, base + 3
        self.vocab_size = base + len(self.SPECIALS)

    def units(self) -> list[list[int]]:
        return self._units

    @cached_property
    def _units(self) -> list[list[int]]:
        return [[cp] for cp in range(self.max_codepoint + 1)] + [[ord(c) for c in s] for s in self.SPECIALS]

    @property
    def max_units(self) -> int:
        return 1

    def identity(self) -> str:
        return f"codepoints:{self.max_codepoint:#x}"

    def encode(self, text: str) -> list[int]:
        m, unk = self.max_codepoint, self.unk_id
        return [cp if cp <= m else unk for cp in map(ord, text)]

    def decode(self, ids: Sequence[int]) -> str:
        m = self.max_codepoint
        return "".join(chr(i) for i in ids if 0 <= i <= m)

    def __getstate__(self) -> dict[str, Any]:
        return {"max_codepoint": self.max_codepoint}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["max_codepoint"])


def _byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's ``bytes_to_unicode`` (printable stand-ins for the 256 bytes)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


class HFGlyphTokenizer(GlyphTokenizer):
    """A Hugging Face ``tokenizers.Tokenizer`` seen as drawable units.

    Args:
        tokenizer: a ``tokenizers.Tokenizer`` (or a ``transformers`` fast tokenizer).
    """

    def __init__(self, tokenizer: Any) -> None:
        backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
        self.tokenizer = backend
        self.vocab_size = int(backend.get_vocab_size(with_added_tokens=True))
        self.pad_id = self._find(("[PAD]", "<pad>", "<|padding|>", "<|endoftext|>", "</s>"), 0)
        self.eos_id = self._find(("<|endoftext|>", "</s>", "<eos>", "[SEP]"), None)

    def _find(self, names: Sequence[str], default: int | None) -> int | None:
        for name in names:
            idx = self.tokenizer.token_to_id(name)
            if idx is not None:
                return int(idx)
        return default

    @cached_property
    def _json(self) -> str:
        return self.tokenizer.to_str()

    def identity(self) -> str:
        return "hf:" + hashlib.sha256(self._json.encode()).hexdigest()

    @cached_property
    def _kind(self) -> str:
        import json

        cfg = json.loads(self._json)
        text = json.dumps([cfg.get("decoder"), cfg.get("pre_tokenizer")])
        if '"ByteLevel"' in text:
            return "bytelevel"
        if '"Metaspace"' in text:
            return "metaspace"
        return "plain"

    def units(self) -> list[list[int]]:
        return self._units

    @cached_property
    def _units(self) -> list[list[int]]:
        specials = {t.content for t in self.tokenizer.get_added_tokens_decoder().values() if t.special}
        decoder = _byte_decoder() if self._kind == "bytelevel" else None
        out: list[list[int]] = []
        for i in range(self.vocab_size):
            token = self.tokenizer.id_to_token(i)
            if token is None:
                out.append([])
                continue
            if token in specials or decoder is None or any(c not in decoder for c in token):
                text = token.replace("▁", " ") if self._kind == "metaspace" else token
                out.append([ord(c) for c in text])
                continue
            raw = bytes(decoder[c] for c in token)
            text = raw.decode("utf-8", errors="surrogateescape")
            out.append([-(ord(c) - 0xDC00) - 1 if 0xDC80 <= ord(c) <= 0xDCFF else ord(c) for c in text])
        return out

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [list(e.ids) for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    def __getstate__(self) -> dict[str, Any]:
        return {"json": self._json}

    def __setstate__(self, state: dict[str, Any]) -> None:
        from tokenizers import Tokenizer

        self.__init__(Tokenizer.from_str(state["json"]))


def as_glyph_tokenizer(spec: Any) -> GlyphTokenizer:
    """A :class:`GlyphTokenizer` from a tokenizer object or a spec string.

    Strings: ``"codepoints"`` (BMP), ``"codepoints:0x10FFFF"`` (any max), ``"bytes"`` (the
    built-in byte-level tokenizer), a ``tokenizer.json``, a model folder, or
    ``package://<recipe>/...``.
    """
    if isinstance(spec, GlyphTokenizer):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        text = os.fspath(spec)
        if text == "codepoints" or text.startswith("codepoints:"):
            _, _, limit = text.partition(":")
            return CodepointTokenizer(int(limit, 0) if limit else 0xFFFF)
        from polymodal.io import resolve_path
        from polymodal.plugins.text.processor import load_backend_tokenizer

        if text == "bytes":
            return HFGlyphTokenizer(load_backend_tokenizer("bytes"))
        return HFGlyphTokenizer(load_backend_tokenizer(resolve_path(text, what="tokenizer")))
    if hasattr(spec, "get_vocab_size") or hasattr(spec, "backend_tokenizer"):
        return HFGlyphTokenizer(spec)
    raise TypeError(f"cannot use {type(spec).__name__} as a tokenizer for glyph tables")
