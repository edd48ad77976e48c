"""Token-level tasks: the CoNLL BIO reader, word alignment, the token head and loss, entity-level span F1."""

from __future__ import annotations

import gzip
import random

import pytest
import torch

from polymodal.data.conll import ConllSource, read_conll, tag_set
from polymodal.metrics.functional import bio_entities, span_prf, tag_f1

GOOD = "EU\tB-organisation\nrejects\tO\nGerman\tB-misc\ncall\tO\n\nPeter\tB-person\nBlackburn\tI-person\n"


def write(tmp_path, text, name="data.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- reader
def test_read_conll_sentences_lines_and_gz(tmp_path):
    plain = read_conll(write(tmp_path, "-DOCSTART-\tO\n\n" + GOOD + "\n\n"))
    assert [s.tokens for s in plain] == [("EU", "rejects", "German", "call"), ("Peter", "Blackburn")]
    assert [s.line for s in plain] == [3, 8]
    gz = tmp_path / "data.txt.gz"
    gz.write_bytes(gzip.compress(GOOD.encode()))
    assert [s.tags for s in read_conll(gz)] == [s.tags for s in plain]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("EU\tB-organisation\nrejects\n", r"data.txt:2: expected 'token<TAB>tag'"),
        ("EU\tB-organisation\n\tO\n", r"data.txt:2: empty token"),
        ("EU\tX-organisation\n", r"data.txt:1: tag 'X-organisation' is not BIO"),
        ("EU\tB-\n", r"data.txt:1: tag 'B-' is not BIO"),
        ("EU\tO\nx\tI-person\n", r"data.txt:2: tag 'I-person' follows 'O'"),
        ("EU\tB-person\nx\tI-location\n", r"data.txt:2: tag 'I-location' follows 'B-person'"),
        ("EU\tB-alien\n", r"data.txt:1: unknown entity type 'alien'"),
        ("\n\n\n", r"data.txt:3: no sentence in the file"),
    ],
)
def test_read_conll_bad_inputs_name_file_and_line(tmp_path, text, expected):
    with pytest.raises(ValueError, match=expected) as info:
        read_conll(write(tmp_path, text), types=["organisation", "person", "location", "misc"])
    assert "\n" not in str(info.value)


def test_read_conll_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "data.txt"
    path.write_bytes(b"EU\tO\n\xff\xfe\tO\n")
    with pytest.raises(ValueError, match=r"data.txt:\d+: not UTF-8"):
        read_conll(path)


def test_conll_source_columns_sample_and_domains(tmp_path):
    text = "".join(f"w{i}\tO\nx{i}\tB-person\n\n" for i in range(20))
    a, b = write(tmp_path, text, "a.txt"), write(tmp_path, text, "b.txt")
    df = ConllSource([str(a), str(b)], sample=5, seed=3, domains=["x", "y"]).read()
    assert list(df.columns) == ["tokens", "tags", "text", "domain", "file", "line"]
    assert len(df) == 10 and df["domain"].tolist() == ["x"] * 5 + ["y"] * 5
    again = ConllSource([str(a), str(b)], sample=5, seed=3, domains=["x", "y"]).read()
    assert df["line"].tolist() == again["line"].tolist()  # the seeded subset is fixed
    assert df["line"].tolist()[:5] == sorted(df["line"].tolist()[:5])  # in file order
    assert df["text"][0] == " ".join(df["tokens"][0])
    with pytest.raises(ValueError, match="one per path"):
        ConllSource([str(a), str(b)], domains=["x"])


def test_tag_set():
    assert tag_set(["person", "misc"]) == ["O", "B-person", "I-person", "B-misc", "I-misc"]


# ----------------------------------------------------------------------------- span F1
@pytest.mark.parametrize(
    ("tags", "spans"),
    [
        (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 1), ("LOC", 3, 3)]),
        (["I-PER", "I-PER", "O"], [("PER", 0, 1)]),  # I- after O starts an entity (conlleval)
        (["B-PER", "I-LOC", "O"], [("PER", 0, 0), ("LOC", 1, 1)]),  # type change ends it
        (["B-PER", "B-PER"], [("PER", 0, 0), ("PER", 1, 1)]),
        (["O", "O"], []),
        (["B-PER", "I-PER"], [("PER", 0, 1)]),  # an entity at the end of the sentence
    ],
)
def test_bio_entities_hand_cases(tags, spans):
    assert bio_entities(tags) == spans


def test_tag_f1_hand_computed():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "B-LOC"]]
    # gold spans: PER(0,1), LOC(3,3), ORG(0,0) = 3; predicted: PER(0,1), ORG(0,0), LOC(1,1) = 3; 2 correct
    out = tag_f1(gold, pred, by_type=True)
    assert out["precision"] == pytest.approx(2 / 3) and out["recall"] == pytest.approx(2 / 3)
    assert out["f1"] == pytest.approx(2 / 3)
    assert out["f1/PER"] == 1.0 and out["f1/LOC"] == 0.0 and out["f1/ORG"] == 1.0
    assert span_prf([set()], [set()])["f1"] == 0.0  # undefined -> 0, as seqeval
    with pytest.raises(ValueError, match="sentence 0: 2 gold tags but 1 predicted"):
        tag_f1([["O", "O"]], [["O"]])


def test_tag_f1_matches_seqeval_on_random_sequences():
    seqeval = pytest.importorskip("seqeval.metrics")
    rng = random.Random(0)
    labels = ["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
    for _ in range(30):
        gold = [[rng.choice(labels) for _ in range(rng.randint(1, 12))] for _ in range(rng.randint(1, 8))]
        pred = [[rng.choice(labels) for _ in g] for g in gold]
        ours = tag_f1(gold, pred)
        assert ours["f1"] == pytest.approx(seqeval.f1_score(gold, pred, zero_division=0), abs=1e-12)
        assert ours["precision"] == pytest.approx(seqeval.precision_score(gold, pred, zero_division=0), abs=1e-12)
        assert ours["recall"] == pytest.approx(seqeval.recall_score(gold, pred, zero_division=0), abs=1e-12)


# ----------------------------------------------------------------------------- alignment, head, loss, metric
def test_word_processor_aligns_subwords_and_rejects_empty_sentences():
    from polymodal.plugins.text import WordProcessor

    proc = WordProcessor("bytes", max_length=12)
    out = proc([["ab", "c"], ["defghijklmnopq", "r"]])
    # bytes: [CLS] a b c [SEP] -> word ids -1 0 0 1 -1
    assert out["word_ids"][0, :5].tolist() == [-1, 0, 0, 1, -1]
    assert out["first"][0, :5].tolist() == [False, True, False, True, False]
    assert out["num_words"].tolist() == [2, 2]  # the cut word of sentence 2 still counts
    assert set(out["word_ids"][1].tolist()) == {-1, 0}  # "r" fell off the 12-token limit
    for bad, expected in ((["a", ""], "word 2"), ([], "empty sentence"), ("a b", "expected a list of words")):
        with pytest.raises(ValueError, match=expected):
            proc.validate(bad)


def _token_system():
    from polymodal.heads import TokenHead
    from polymodal.metrics.step import SpanF1
    from polymodal.objectives import TokenClassificationLoss
    from polymodal.plugins.text import TextEncoder, WordProcessor
    from polymodal.system import System

    encoder = TextEncoder(model="test-bert", tokenizer="bytes", max_length=64)
    return System(
        tower=encoder,
        processors={"tokens": WordProcessor("bytes", 64)},
        heads={"tags": TokenHead("tokens", types=["PER", "LOC"])},
        objectives={"tags": TokenClassificationLoss()},
        metrics={"spans": SpanF1(group="domain", groups=["a", "b"])},
    )


def _batch(system, sentences, tags, domains):
    from polymodal.contracts import Batch

    (proc,) = system.processors_for(["tokens"])
    return Batch(inputs={"tokens": proc(sentences)}, meta={"tags": tags, "domain": domains}, rows=[1, 2])


def test_token_head_loss_and_span_metric_on_a_system():
    from polymodal.system import Step

    torch.manual_seed(0)
    system = _token_system()
    batch = _batch(
        system, [["Ann", "lives", "in", "Rome"], ["Bo"]], [["B-PER", "O", "O", "B-LOC"], ["B-PER"]], ["a", "b"]
    )
    step = Step(system, batch, "val")
    logits = step.head("tags")
    assert logits.shape[:2] == batch.inputs["tokens"]["input_ids"].shape and logits.shape[-1] == 5
    loss = system.objectives["tags"](step)
    assert loss.requires_grad and torch.isfinite(loss)
    # a head that predicts the gold tags exactly: perfect F1; the loss only reads first sub-words
    labels = step.memo("word_labels/tags", lambda: None)
    head = system.heads["tags"]
    with torch.no_grad():
        perfect = torch.full_like(logits, -10.0)
        keep = labels != -100
        perfect[keep, labels[keep]] = 10.0
    step._heads["tags"] = perfect
    metric = system.metrics["spans"]
    metric.update(step)
    out = metric.compute()
    assert out["f1"] == 1.0 and out["a/f1"] == 1.0 and out["b/f1"] == 1.0 and out["avg_f1"] == 1.0
    assert int(labels[keep].ne(head.index["O"]).sum()) == 3


def test_token_loss_unknown_tag_and_metric_unknown_group_are_one_line_errors():
    from polymodal.system import Step

    system = _token_system()
    batch = _batch(system, [["Ann"], ["Bo"]], [["B-ORG"], ["O"]], ["a", "zzz"])
    step = Step(system, batch, "val")
    with pytest.raises(ValueError, match=r"row 1, word 1: tag 'B-ORG' is not one of the head's labels"):
        system.objectives["tags"](step)
    with pytest.raises(ValueError, match=r"row 2: domain 'zzz' is not one of the groups"):
        system.metrics["spans"].update(step)


def test_span_metric_counts_gold_types_the_head_cannot_predict_as_misses():
    from polymodal.system import Step

    system = _token_system()
    batch = _batch(system, [["Ann", "Corp"], ["Bo"]], [["B-PER", "B-ORG"], ["O"]], ["a", "a"])
    step = Step(system, batch, "test")
    logits = step.head("tags")
    step._heads["tags"] = torch.zeros_like(logits).index_fill_(-1, torch.tensor([1]), 5.0)  # B-PER everywhere
    metric = system.metrics["spans"]
    metric.update(step)
    out = metric.compute()
    # gold: PER(0,0), ORG(1,1); predicted: PER(0,0), PER(1,1) and PER(0,0) in row 2 -> tp 1 of 3 predicted, 2 gold
    assert out["precision"] == pytest.approx(1 / 3) and out["recall"] == pytest.approx(1 / 2)
