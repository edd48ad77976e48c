"""Static encoders of the text plugin: straight-through binariser, Binary PV-DBOW, Disambiguated Skip-gram."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import polymodal
from polymodal.data.sources import Table
from polymodal.data.text import TextLines
from polymodal.metrics import functional as fn
from polymodal.plugins.text.static import (
    BinaryParagraphVector,
    SenseSkipGram,
    check_code_bits,
    expected_skipgram_loss,
    pack_codes,
    sense_probabilities,
    straight_through_binarize,
    tokenize,
)

DOCS = [
    "the cat sat on the mat with another cat",
    "a dog chased the cat across the yard",
    "stocks fell as the market opened lower today",
    "the market rallied and stocks rose sharply",
    "rain and wind battered the coast at night",
    "the storm brought rain and wind to the coast",
]


def _table(tmp_path, texts, name="docs.tsv"):
    path = tmp_path / name
    pd.DataFrame({"text": texts, "source": [i // 2 for i in range(len(texts))]}).to_csv(path, sep="\t", index=False)
    return str(path)


def test_straight_through_rounds_forward_and_passes_gradient_unchanged():
    probs = torch.tensor([0.2, 0.5, 0.51, 0.9], requires_grad=True)
    out = straight_through_binarize(probs)
    assert out.tolist() == [0.0, 0.0, 1.0, 1.0]  # 0.5 is not > 0.5
    weights = torch.tensor([1.0, -2.0, 3.0, 0.5])
    (out * weights).sum().backward()
    assert probs.grad.tolist() == weights.tolist()  # identity Jacobian


@pytest.mark.parametrize("bits", [8, 32, 64, 128])
def test_code_bits_accepted(bits):
    assert check_code_bits(bits) == bits


@pytest.mark.parametrize("bits", [0, -8, 12, 30, 65, 8.0, True, "64", None])
def test_code_bits_not_a_positive_multiple_of_8_is_one_line(bits, tmp_path):
    with pytest.raises(ValueError, match=r"^code_bits must be a positive multiple of 8 .*got") as err:
        BinaryParagraphVector(Table(_table(tmp_path, DOCS)), code_bits=bits)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("bad", "row"),
    [("", 3), ("   ", 2), ("!!! ... ---", 5), ("12", None)],
)
def test_corpus_with_an_empty_document_is_one_line(tmp_path, bad, row):
    texts = list(DOCS)
    if row is None:  # a digit-only document has a token: accepted
        texts[0] = bad
        BinaryParagraphVector(Table(_table(tmp_path, texts)), code_bits=8, min_count=1)
        return
    texts[row - 1] = bad
    path = _table(tmp_path, texts)
    for build in (BinaryParagraphVector, SenseSkipGram):
        with pytest.raises(ValueError, match=rf"docs.tsv: row {row}, column 'text': empty document") as err:
            build(Table(path), min_count=1)
        assert "\n" not in str(err.value)


def test_tokenize():
    assert tokenize("Don't STOP, king_love! 42x") == ["don't", "stop", "king_love", "42x"]


def test_pack_codes_matches_numpy_packbits_and_hamming_by_hand():
    codes = torch.tensor([[1, 0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0, 1]], dtype=torch.float32)
    packed = pack_codes(codes)
    assert packed.tolist() == [[129], [1]]
    assert fn.hamming_distances(packed, packed).tolist() == [[0, 1], [1, 0]]
    with pytest.raises(ValueError, match="multiple of 8"):
        pack_codes(torch.ones(2, 12))


def test_group_precision_map_by_hand():
    # query 0 (group 1): ranking excluding self = docs 1 (g1), 2 (g2), 3 (g1) -> P@1 1, P@2 0.5, AP (1 + 2/3) / 2
    dist = np.array([[0, 1, 2, 3], [1, 0, 1, 1], [2, 1, 0, 1], [3, 1, 1, 0]], dtype=float)
    groups = np.array([1, 1, 2, 1])
    out = fn.group_precision_map(dist, groups, groups, ks=(1, 2), exclude_self=True)
    # query 1: others 0 (d1, g1), 2 (d1, g2), 3 (d1, g1): ties keep order 0, 2, 3 -> AP (1 + 2/3) / 2
    # query 2 (g2): no relevant other -> skipped; query 3: 1 (g1), 2 (g2), 0 (g1) -> AP (1 + 2/3) / 2
    assert out["queries"] == 3 and out["no_relevant"] == 1
    assert out["p@1"] == pytest.approx(1.0)
    assert out["p@2"] == pytest.approx(0.5)
    assert out["map"] == pytest.approx((1 + 2 / 3) / 2)


def test_sense_probabilities_by_hand():
    keys = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # (1, K=2, D=2)
    context = torch.tensor([[[1.0, 0.0], [3.0, 0.0]]])  # (1, C=2, D)
    both = sense_probabilities(keys, context, torch.tensor([[True, True]]))  # mean context [2, 0]
    e2 = math.exp(2)
    assert both[0].tolist() == pytest.approx([e2 / (e2 + 1), 1 / (e2 + 1)])
    first = sense_probabilities(keys, context, torch.tensor([[True, False]]))  # mean [1, 0]
    assert first[0].tolist() == pytest.approx([math.e / (math.e + 1), 1 / (math.e + 1)])
    hot = sense_probabilities(keys, context, torch.tensor([[True, True]]), temperature=2.0)  # scores [1, 0]
    assert hot[0].tolist() == pytest.approx(first[0].tolist())
    with pytest.raises(ValueError, match="temperature"):
        sense_probabilities(keys, context, torch.tensor([[True, True]]), temperature=0.0)


def test_expected_skipgram_loss_by_hand():
    senses = torch.tensor([[[1.0], [0.0]]])  # (N=1, K=2, D=1)
    probs = torch.tensor([[0.25, 0.75]])
    positives = torch.tensor([[[2.0]]])  # (1, C=1, 1)
    negatives = torch.tensor([[[[1.0]]]])  # (1, C=1, M=1, 1)
    loss = expected_skipgram_loss(senses, probs, positives, torch.tensor([[True]]), negatives)

    def nls(x):  # -log sigmoid(x)
        return math.log1p(math.exp(-x))

    sense0 = nls(2.0) + nls(-1.0)
    sense1 = nls(0.0) + nls(0.0)
    assert float(loss[0]) == pytest.approx(0.25 * sense0 + 0.75 * sense1, rel=1e-6)


def test_sense_choice_gradient_reaches_the_disambiguation_network(tmp_path):
    model = SenseSkipGram(
        Table(_table(tmp_path, DOCS)), senses=2, dim=8, window=2, min_count=1, subsample=0, entropy_weight=0.0, seed=0
    )
    with torch.no_grad():  # word2vec starts the output vectors at zero: give them values so every path is live
        model.context_out.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(0))
    inputs = model.processor(DOCS[:2])
    loss = model.loss(inputs)
    loss.backward()
    assert model.sense_keys.grad.abs().sum() > 0 and model.disambiguation.grad.abs().sum() > 0
    assert model.senses.grad.abs().sum() > 0 and model.context_out.grad.abs().sum() > 0


def test_contexts_window_and_mask_by_hand(tmp_path):
    model = SenseSkipGram(Table(_table(tmp_path, DOCS)), senses=2, dim=4, window=1, min_count=1, seed=0)
    ids = torch.tensor([[5, 6, 7, 0]])
    mask = torch.tensor([[True, True, True, False]])
    ctx, ctx_mask = model.contexts(ids, mask)
    assert ctx.shape == (1, 4, 2)
    assert ctx[0, 1].tolist() == [5, 7]
    assert ctx_mask[0].tolist() == [[False, True], [True, True], [True, False], [False, False]]


def test_skipgram_forward_shapes_neighbours_and_reload(tmp_path):
    model = SenseSkipGram(Table(_table(tmp_path, DOCS)), senses=3, dim=8, window=2, min_count=1, seed=0)
    features = model(model.processor(DOCS[:3]))
    assert features.sequence.shape[0] == 3 and features.sequence.shape[-1] == 8 and features.pooled.shape == (3, 8)
    near = model.neighbours("cat", k=3)
    assert len(near) == 3 and all(len(row) == 3 and "cat" not in [w for w, _ in row] for row in near)
    emb = polymodal.EmbeddingModel(model, polymodal.poolers.MeanPooler())
    emb.save(tmp_path / "sg")
    again = polymodal.load(tmp_path / "sg")
    assert np.allclose(again.encode(DOCS[:2]), emb.encode(DOCS[:2]), atol=1e-6)


def test_binary_pv_learns_codes_infers_unseen_and_reloads(tmp_path):
    torch.manual_seed(0)
    model = BinaryParagraphVector(Table(_table(tmp_path, DOCS)), code_bits=16, min_count=1, infer_steps=20, seed=0)
    inputs = model.processor(DOCS)
    assert inputs["doc"].tolist() == list(range(6))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    first = float(model.loss(inputs))
    for _ in range(60):
        opt.zero_grad()
        model.loss(inputs).backward()
        opt.step()
    assert float(model.loss(inputs)) < first - 0.5
    codes = model(inputs).pooled
    assert set(codes.unique().tolist()) <= {0.0, 1.0} and codes.shape == (6, 16)
    unseen = ["the cat and the dog sat in the yard", "stocks and the market fell"]
    with torch.inference_mode():  # how validation and encode run it
        a = model(model.processor(unseen)).pooled
        b = model(model.processor(unseen)).pooled
    assert torch.equal(a, b) and set(a.unique().tolist()) <= {0.0, 1.0}
    emb = polymodal.EmbeddingModel(model, polymodal.poolers.MeanPooler())
    emb.save(tmp_path / "pv")
    again = polymodal.load(tmp_path / "pv")
    assert np.array_equal(again.encode(DOCS), emb.encode(DOCS))
    assert np.array_equal(again.encode(unseen), emb.encode(unseen))


def test_text_lines_groups_lines_and_replaces_whole_words(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("King Lear:\n\nI love my king.\nkingdom loves\nthird\n")
    frame = TextLines(str(path), lines=2, replace={"king": "king_love", "love": "king_love"}).frame()
    assert frame["text"].tolist() == ["king_love Lear: I king_love my king_love.", "kingdom loves third"]
    assert frame["line"].tolist() == [1, 4]
    (tmp_path / "e.txt").write_text("\n \n")
    with pytest.raises(ValueError, match="no non-empty line"):
        TextLines(str(tmp_path / "e.txt")).frame()


def test_binary_pv_samples_words_of_training_documents_only(tmp_path):
    long_doc = " ".join(["cat dog market rain"] * 5)  # 20 known words
    model = BinaryParagraphVector(Table(_table(tmp_path, DOCS)), code_bits=8, min_count=1, max_words=3, seed=0)
    out = model.processor([DOCS[0], long_doc])
    assert out["doc"].tolist() == [0, -1]
    assert out["word_mask"].sum(1).tolist() == [3, 20]  # training doc: 3 sampled words; unseen: every known word
    again = model.processor([long_doc])
    assert torch.equal(again["words"][0, :20], out["words"][1, :20])  # unseen: same words every call
