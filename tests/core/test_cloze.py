"""The word-cloze probe: deterministic items from a corpus's held-out part, log-likelihood scoring, bad input."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from polymodal.evaluation.cloze import ChoiceItem, choice_logprobs, cloze_items, unigram_accuracy


def _corpus(n_lines: int = 1000) -> str:
    rng = np.random.default_rng(0)
    words = sorted({"".join(rng.choice(list("abcdefghij"), size=4)) for _ in range(80)})  # 4 letters each
    lines = []
    for i in range(n_lines):
        if i % 5 == 0:
            lines.append("KING:")
        else:
            lines.append(
                " ".join(rng.choice(words, size=6, p=np.arange(1, len(words) + 1) / sum(range(len(words) + 1))))
                + ("," if i % 3 else ".")
            )
    return "\n".join(lines) + "\n"


def _chars(text: str) -> list[int]:  # a tokenizer: one id per character (so token counts = word lengths + 1)
    return [ord(c) % 256 for c in text]


def test_items_come_from_the_held_out_part_with_matched_distractors():
    text = _corpus()
    items, counts = cloze_items(text, _chars, n_items=50, min_count=1, neighbours=3)
    again, _ = cloze_items(text, _chars, n_items=50, min_count=1, neighbours=3)
    assert items == again and len(items) == 50  # deterministic
    cut = int(len(text) * 0.9)
    lines = text.split("\n")
    held_from = text.count("\n", 0, cut) + 1  # the cut's line (partial) is skipped
    for it in items:
        assert it.line > held_from
        line = lines[it.line - 1]
        answer = it.options[it.answer]
        assert line.startswith(it.context.split("\n")[-1]) and line[len(it.context.split("\n")[-1]) :].startswith(
            answer
        )
        assert not line.endswith(":")
        assert len(set(it.options)) == 4 and all(o.startswith(" ") for o in it.options)
        assert len({len(_chars(o)) for o in it.options}) == 1  # same token count
        own = set(re.findall(r"[a-z]+", line))
        assert all(o.strip() not in own for i, o in enumerate(it.options) if i != it.answer)
        assert all(counts[o.strip()] > 0 for o in it.options)  # every option a training-part word
    assert 0 <= unigram_accuracy(items, counts) <= 1
    assert len({it.answer for it in items}) == 4  # the answer's position varies
    assert cloze_items(text, _chars, n_items=50, min_count=1, neighbours=3, seed=1)[0] != items


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"val_fraction": 0.0}, "val_fraction must be in (0, 1)"),
        ({"n_options": 1}, "need n_options >= 2"),
        ({"n_options": 4, "neighbours": 2}, "neighbours >= n_options - 1"),
        ({"n_items": 0}, "n_items must be >= 1"),
        ({"min_count": 10**6}, "no eligible cloze line"),
    ],
)
def test_bad_parameters_are_one_line(kwargs, expected):
    with pytest.raises(ValueError) as err:
        cloze_items(_corpus(), _chars, **{"min_count": 1, "neighbours": 3, **kwargs})
    msg = str(err.value)
    assert "\n" not in msg and expected in msg, msg


class _Bigram(torch.nn.Module):
    """A causal 'LM' whose next-token logits depend only on the current token (exact log-probs by hand)."""

    def __init__(self, vocab: int = 256) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.table = torch.nn.Parameter(torch.randn(vocab, vocab))

    def forward(self, input_ids, attention_mask=None):
        return type("Out", (), {"logits": self.table[input_ids]})()  # (B, T, V)


def test_choice_logprobs_sum_the_option_tokens_given_the_context():
    lm = _Bigram()
    item = ChoiceItem("the king", (" good", " lord"), 1, 1)
    got = choice_logprobs(lm, _chars, [item, item], max_length=8, batch_size=3)  # context cut to 8 - 5 tokens
    logp = torch.log_softmax(lm.table, dim=-1)
    for k, opt in enumerate(item.options):
        ids = (_chars(item.context)[-(8 - len(opt)) :] + _chars(opt)) if len(opt) < 8 else []
        want = sum(float(logp[ids[t - 1], ids[t]]) for t in range(len(ids) - len(opt), len(ids)))
        assert got[0, k] == pytest.approx(want, abs=1e-4) and got[1, k] == pytest.approx(want, abs=1e-4)
    limited = choice_logprobs(lm, _chars, [item], max_length=8, vocab_size=200)  # ids >= 200 leave the softmax
    assert (limited > got[:1]).all()
    with pytest.raises(ValueError, match="line 1: option ' good' has 5 tokens"):
        choice_logprobs(lm, _chars, [item], max_length=5)
