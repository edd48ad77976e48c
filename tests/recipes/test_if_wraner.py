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

    answers = tmp_path / "answers.jsonl"
    cli = main(
        [
            "fit",
            "--config",
            "recipes/if_wraner/tiny.yaml",
            f"--trainer.default_root_dir={tmp_path}",
            f"--model.init_args.metrics.ner.init_args.answers={answers}",
        ]
    )
    assert cli.trainer.global_step == 2
    (result,) = cli.trainer.test(cli.model, datamodule=cli.datamodule)
    assert {"test/f1", "test/ai/f1", "test/malformed_rate", "test/coverage"} <= set(result)
    assert 0.0 <= result["test/malformed_rate"] <= 1.0 and np.isfinite(result["test/f1"])
    import json

    rows = [json.loads(line) for line in answers.read_text(encoding="utf-8").splitlines()]  # every decoded answer
    assert rows and {"domain", "sentence", "answer", "gold", "parsed", "malformed"} == set(rows[0])
    assert all(isinstance(r["answer"], str) and r["domain"] in ("politics", "science", "music", "literature", "ai")
               for r in rows)  # fmt: skip
    # labels are the answer only: prompt tokens and padding are -100
    batch = next(iter(cli.datamodule.train_dataloader()))
    inputs = batch.inputs["prompt+answer"]
    answered = (inputs["labels"] != -100).sum(1)
    assert bool((answered > 0).all()) and bool((answered < inputs["attention_mask"].sum(1)).all())


def _print_config(argv: list[str]) -> dict:
    """The config ``argv`` resolves to (``--print_config``: parsed and validated, nothing instantiated)."""
    import contextlib
    import io

    import yaml

    from polymodal.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        main([*argv, "--print_config"])
    assert exit_.value.code in (0, None), out.getvalue()[-2000:]
    return yaml.safe_load(out.getvalue())


def test_smollm2_config_parses():
    cfg = _print_config(["fit", "--config", "recipes/if_wraner/smollm2.yaml"])
    model = cfg["model"]["init_args"]
    lm = model["towers"]["lm"]["init_args"]
    assert (lm["model"], lm["neftune_alpha"]) == ("smollm2-135m", 5.0)  # the regularisation the docs state
    assert model["save_frozen"] is False and model["frozen"] == ["towers.lm.*"]
    sources = cfg["data"]["init_args"]["sources"]
    train, test = sources["train"]["init_args"], sources["test"]["init_args"]
    assert train["k_choices"] == [0, 1, 2, 3] and train["shuffle_types"] is True
    assert (test["k"], test["retrieval"]) == (3, "word")
    assert test["queries"]["init_args"]["sample"] == 4 and test["queries"]["init_args"]["seed"] == 0
    assert [p.split("/")[-2] for p in test["pool"]["init_args"]["paths"]] == model["metrics"]["ner"]["init_args"][
        "groups"
    ]


def test_every_sweep_run_parses_with_its_overrides():
    from polymodal.experiments import load_sweep, run_command

    sweep = load_sweep("recipes/if_wraner/sweep.yaml", root="R")
    expected = {  # run -> (command, tuned, retrieval, k)
        "tuned_word_k3": ("fit", True, "word", 3),
        "tuned_sentence_k3": ("test", True, "sentence", 3),
        "tuned_word_k0": ("test", True, "word", 0),
        "tuned_word_k1": ("test", True, "word", 1),
        "tuned_word_k5": ("test", True, "word", 5),
        "prompt_word_k3": ("test", False, "word", 3),
        "prompt_word_k0": ("test", False, "word", 0),
    }
    assert [r.name for r in sweep.runs] == list(expected)
    for run in sweep.runs:
        command, tuned, retrieval, k = expected[run.name]
        assert run.command == command and run.test == (command == "fit")
        cfg = _print_config(run_command(run, 0, "R"))
        test = cfg["data"]["init_args"]["sources"]["test"]["init_args"]
        assert (test["retrieval"], test["k"]) == (retrieval, k), run.name
        init_from = cfg["model"]["init_args"].get("init_from")
        assert init_from == (
            "R/tuned_word_k3/seed0/checkpoints/last.ckpt" if run.name != "tuned_word_k3" and tuned else None
        ), run.name


@pytest.mark.slow
def test_smollm2_config_tunes_and_tests_on_real_data(shared_data, tmp_path):
    """smollm2.yaml on the real files and the bundled SmolLM2-135M, cut to one step and one test sentence per domain."""
    import torch

    from polymodal.cli import main

    cache = f"{tmp_path}/cache"
    cli = main(
        [
            "fit",
            "--config",
            "recipes/if_wraner/smollm2.yaml",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.max_steps=1",
            "--data.init_args.sources.train.init_args.queries.init_args.sample=4",
            "--data.init_args.sources.train.init_args.pool.init_args.sample=20",
            f"--data.init_args.sources.train.init_args.cache={cache}",
            "--data.init_args.sources.test.init_args.queries.init_args.sample=1",
            f"--data.init_args.sources.test.init_args.cache={cache}",
            "--model.init_args.metrics.ner.init_args.max_new_tokens=8",
        ]
    )
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")["state_dict"]
    assert state and all(".layers.2" in k or k.endswith("model.norm.weight") for k in state), sorted(state)[:5]
    (result,) = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
    for domain in ["politics", "science", "music", "literature", "ai"]:
        assert 0.0 <= result[f"test/{domain}/f1"] <= 1.0
    assert 0.0 <= result["test/malformed_rate"] <= 1.0 and 0.0 <= result["test/coverage"] <= 1.0
