"""PredictionSystem: heads, multi-task losses, frozen encoders, metrics, CLI composition."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from polymodal.data.datamodule import Collator, RowsDataset
from polymodal.metrics.functional import (
    average_precision,
    binary_metrics,
    multiclass_metrics,
    regression_metrics,
    roc_auc,
)
from polymodal.plugins.timeseries import TimeSeriesCNN, TimeSeriesRNN
from polymodal.systems.prediction import PredictionSystem, Task


def test_binary_metrics_match_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    score = np.round(y * 0.3 + rng.uniform(size=300), 2)  # ties included
    assert roc_auc(y, score) == pytest.approx(sk.roc_auc_score(y, score), abs=1e-12)
    assert average_precision(y, score) == pytest.approx(sk.average_precision_score(y, score), abs=1e-12)
    m = binary_metrics(y, score, threshold=0.7)
    pred = score >= 0.7
    assert m["precision"] == pytest.approx(sk.precision_score(y, pred))
    assert m["recall"] == pytest.approx(sk.recall_score(y, pred))
    assert m["f1"] == pytest.approx(sk.f1_score(y, pred))
    assert np.isnan(roc_auc(np.zeros(5), np.arange(5.0)))


def test_multiclass_and_regression_metrics():
    prob = np.array([[0.9, 0.1, 0.0], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.6, 0.3, 0.1]])
    m = multiclass_metrics(np.array([0, 1, 2, 2]), prob)
    assert m["accuracy"] == 0.75
    assert m["macro_f1"] == pytest.approx(np.mean([2 / 3, 1.0, 2 / 3]))
    r = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))
    assert r["mse"] == pytest.approx(1 / 3) and r["mae"] == pytest.approx(1 / 3) and r["spearman"] == pytest.approx(1)


def _windows(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 2)).astype(np.float32)
    up = (x[:, :, 0].mean(1) > 0).astype(np.float32)
    size = x[:, :, 1].mean(1)
    return [list(x)], np.stack([up, size], axis=1)


def _loader(enc, n, seed, shuffle=False):
    cols, target = _windows(n, seed)
    ds = RowsDataset(cols, list(target))
    return DataLoader(ds, batch_size=32, shuffle=shuffle, collate_fn=_MatrixCollator([enc.processor]))


class _MatrixCollator(Collator):
    """Collator for a (B, K) target matrix (the multi-task case)."""

    def __call__(self, rows):
        out = super().__call__([(r[0], 0.0) for r in rows])
        out["target"] = torch.tensor(np.stack([r[1] for r in rows]), dtype=torch.float32)
        return out


def test_multitask_training_learns_and_logs_metrics():
    torch.manual_seed(0)
    enc = TimeSeriesCNN(2, hidden_dim=16, num_layers=1)
    system = PredictionSystem(
        encoder=enc,
        tasks=[
            Task(name="up", kind="binary", target_index=0, weight=1.0),
            Task(name="size", kind="regression", target_index=1, weight=0.5),
        ],
        optimizer=lambda p: torch.optim.Adam(p, lr=1e-2),
    )
    cols, _ = _windows(256, 0)
    assert system.fit_input_statistics(["w"], cols) == ["w"]
    assert system.fit_input_statistics(["w"], cols) == []  # fitted once, never refit on other data
    system.processors_for(["w"])
    trainer = pl.Trainer(max_epochs=8, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.fit(system, _loader(enc, 256, 0, True), _loader(enc, 128, 1))
    val = trainer.callback_metrics
    assert float(val["val/up/roc_auc"]) > 0.9
    assert float(val["val/size/pearson"]) > 0.8
    assert {"up/f1", "up/pr_auc", "size/mse"} <= set(system.metrics_["val"])
    preds = trainer.predict(system, _loader(enc, 10, 2))
    assert set(preds[0]) == {"up", "size"} and ((preds[0]["up"] >= 0) & (preds[0]["up"] <= 1)).all()


def test_frozen_encoder_is_not_updated_and_stays_in_eval():
    torch.manual_seed(0)
    enc = TimeSeriesRNN(2, hidden_dim=8, dropout=0.5)
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    system = PredictionSystem(
        encoder=enc,
        use_encoder_pooled=True,
        freeze_encoder=True,
        tasks=[Task(name="up", kind="binary", target_index=0)],
    )
    system.processors_for(["w"])
    head_before = system.heads["up"].weight.clone()
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.fit(system, _loader(enc, 64, 0, True))
    for k, v in enc.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not torch.equal(system.heads["up"].weight, head_before)
    assert not enc.training


def test_routing_and_errors():
    a, b = TimeSeriesCNN(2, hidden_dim=4), TimeSeriesCNN(3, hidden_dim=6)
    system = PredictionSystem(encoders={"price": a, "assets": b}, tasks=[Task(kind="binary")])
    assert system.in_dim == 10
    with pytest.raises(ValueError, match="needs exactly one column"):
        system.processors_for(["price"])
    assert [p.num_features for p in system.processors_for(["assets", "price"])] == [3, 2]
    with pytest.raises(ValueError, match="exactly one of encoder"):
        PredictionSystem()
    with pytest.raises(ValueError, match="unique"):
        PredictionSystem(encoder=a, tasks=[Task(), Task()])
    nan_target = torch.tensor([[1.0, float("nan")], [0.0, 2.0]])
    two = PredictionSystem(encoder=a, tasks=[Task("x", "binary", target_index=0), Task("y", target_index=1)])
    two.processors_for(["w"])
    out = two([a.processor([np.ones((3, 2)), np.zeros((3, 2))])])
    loss, parts = two.loss(out, nan_target)
    assert torch.isfinite(loss) and set(parts) == {"x", "y"}


def test_cli_fits_text_regression_with_prediction_system(tmp_path):
    from polymodal.cli import main

    cfg = tmp_path / "reg.yaml"
    cfg.write_text(
        f"""
seed_everything: 0
trainer:
  accelerator: cpu
  max_epochs: 1
  limit_train_batches: 3
  limit_val_batches: 2
  logger: false
  enable_checkpointing: false
  enable_progress_bar: false
  default_root_dir: {tmp_path}
model:
  class_path: PredictionSystem
  init_args:
    encoder:
      class_path: TextEncoder
      init_args:
        model: {{model_type: bert, vocab_size: 261, hidden_size: 16, num_hidden_layers: 1,
                 num_attention_heads: 2, intermediate_size: 32, max_position_embeddings: 64}}
        tokenizer: bytes
        max_length: 64
    num_inputs: 2
    tasks:
      - name: score
        kind: regression
    head_hidden: 8
    encoder_lr: 0.0001
data:
  class_path: TableDataModule
  init_args:
    train: package://sbert/data/stsb_train_sample.tsv.gz
    val: package://sbert/data/stsb_dev_sample.tsv.gz
    inputs: [sentence1, sentence2]
    target: score
    batch_size: 8
"""
    )
    import polymodal.systems.prediction  # noqa: F401 - short name for the YAML

    cli = main(["fit", "--config", str(cfg)])
    assert "val/mse" in cli.trainer.callback_metrics
    assert isinstance(cli.model, PredictionSystem) and cli.model.tasks[0].name == "score"
