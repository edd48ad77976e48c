"""The causal LM tower: prompt/answer processing (answer-only labels), NEFTune, greedy generation."""

from __future__ import annotations

import pytest
import torch

from polymodal.plugins.text.causal_lm import CausalLM, PromptAnswerProcessor


def test_prompt_answer_labels_cover_only_the_answer_and_long_prompts_lose_their_start():
    proc = PromptAnswerProcessor("bytes", max_length=40, template="plain")
    out = proc([("hello", "yes"), ("x" * 100, "no"), "bare prompt"])
    ids, mask, labels = out["input_ids"], out["attention_mask"], out["labels"]
    assert ids.shape[1] == 40 and int(mask[1].sum()) == 40  # the long prompt is cut to fit with its answer
    first = proc._ids("hello" + "\n### Answer:\n")
    answer = proc._ids("yes" + "\n###")
    assert labels[0, : len(first)].eq(-100).all()
    assert labels[0, len(first) : len(first) + len(answer)].tolist() == answer
    assert labels[0, len(first) + len(answer) :].eq(-100).all()  # padding
    assert labels[2].eq(-100).all()  # a bare prompt has nothing to learn
    assert proc.truncated == 1
    tail = len(proc._ids("no\n###"))  # the long prompt keeps its end, right before its answer
    assert proc._ids("x" * 100 + "\n### Answer:\n")[-5:] == ids[1, 40 - 5 - tail : 40 - tail].tolist()


@pytest.mark.parametrize(
    ("value", "expected"), [(("a",), "pair of strings"), ((1, "b"), "pair of strings"), (3, "pair")]
)
def test_prompt_answer_processor_rejects_bad_values_in_one_line(value, expected):
    with pytest.raises(ValueError, match=expected):
        PromptAnswerProcessor("bytes", 32, "plain").validate(value)


def test_causal_lm_answer_only_loss_neftune_and_generate():
    lm = CausalLM("test-llama", tokenizer="bytes", template="plain", max_length=64, neftune_alpha=5.0)
    batch = lm.processor([("2+2=", "4"), ("1+1=", "2")])
    lm.train()
    torch.manual_seed(0)
    a = lm(**batch).loss
    torch.manual_seed(1)
    b = lm(**batch).loss
    assert torch.isfinite(a) and a.item() != b.item()  # the embedding noise differs per draw while training
    lm.eval()
    assert lm(**batch).loss.item() == lm(**batch).loss.item()  # no noise in eval
    answers = lm.generate(["2+2=", "a much longer prompt than the other"], max_new_tokens=5, batch_size=2)
    assert len(answers) == 2 and all(isinstance(x, str) for x in answers)
    assert lm.training is False
    with pytest.raises(ValueError, match="give tokenizer="):
        CausalLM("test-llama")
