"""binary_pv recipe: the tiny configs end to end, the sense report on a tiny model, the peer evaluation helper,
the Choi segment source, and (slow) the shipped real-data configs against the shared data."""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import pytest

from polymodal.cli import main
from polymodal.plugins.text.static import BinaryParagraphVector, SenseSkipGram, pack_codes
from polymodal.recipes.binary_pv import ChoiSegments
from polymodal.recipes.binary_pv.compare import evaluate_codes
from polymodal.recipes.binary_pv.senses import pseudo_word_choices, sense_choices


def _fit(config, tmp_path, *extra):
    cli = main(["fit", "--config", config, f"--trainer.default_root_dir={tmp_path}", *extra])
    assert cli.trainer.state.finished and cli.trainer.global_step > 0
    return cli


def test_tiny_binary_pv_logs_hamming_retrieval_and_exports_binary_codes(tmp_path):
    cli = _fit("recipes/binary_pv/tiny.yaml", tmp_path)
    metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
    assert {"val/p@1", "val/p@2", "val/map"} <= set(metrics)
    assert all(0.0 <= metrics[k] <= 1.0 for k in ("val/p@1", "val/p@2", "val/map"))
    import polymodal

    model = polymodal.load(tmp_path / "model")
    assert isinstance(model.encoder, BinaryParagraphVector) and model.encoder.code_bits == 16
    codes = model.encode(["First Citizen: Before we proceed any further, hear me speak.", "a brand new text of speak"])
    assert codes.shape == (2, 16) and set(np.unique(codes).tolist()) <= {0.0, 1.0}
    assert pack_codes(codes).shape == (2, 2)


def test_tiny_senses_fits_and_the_sense_report_runs_on_it(tmp_path):
    cli = _fit("recipes/binary_pv/tiny_senses.yaml", tmp_path)
    assert math.isfinite(float(cli.trainer.callback_metrics["train/loss"]))
    import polymodal

    model = polymodal.load(tmp_path / "model").encoder
    assert isinstance(model, SenseSkipGram) and model.num_senses == 3
    texts = ["First Citizen: you are all resolved rather to die than to famish", "the people speak of the citizen"]
    choices = sense_choices(model, texts, ["citizen"], "citizen")
    assert [w for w, _ in choices] == ["citizen", "citizen"] and all(0 <= k < 3 for _, k in choices)
    with pytest.raises(KeyError, match="not in the vocabulary"):
        pseudo_word_choices(model, texts, ("citizen", "people"))  # no merged token in this training text


def test_evaluate_codes_hamming_equals_cosine_ranking_of_the_same_sign_pattern():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 32))
    vectors = np.repeat(centres, 5, axis=0) + 0.3 * rng.standard_normal((20, 32))
    groups = np.repeat(np.arange(4), 5)
    binary = evaluate_codes(pack_codes(vectors), groups, binary=True)
    real = evaluate_codes(vectors, groups, binary=False)
    assert binary["queries"] == real["queries"] == 20
    assert real["p@1"] == pytest.approx(1.0) and real["map"] == pytest.approx(1.0)  # well separated clusters
    assert binary["map"] > 0.9 and binary["search_ms_per_query"] > 0


def _choi(tmp_path, docs):
    path = tmp_path / "choi.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for group, segments in docs:
            fh.write(json.dumps({"path": f"{group}/x.ref", "group": group, "segments": segments}) + "\n")
    return str(path)


def test_choi_segments_group_by_first_sentence_and_split_seen_unseen_texts(tmp_path):
    path = _choi(
        tmp_path,
        [
            ("1", [["A one .", "a two ."], ["B one ."], []]),  # an empty segment of the original data is left out
            ("3", [["A one .", "a three ."]]),
            ("4", [["A one ."], ["C one .", "c two ."]]),
        ],
    )
    frame = ChoiSegments(path, groups=["1"]).frame()
    assert frame["text"].tolist() == ["A one . a two .", "B one ."] and frame["segment"].tolist() == [0, 1]
    seen = ChoiSegments(path, groups=["4"], texts="seen").frame()
    unseen = ChoiSegments(path, groups=["4"], texts="unseen").frame()
    assert seen["text"].tolist() == ["A one ."] and unseen["text"].tolist() == ["C one . c two ."]
    assert seen["source"].iloc[0] == frame["source"].iloc[0]  # same source text -> same id


@pytest.mark.parametrize(
    ("content", "message"),
    [("not json\n", r"line 1: not JSON"), ('{"group": "1"}\n', r"line 1, field 'segments': expected a list of lists")],
)
def test_choi_segments_bad_file_is_one_line(tmp_path, content, message):
    path = tmp_path / "bad.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(content)
    with pytest.raises(ValueError, match=message) as err:
        ChoiSegments(str(path)).frame()
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_choi_config_on_shared_data_runs_a_few_steps(shared_data, tmp_path):
    cli = _fit(
        "recipes/binary_pv/choi.yaml",
        tmp_path,
        "--trainer.max_epochs=1",
        "--trainer.check_val_every_n_epoch=1",
        "--trainer.limit_train_batches=3",
        "--trainer.limit_val_batches=1",
        "--model.init_args.towers.pv.init_args.infer_steps=2",
    )
    assert 0.0 <= float(cli.trainer.callback_metrics["val/map"]) <= 1.0


@pytest.mark.slow
def test_senses_config_on_shared_data_runs_a_few_steps(shared_data, tmp_path):
    cli = _fit("recipes/binary_pv/senses.yaml", tmp_path, "--trainer.max_epochs=1", "--trainer.limit_train_batches=3")
    assert math.isfinite(float(cli.trainer.callback_metrics["train/loss"]))


def test_compare_script_end_to_end_on_a_synthetic_choi_file(tmp_path):
    import polymodal
    from polymodal.recipes.binary_pv.compare import main as compare

    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(60)]

    def text(t):  # source text t: 6 sentences over its own 12-word slice of the vocabulary
        words = vocab[(t % 5) * 12 : (t % 5) * 12 + 12]
        return [f"first of {t} ."] + [" ".join(rng.choice(words, 6)) + " ." for _ in range(5)]

    texts = {t: text(t) for t in range(10)}
    seen, unseen = range(5), range(5, 10)
    plan = [("1", seen), ("2", seen), ("3", seen), ("3", seen), ("4", unseen), ("4", unseen)]
    docs = [(g, [texts[t][: 2 + (t + d) % 4] for t in ts]) for d, (g, ts) in enumerate(plan)]  # prefixes differ per doc
    path = _choi(tmp_path, docs)
    encoder = BinaryParagraphVector(ChoiSegments(path, groups=["1", "2"]), code_bits=8, min_count=1, infer_steps=3)
    polymodal.EmbeddingModel(encoder, polymodal.poolers.MeanPooler()).save(tmp_path / "pv")
    out = tmp_path / "cmp"
    result = compare(["--model", str(tmp_path / "pv"), "--choi", path, "--skip-minilm", "--doc2vec-epochs", "2",
                      "--out", str(out)])  # fmt: skip
    methods = {(r["collection"], r["method"]) for r in result["rows"]}
    assert len(methods) == 6 and result["train_segments"] == 10
    assert all(r["queries"] == 10 and 0.0 <= r["map"] <= 1.0 and r["search_ms_per_query"] > 0 for r in result["rows"])
    assert (out / "results.md").read_text().count("\n") == 2 + 6
