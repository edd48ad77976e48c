"""The sbert_two_stage recipe: NLI triplets, then STS starting from the stage-1 encoder."""

from __future__ import annotations

import math

import pytest
import torch
import yaml

import polymodal
from polymodal.cli import main


def test_tiny_two_stages_chain(tmp_path):
    nli = main(["fit", "--config", "recipes/sbert_two_stage/tiny.yaml", f"--trainer.default_root_dir={tmp_path / 'n'}"])
    assert nli.trainer.global_step == 3 and math.isfinite(float(nli.trainer.callback_metrics["train/loss"]))
    stage1 = polymodal.load(tmp_path / "n" / "model")

    cfg = yaml.safe_load(open("recipes/sbert_two_stage/tiny_sts.yaml"))
    cfg["trainer"]["callbacks"][0]["init_args"]["path"] = str(tmp_path / "n" / "model")
    path = tmp_path / "sts.yaml"
    path.write_text(yaml.safe_dump(cfg))
    seen = {}

    def spy(module, batch, batch_idx):  # weights at the first stage-2 step are stage 1's export
        seen.setdefault("state", {k: v.detach().clone() for k, v in module.towers["shared"].state_dict().items()})
        seen["n_inputs"] = len(batch.inputs)

    from polymodal.system import System

    original = System.on_train_batch_start
    System.on_train_batch_start = spy
    try:
        sts = main(["fit", "--config", str(path), f"--trainer.default_root_dir={tmp_path / 's'}"])
    finally:
        System.on_train_batch_start = original
    for name, value in stage1.encoder.state_dict().items():
        torch.testing.assert_close(seen["state"][name], value, msg=name)
    assert seen["n_inputs"] == 2  # sentence1, sentence2 (+ score as target)
    assert -1 <= float(sts.trainer.callback_metrics["val/spearman"]) <= 1
    final = polymodal.load(tmp_path / "s" / "model")
    assert final.encode(["a test"]).shape == (1, 32)


def test_nli_triplets_concatenate_tables(tmp_path):
    import pandas as pd

    from polymodal.data import NLITriplets

    a = pd.DataFrame(
        {
            "premise": ["p1", "p1", "p2", "p2", "p3"],
            "hypothesis": ["e1", "c1", "e2", "c2", "n3"],
            "label": ["entailment", "contradiction", "entailment", "contradiction", "neutral"],
        }
    )
    b = pd.DataFrame(
        {
            "premise": ["p4", "p4", "p4"],
            "hypothesis": ["e4", "f4", "c4"],
            "label": ["entailment"] * 2 + ["contradiction"],
        }
    )
    a.to_csv(tmp_path / "a.tsv", sep="\t", index=False)
    b.to_csv(tmp_path / "b.tsv", sep="\t", index=False)
    frame = NLITriplets([str(tmp_path / "a.tsv"), str(tmp_path / "b.tsv")]).frame()
    assert list(frame.columns) == ["anchor", "positive", "negative"]
    rows = sorted(map(tuple, frame.itertuples(index=False)))
    assert rows == [("p1", "e1", "c1"), ("p2", "e2", "c2"), ("p4", "e4", "c4"), ("p4", "f4", "c4")]
    b.rename(columns={"label": "gold"}).to_csv(tmp_path / "c.tsv", sep="\t", index=False)
    with pytest.raises(KeyError, match=r"c\.tsv: missing column\(s\) 'label'"):
        NLITriplets([str(tmp_path / "a.tsv"), str(tmp_path / "c.tsv")]).frame()


def test_load_encoder_weights_skipped_on_resume(tmp_path):
    """Resuming a stage-2 fit must keep the checkpoint's weights, not reload stage 1's export."""
    from types import SimpleNamespace

    from polymodal.callbacks import LoadEncoderWeights

    cb = LoadEncoderWeights(str(tmp_path / "does-not-exist"))
    cb.on_fit_start(SimpleNamespace(ckpt_path=str(tmp_path / "last.ckpt")), None)  # no error: nothing loaded
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        cb.on_fit_start(SimpleNamespace(ckpt_path=None), None)
