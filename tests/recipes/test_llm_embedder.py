"""The llm_embedder recipe: the tiny base and every component overlay fit end to end on a tiny random Llama."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from polymodal.cli import main
from polymodal.losses import (
    CachedInfoNCELoss,
    FocalInfoNCELoss,
    HardNegativeMixingLoss,
    InfoNCELoss,
    ListwiseDistillationLoss,
    MarginFilteredInfoNCELoss,
    ProgressiveInfoNCELoss,
)
from polymodal.plugins.text.decoder import DecoderTextEncoder
from polymodal.poolers import LastTokenPooler, MeanPooler, MultiLayerAttentionPooler

FOLDER = Path("recipes/llm_embedder")
TINY = str(FOLDER / "tiny.yaml")
# test-llama is 2 x 32 (3 hidden states); the PEG overlay's 4x batch is scaled down to the embedded sample
TINY_ARGS = {
    "multilayer": [
        "--model.init_args.pooler.init_args.dim=32",
        "--model.init_args.pooler.init_args.num_layers=3",
        "--model.init_args.pooler.init_args.num_heads=2",
    ],
    "peg": [
        "--data.init_args.batch_size=16",
        "--model.init_args.loss.init_args.mini_batch_size=4",
        "--model.init_args.loss.init_args.loss.init_args.total_steps=2",
    ],
}


def _fit(tmp_path: Path, overlay: str | None, *extra: str):
    path = FOLDER / "overlays" / f"{overlay}.yaml"
    path = path if path.is_file() else FOLDER / f"{overlay}.yaml"
    configs = ["--config", TINY] + (["--config", str(path)] if overlay else [])
    args = [*configs, f"--trainer.default_root_dir={tmp_path}", *TINY_ARGS.get(overlay or "", []), *extra]
    return main(["fit", *args])


def _loss_module(system):
    (objective,) = system.objectives.values()  # an EmbeddingLoss around a pooled loss, or an objective itself
    return getattr(objective, "loss", objective)


@pytest.mark.parametrize(
    ("overlay", "loss_type", "pooler_type", "bidirectional"),
    [
        (None, InfoNCELoss, LastTokenPooler, False),
        ("bidirectional_mean", InfoNCELoss, MeanPooler, True),
        ("bidirectional", InfoNCELoss, LastTokenPooler, True),
        ("mean", InfoNCELoss, MeanPooler, False),
        ("multilayer", InfoNCELoss, MultiLayerAttentionPooler, False),
        ("focal", FocalInfoNCELoss, LastTokenPooler, False),
        ("mixing", HardNegativeMixingLoss, LastTokenPooler, False),
        ("peg", CachedInfoNCELoss, LastTokenPooler, False),
        ("margin", MarginFilteredInfoNCELoss, LastTokenPooler, False),
        ("full_finetune", InfoNCELoss, LastTokenPooler, False),
    ],
)
def test_every_overlay_fits_and_switches_one_component(tmp_path, overlay, loss_type, pooler_type, bidirectional):
    torch.manual_seed(0)
    cli = _fit(tmp_path, overlay)
    system = cli.model
    encoder = system.towers["shared"]
    assert isinstance(encoder, DecoderTextEncoder) and encoder.bidirectional is bidirectional
    assert isinstance(system.pooler, pooler_type)
    loss = _loss_module(system)
    assert isinstance(loss, loss_type)
    if overlay == "peg":
        assert isinstance(loss.info_nce, ProgressiveInfoNCELoss) and int(loss.info_nce.steps) == 2  # 2 train steps
    trainable = [n for n, p in encoder.named_parameters() if p.requires_grad]
    if overlay == "full_finetune":
        assert encoder.lora is None and any("embed_tokens" in n for n in trainable)
    else:  # LoRA: only the adapters train, and they moved (lora_B starts at zero)
        assert trainable and all("lora_" in n for n in trainable)
        assert any(float(p.abs().sum()) > 0 for n, p in encoder.named_parameters() if "lora_B" in n)
    spearman = float(cli.trainer.callback_metrics["val/spearman"])
    assert math.isfinite(spearman) and -1 <= spearman <= 1
    assert (tmp_path / "model").is_dir()  # ExportModel wrote the embedder


def test_exported_lora_embedder_reloads_with_the_same_embeddings(tmp_path):
    import polymodal

    cli = _fit(tmp_path, "bidirectional_mean")
    texts = ["A man plays a guitar.", "Two dogs run on the beach."]
    want = cli.model.inference_model("sentence1").eval().encode(texts)
    loaded = polymodal.load(str(tmp_path / "model"))
    assert loaded.encoder.bidirectional and loaded.encoder.lora == {
        "r": 4,
        "alpha": 8,
        "target_modules": ["q_proj", "v_proj"],
    }
    torch.testing.assert_close(torch.as_tensor(loaded.encode(texts)), torch.as_tensor(want), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("--model.init_args.encoder.init_args.lora={r: 4, target_modules: [query]}", "lora.target_modules: ['query']"),
        ("--model.init_args.encoder.init_args.output_layer=5", "output_layer 5 out of range for a 2-layer model"),
        ("--model.init_args.encoder.init_args.prompt=no slot here", "must contain '{text}'"),
    ],
)
def test_bad_recipe_inputs_are_one_line(tmp_path, capsys, override, message):
    with pytest.raises((SystemExit, ValueError)) as info:
        _fit(tmp_path, None, override)
    text = capsys.readouterr().err + (str(info.value) if isinstance(info.value, ValueError) else "")
    lines = [line for line in text.splitlines() if message in line]
    assert lines, text[-2000:]
    assert "Traceback" not in text


SMALL_DATA = [  # the shipped configs on the embedded samples and test-llama (the structure, not the scale)
    "--model.init_args.encoder.init_args.model=test-llama",
    "--model.init_args.encoder.init_args.tokenizer=bytes",
    "--data.init_args.sources.train.init_args.paths=package://pixel_linguist/data/snli_dev_sample.tsv.gz",
    "--data.init_args.val=package://sbert/data/stsb_dev_sample.tsv.gz",
    "--trainer.accelerator=cpu",
    "--trainer.max_steps=1",
    "--trainer.val_check_interval=1",
    "--trainer.limit_val_batches=1",
    "--trainer.enable_progress_bar=false",
]


@pytest.mark.parametrize("sweep_file", ["sweep.yaml", "sweep_cpu.yaml"])
def test_sweep_files_cover_every_component_and_their_configs_exist(sweep_file):
    from polymodal.experiments import load_sweep

    sweep = load_sweep(FOLDER / sweep_file)
    used = {Path(c).name for run in sweep.runs for c in run.configs}
    overlays = {p.name for p in (FOLDER / "overlays").glob("*.yaml")} - {"soup.yaml", "soft.yaml"}  # tests fit them
    if sweep_file == "sweep_cpu.yaml":
        overlays |= {"cpu_budget.yaml"}
    assert overlays <= used, overlays - used
    assert all(Path(c).is_file() for run in sweep.runs for c in run.configs)
    assert {"base", "causal_mean", "causal_multilayer", "bidir_last", "bidir_mean", "bidir_multilayer"} <= {
        run.name for run in sweep.runs
    }


def test_shipped_smollm2_config_with_cpu_budget_fits_on_a_tiny_llama(tmp_path):
    configs = ["--config", str(FOLDER / "smollm2.yaml"), "--config", str(FOLDER / "cpu_budget.yaml")]
    cli = main(["fit", *configs, f"--trainer.default_root_dir={tmp_path}", *SMALL_DATA])
    encoder = cli.model.towers["shared"]
    assert encoder.text_processor.max_length == 32 and encoder.lora["r"] == 8  # budget over base
    assert cli.trainer.global_step == 1 and "val/spearman" in cli.trainer.callback_metrics


@pytest.mark.slow
def test_smollm2_cpu_budget_step_on_real_data(shared_data, tmp_path):
    configs = ["--config", str(FOLDER / "smollm2.yaml"), "--config", str(FOLDER / "cpu_budget.yaml")]
    cli = main(["fit", *configs, f"--trainer.default_root_dir={tmp_path}", "--trainer.max_steps=1",
                "--trainer.val_check_interval=1", "--trainer.limit_val_batches=1"])  # fmt: skip
    assert math.isfinite(float(cli.trainer.callback_metrics["val/spearman"]))


def test_soup_overlay_adds_the_model_soup_before_the_export(tmp_path):
    from polymodal.callbacks import ExportModel, ModelSoup

    cli = _fit(tmp_path, "soup")
    kinds = [type(c) for c in cli.trainer.callbacks if isinstance(c, (ModelSoup, ExportModel))]
    assert kinds == [ModelSoup, ExportModel]
    soup = next(c for c in cli.trainer.callbacks if isinstance(c, ModelSoup))
    assert (soup.every_n_steps, soup.start_step) == (50, 150) and soup._count == 0  # averaged and reset
    assert (tmp_path / "model").is_dir()


def test_instruct_overlay_prefixes_only_the_query_column(tmp_path):
    from polymodal.poolers.prompt import PromptedProcessor

    cli = _fit(tmp_path, "instruct")
    anchor, positive = cli.model.processors_for(["anchor", "positive"])
    assert isinstance(anchor, PromptedProcessor) and not isinstance(positive, PromptedProcessor)
    rendered = anchor.template("A cat sleeps.")
    assert rendered.startswith("Given a premise, retrieve a hypothesis that it entails.\n")
    assert "Query: A man is playing a guitar on stage. -> A person is performing music.\n" in rendered
    assert rendered.endswith("\nQuery: A cat sleeps.")
    assert cli.model.processors_for(["sentence1"])[0] is not anchor  # STS validation pairs stay bare


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"instruction": "  "}, "instruction must not be empty"),
        ({"instruction": "x", "examples": [["only one"]]}, r"examples\[0\]: expected \[query, document\]"),
        ({"instruction": "x", "examples": [["a", "b"], ["{text}", "c"]]}, r"examples\[1\]: '\{text\}' is the query"),
    ],
)
def test_bad_instructions_are_one_line(kwargs, message):
    from polymodal.recipes.llm_embedder.presets import instruction_template

    with pytest.raises(ValueError, match=message) as info:
        instruction_template(**kwargs)
    assert "\n" not in str(info.value)


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory):
    """The recipes/distilled tiny cross-encoder teacher, trained and exported once."""
    root = tmp_path_factory.mktemp("teacher")
    main(["fit", "--config", "recipes/distilled/tiny.yaml", f"--trainer.default_root_dir={root}"])
    return root / "model"


def test_teacher_scores_source_adds_one_score_column_per_pair(tiny_teacher):
    import polymodal
    from polymodal.data import NLITriplets
    from polymodal.data.teacher import TeacherScores

    triplets = NLITriplets("package://pixel_linguist/data/snli_dev_sample.tsv.gz", max_rows=12)
    pairs = {"t_positive": ["anchor", "positive"], "t_negative": ["anchor", "negative"]}
    df = TeacherScores(triplets, str(tiny_teacher), pairs).frame()
    assert list(df.columns) == ["anchor", "positive", "negative", "t_positive", "t_negative"] and len(df) == 12
    teacher = polymodal.load(str(tiny_teacher))
    want = teacher.predict(list(zip(df["anchor"], df["negative"])))
    np.testing.assert_allclose(df["t_negative"].to_numpy(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("pairs", "teacher", "error", "message"),
    [
        ({}, None, ValueError, "pairs must name at least one"),
        ({"t": ["anchor"]}, None, ValueError, r"pairs.t: expected \[query column, candidate column\]"),
        ({"anchor": ["anchor", "positive"]}, None, ValueError, "already has a column 'anchor'"),
        ({"t": ["anchor", "nope"]}, None, KeyError, "missing column"),
        ({"t": ["anchor", "positive"]}, "absent-folder", FileNotFoundError, "absent-folder"),
    ],
)
def test_teacher_scores_bad_inputs_are_one_line(tiny_teacher, tmp_path, pairs, teacher, error, message):
    from polymodal.data import NLITriplets
    from polymodal.data.teacher import TeacherScores

    triplets = NLITriplets("package://pixel_linguist/data/snli_dev_sample.tsv.gz", max_rows=4)
    folder = str(tmp_path / teacher) if teacher else str(tiny_teacher)
    with pytest.raises(error, match=message) as info:
        TeacherScores(triplets, folder, pairs).frame()
    assert "\n" not in str(info.value)


def test_soft_overlay_trains_on_teacher_soft_labels(tmp_path, tiny_teacher):
    extra = [
        "--data.init_args.sources.train.init_args.source.init_args.paths=package://pixel_linguist/data/snli_dev_sample.tsv.gz",
        f"--data.init_args.sources.train.init_args.teacher={tiny_teacher}",
    ]
    cli = _fit(tmp_path, "soft", *extra)
    loss = _loss_module(cli.model)
    assert isinstance(loss, ListwiseDistillationLoss) and loss.contrastive_weight == 1.0
    assert cli.trainer.global_step == 2 and math.isfinite(float(cli.trainer.callback_metrics["train/loss"]))
    lora_b = [p for n, p in cli.model.towers["shared"].named_parameters() if "lora_B" in n]
    assert any(float(p.abs().sum()) > 0 for p in lora_b)  # the adapters moved
    spearman = cli.trainer.callback_metrics.get("val/spearman")  # validated on the STS pairs, gold score
    assert spearman is not None and math.isfinite(float(spearman))
    assert (tmp_path / "model").is_dir()


# ------------------------------------------------------------------ ULLME GRL (generation-augmented learning)
TIED = ["--model.init_args.encoder.init_args.model={architecture: test-llama, tie_word_embeddings: true}"]


def test_dpo_and_grl_kl_against_hand_computed_values():
    from polymodal.losses import dpo_loss, listwise_kl_loss

    chosen, rejected = torch.tensor([-10.0, -4.0]), torch.tensor([-12.0, -3.0])
    # -log sigmoid(0.1 * 2) = 0.598139, -log sigmoid(0.1 * -1) = 0.744397
    assert float(dpo_loss(chosen, rejected, beta=0.1)) == pytest.approx((0.598139 + 0.744397) / 2, abs=1e-5)
    q = torch.tensor([[1.0, 0.0]])
    cands = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # cosines 1 and 0
    gen = torch.tensor([[-1.0, -2.0]])  # token-mean log-likelihoods -> p = softmax = [0.731059, 0.268941]
    s = torch.log_softmax(torch.tensor([1.0, 0.0]) / 0.5, dim=0)  # student at temperature 0.5
    p = torch.tensor([0.731059, 0.268941])
    expected = float((p * (p.log() - s)).sum())
    assert float(listwise_kl_loss(q, cands, gen, temperature=0.5)) == pytest.approx(expected, abs=1e-5)


def test_sequence_logprobs_equal_the_causal_lm_and_ignore_the_bidirectional_switch():
    from transformers import LlamaConfig, LlamaForCausalLM

    from polymodal.plugins.text.pretrained import resolve_text_model

    torch.manual_seed(0)
    enc = DecoderTextEncoder({"architecture": "test-llama", "tie_word_embeddings": True}, tokenizer="bytes")
    texts = ["Query:\nA man sings.\n\nA person makes music.\n", "short"]
    total, mean = enc.sequence_logprobs(texts)
    lm = LlamaForCausalLM(LlamaConfig(**resolve_text_model("test-llama"), tie_word_embeddings=True))
    lm.model.load_state_dict(enc.model.state_dict())
    for i, text in enumerate(texts):
        ids = enc.text_processor([text])["input_ids"]
        nll = lm(input_ids=ids, labels=ids).loss  # mean over the T-1 predicted tokens
        assert float(mean[i]) == pytest.approx(-float(nll), abs=1e-5)
        assert float(total[i]) == pytest.approx(-float(nll) * (ids.shape[1] - 1), abs=1e-4)
    enc.configure(bidirectional=True)
    again, _ = enc.sequence_logprobs(texts)
    torch.testing.assert_close(again, total)  # the generation pass is causal
    assert enc.bidirectional and enc.model.config.is_causal is False  # and the switch is restored
    total.sum().backward()  # gradients reach the weights (DPO trains generation)
    assert enc.model.get_input_embeddings().weight.grad is not None


def test_grl_overlay_fits_with_contrastive_and_generation_terms(tmp_path):
    from polymodal.losses import GenerationAugmentedLoss

    torch.manual_seed(0)
    cli = _fit(tmp_path, "grl", *TIED)
    objectives = cli.model.objectives
    assert list(objectives) == ["contrastive", "grl"] and isinstance(objectives["grl"], GenerationAugmentedLoss)
    metrics = cli.trainer.callback_metrics
    assert math.isfinite(float(metrics["train/grl"])) and math.isfinite(float(metrics["val/spearman"]))
    assert objectives["grl"].prompts(["P."], [["H1."], ["H2."]]) == [
        "Given a premise, write a sentence that it entails. Query:\nP.\n\nH1.\n",
        "Given a premise, write a sentence that it entails. Query:\nP.\n\nH2.\n",
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "the LM head is not tied to the input embeddings"),  # test-llama unties by default
        ([*TIED, "--data.init_args.meta=[anchor]"], "needs the raw text of ['positive', 'negative']: add them to"),
    ],
)
def test_grl_bad_setups_are_one_line(tmp_path, capsys, extra, message):
    with pytest.raises((SystemExit, ValueError)) as info:
        _fit(tmp_path, "grl", *extra)
    text = capsys.readouterr().err + (str(info.value) if isinstance(info.value, ValueError) else "")
    assert [line for line in text.splitlines() if message in line], text[-2000:]
    assert "Traceback" not in text


def test_sequence_logprobs_truncate_at_their_own_length_without_touching_the_embedder():
    tied = {"architecture": "test-llama", "tie_word_embeddings": True}
    enc = DecoderTextEncoder(tied, tokenizer="bytes", max_length=8)
    text = "a much longer generation sequence than eight tokens"
    short, _ = enc.sequence_logprobs([text])
    long, _ = enc.sequence_logprobs([text], max_length=64)
    assert float(short) > float(long)  # more tokens scored: a lower total log-likelihood
    assert enc.processor([text])["input_ids"].shape[1] == 8  # the embedder still truncates at its own limit


def test_evaluate_scores_every_export_and_tests_rows_against_the_base(tmp_path, monkeypatch):
    from polymodal.bench.tasks import sample_data_root
    from polymodal.recipes.llm_embedder import evaluate as ev

    root = tmp_path / "sweep"
    for run, overlay in [("base", None), ("bidir_last", "bidirectional"), ("bidirectional_mean", "bidirectional_mean")]:
        torch.manual_seed(0)
        _fit(root / run / "seed0", overlay)
    record = {"run": "base", "seed": 0, "seconds": 12.5, "metrics": {"val/spearman": 0.1}}
    (root / "results.json").write_text(json.dumps([record]))
    result = ev.evaluate(root, data_root=sample_data_root(), bench_out=None, samples=50, say=lambda _: None)
    rows = {r["run"]: r for r in result["rows"]}
    assert set(rows) == {"base", "bidir_last", "bidirectional_mean"}
    assert rows["base"]["val/spearman"] == 0.1 and rows["base"]["train_seconds"] == 12.5
    assert rows["bidir_last"]["val/spearman"] is None  # not in the sweep's results.json
    for row in rows.values():
        assert -1 <= row["stsb/spearman"] <= 1 and 0 <= row["snli-premise-retrieval/ndcg@10"] <= 1
    cos = np.load(root / "evaluation" / "base_seed0.npy")
    tests = {(t["b"], t["a"]): t for t in result["tests"]}
    # every row against the base, grid pairs labelled as such; the unscored bidir_mean cell is bidirectional_mean
    assert set(tests) == {("bidir_last", "base"), ("bidirectional_mean", "base"), ("bidirectional_mean", "bidir_last")}
    assert tests[("bidir_last", "base")]["what"] == "bidirectional vs causal, last token"
    assert tests[("bidirectional_mean", "bidir_last")]["what"] == "mean vs last token, bidirectional"
    test = tests[("bidir_last", "base")]
    assert test["low"] <= test["delta"] <= test["high"] and 0 <= test["p"] <= 1
    from polymodal.metrics.functional import spearman

    gold = np.asarray(ev._sts_data(sample_data_root())[0]["score"])
    assert len(cos) == len(gold) and abs(spearman(gold, cos) - rows["base"]["stsb/spearman"]) < 1e-6
    # a second call reads the scored runs back instead of loading the models again
    monkeypatch.setattr(ev, "_score_one", lambda *a, **k: pytest.fail("re-scored a cached run"))
    again = ev.evaluate(root, data_root=sample_data_root(), bench_out=None, samples=50, say=lambda _: None)
    assert again["rows"] == result["rows"]
    # other STS-B data under the same name: the cached cosines are not reused
    import gzip
    import shutil

    other = tmp_path / "data"
    shutil.copytree(sample_data_root(), other)
    sts_file = other / "stsb" / "sts-dev.csv.gz"
    sts_file.write_bytes(gzip.compress(gzip.decompress(sts_file.read_bytes()).replace(b"5.000", b"4.000", 1)))

    class Rescored(Exception):
        pass

    monkeypatch.setattr(ev, "_score_one", lambda *a, **k: (_ for _ in ()).throw(Rescored()))
    with pytest.raises(Rescored):
        ev.evaluate(root, data_root=other, bench_out=None, samples=50, say=lambda _: None)
    table = (root / "evaluation" / "evaluation.md").read_text()
    assert "| bidir_last | base | bidirectional vs causal, last token | 0 |" in table


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "not a sweep folder"),
        (lambda p: p.mkdir(), "no exported model under <run>/seed<k>/model"),
    ],
)
def test_evaluate_bad_roots_are_one_line(tmp_path, make, message):
    from polymodal.recipes.llm_embedder import evaluate as ev

    make(tmp_path / "sweep")
    with pytest.raises(SystemExit, match=message):
        ev.main([str(tmp_path / "sweep")])
