"""IF-WRANER recipe: answer format and tolerant parser, retrieval prompts, the tiny config end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest

from polymodal.recipes.if_wraner.prompts import RetrievalPrompts, build_prompt, format_answer, parse_answer

TOKENS = ["Ada", "Lovelace", "met", "Charles", "Babbage", "in", "London", "."]
TAGS = ["B-person", "I-person", "O", "B-person", "I-person", "O", "B-location", "O"]
TYPES = ["person", "location", "organisation"]


def test_format_answer_round_trips_through_the_parser():
    answer = format_answer(TOKENS, TAGS)
    assert answer == "person: Ada Lovelace\nperson: Charles Babbage\nlocation: London"
    assert parse_answer(answer, TOKENS, TYPES) == ({("person", 0, 1), ("person", 3, 4), ("location", 6, 6)}, 0, 3)
    assert format_answer(["no", "names"], ["O", "O"]) == "none"
    assert parse_answer("none", ["no", "names"], TYPES) == (set(), 0, 1)


@pytest.mark.parametrize(
    ("text", "spans", "malformed", "lines"),
    [
        ("Person: ada lovelace", {("person", 0, 1)}, 0, 1),  # case-insensitive type and span
        ("- location: London\n* person: Charles Babbage", {("location", 6, 6), ("person", 3, 4)}, 0, 2),
        ("person = Ada Lovelace", {("person", 0, 1)}, 0, 1),
        ('person: "Ada Lovelace"', {("person", 0, 1)}, 0, 1),
        ("person: Ada Lovelace; Charles Babbage", {("person", 0, 1), ("person", 3, 4)}, 0, 1),
        ("alien: London", set(), 1, 1),  # unknown type
        ("person: Grace Hopper", set(), 1, 1),  # not in the sentence
        ("I think the entities are", set(), 1, 1),  # no type: span shape
        ("", set(), 0, 0),
        ("person: Ada Lovelace\nperson: Ada Lovelace", {("person", 0, 1)}, 1, 2),  # one occurrence only
        ("\u0000\ufffd::: :", set(), 1, 1),
    ],
)
def test_parse_answer_is_tolerant_and_counts_malformed_lines(text, spans, malformed, lines):
    assert parse_answer(text, TOKENS, TYPES) == (spans, malformed, lines)


def test_build_prompt_layout():
    prompt = build_prompt(["Paris", "."], ["location"], [(["Rome", "."], ["B-location", "O"])])
    assert prompt.startswith("Extract the named entities") and "Entity types: location." in prompt
    assert prompt.endswith("Sentence: Paris .\nEntities:")
    assert "Sentence: Rome .\nEntities:\nlocation: Rome" in prompt


def _conll(tmp_path, name, sentences):
    path = tmp_path / name
    path.write_text("\n\n".join("\n".join(f"{w}\t{t}" for w, t in s) for s in sentences) + "\n")
    return str(path)


def test_retrieval_prompts_pick_from_the_query_domain_and_never_the_query_itself(tmp_path):
    from polymodal.data.conll import ConllSource

    pool_a = [[("Rome", "B-city"), ("is", "O"), ("old", "O")], [("Milan", "B-city"), ("rains", "O")]]
    pool_b = [[("Bob", "B-person"), ("ran", "O")]]
    queries = [[("Rome", "B-city"), ("is", "O"), ("old", "O")], [("Ann", "B-person"), ("sang", "O")]]
    pa, pb = _conll(tmp_path, "a.txt", pool_a), _conll(tmp_path, "b.txt", pool_b)
    q1, q2 = _conll(tmp_path, "qa.txt", queries[:1]), _conll(tmp_path, "qb.txt", queries[1:])
    source = RetrievalPrompts(
        ConllSource([q1, q2], domains=["a", "b"]),
        ConllSource([pa, pb], domains=["a", "b"]),
        k=2,
        retrieval="random",
        seed=0,
    )
    df = source.read()
    assert df["domain"].tolist() == ["a", "b"]
    assert df["examples"][0] == [2]  # the identical pool sentence 1 is excluded, only domain a's sentence 2 is left
    assert df["examples"][1] == [3]  # domain b has one sentence
    assert df["types"].tolist() == [["city"], ["person"]]
    assert df["answer"].tolist() == ["city: Rome", "person: Ann"]
    assert df["coverage"].tolist() == [1.0, 1.0]
    zero = RetrievalPrompts(ConllSource([q1], domains=["a"]), ConllSource([pa], domains=["a"]), k=0).read()
    assert zero["examples"][0] == [] and math.isnan(zero["coverage"][0]) and "Sentence:" in zero["prompt"][0]
    with pytest.raises(ValueError, match="no sentence of domain 'b'"):
        RetrievalPrompts(ConllSource([q2], domains=["b"]), ConllSource([pa], domains=["a"]), k=1).read()


def test_tiny_config_tunes_then_generates_and_scores(tmp_path):
    from polymodal.cli import main

    cli = main(["fit", "--config", "recipes/if_wraner/tiny.yaml", f"--trainer.default_root_dir={tmp_path}"])
    assert cli.trainer.global_step == 2
    (result,) = cli.trainer.test(cli.model, datamodule=cli.datamodule)
    assert {"test/f1", "test/ai/f1", "test/malformed_rate", "test/coverage"} <= set(result)
    assert 0.0 <= result["test/malformed_rate"] <= 1.0 and np.isfinite(result["test/f1"])
    # labels are the answer only: prompt tokens and padding are -100
    batch = next(iter(cli.datamodule.train_dataloader()))
    inputs = batch.inputs["prompt+answer"]
    answered = (inputs["labels"] != -100).sum(1)
    assert bool((answered > 0).all()) and bool((answered < inputs["attention_mask"].sum(1)).all())
