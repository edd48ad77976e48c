"""Topic segmentation recipe: Choi reading and split, pairs, TextTiling, the siamese model, tiny run."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from polymodal.recipes.topic_segmentation.data import (
    heldout_text_documents,
    load_choi,
    overlap_report,
    remove_texts,
    split_documents,
    text_split,
)
from polymodal.recipes.topic_segmentation.datamodule import ChoiPairDataModule
from polymodal.recipes.topic_segmentation.model import SiameseSegmenter, boundary_scores, gap_sides
from polymodal.recipes.topic_segmentation.segment import (
    depth_scores,
    hearst_boundaries,
    threshold_boundaries,
    top_k_boundaries,
    tune_threshold,
    window_similarities,
)
from polymodal.systems.prediction import Task
from polymodal.vector import FeatureMLP

SAMPLE = "package://topic_segmentation/data/choi_sample.jsonl.gz"
REPO = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, records: list) -> Path:
    path = tmp_path / "docs.jsonl.gz"
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode()))
    return path


def test_load_choi_boundaries_sources_and_empty_segments(tmp_path):
    path = _write(tmp_path, [{"path": "a", "group": "4", "segments": [["A1", "A2"], [], ["B1"], ["C1", "C2", "C3"]]}])
    (doc,) = load_choi(path)
    assert doc.sentences == ["A1", "A2", "B1", "C1", "C2", "C3"]
    assert doc.boundaries.tolist() == [0, 1, 1, 0, 0]  # the empty segment is dropped, not a boundary
    assert doc.sources == ["A1", "A1", "B1", "C1", "C1", "C1"]


def test_load_choi_errors_name_file_and_line(tmp_path):
    path = _write(tmp_path, [{"path": "a", "segments": [["x"], ["y"]]}, {"path": "b", "segments": "oops"}])
    with pytest.raises(ValueError, match="line 2, field 'segments'"):
        load_choi(path)
    path = _write(tmp_path, [{"path": "a", "segments": [["x"], []]}])
    with pytest.raises(ValueError, match="line 1: a: needs at least two non-empty segments"):
        load_choi(path)


def test_fixed_split_is_order_independent():
    docs = load_choi(SAMPLE)
    split = split_documents(docs)
    assert {k: len(v) for k, v in split.items()} == {"train": 8, "val": 2, "test": 3}
    again = split_documents(list(reversed(docs)))
    assert {k: sorted(d.name for d in v) for k, v in split.items()} == {
        k: sorted(d.name for d in v) for k, v in again.items()
    }
    report = overlap_report(split["train"], split["test"])
    assert 0 <= report["test_sentences_seen_in_train"] <= 1


def test_text_disjoint_documents_never_use_training_texts():
    docs = load_choi(SAMPLE)
    train_texts, held = text_split(docs, 0.3)
    assert held and not train_texts & held
    cut = remove_texts(docs, held)
    assert all(s not in held for d in cut for s in d.sources)
    generated = heldout_text_documents(docs, held, n_docs=5, segments=4, sizes=(1, 3), seed=0)
    for d in generated:
        assert set(d.sources) <= held
        assert d.boundaries.sum() == 3 and len(d.sentences) == len(d.boundaries) + 1


def test_texttiling_depth_scores_by_hand():
    # similarities 0.9, 0.2, 0.8: the middle gap sits in a valley 0.7 + 0.6 deep; the edges are peaks.
    assert depth_scores(np.array([0.9, 0.2, 0.8])).tolist() == pytest.approx([0.0, 1.3, 0.0])
    # two topics of 3 orthogonal sentences: window-1 similarity is 0 only at the true boundary.
    emb = np.array([[1, 0], [1, 0], [1, 0], [0, 1], [0, 1], [0, 1]], dtype=float)
    sims = window_similarities(emb, 1)
    assert sims.tolist() == pytest.approx([1, 1, 0, 1, 1])
    assert hearst_boundaries(depth_scores(sims)).tolist() == [0, 0, 1, 0, 0]
    assert window_similarities(emb, 2)[2] == pytest.approx(0.0)


def test_thresholds_topk_and_tuning():
    s = np.array([0.1, 0.9, 0.8, 0.2, 0.7])
    assert threshold_boundaries(s, 0.5).tolist() == [0, 1, 1, 0, 1]
    assert threshold_boundaries(s, 0.5, peaks=True).tolist() == [0, 1, 0, 0, 1]
    assert top_k_boundaries(s, 2).tolist() == [0, 1, 1, 0, 0]
    refs = [np.array([0, 1, 0, 0, 1])]
    thr = tune_threshold([s], refs, peaks=True)
    assert threshold_boundaries(s, thr, peaks=True).tolist() == [0, 1, 0, 0, 1]


def test_pairs_targets_and_nsp_negatives(tmp_path):
    dm = ChoiPairDataModule(SAMPLE, "tiny-random", ["stp", "nsp", "tc"], cache_dir=str(tmp_path))
    dm.prepare()
    ds = dm.datasets["train"]
    target = np.array(ds.target)
    positives = target[:, 1] == 1
    gaps = sum(len(d.sentences) - 1 for d in dm.docs["train"])
    assert positives.sum() == gaps
    assert (target[positives, 0] == 0).sum() == sum(int(d.boundaries.sum()) for d in dm.docs["train"])
    assert np.isnan(target[~positives, 0]).all() and (~positives).sum() > 0.9 * gaps  # STP undefined
    assert np.nanmax(target[:, 2]) < dm.num_topics
    only_stp = ChoiPairDataModule(SAMPLE, "tiny-random", ["stp"], cache_dir=str(tmp_path))
    only_stp.prepare()
    assert len(only_stp.datasets["train"]) == gaps  # no NSP negatives
    with pytest.raises(ValueError, match="unknown head"):
        ChoiPairDataModule(SAMPLE, heads=["xyz"])


def test_gap_sides_window_means_by_hand():
    x = np.arange(10, dtype=np.float32).reshape(5, 2)  # sentence i = (2i, 2i + 1)
    left, right = gap_sides(x, 1)
    assert np.array_equal(left, x[:-1]) and np.array_equal(right, x[1:])
    left, right = gap_sides(x, 2)
    # gap 0: left = s0, right = mean(s1, s2); gap 3: left = mean(s2, s3), right = s4
    assert left[0].tolist() == [0, 1] and right[0].tolist() == [3, 4]
    assert left[3].tolist() == [5, 6] and right[3].tolist() == [8, 9]
    with pytest.raises(ValueError, match="context"):
        gap_sides(x, 0)


def test_context_pairs_use_window_means(tmp_path):
    dm = ChoiPairDataModule(SAMPLE, "tiny-random", ["stp", "nsp"], cache_dir=str(tmp_path), context=3)
    dm.prepare()
    doc, ds = dm.docs["train"][0], dm.datasets["train"]
    left, right = gap_sides(dm.document_features(doc), 3)
    np.testing.assert_allclose(dm.pair_matrix[ds.columns[0][0]], left[0], rtol=1e-6)
    np.testing.assert_allclose(dm.pair_matrix[ds.columns[1][0]], right[0], rtol=1e-6)
    assert len(dm.pair_matrix) > len(dm.matrix)


def test_siamese_segmenter_heads_and_symmetry_of_tower():
    torch.manual_seed(0)
    model = SiameseSegmenter(
        encoder=FeatureMLP(8, 16),
        tasks=[Task("stp", "binary"), Task("nsp", "binary"), Task("tc", "multiclass", num_classes=5)],
    )
    assert [t.target_index for t in model.tasks] == [0, 1, 2]
    x, y = torch.randn(4, 8), torch.randn(4, 8)
    out = model([{"x": x}, {"x": y}])
    assert out["stp"].shape == (4,) and out["nsp"].shape == (4,) and out["tc"].shape == (4, 5)
    model.eval()
    # the same tower encodes both sides: swapping inputs swaps u and v, STP's |u-v| and u*v are unchanged
    a = model.pair_features([{"x": x}, {"x": y}])
    b = model.pair_features([{"x": y}, {"x": x}])
    assert torch.allclose(a[0], b[1]) and torch.allclose(a[1], b[0])
    scores = boundary_scores(model, np.random.default_rng(0).normal(size=(6, 8)), "mean")
    assert scores.shape == (5,) and ((scores >= 0) & (scores <= 1)).all()
    with pytest.raises(ValueError, match="heads are|has no 'nsp'"):
        boundary_scores(SiameseSegmenter(encoder=FeatureMLP(8, 16)), np.zeros((3, 8)), "nsp")
    with pytest.raises(ValueError, match="must be binary"):
        SiameseSegmenter(encoder=FeatureMLP(8, 16), tasks=[Task("stp", "regression")])


def test_stp_head_learns_boundaries():
    """Two-topic synthetic features: STP must separate same-topic from cross-topic pairs."""
    torch.manual_seed(0)
    centers = torch.randn(2, 8) * 3
    topic_u = torch.randint(0, 2, (512,))
    same = torch.rand(512) < 0.5
    topic_v = torch.where(same, topic_u, 1 - topic_u)
    u = centers[topic_u] + torch.randn(512, 8)
    v = centers[topic_v] + torch.randn(512, 8)
    model = SiameseSegmenter(encoder=FeatureMLP(8, 16, dropout=0.0), tasks=[Task("stp", "binary")])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    target = same.float()[:, None]
    for _ in range(150):
        opt.zero_grad()
        loss, _ = model.loss(model([{"x": u}, {"x": v}]), target)
        loss.backward()
        opt.step()
    pred = torch.sigmoid(model([{"x": u}, {"x": v}])["stp"]) > 0.5
    assert (pred == same).float().mean() > 0.95


def test_tiny_config_runs_end_to_end(tmp_path):
    from polymodal.cli import main

    main(
        [
            "fit",
            "--config",
            str(REPO / "recipes/topic_segmentation/tiny.yaml"),
            f"--trainer.default_root_dir={tmp_path}",
            f"--data.init_args.cache_dir={tmp_path / 'cache'}",
        ]
    )
    metrics = json.loads((tmp_path / "segmentation_metrics.json").read_text())
    assert metrics["test_documents"] == 3
    for key in ("pk", "windowdiff", "pk_known_k", "windowdiff_known_k"):
        assert 0 <= metrics[key] <= 100


def test_tiny_config_rejects_too_few_topic_classes(tmp_path):
    from polymodal.cli import main

    with pytest.raises(ValueError, match="topics but the model's tc task has num_classes=2"):
        main(
            [
                "fit",
                "--config",
                str(REPO / "recipes/topic_segmentation/tiny.yaml"),
                f"--trainer.default_root_dir={tmp_path}",
                f"--data.init_args.cache_dir={tmp_path / 'cache'}",
                '--model.init_args.tasks=[{"name": "stp", "kind": "binary"}, {"name": "tc", "kind": "multiclass", '
                '"num_classes": 2}]',
                "--data.init_args.heads=[stp, tc]",
            ]
        )


@pytest.mark.slow
def test_real_choi_split_and_texttiling(shared_data):
    """The fixed split on the real data and a TextTiling baseline clearly better than chance."""
    from polymodal.recipes.topic_segmentation.run import texttiling_rows

    path = shared_data / "topicseg_choi" / "choi.jsonl.gz"
    if not path.is_file():
        pytest.skip("no topicseg_choi in shared data")
    dm = ChoiPairDataModule(str(path), "minilm-mean", ["stp"], cache_dir="/tmp/polymodal_cache/topicseg")
    dm.prepare()
    assert {k: len(v) for k, v in dm.docs.items()} == {"train": 630, "val": 108, "test": 182}
    rows = texttiling_rows(dm, windows=(2, 3))
    assert rows[0]["pk"] < 35  # chance ("no boundaries") is about 45 on Choi
