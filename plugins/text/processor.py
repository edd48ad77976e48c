"""Tokenisation with dynamic padding, run in DataLoader workers."""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from polymodal.modality import Processor

__all__ = ["TextProcessor", "WordProcessor", "byte_tokenizer"]

log = logging.getLogger(__name__)

_SURROGATE = re.compile("[\ud800-\udfff]")
BYTE_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def byte_tokenizer():
    """A byte-level tokenizer built in code (no files, no network): 5 specials + 256 bytes.

    Used for tiny random models in tests and for training from scratch. Every string,
    including invalid surrogates (replaced) and any codepoint, maps to byte tokens.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from tokenizers.pre_tokenizers import ByteLevel

    alphabet = ByteLevel.alphabet()
    vocab = {tok: i for i, tok in enumerate(BYTE_SPECIALS)}
    for ch in sorted(alphabet):
        vocab[ch] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    tok.add_special_tokens(BYTE_SPECIALS)
    return tok


def _tokenizer_file(path: Path):
    """``Tokenizer.from_file`` with a one-line error naming the file (a corrupt tokenizer.json)."""
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # noqa: BLE001 - tokenizers raises a bare Exception for bad files
        raise ValueError(f"{path}: not a valid tokenizer file ({str(exc).splitlines()[0][:160]})") from None


def load_backend_tokenizer(spec: str | Path):
    """A ``tokenizers.Tokenizer`` from ``"bytes"``, a ``tokenizer.json`` file, or a model folder."""

    if str(spec) == "bytes":
        return byte_tokenizer()
    path = Path(spec).expanduser()
    if path.is_file():
        return _tokenizer_file(path)
    if (path / "tokenizer.json").is_file():
        return _tokenizer_file(path / "tokenizer.json")
    if path.is_dir():  # slow-tokenizer-only folders: let transformers convert once
        from transformers import AutoTokenizer

        from polymodal.plugins.text.encoder import check_hf_folder

        check_hf_folder(path)
        hf = AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
        backend = getattr(hf, "backend_tokenizer", None)
        if backend is None:
            raise ValueError(f"{path}: no fast tokenizer could be built from this folder")
        return backend
    raise FileNotFoundError(f"tokenizer not found: {spec} (expected 'bytes', a tokenizer.json or a model folder)")


class TextProcessor(Processor):
    """Tokenise a batch of strings, truncate to ``max_length`` and pad to the longest.

    Truncation is reported: the first time texts are cut, a warning names how many and the
    limit; totals are kept in :attr:`truncated`.

    Args:
        tokenizer: a ``tokenizers.Tokenizer`` (the fast Rust tokenizer).
        max_length: longest sequence in tokens (special tokens included).
        pad_id: id used for padding (masked out anyway).
    """

    def __init__(self, tokenizer: Any, max_length: int, pad_id: int | None = None) -> None:
        if max_length < 2:
            raise ValueError(f"max_length must be >= 2, got {max_length}")
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_length)
        self.pad_id = int(pad_id if pad_id is not None else self._guess_pad_id())
        self.truncated = 0
        self._warned = False

    def _guess_pad_id(self) -> int:
        for token in ("[PAD]", "<pad>", "<|padding|>", "<|endoftext|>", "</s>"):
            idx = self.tokenizer.token_to_id(token)
            if idx is not None:
                return idx
        return 0

    def validate(self, value: Any) -> None:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {type(value).__name__} ({value!r:.40})")

    def _texts(self, values: Sequence[Any]) -> list[str]:
        out = []
        for v in values:
            if not isinstance(v, str):
                raise TypeError(f"text modality expects strings, got {type(v).__name__}: {v!r:.60}")
            # Lone surrogates cannot be encoded as UTF-8 by the Rust tokenizer.
            out.append(_SURROGATE.sub("\ufffd", v) if _has_surrogate(v) else v)
        return out

    def lengths(self, values: Sequence[Any]) -> list[int]:
        """Token counts (special tokens included, capped at ``max_length``), for length-sorted batching.

        Sorting by token count instead of characters cuts the padding a length-sorted ``encode`` executes
        (STS-B dev with MiniLM: +42 % padded tokens by characters, +4 % by tokens; ``benchmarks/encode.py``
        prints it); counting costs one extra pass of the Rust tokenizer without offsets (~0.2 s per 3,000
        sentences here, under 1 % of encoding them). Non-strings count 0 (``__call__`` reports them).
        """
        texts = [v for v in values if isinstance(v, str)]
        encode = getattr(self.tokenizer, "encode_batch_fast", self.tokenizer.encode_batch)
        counts = iter(len(e.ids) for e in encode(self._texts(texts), add_special_tokens=True))
        return [next(counts) if isinstance(v, str) else 0 for v in values]

    def __call__(self, values: Sequence[Any]) -> dict[str, Tensor]:
        encodings = self.tokenizer.encode_batch(self._texts(values), add_special_tokens=True)
        cut = sum(1 for e in encodings if e.overflowing)
        if cut:
            self.truncated += cut
            if not self._warned:
                self._warned = True
                msg = (
                    f"{cut} of {len(encodings)} texts in a batch were longer than max_length="
                    f"{self.max_length} tokens and were truncated (further truncations are counted "
                    "in TextProcessor.truncated)"
                )
                warnings.warn(msg, stacklevel=2)
        T = max((len(e.ids) for e in encodings), default=0)
        ids = np.full((len(encodings), max(T, 1)), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), max(T, 1)), dtype=np.int64)
        for i, e in enumerate(encodings):
            n = len(e.ids)
            ids[i, :n] = e.ids
            mask[i, :n] = 1
        return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}

    def get_config(self) -> dict[str, Any]:
        return {"max_length": self.max_length, "pad_id": self.pad_id}


class WordProcessor(TextProcessor):
    """Tokenise pre-split sentences (lists of words) and align every sub-word token with its word.

    The input of token-level tasks (named-entity recognition): each value is a list of words; the words are
    tokenised as they stand (``is_pretokenized``, so a word is never merged with its neighbour) and truncated to
    ``max_length`` tokens. Besides ``input_ids`` / ``attention_mask`` the batch holds

    * ``word_ids`` ``(B, T)``: the word each token belongs to, ``-1`` for special tokens and padding;
    * ``first`` ``(B, T)``: True on the first sub-word token of each word (where a tagger reads the word);
    * ``num_words`` ``(B,)``: words in the sentence (words cut off by truncation still count: a tagger predicts
      ``O`` for them, so metrics never silently drop gold entities).

    Args:
        tokenizer: a ``tokenizers.Tokenizer``, or where to load one: a registered model name (``"minilm-l6"``),
            a model folder, a ``tokenizer.json`` or ``"bytes"``.
        max_length: longest sequence in tokens (special tokens included).
        pad_id: padding id (default: the tokenizer's ``[PAD]``-like token).
    """

    def __init__(self, tokenizer: Any, max_length: int = 256, pad_id: int | None = None) -> None:
        if isinstance(tokenizer, (str, Path)):
            from polymodal.plugins.text.pretrained import PRETRAINED_PATHS

            spec = str(tokenizer)
            tokenizer = load_backend_tokenizer(PRETRAINED_PATHS[spec]() if spec in PRETRAINED_PATHS else spec)
        super().__init__(tokenizer, max_length, pad_id)

    def validate(self, value: Any) -> None:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ValueError(f"expected a list of words, got {type(value).__name__} ({value!r:.40})")
        if not value:
            raise ValueError("empty sentence (no words)")
        for i, word in enumerate(value):
            if not isinstance(word, str) or not word.strip():
                raise ValueError(f"word {i + 1} is {word!r:.30}: expected a non-empty string")

    def _words(self, values: Sequence[Any]) -> list[list[str]]:
        out = []
        for v in values:
            self.validate(v)
            out.append([_SURROGATE.sub("\ufffd", w) if _has_surrogate(w) else w for w in v])
        return out

    def lengths(self, values: Sequence[Any]) -> list[int]:
        ok = [list(v) for v in values if isinstance(v, (list, tuple)) and v]
        counts = iter(len(e.ids) for e in self.tokenizer.encode_batch(ok, is_pretokenized=True))
        return [next(counts) if isinstance(v, (list, tuple)) and v else 0 for v in values]

    def __call__(self, values: Sequence[Any]) -> dict[str, Tensor]:
        words = self._words(values)
        encodings = self.tokenizer.encode_batch(words, is_pretokenized=True, add_special_tokens=True)
        cut = sum(1 for e in encodings if e.overflowing)
        if cut:
            self.truncated += cut
            if not self._warned:
                self._warned = True
                warnings.warn(
                    f"{cut} of {len(encodings)} sentences were longer than max_length={self.max_length} tokens; their "
                    "last words are cut (a tagger predicts O for them)",
                    stacklevel=2,
                )
        T = max(max((len(e.ids) for e in encodings), default=0), 1)
        ids = np.full((len(encodings), T), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), T), dtype=np.int64)
        word_ids = np.full((len(encodings), T), -1, dtype=np.int64)
        first = np.zeros((len(encodings), T), dtype=bool)
        for i, e in enumerate(encodings):
            n = len(e.ids)
            ids[i, :n] = e.ids
            mask[i, :n] = 1
            previous = None
            for t, w in enumerate(e.word_ids):
                if w is None:
                    continue
                word_ids[i, t] = w
                if w != previous:
                    first[i, t] = True
                previous = w
        return {
            "input_ids": torch.from_numpy(ids),
            "attention_mask": torch.from_numpy(mask),
            "word_ids": torch.from_numpy(word_ids),
            "first": torch.from_numpy(first),
            "num_words": torch.tensor([len(w) for w in words], dtype=torch.long),
        }


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
