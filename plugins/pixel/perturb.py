"""Seedable visual perturbations of text (Pixel-Linguist's positive pairs, and augmentation).

Pixel-Linguist (Xiao et al., 2024, https://arxiv.org/abs/2402.08183) trains its unsupervised
stage with a sentence and a perturbed copy as the positive pair: the copy *looks* almost the
same when rendered, so a pixel model learns that small visual changes keep the meaning. The
operations here act on the string before rendering:

* ``swap``: swap two adjacent letters inside a word (``form`` -> ``from``);
* ``drop``: delete a letter;
* ``insert``: insert a random lowercase letter;
* ``keyboard``: replace a letter with a QWERTY neighbour (a typing slip);
* ``homoglyph``: replace a letter with a look-alike from another script (Latin ``a`` ->
  Cyrillic ``а``), which a token model sees as a new token but a pixel model barely sees;
* ``case``: flip the case of a letter;
* ``space``: drop a space or split a word with one;
* ``word_shuffle``: swap adjacent words (local word-order noise).

Everything draws from a ``numpy.random.Generator``: the same seed gives the same output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

__all__ = ["CHAR_OPS", "OPS", "Perturber"]

Op = Literal["swap", "drop", "insert", "keyboard", "homoglyph", "case", "space", "word_shuffle"]
CHAR_OPS: tuple[str, ...] = ("swap", "drop", "insert", "keyboard", "homoglyph", "case", "space")
OPS: tuple[str, ...] = (*CHAR_OPS, "word_shuffle")

_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_KEYBOARD: dict[str, str] = {}
for _r, _row in enumerate(_ROWS):
    for _c, _ch in enumerate(_row):
        near = []
        for dr in (-1, 0, 1):
            rr = _r + dr
            if 0 <= rr < len(_ROWS):
                for dc in (-1, 0, 1):
                    cc = _c + dc
                    if (dr or dc) and 0 <= cc < len(_ROWS[rr]):
                        near.append(_ROWS[rr][cc])
        _KEYBOARD[_ch] = "".join(near)

#: Latin letters -> visually confusable letters of Cyrillic/Greek (Unicode confusables).
_HOMOGLYPHS = {
    "a": "а",
    "c": "с",
    "e": "е",
    "i": "і",
    "j": "ј",
    "o": "оο",
    "p": "р",
    "s": "ѕ",
    "x": "х",
    "y": "у",
    "A": "АΑ",
    "B": "ВΒ",
    "C": "С",
    "E": "ЕΕ",
    "H": "НΗ",
    "I": "ІΙ",
    "K": "КΚ",
    "M": "МΜ",
    "N": "Ν",
    "O": "ОΟ",
    "P": "РΡ",
    "T": "ТΤ",
    "X": "ХΧ",
    "Y": "Υ",
    "Z": "Ζ",
}
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


class Perturber:
    """Apply random visual perturbations to strings.

    Args:
        ops: operations to draw from (see the module docstring); ``word_shuffle`` acts on words,
            the others on characters.
        char_rate: expected fraction of letters edited by a character operation (at least one
            edit per text that has a letter).
        shuffle_prob: probability that a text also gets its words locally shuffled (when
            ``word_shuffle`` is in ``ops``).
        seed: seed of the internal generator.

    Example:
        >>> Perturber(seed=0)("The quick brown fox jumps over the lazy dog")
    """

    def __init__(
        self,
        ops: Sequence[Op] = ("swap", "drop", "insert", "keyboard", "homoglyph", "word_shuffle"),
        char_rate: float = 0.05,
        shuffle_prob: float = 0.3,
        seed: int | None = 0,
    ) -> None:
        unknown = sorted(set(ops) - set(OPS))
        if unknown:
            raise ValueError(f"unknown perturbation(s) {unknown}; choose from {', '.join(OPS)}")
        if not ops:
            raise ValueError("Perturber needs at least one operation")
        if not 0.0 <= char_rate <= 1.0:
            raise ValueError(f"char_rate must be in [0, 1], got {char_rate}")
        if not 0.0 <= shuffle_prob <= 1.0:
            raise ValueError(f"shuffle_prob must be in [0, 1], got {shuffle_prob}")
        self.ops = tuple(ops)
        self.char_ops = tuple(o for o in self.ops if o != "word_shuffle")
        self.char_rate = float(char_rate)
        self.shuffle_prob = float(shuffle_prob) if "word_shuffle" in self.ops else 0.0
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def __call__(self, text: str, rng: np.random.Generator | None = None) -> str:
        """A perturbed copy of ``text`` (drawn from ``rng``, else the internal generator)."""
        rng = self.rng if rng is None else rng
        chars = list(text)
        if self.char_ops:
            letters = [i for i, c in enumerate(chars) if c.isalpha()]
            if letters:
                n = max(1, int(rng.binomial(len(letters), self.char_rate)))
                for _ in range(n):
                    op = self.char_ops[int(rng.integers(len(self.char_ops)))]
                    self._char_edit(chars, op, rng)
        out = "".join(chars)
        if self.shuffle_prob and rng.random() < self.shuffle_prob:
            out = self._shuffle_words(out, rng)
        return out

    def pair(self, text: str, seed: int) -> str:
        """The perturbed copy for a fixed ``seed`` (e.g. ``hash(epoch, row)``): reproducible pairs."""
        return self(text, np.random.default_rng(seed))

    # -------------------------------------------------------------- operations
    @staticmethod
    def _char_edit(chars: list[str], op: str, rng: np.random.Generator) -> None:
        letters = [i for i, c in enumerate(chars) if c.isalpha()]
        if not letters:
            return
        i = letters[int(rng.integers(len(letters)))]
        c = chars[i]
        if op == "swap":
            if i + 1 < len(chars) and chars[i + 1].isalpha():
                chars[i], chars[i + 1] = chars[i + 1], chars[i]
            elif i > 0 and chars[i - 1].isalpha():
                chars[i], chars[i - 1] = chars[i - 1], chars[i]
        elif op == "drop":
            if len(letters) > 1:
                del chars[i]
        elif op == "insert":
            chars.insert(i + int(rng.integers(2)), _LETTERS[int(rng.integers(26))])
        elif op == "keyboard":
            near = _KEYBOARD.get(c.lower())
            if near:
                new = near[int(rng.integers(len(near)))]
                chars[i] = new.upper() if c.isupper() else new
        elif op == "homoglyph":
            options = _HOMOGLYPHS.get(c)
            if options:
                chars[i] = options[int(rng.integers(len(options)))]
        elif op == "case":
            chars[i] = c.lower() if c.isupper() else c.upper()
        elif op == "space":
            spaces = [j for j, ch in enumerate(chars) if ch == " "]
            if spaces and rng.random() < 0.5:
                del chars[spaces[int(rng.integers(len(spaces)))]]
            elif 0 < i:
                chars.insert(i, " ")

    @staticmethod
    def _shuffle_words(text: str, rng: np.random.Generator) -> str:
        words = text.split(" ")
        if len(words) < 2:
            return text
        swaps = max(1, len(words) // 8)
        for _ in range(swaps):
            j = int(rng.integers(len(words) - 1))
            words[j], words[j + 1] = words[j + 1], words[j]
        return " ".join(words)

    def __repr__(self) -> str:
        return (
            f"Perturber(ops={list(self.ops)}, char_rate={self.char_rate}, "
            f"shuffle_prob={self.shuffle_prob}, seed={self.seed})"
        )
