"""polymodal.callbacks.PredictionWriter additions for issue 13: the batch's meta columns, predicting after fit."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from polymodal.callbacks import PredictionWriter
from polymodal.contracts import Batch


def trainer(tmp_path, loader=()):
    return SimpleNamespace(
        default_root_dir=str(tmp_path),
        is_global_zero=True,
        datamodule=SimpleNamespace(predict_dataloader=lambda: loader),
    )


def batch(meta: dict, n: int) -> Batch:
    return Batch(inputs={"x": {"v": torch.arange(n, dtype=torch.float32)}}, meta=meta)


@pytest.mark.parametrize(
    ("outputs", "metas", "columns"),
    [
        (  # heads after the meta columns, rows of every batch in order
            [{"up": torch.tensor([0.1, 0.2])}, {"up": torch.tensor([0.3])}],
            [{"date": ["d1", "d2"], "split": ["val", "val"]}, {"date": ["d3"], "split": ["test"]}],
            {"date": ["d1", "d2", "d3"], "split": ["val", "val", "test"], "up": [0.1, 0.2, 0.3]},
        ),
        (  # no meta: the head columns only
            [{"cls": torch.tensor([[0.25, 0.75]])}],
            [{}],
            {"cls_0": [0.25], "cls_1": [0.75]},
        ),
    ],
)
def test_meta_columns_come_first(tmp_path, outputs, metas, columns):
    writer = PredictionWriter()
    t = trainer(tmp_path)
    writer.on_predict_start(t, None)
    for i, (out, meta) in enumerate(zip(outputs, metas)):
        writer.write_on_batch_end(t, None, out, None, batch(meta, len(next(iter(out.values())))), i, 0)
    writer.on_predict_end(t, None)
    frame = pd.read_csv(tmp_path / "predictions.csv")
    assert list(frame.columns) == list(columns)
    for name, values in columns.items():
        got = frame[name].tolist()
        assert got == values if isinstance(values[0], str) else got == pytest.approx(values)


def test_arrays_ignore_meta(tmp_path):
    writer = PredictionWriter()
    t = trainer(tmp_path)
    writer.on_predict_start(t, None)
    writer.write_on_batch_end(t, None, torch.ones(2, 3), None, batch({"id": ["a", "b"]}, 2), 0, 0)
    writer.on_predict_end(t, None)
    assert np.load(tmp_path / "predictions.npy").shape == (2, 3)


class Doubler(torch.nn.Module):
    """The part of a System the writer uses: predict_step, transfer_batch_to_device, train/eval."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Dropout(0.5)
        self.seen_training: list[bool] = []

    @property
    def device(self):
        return torch.device("cpu")

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return batch

    def predict_step(self, batch, batch_idx):
        self.seen_training.append(self.training)
        return {"y": self.layer(batch.inputs["x"]["v"]) * 2}


@pytest.mark.parametrize("after_fit", [True, False])
def test_after_fit_predicts_the_predict_split_in_eval_mode(tmp_path, after_fit):
    loader = [batch({"id": ["a", "b"]}, 2), batch({"id": ["c"]}, 1)]
    module = Doubler().train()
    PredictionWriter(after_fit=after_fit).on_fit_end(trainer(tmp_path, loader), module)
    if not after_fit:
        assert not (tmp_path / "predictions.csv").exists() and module.seen_training == []
        return
    frame = pd.read_csv(tmp_path / "predictions.csv")
    assert frame.to_dict("list") == {"id": ["a", "b", "c"], "y": [0.0, 2.0, 0.0]}  # dropout off: eval mode
    assert module.seen_training == [False, False] and module.training  # train mode restored afterwards
