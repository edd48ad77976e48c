"""Sense report of a trained :class:`~polymodal.plugins.text.static.SenseSkipGram`: nearest neighbours per sense
of a few ambiguous words, and the pseudo-word check (quantitative).

Pseudo-word disambiguation (Schütze 1992; Gale et al. 1992): two unrelated words ``a`` and ``b`` were merged into
one token ``a_b`` in the training text (``senses.yaml``). On held-out blocks, every occurrence of ``a`` or ``b``
is replaced by ``a_b`` and the model chooses a sense from the context; each sense is mapped to the word it most
often stands for on the *training* blocks, and the accuracy of that mapping on the held-out blocks is compared with
always answering the more frequent word.

Run::

    python -m polymodal.recipes.binary_pv.senses --model runs/binary_pv-senses/model
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch

from polymodal.data.sources import Split
from polymodal.data.text import TextLines
from polymodal.plugins.text.static import SenseSkipGram, tokenize

__all__ = ["main", "pseudo_word_choices", "sense_choices"]

CORPUS = "data://text_corpus/tinyshakespeare_input.txt.gz"


@torch.no_grad()
def sense_choices(
    model: SenseSkipGram, texts: Sequence[str], words: Sequence[str], token: str
) -> list[tuple[str, int]]:
    """``(original word, chosen sense)`` for every occurrence of any of ``words`` in ``texts``, each replaced by
    ``token`` (the pseudo-word ``a_b``, or the word itself) before the model chooses its sense from the context."""
    vocab = model.vocabulary
    if token not in vocab.index:
        raise KeyError(f"{token!r} is not in the vocabulary (a pseudo-word needs training text merging {words})")
    out: list[tuple[str, int]] = []
    for text in texts:
        kept = [(token if t in words else t, t) for t in tokenize(text)]
        kept = [(t, orig) for t, orig in kept if t in vocab.index]
        where = [i for i, (_, orig) in enumerate(kept) if orig in words]
        if not where:
            continue
        ids = torch.tensor([[vocab.index[t] for t, _ in kept]])
        ctx, ctx_mask = model.contexts(ids, torch.ones_like(ids, dtype=torch.bool))
        pos = torch.tensor(where)
        probs = model.sense_choice(ids[0, pos], ctx[0, pos], ctx_mask[0, pos])  # (n, K)
        out.extend((kept[i][1], int(k)) for i, k in zip(where, probs.argmax(-1).tolist()))
    return out


def pseudo_word_choices(model: SenseSkipGram, texts: Sequence[str], words: tuple[str, str]) -> list[tuple[str, int]]:
    """Sense choices for the occurrences of either word once both are the pseudo-word ``a_b``."""
    return sense_choices(model, texts, words, "_".join(words))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="exported SenseSkipGram model folder")
    parser.add_argument("--corpus", default=CORPUS)
    parser.add_argument("--pseudo", nargs=2, default=["king", "love"], help="the two merged words")
    parser.add_argument("--words", nargs="+", default=["bear", "fair", "lie", "grave", "state", "will"])
    parser.add_argument("--k", type=int, default=8)
    args = parser.parse_args(argv)
    import polymodal

    model = polymodal.load(args.model).encoder
    if not isinstance(model, SenseSkipGram):
        raise ValueError(f"{args.model}: not a SenseSkipGram model ({type(model).__name__})")
    model.eval()
    report: dict[str, Any] = {"neighbours": {}}
    blocks = TextLines(args.corpus, lines=4)
    train = Split([0.9, 0.1], "train", source=blocks, key="block").frame()["text"].tolist()
    held = Split([0.9, 0.1], "val", source=blocks, key="block").frame()["text"].tolist()
    usage: dict[str, Counter[int]] = {}
    for word in args.words:
        if word not in model.vocabulary.index:
            print(f"{word}: not in the vocabulary")
            continue
        report["neighbours"][word] = model.neighbours(word, args.k)
        # how often each sense is chosen for the word's training occurrences (a word against itself)
        usage[word] = Counter(k for _, k in sense_choices(model, train, [word], word))
        for s, row in enumerate(report["neighbours"][word]):
            share = usage[word][s] / max(1, sum(usage[word].values()))
            print(f"{word} sense {s} ({share:.0%} of uses): " + ", ".join(f"{w} {v:.2f}" for w, v in row))
    a, b = args.pseudo
    fit = pseudo_word_choices(model, train, (a, b))
    test = pseudo_word_choices(model, held, (a, b))
    by_sense: dict[int, Counter[str]] = {}
    for word, sense in fit:
        by_sense.setdefault(sense, Counter())[word] += 1
    mapping = {s: c.most_common(1)[0][0] for s, c in by_sense.items()}
    majority_word = Counter(w for w, _ in fit).most_common(1)[0][0]
    correct = sum(mapping.get(s, majority_word) == w for w, s in test)
    baseline = sum(w == majority_word for w, _ in test)
    report["pseudo_word"] = {
        "words": [a, b],
        "train_occurrences": len(fit),
        "held_out_occurrences": len(test),
        "sense_to_word": {str(k): v for k, v in sorted(mapping.items())},
        "accuracy": correct / max(1, len(test)),
        "majority_baseline": baseline / max(1, len(test)),
        "held_out_counts": dict(Counter(w for w, _ in test)),
    }
    print(json.dumps(report["pseudo_word"], indent=1))
    return report


if __name__ == "__main__":
    main()
