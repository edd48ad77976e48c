"""Topic segmentation recipe: Choi reading and protocols, the pair source, TextTiling, the preset, tiny run."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from polymodal.cli import main
from polymodal.experiments import load_sweep
from polymodal.recipes.topic_segmentation import ChoiPairs, SiameseSegmenter, load_choi, split_documents
from polymodal.recipes.topic_segmentation.data import overlap_report, protocol_split
from polymodal.recipes.topic_segmentation.texttiling import depth_scores, hearst_boundaries, window_similarities
from polymodal.vector import FeatureMLP

SAMPLE = "package://topic_segmentation/data/choi_sample.jsonl.gz"
TINY = "recipes/topic_segmentation/tiny.yaml"


def _write(tmp_path: Path, records: list) -> str:
    path = tmp_path / "docs.jsonl.gz"
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode()))
    return str(path)


def test_load_choi_boundaries_sources_and_empty_segments(tmp_path):
    (doc,) = load_choi(_write(tmp_path, [{"path": "a", "segments": [["A1", "A2"], [], ["B1"], ["C1", "C2", "C3"]]}]))
    assert doc.sentences == ["A1", "A2", "B1", "C1", "C2", "C3"]
    assert doc.boundaries.tolist() == [0, 1, 1, 0, 0]  # the empty segment is dropped, not a boundary
    assert doc.sources == ["A1", "A1", "B1", "C1", "C1", "C1"] and doc.segments()[1] == ["B1"]


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([{"path": "a", "segments": [["x"], ["y"]]}, {"path": "b", "segments": "oops"}], "line 2, field 'segments'"),
        ([{"path": "a", "segments": [["x"], []]}], "line 1: a: needs at least two non-empty segments"),
    ],
)
def test_load_choi_errors_name_file_and_line(tmp_path, records, message):
    with pytest.raises(ValueError, match=message):
        load_choi(_write(tmp_path, records))


def test_fixed_split_is_order_independent_and_text_disjoint_protocol_holds_texts_out():
    docs = load_choi(SAMPLE)
    split = split_documents(docs)
    assert {k: len(v) for k, v in split.items()} == {"train": 8, "val": 2, "test": 3}
    again = split_documents(list(reversed(docs)))
    assert all(sorted(d.name for d in split[k]) == sorted(d.name for d in again[k]) for k in split)
    disjoint = protocol_split(docs, "text-disjoint", heldout=5)
    seen = {s for d in disjoint["train"] for s in d.sources}
    assert overlap_report(disjoint["train"], disjoint["test"])["test_texts_seen"] == 0.0
    assert all(d.boundaries.sum() == 9 and not set(d.sources) & seen for d in disjoint["test"])


def test_pairs_targets_negatives_and_context():
    train = ChoiPairs(SAMPLE, "train").frame()
    docs = split_documents(load_choi(SAMPLE))["train"]
    pos = train[train.nsp == 1]
    assert len(pos) == sum(len(d.boundaries) for d in docs) and (pos.stp == 1 - pos.boundary).all()
    neg = train[train.nsp == 0]
    assert len(neg) > 0.9 * len(pos) and neg.stp.isna().all()  # STP undefined for NSP negatives
    assert train.tc.max() < len({s for d in docs for s in d.sources})
    assert len(ChoiPairs(SAMPLE, "train", negatives=False).frame()) == len(pos)
    val = ChoiPairs(SAMPLE, "val").frame()  # never negatives outside train; unseen topics are NaN
    assert (val.nsp == 1).all() and val.groupby("doc").gap.apply(lambda g: list(g) == list(range(len(g)))).all()
    wide = ChoiPairs(SAMPLE, "val", context=3).frame()
    d = split_documents(load_choi(SAMPLE))["val"][0]
    assert wide.left[0] == (d.sentences[0],) and wide.right[0] == tuple(d.sentences[1:4])
    with pytest.raises(ValueError, match="bad part"):
        ChoiPairs(SAMPLE, "dev")


def test_texttiling_depth_scores_by_hand():
    # similarities 0.9, 0.2, 0.8: the middle gap sits in a valley 0.7 + 0.6 deep; the edges are peaks.
    assert depth_scores(np.array([0.9, 0.2, 0.8])).tolist() == pytest.approx([0.0, 1.3, 0.0])
    emb = np.array([[1, 0], [1, 0], [1, 0], [0, 1], [0, 1], [0, 1]], dtype=float)  # two topics of 3 sentences
    sims = window_similarities(emb, 1)
    assert sims.tolist() == pytest.approx([1, 1, 0, 1, 1]) and window_similarities(emb, 2)[2] == pytest.approx(0.0)
    assert hearst_boundaries(depth_scores(sims)).tolist() == [0, 0, 1, 0, 0]


def test_preset_heads_siamese_tower_and_bad_heads():
    system = SiameseSegmenter(FeatureMLP(8, 16), heads=["tc", "stp"], num_topics=5)
    assert list(system.heads) == ["stp", "tc"] and set(system.metrics) == {"segmentation", "segmentation_mean"}
    assert system.metrics["segmentation"].heads == ["stp"]  # scored by STP first
    u, v = torch.randn(4, 16), torch.randn(4, 16)
    stp = system.heads["stp"]
    system.eval()
    assert torch.allclose(stp([u, v]), stp([u, v])) and system.heads["tc"]([u]).shape == (4, 5)
    with pytest.raises(ValueError, match="non-empty subset"):
        SiameseSegmenter(FeatureMLP(8, 16), heads=["xyz"])


def test_tiny_config_fits_and_tests_with_the_val_threshold(tmp_path):
    cli = main(["fit", "--config", TINY, f"--trainer.default_root_dir={tmp_path}"])
    val = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
    (test,) = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
    assert test["test/documents"] == 3 and test["test/threshold"] == pytest.approx(val["val/threshold"])
    for key in ("pk", "windowdiff", "pk_known_k", "windowdiff_known_k", "mean/pk"):
        assert 0 <= test[f"test/{key}"] <= 100


def test_tiny_config_rejects_too_few_topic_classes(tmp_path):
    with pytest.raises(ValueError, match="not an integer class index in \\[0, 2\\)"):
        main(["fit", "--config", TINY, f"--trainer.default_root_dir={tmp_path}", "--model.init_args.num_topics=2"])


def test_real_data_config_parses(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", "recipes/topic_segmentation/choi.yaml", "--print_config"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and out.count("class_path: polymodal.recipes.topic_segmentation.ChoiPairs") == 3


def test_sweep_file_covers_every_head_subset_on_both_protocols():
    runs = {r.name: r for r in load_sweep("recipes/topic_segmentation/sweep.yaml").runs}
    assert len(runs) == 14 and all(r.test for r in runs.values())
    assert any("negatives=false" in a for a in runs["doc_stp_tc"].args)
    assert not any("negatives" in a for a in runs["td_stp_nsp_tc"].args)


FINETUNED = "recipes/topic_segmentation/choi_finetuned.yaml"


def test_finetuned_config_trains_the_sentence_encoder_through_the_heads(tmp_path):
    """choi_finetuned.yaml (on the shipped sample, the registered tiny BERT in place of MiniLM): raw sentences
    go through the trainable encoder, whose weights change; heads and encoder get their own learning rates;
    val / test report Pk / WindowDiff like the frozen variant."""
    sources = [f"--data.init_args.sources.{p}.init_args.path={SAMPLE}" for p in ("train", "val", "test")]
    tower = ["--model.init_args.tower.init_args.model=test-bert", "--model.init_args.tower.init_args.tokenizer=bytes"]
    from polymodal.system import System

    seen = {}
    original = System.on_train_batch_start

    def spy(module, batch, batch_idx):
        seen.setdefault("before", {k: v.detach().clone() for k, v in module.towers.state_dict().items()})
        seen["inputs"] = sorted(batch.inputs["left"])

    System.on_train_batch_start = spy
    try:
        cli = main(
            [
                "fit",
                "--config",
                FINETUNED,
                *sources,
                *tower,
                "--trainer.limit_train_batches=3",
                "--data.init_args.batch_size=16",
                f"--trainer.default_root_dir={tmp_path}",
            ]
        )
    finally:
        System.on_train_batch_start = original
    system = cli.model
    assert "input_ids" in seen["inputs"]  # token ids of the raw sentences, not cached feature vectors
    assert type(system.towers["shared"]).__name__ == "TextEncoder" and not system.frozen
    after = system.towers.state_dict()
    assert any(not torch.equal(seen["before"][k], after[k]) for k in after)  # the encoder trained
    rates = sorted(g["initial_lr"] for g in cli.trainer.optimizers[0].param_groups)
    assert rates == [pytest.approx(2e-5), pytest.approx(1e-3)]
    (test,) = cli.trainer.test(system, datamodule=cli.datamodule, verbose=False)
    assert test["test/documents"] == 3 and 0 <= test["test/pk"] <= 100 and 0 <= test["test/mean/windowdiff"] <= 100


def test_finetuned_sweep_compares_frozen_and_finetuned_on_the_same_documents():
    runs = {r.name: r for r in load_sweep("recipes/topic_segmentation/sweep_finetuned.yaml").runs}
    assert set(runs) == {"td_frozen_full", "td_frozen_budget", "td_finetuned"}
    for r in runs.values():
        assert r.test and sum("protocol=text-disjoint" in a for a in r.args) == 3
        assert sum("heldout_docs=40" in a for a in r.args) == 2
    budget = [a for a in runs["td_frozen_budget"].args if "limit_train_batches" in a or "batch_size" in a]
    assert budget == ["--trainer.limit_train_batches=60", "--data.init_args.batch_size=32"]
    assert "--trainer.limit_train_batches=60" in runs["td_finetuned"].args


@pytest.mark.slow
def test_real_choi_split_and_texttiling(shared_data, tmp_path):
    """The fixed split on the real data and a TextTiling baseline clearly better than chance (Pk ~45)."""
    from polymodal.recipes.topic_segmentation.texttiling import main as texttiling

    path = shared_data / "topicseg_choi" / "choi.jsonl.gz"
    if not path.is_file():
        pytest.skip("no topicseg_choi in shared data")
    assert {k: len(v) for k, v in split_documents(load_choi(str(path))).items()} == {
        "train": 630,
        "val": 108,
        "test": 182,
    }
    out = texttiling(
        ["--data", str(path), "--protocols", "document", "--windows", "3", "4", "--out", str(tmp_path / "t.json")]
    )
    assert out["document"]["tuned"]["pk"] < 35
