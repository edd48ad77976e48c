"""polymodal.callbacks.PredictionWriter: formats by output type, meta columns, after-fit predictions, the CLI."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from polymodal.callbacks import PredictionWriter
from polymodal.cli import main


def written(tmp_path, parts, output=None):
    writer = PredictionWriter(None if output is None else str(tmp_path / output))
    writer.parts = parts
    return writer.write(SimpleNamespace(default_root_dir=str(tmp_path), is_global_zero=True))


@pytest.mark.parametrize(
    ("parts", "output", "name", "expected"),
    [
        (  # heads: one column per head, meta first, rows of every batch in order
            [
                ({"up": torch.tensor([0.1, 0.2])}, {"date": ["d1", "d2"]}),
                ({"up": torch.tensor([0.3])}, {"date": ["d3"]}),
            ],
            None,
            "predictions.csv",
            {"date": ["d1", "d2", "d3"], "up": [0.1, 0.2, 0.3]},
        ),
        (  # a vector head (softmax over 2 classes) -> <head>_<j>
            [({"cls": torch.tensor([[0.25, 0.75]])}, {})],
            "p.parquet",
            "p.parquet",
            {"cls_0": [0.25], "cls_1": [0.75]},
        ),
    ],
)
def test_tables(tmp_path, parts, output, name, expected):
    path = written(tmp_path, parts, output)
    assert path == tmp_path / name and path.stat().st_mode & 0o044  # readable by others, like any result file
    frame = pd.read_parquet(path) if name.endswith(".parquet") else pd.read_csv(path)
    assert list(frame.columns) == list(expected)
    for column, values in expected.items():
        assert frame[column].tolist() == pytest.approx(values) if column != "date" else frame[column].tolist() == values


@pytest.mark.parametrize(
    ("parts", "shape"),
    [
        ([(torch.ones(2, 3), {}), (torch.zeros(1, 3), {})], (3, 3)),  # one embedding column
        ([([torch.ones(2, 3), torch.zeros(2, 3)], {})], (2, 2, 3)),  # one per input column: (K, N, D)
    ],
)
def test_arrays(tmp_path, parts, shape):
    path = written(tmp_path, parts)
    assert path.name == "predictions.npy" and np.load(path).shape == shape


def test_no_batches_writes_nothing(tmp_path, capsys):
    assert written(tmp_path, []) is None and "nothing written" in capsys.readouterr().out
    assert not list(tmp_path.iterdir())


def test_polymodal_predict_writes_the_table(tmp_path):
    out = tmp_path / "emb.csv"
    main(
        [
            "predict",
            "--config",
            "recipes/sbert/tiny.yaml",
            f"--trainer.default_root_dir={tmp_path}",
            "--data.init_args.predict=package://sbert/data/stsb_dev_sample.tsv.gz",
            "--data.init_args.meta=[score]",
            "--trainer.callbacks+=polymodal.callbacks.PredictionWriter",
            f"--trainer.callbacks.output={out}",
        ]
    )
    frame = pd.read_csv(out)
    source = pd.read_csv("recipes/sbert/data/stsb_dev_sample.tsv.gz", sep="\t")
    assert len(frame) == len(source) and frame["score"].tolist() == pytest.approx(source["score"].tolist())
    assert frame.columns[1] == "sentence1_0" and any(c.startswith("sentence2_") for c in frame.columns)
