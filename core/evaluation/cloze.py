"""A word-cloze multiple-choice probe built deterministically from a plain-text corpus, scored by LM log-likelihood.

For small causal LMs whose validation loss says little about what they can *do*: each item is a line of the
corpus's held-out part with its last word removed; the model must pick that word among ``n_options`` words by
the log-likelihood of each option after the context (the preceding lines and the start of the line).

How the items are made (:func:`cloze_items`), all of it a function of the text, the tokenizer and ``seed``:

* The corpus is cut like :class:`polymodal.data.blocks.TextBlocksDataModule` cuts it: the first
  ``1 - val_fraction`` of the characters are the training part, the rest the held-out part. Items come only from
  the held-out part (from its first whole line on); word counts come only from the training part.
* A line is eligible when it is not a speaker tag (ends with ``:``), has at least ``min_words`` words, and ends
  with a lower-case word (optionally followed by punctuation) seen at least ``min_count`` times in the training
  part. The answer is that word; the context is the ``context_lines`` lines before it and the line up to the word.
* Distractors are drawn from training-part words that tokenise (with their leading space) into **as many tokens
  as the answer** — so every option's log-likelihood sums the same number of terms — and are the nearest in
  training frequency: ``n_options - 1`` of the ``neighbours`` words closest in frequency rank, drawn with a
  generator seeded by ``(seed, line number)``, never a word of the item's own line. A unigram model therefore
  scores near chance (:func:`unigram_accuracy` measures it).
* ``n_items`` items are taken evenly spaced over the eligible lines; the answer's position is drawn with the same
  generator, so chance is exactly ``1 / n_options`` in expectation.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ChoiceItem", "choice_logprobs", "cloze_items", "unigram_accuracy"]

_WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?")
_LAST_WORD = re.compile(r"^(.*\S) ([a-z]+)([^A-Za-z]*)$")


@dataclass(frozen=True)
class ChoiceItem:
    """One multiple-choice item: ``context`` followed by one of ``options`` (``options[answer]`` is right)."""

    context: str
    options: tuple[str, ...]
    answer: int
    line: int  # 1-based line number of the item's line in the whole corpus


def cloze_items(
    text: str,
    tokenize: Callable[[str], Sequence[int]],
    *,
    val_fraction: float = 0.1,
    n_items: int = 1000,
    n_options: int = 4,
    min_words: int = 5,
    min_count: int = 5,
    context_lines: int = 3,
    neighbours: int = 20,
    seed: int = 0,
) -> tuple[list[ChoiceItem], Counter[str]]:
    """The probe's items (see the module docstring) and the training-part word counts.

    Raises:
        ValueError: one line when the held-out part has fewer eligible lines than ``n_items`` allows (at least
            one), or when a parameter is out of range.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if n_options < 2 or neighbours < n_options - 1:
        raise ValueError(f"need n_options >= 2 and neighbours >= n_options - 1, got {n_options}, {neighbours}")
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    cut = int(len(text) * (1 - val_fraction))
    counts = Counter(_WORD.findall(text[:cut]))
    vocab = [w for w, c in counts.items() if c >= min_count and w.islower() and w.isalpha()]
    by_length: dict[int, list[str]] = {}
    for w in vocab:
        by_length.setdefault(len(tokenize(" " + w)), []).append(w)
    for words in by_length.values():
        words.sort(key=lambda w: (-counts[w], w))  # frequency rank, ties by spelling
    rank = {w: i for words in by_length.values() for i, w in enumerate(words)}

    start = text.find("\n", cut) + 1 if cut > 0 and text[cut - 1] != "\n" else cut
    first_line = text.count("\n", 0, start) + 1
    lines = text[start:].split("\n")
    eligible: list[tuple[int, str, str, list[str]]] = []  # (index in lines, context, answer, distractor pool)
    for i, line in enumerate(lines):
        m = _LAST_WORD.match(line.rstrip())
        if not m or line.rstrip().endswith(":") or len(_WORD.findall(line)) < min_words:
            continue
        word = m.group(2)
        if word not in rank:
            continue
        own = set(_WORD.findall(line))
        r = rank[word]
        pool = [w for w in by_length[len(tokenize(" " + word))] if w != word and w not in own]
        near = sorted(pool, key=lambda w: (abs(rank[w] - r), rank[w]))[:neighbours]
        if len(near) < n_options - 1:
            continue
        before = "\n".join(lines[max(0, i - context_lines) : i])
        context = (before + "\n" if before else "") + m.group(1)
        eligible.append((i, context, word, near))
    if not eligible:
        raise ValueError(f"the held-out part ({len(text) - cut} characters) has no eligible cloze line")
    picks = sorted({int(round(x)) for x in np.linspace(0, len(eligible) - 1, min(n_items, len(eligible)))})
    items = []
    for k in picks:
        i, context, word, near = eligible[k]
        rng = np.random.default_rng([seed, first_line + i])
        distractors = [near[j] for j in rng.choice(len(near), size=n_options - 1, replace=False)]
        answer = int(rng.integers(n_options))
        options = [" " + w for w in distractors]
        options.insert(answer, " " + word)
        items.append(ChoiceItem(context, tuple(options), answer, first_line + i))
    return items, counts


def unigram_accuracy(items: Sequence[ChoiceItem], counts: Counter[str]) -> float:
    """Accuracy of always picking the option most frequent in the training part (ties: the first)."""
    right = sum(int(np.argmax([counts[o.strip()] for o in it.options]) == it.answer) for it in items)
    return right / max(len(items), 1)


def choice_logprobs(
    model: Any,
    tokenize: Callable[[str], Sequence[int]],
    items: Sequence[ChoiceItem],
    *,
    max_length: int = 128,
    vocab_size: int | None = None,
    batch_size: int = 64,
) -> np.ndarray:
    """Summed log-probability of every option's tokens after its item's context: ``(N, n_options)``.

    ``model(input_ids=..., attention_mask=...)`` must return ``.logits`` ``(B, T, V)`` (any Hugging Face causal
    LM). Contexts keep their last ``max_length - len(option)`` tokens; sequences are right-padded, so positions of
    real tokens are unaffected. Logits of ids ``>= vocab_size`` (embedding rows no token uses) are excluded from
    the softmax.
    """
    import torch

    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    seqs: list[tuple[list[int], int]] = []  # (ids, number of option tokens at the end)
    for it in items:
        ctx = list(tokenize(it.context))
        for opt in it.options:
            o = list(tokenize(opt))
            if not o or len(o) >= max_length:
                raise ValueError(f"line {it.line}: option {opt!r} has {len(o)} tokens (max_length {max_length})")
            seqs.append((ctx[-(max_length - len(o)) :] + o, len(o)))
    scores = np.empty(len(seqs), dtype=np.float64)
    with torch.no_grad():
        for b in range(0, len(seqs), batch_size):
            chunk = seqs[b : b + batch_size]
            T = max(len(ids) for ids, _ in chunk)
            input_ids = torch.zeros((len(chunk), T), dtype=torch.long)
            mask = torch.zeros((len(chunk), T), dtype=torch.long)
            for r, (ids, _) in enumerate(chunk):
                input_ids[r, : len(ids)] = torch.tensor(ids)
                mask[r, : len(ids)] = 1
            logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits.float()  # (B, T, V)
            if vocab_size is not None and logits.shape[-1] > vocab_size:
                logits[..., vocab_size:] = float("-inf")
            logp = torch.log_softmax(logits, dim=-1).cpu()  # (B, T, V)
            for r, (ids, n) in enumerate(chunk):
                L = len(ids)
                targets = torch.tensor(ids[L - n :])  # (n,)
                scores[b + r] = float(logp[r, L - n - 1 : L - 1].gather(1, targets[:, None]).sum())
    return scores.reshape(len(items), -1)
