"""sentence_lm part (a): the semantic autoencoder is a composition of the core PrefixLM with a sentence-vector
prefix (one prefix token); fit, test (reconstruction BLEU) and the exported model's generate()."""

from __future__ import annotations

import math

import pytest
import torch

from polymodal.cli import main


def test_tiny_semantic_autoencoder_fits_tests_and_decodes_from_a_sentence_vector(tmp_path):
    cli = main(["fit", "--config", "recipes/sentence_lm/tiny.yaml", f"--trainer.default_root_dir={tmp_path}"])
    assert cli.trainer.state.finished and cli.trainer.global_step == 12  # 48 rows / 8 x 2 epochs
    assert math.isfinite(float(cli.trainer.callback_metrics["val/ppl"]))
    (results,) = cli.trainer.test(cli.model, datamodule=cli.datamodule)
    assert {"test/bleu1", "test/bleu4"} <= set(results)
    assert all(0.0 <= results[k] <= 1.0 for k in ("test/bleu1", "test/bleu4"))
    import polymodal

    model = polymodal.load(tmp_path / "model")
    assert type(model).__name__ == "PrefixLM"
    sentences = ["Before we proceed any further, hear me speak.", "a sentence it never saw"]
    batch = model.prefix.processor(sentences)
    with torch.no_grad():
        tokens = model.prefix_tokens(batch)
    assert tokens.shape == (2, 1, model.hidden_size)  # the sentence vector is ONE prefix token
    out = model.generate(sentences, max_new_tokens=8)
    assert len(out) == 2 and all(isinstance(t, str) for t in out)
    with pytest.raises(TypeError, match="list of inputs"):
        model.generate("a bare string")


# --------------------------------------------------------------------------- part (a): data, exact match
def test_reasoning_sentences_give_each_solution_sentence_once_as_input_and_target():
    from polymodal.recipes.sentence_lm.reasoning import ReasoningProblems, ReasoningSentences

    problems = ReasoningProblems("test", per_template=5, seed=2).frame()
    frame = ReasoningSentences("test", per_template=5, seed=2).frame()
    expected = {s for sol in problems.solution for s in sol.split("\n")}
    assert set(frame.sentence) == expected and len(frame) == len(expected)  # distinct, none lost
    assert (frame.sentence == frame.target).all() and list(frame.id) == list(range(len(frame)))
    assert "The answer is " + problems.answer.iloc[0] + "." in expected  # every solution ends with its answer
    assert len(ReasoningSentences("test", per_template=5, seed=2, limit=7).frame()) == 7


def test_exact_match_scores_by_hand():
    from polymodal.metrics.captioning import exact_match_scores

    hyps = {0: "Add 3 to get 5.", 1: "Add  3 to get 6. ", 2: "x"}
    refs = {0: ["Add 3 to get 5."], 1: ["Add 3 to get 5.", "Add 3 to get 6."], 2: ["xy"]}
    out = exact_match_scores(hyps, refs)
    assert out["exact"] == pytest.approx(2 / 3)  # whitespace-normalised; any reference counts
    # CER over the first references: 0 + 1 substitution (of 15 chars) + 1 deletion (of 2) = 2 / 32 characters
    assert out["cer"] == pytest.approx(2 / 32)


def test_frozen_pooled_features_average_only_real_tokens():
    from polymodal.data.frozen import FrozenFeatures
    from polymodal.plugins.text.encoder import TextEncoder

    frozen = FrozenFeatures(TextEncoder("test-bert", tokenizer="bytes", max_length=64), "pooled")
    alone = frozen.encode(["short"])
    padded = frozen.encode(["short", "a much longer sentence that pads the first one"])
    assert torch.allclose(torch.from_numpy(alone[0]), torch.from_numpy(padded[0]), atol=1e-5)


# --------------------------------------------------------------------------- part (b): the loss, by hand
def test_sentence_prediction_loss_matches_hand_computed_value():
    from polymodal.recipes.sentence_lm.predictor import sentence_prediction_loss

    pred = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [5.0, 5.0]]])  # (B=1, S=3, C=2); the third is padding
    true = torch.tensor([[[3.0, 0.0], [1.0, 1.0], [-1.0, 0.0]]])
    mask = torch.tensor([[True, True, False]])
    c = 1 / math.sqrt(2)  # cos(p2, t2); cos(p1, t1) = 1; cos(p1, t2) = c; cos(p2, t1) = 0
    cosine = ((1 - 1) + (1 - c)) / 2
    nce = (math.log(1 + math.exp(c - 1)) + math.log(1 + math.exp(0 - c))) / 2  # -log softmax, T = 1
    assert float(sentence_prediction_loss(pred, true, mask, 1.0, 0.0)) == pytest.approx(cosine, abs=1e-6)
    assert float(sentence_prediction_loss(pred, true, mask, 1.0, 1.0)) == pytest.approx(cosine + nce, abs=1e-6)
    nce_t = (math.log(1 + math.exp((c - 1) / 0.5)) + math.log(1 + math.exp((0 - c) / 0.5))) / 2
    assert float(sentence_prediction_loss(pred, true, mask, 0.5, 2.0)) == pytest.approx(cosine + 2 * nce_t, abs=1e-6)
    with pytest.raises(ValueError, match="no sentence to predict"):
        sentence_prediction_loss(pred, true, torch.zeros_like(mask))


# --------------------------------------------------------------------------- part (b)-(d): tiny end to end
def test_tiny_predictor_and_cot_fit_save_reload_and_evaluate(tmp_path):
    import polymodal
    from polymodal.plugins.text.encoder import TextEncoder
    from polymodal.prefix_lm import PrefixLM
    from polymodal.recipes.sentence_lm import evaluate
    from polymodal.recipes.sentence_lm.predictor import SentenceChainProcessor, SentencePredictor
    from polymodal.recipes.sentence_lm.reasoning import ReasoningProblems

    runs = {}
    for name in ("tiny_predictor", "tiny_cot"):  # tiny.yaml (the autoencoder) is fitted by the test above
        root = tmp_path / name
        cli = main(["fit", "--config", f"recipes/sentence_lm/{name}.yaml", f"--trainer.default_root_dir={root}",
                    "--trainer.max_epochs=1"])  # fmt: skip
        assert cli.trainer.state.finished and cli.trainer.global_step == 3  # 3 train templates x 2 tasks x 4 / 8
        runs[name] = tmp_path / name / "model"
    lm = {"model_type": "llama", "vocab_size": 261, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
          "num_key_value_heads": 1, "intermediate_size": 64, "max_position_embeddings": 128}  # fmt: skip
    encoder = TextEncoder("test-bert", tokenizer="bytes", max_length=64)  # the predictor's encoder: same vectors
    runs["tiny"] = PrefixLM(encoder, lm=lm, tokenizer="bytes", prefix_output="pooled", init_seed=0).save(
        tmp_path / "ae"
    )
    assert math.isfinite(float(cli.trainer.callback_metrics["val/loss"]))
    predictor = polymodal.load(runs["tiny_predictor"])
    assert type(predictor) is SentencePredictor and float(predictor.target_norm) > 0  # norm learned and saved
    problem = ReasoningProblems("test", per_template=1, steps=[2, 2], nodes=[3, 3]).frame().iloc[0]
    processor = SentenceChainProcessor(predictor)
    inputs = processor([(problem.question, problem.solution)])
    with torch.no_grad():
        forced = predictor.rescale(predictor(inputs).sequence[0])  # (S, C) teacher-forced predictions
    gold = iter(inputs["steps"][0])
    rolled = predictor.rollout(problem.question, len(forced), feed=lambda v: next(gold))  # KV-cache path, gold fed
    assert torch.allclose(torch.stack(rolled), forced, atol=1e-4)
    out = evaluate.main(["--autoencoder", str(runs["tiny"]), "--predictor", str(runs["tiny_predictor"]),
                         "--cot", str(runs["tiny_cot"]), "--per-template", "1", "--sentences", "4", "--lens", "1",
                         "--cot-tokens", "8", "--out", str(tmp_path / "eval.json")])  # fmt: skip
    assert set(out["inference"]) == {"continuous", "discretised", "cot"}
    flops = {m: r["gflops_per_problem"] for m, r in out["inference"].items()}
    assert all(f > 0 for f in flops.values()) and flops["discretised"] > flops["continuous"]  # decode + re-encode
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in out["inference"].values())
    assert -1.0 <= out["predictor"]["cosine"] <= 1.0 and out["reconstruction"]["n"] == 4
    (lens,) = out["lens"]
    assert len(lens["layers"]) >= 2 and all(len(t) == len(lens["gold"]) for t in lens["layers"].values())
    assert (tmp_path / "eval.json").is_file()


# --------------------------------------------------------------------------- bad inputs: one line each
@pytest.mark.parametrize(
    ("value", "message"),
    [
        (("What is x?", ""), "at least one sentence"),
        (("What is x?", "\n \n"), "at least one sentence"),
        (("", "Add 1 to get 2."), "non-empty question"),
        ("a bare string", "non-empty question"),  # a plain answer has no question
        ((1, 2), "pair of strings"),
    ],
)
def test_chain_processor_rejects_bad_problems_in_one_line(value, message):
    from polymodal.recipes.sentence_lm.predictor import SentenceChainProcessor

    processor = SentenceChainProcessor.__new__(SentenceChainProcessor)  # validate() needs no model
    with pytest.raises(ValueError, match=message) as info:
        processor.validate(value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"limit": 0}, "limit must be >= 1"), ({"part": "dev"}, "part must be train or test")],
)
def test_reasoning_sentences_bad_settings(kwargs, message):
    from polymodal.recipes.sentence_lm.reasoning import ReasoningSentences

    with pytest.raises(ValueError, match=message):
        ReasoningSentences(**kwargs)
