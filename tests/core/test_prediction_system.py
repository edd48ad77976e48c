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
from polymodal.presets import PredictionSystem, Task
from polymodal.system import System


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
    return list(x), {"up": list(up), "size": list(size)}


def _loader(enc, n, seed, shuffle=False):
    windows, targets = _windows(n, seed)
    ds = RowsDataset({"w": windows}, targets)
    return DataLoader(ds, batch_size=32, shuffle=shuffle, collate_fn=Collator({"w": enc.processor}))


def test_multitask_training_learns_and_logs_metrics():
    torch.manual_seed(0)
    enc = TimeSeriesCNN(2, hidden_dim=16, num_layers=1)
    system = PredictionSystem(
        encoder=enc,
        tasks=[
            Task(name="up", kind="binary", target="up", weight=1.0),
            Task(name="size", kind="regression", target="size", weight=0.5),
        ],
        optimizer=lambda p: torch.optim.Adam(p, lr=1e-2),
    )
    windows, _ = _windows(256, 0)
    assert system.fit_input_statistics(["w"], [windows]) == ["w"]
    assert system.fit_input_statistics(["w"], [windows]) == []  # fitted once, never refit on other data
    system.processors_for(["w"])
    trainer = pl.Trainer(max_epochs=8, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.fit(system, _loader(enc, 256, 0, True), _loader(enc, 128, 1))
    val = trainer.callback_metrics
    assert float(val["val/up/roc_auc"]) > 0.9
    assert float(val["val/size/pearson"]) > 0.8
    assert {"up/f1", "up/pr_auc", "size/mse"} <= set(system.results["val"])
    preds = trainer.predict(system, _loader(enc, 10, 2))
    assert set(preds[0]) == {"up", "size"} and ((preds[0]["up"] >= 0) & (preds[0]["up"] <= 1)).all()


def test_frozen_encoder_is_not_updated_and_stays_in_eval():
    torch.manual_seed(0)
    enc = TimeSeriesRNN(2, hidden_dim=8, dropout=0.5)
    system = PredictionSystem(
        encoder=enc,
        use_encoder_pooled=True,
        freeze_encoder=True,
        tasks=[Task(name="up", kind="binary", target="up")],
    )
    system.processors_for(["w"])
    windows, _ = _windows(64, 0)
    system.fit_input_statistics(["w"], [windows])
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    head_before = system.heads["up"].linear.weight.clone()
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.fit(system, _loader(enc, 64, 0, True))
    for k, v in enc.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not torch.equal(system.heads["up"].linear.weight, head_before)
    assert not enc.training  # frozen towers stay in eval mode (no dropout) while the head trains


def test_routing_and_errors():
    from polymodal.contracts import Batch
    from polymodal.system import Step

    a, b = TimeSeriesCNN(2, hidden_dim=4), TimeSeriesCNN(3, hidden_dim=6)
    system = PredictionSystem(encoders={"price": a, "assets": b}, tasks=[Task(kind="binary")])
    assert system.heads["target"].linear.in_features == 10  # both towers' widths, concatenated
    with pytest.raises(KeyError, match="no tower for input column 'volume'"):
        system.processors_for(["volume"])
    assert [p.num_features for p in system.processors_for(["assets", "price"])] == [3, 2]
    with pytest.raises(ValueError, match="exactly one of tower"):
        PredictionSystem()
    with pytest.raises(ValueError, match="unique"):
        PredictionSystem(encoder=a, tasks=[Task(), Task()])
    two = PredictionSystem(encoder=a, tasks=[Task("x", "binary", target="x"), Task("y", target="y")])
    batch = Batch(
        inputs={"w": a.processor([np.ones((3, 2)), np.zeros((3, 2))])},
        targets={"x": torch.tensor([1.0, 0.0]), "y": torch.tensor([float("nan"), 2.0])},
    )
    loss, parts = two._loss(Step(two, batch, "train"))
    assert torch.isfinite(loss) and set(parts) == {"x", "y"}  # the NaN label is left out of task y
    bad = Batch(inputs=batch.inputs, targets={"x": torch.tensor([1.0, 3.0]), "y": torch.tensor([0.0, 2.0])})
    with pytest.raises(ValueError, match="label 3 is not 0 or 1"):
        two._loss(Step(two, bad, "train"))


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
  class_path: polymodal.PredictionSystem
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
    cli = main(["fit", "--config", str(cfg)])
    assert "val/mse" in cli.trainer.callback_metrics
    assert isinstance(cli.model, System) and list(cli.model.heads) == ["score"]
    assert cli.model.optimizers().param_groups[0]["lr"] != cli.model.optimizers().param_groups[1]["lr"]
