"""BLEU and CIDEr-D (coco-caption definitions) against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from polymodal.evaluation.captioning import bleu, caption_scores, cider_d, tokenize_caption


def test_tokenizer_lowercases_and_drops_ptb_punctuation():
    assert tokenize_caption("A dog , running .") == ["a", "dog", "running"]
    assert tokenize_caption("The dog's ball!") == ["the", "dog's", "ball"]
    assert tokenize_caption("  ") == []


def test_bleu_identical_caption_is_one():
    scores = bleu(["a dog runs on grass"], [["a dog runs on grass", "a cat"]])
    assert scores == pytest.approx([1.0, 1.0, 1.0, 1.0], abs=1e-8)


def test_bleu_hand_computed_precisions_and_brevity_penalty():
    # hyp "the cat sat" (3 tokens) vs ref "the cat sat on the mat" (6 tokens)
    # 1-grams 3/3, 2-grams 2/2, 3-grams 1/1, 4-grams 0/0 -> coco smoothing: (0 + 1e-15) / (0 + 1e-9)
    # brevity penalty exp(1 - 6/3) = e^-1
    b = bleu(["the cat sat"], [["the cat sat on the mat"]])
    bp = math.exp(1 - 6 / 3)
    assert b[0] == pytest.approx(bp, rel=1e-9)
    assert b[1] == pytest.approx(bp, rel=1e-9)
    assert b[2] == pytest.approx(bp, rel=1e-9)
    assert b[3] == pytest.approx((1e-15 / 1e-9) ** 0.25 * bp, rel=1e-6)


def test_bleu_clipping_and_closest_reference_length():
    # hyp "the the the the" (4): unigram "the" clipped to max ref count 2 -> p1 = 2/4
    # refs of length 3 and 7: closest to 4 is 3 -> no brevity penalty
    b = bleu(["the the the the"], [["the cat the", "a b c d e f g"]])
    assert b[0] == pytest.approx(0.5, rel=1e-9)
    # bigram "the the": hyp 3, refs 0 -> p2 = 1e-15/(3+1e-9)
    assert b[1] == pytest.approx(math.sqrt(0.5 * (1e-15 / 3)), rel=1e-6)


def test_bleu_is_corpus_level_not_mean_of_sentences():
    # sentence 1: 4/4 unigrams, sentence 2: 0/2 -> corpus p1 = 4/6 (a mean would give 0.5)
    b = bleu(["a b c d", "x y"], [["a b c d"], ["p q"]])
    assert b[0] == pytest.approx(4 / 6, rel=1e-9)


def test_cider_d_hand_computed_unigram_case():
    # Two images. Image 1: hyp "a b", ref "a b". Image 2: hyp "c", ref "d".
    # log N = log 2; df("a") = df("b") = df("a b") = df("d") = 1 -> idf weight log 2 each.
    # Image 1: identical vectors -> cosine 1 at n=1 and n=2; n=3,4 empty -> 0.
    #   bigram "length" equal -> no penalty; score = (1 + 1 + 0 + 0) / 4 * 10 = 5.
    # Image 2: no overlap -> 0. Corpus mean = 2.5.
    mean, per = cider_d(["a b", "c"], [["a b"], ["d"]])
    assert per == pytest.approx([5.0, 0.0])
    assert mean == pytest.approx(2.5)


def test_cider_d_length_penalty_and_clipping():
    # hyp "a a b" vs ref "a b" (+ a second image so idf is non-zero).
    # n=1: hyp vec {a: 2w, b: w}, ref {a: w, b: w}, w = log 2. clipped dot = min(2w,w)*w + w*w = 2w^2
    #   norms sqrt(5) w and sqrt(2) w -> 2 / sqrt(10)
    # n=2: hyp {"a a": w, "a b": w}, ref {"a b": w}: dot w^2, norms sqrt(2) w, w -> 1/sqrt(2)
    # bigram lengths: hyp 2, ref 1 -> penalty exp(-1 / 72) on every order.
    mean, per = cider_d(["a a b", "z"], [["a b"], ["y"]])
    pen = math.exp(-1 / 72)
    expected = (2 / math.sqrt(10) + 1 / math.sqrt(2)) * pen / 4 * 10
    assert per[0] == pytest.approx(expected, rel=1e-9)
    assert per[1] == 0.0


def test_caption_scores_by_image_id_and_errors():
    s = caption_scores({"img1": "a dog runs"}, {"img1": ["a dog runs", "a dog is running"]})
    d = s.as_dict()
    assert set(d) == {"bleu1", "bleu2", "bleu3", "bleu4", "cider"} and s.n == 1
    assert d["bleu1"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no references for"):
        caption_scores({"x": "a"}, {"y": ["a"]})
    with pytest.raises(ValueError, match="2 hypotheses but 1 reference sets"):
        bleu(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="non-empty list"):
        cider_d(["a"], [[]])
