"""The Segmentation step metric, segmentation decoding helpers, HeadMean and the KeepBest callback."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polymodal.contracts import Batch
from polymodal.evaluation.segmentation import (
    score_segmentations,
    segmentation_scores,
    threshold_boundaries,
    top_k_boundaries,
    tune_threshold,
)
from polymodal.heads import LinearHead, PairHead
from polymodal.metrics.functional import pearson
from polymodal.metrics.segmentation import Segmentation
from polymodal.metrics.step import HeadMean
from polymodal.objectives import HeadLoss
from polymodal.system import Step, System
from polymodal.vector import FeatureMLP


def test_thresholds_topk_tuning_and_scores():
    s = np.array([0.1, 0.9, 0.8, 0.2, 0.7])
    assert threshold_boundaries(s, 0.5).tolist() == [0, 1, 1, 0, 1]
    assert threshold_boundaries(s, 0.5, peaks=True).tolist() == [0, 1, 0, 0, 1]
    assert top_k_boundaries(s, 2).tolist() == [0, 1, 1, 0, 0]
    ref = [np.array([0, 1, 0, 0, 1])]
    thr = tune_threshold([s], ref, peaks=True)
    assert threshold_boundaries(s, thr, peaks=True).tolist() == [0, 1, 0, 0, 1]
    out = score_segmentations([s], ref, thr, peaks=True)
    assert out["pk"] == 0.0 and out["pk_known_k"] == pytest.approx(
        100 * segmentation_scores(ref, [[0, 1, 1, 0, 0]])["pk"]
    )
    assert set(score_segmentations([s], ref, None)) == {"pk_known_k", "windowdiff_known_k"}


def _system(heads: dict, objectives: dict, metrics: dict) -> System:
    return System(
        tower=FeatureMLP(4, 8, dropout=0.0),
        use_encoder_pooled=True,
        heads=heads,
        objectives=objectives,
        metrics=metrics,
    )


def _gap_batch(docs: list[np.ndarray], rng: np.random.Generator) -> Batch:
    """One row per gap; features: a topic direction per segment, so a same-topic pair has equal inputs."""
    left, right, meta = [], [], {"doc": [], "gap": [], "boundary": []}
    for k, ref in enumerate(docs):
        topic = np.r_[0, np.cumsum(ref)]  # segment index of every sentence
        x = np.eye(4, dtype=np.float32)[topic % 4]
        for j, b in enumerate(ref):
            left.append(x[j]), right.append(x[j + 1])
            meta["doc"].append(k), meta["gap"].append(j), meta["boundary"].append(int(b))
    order = rng.permutation(len(left))  # rows arrive in any order: the metric reassembles documents
    inputs = {c: {"x": torch.as_tensor(np.stack(v)[order])} for c, v in (("left", left), ("right", right))}
    return Batch(inputs=inputs, meta={m: [v[i] for i in order] for m, v in meta.items()})


def test_segmentation_metric_reassembles_documents_and_keeps_the_val_threshold():
    torch.manual_seed(0)
    heads = {"stp": PairHead(["left", "right"], 1), "tc": LinearHead(["left"], 4)}
    system = _system(
        heads,
        {"stp": HeadLoss("stp", "binary", target="stp")},
        {"seg": Segmentation(["stp"]), "both": Segmentation(["stp", "tc"], prefix="mean/")},
    )
    system.eval()
    docs = [np.array([0, 0, 1, 0, 0, 1, 0]), np.array([0, 1, 0, 0, 0, 1, 0, 0])]
    batch = _gap_batch(docs, np.random.default_rng(0))
    metric = system.metrics["seg"]
    with torch.no_grad():
        metric.update(Step(system, batch, "val"))
        scores, refs = metric.documents()
        assert [r.tolist() for r in refs] == [d.tolist() for d in docs]
        step = Step(system, batch, "val")
        expected = (1 - torch.sigmoid(step.head("stp"))).numpy()
        order = np.lexsort((np.array(batch.meta["gap"]), np.array(batch.meta["doc"])))
        np.testing.assert_allclose(np.concatenate(scores), expected[order], atol=1e-6)
        val = metric.compute()
        thr = metric.threshold
        assert val["threshold"] == thr and val["documents"] == 2
        assert val == {**score_segmentations(scores, refs, thr), "threshold": thr, "documents": 2.0}
        metric.reset()
        metric.update(Step(system, batch, "test"))
        assert metric.compute()["threshold"] == thr  # test never re-tunes
        both = system.metrics["both"]
        both.update(Step(system, batch, "val"))
        tc = heads["tc"]
        pl, pr = (tc([step.embed(c)]).softmax(-1) for c in ("left", "right"))
        mixed = (expected + (1 - (pl * pr).sum(-1)).numpy()) / 2
        np.testing.assert_allclose(np.concatenate(both.documents()[0]), mixed[order], atol=1e-6)


def test_head_mean_averages_the_heads_pearson():
    system = System(
        tower=FeatureMLP(4, 8, dropout=0.0),
        use_encoder_pooled=True,
        heads={"a": LinearHead(None, 1), "b": LinearHead(None, 1)},
        objectives={"a": HeadLoss("a", target="a"), "b": HeadLoss("b", target="b")},
        metrics={"avg": HeadMean(["a", "b"])},
    )
    system.eval()
    x = torch.randn(20, 4)
    ya, yb = torch.randn(20), torch.randn(20)
    batch = Batch(inputs={"x": {"x": x}}, targets={"a": ya, "b": yb})
    metric = system.metrics["avg"]
    with torch.no_grad():
        metric.update(Step(system, batch, "val"))
        step = Step(system, batch, "val")
        want = (pearson(step.head("a").numpy(), ya.numpy()) + pearson(step.head("b").numpy(), yb.numpy())) / 2
    assert metric.compute() == {"pearson_avg": pytest.approx(want, abs=1e-6)}
    metric.reset()
    assert all(p.update_count == 0 for p in metric.parts)
    with pytest.raises(ValueError, match="one target per head"):
        HeadMean(["a", "b"], targets=["a"])


def test_keep_best_restores_the_best_epoch(tmp_path):
    import pytorch_lightning as pl

    from polymodal.callbacks import KeepBest

    class Fake:
        sanity_checking, current_epoch = False, 0

        def __init__(self):
            self.callback_metrics = {}

    module = torch.nn.Linear(2, 1)
    trainer, keep = Fake(), KeepBest("val/r", mode="max")
    for epoch, value in enumerate([0.1, 0.5, 0.3]):
        trainer.current_epoch = epoch
        trainer.callback_metrics["val/r"] = torch.tensor(value)
        with torch.no_grad():
            module.weight.fill_(epoch)
        keep.on_validation_end(trainer, module)
    keep.on_fit_end(trainer, module)
    assert float(module.weight[0, 0]) == 1.0 and keep.best_epoch == 1
    assert float(trainer.callback_metrics["val/r_best"]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="mode"):
        KeepBest("val/r", mode="up")
    assert isinstance(keep, pl.Callback)
