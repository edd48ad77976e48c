"""polymodal.System: composition from YAML (the README example), heads, frozen parts, checkpoints of what trains."""

from __future__ import annotations

import pytest
import torch
import yaml

from polymodal.cli import main
from polymodal.heads import LinearHead, PairHead
from polymodal.objectives import HeadLoss
from polymodal.plugins.text import TextEncoder
from polymodal.system import System

README_NLI = """
seed_everything: 0
trainer:
  accelerator: cpu
  max_epochs: 1
  limit_train_batches: 6
  logger: false
  enable_checkpointing: false
  enable_progress_bar: false
model:
  class_path: polymodal.System
  init_args:
    tower: {class_path: TextEncoder, init_args: {model: test-bert, tokenizer: bytes, max_length: 64}}
    heads:
      nli: {class_path: PairHead, init_args: {columns: [premise, hypothesis], out_dim: 3, hidden: 16}}
    objectives:
      nli: {class_path: HeadLoss, init_args: {head: nli, kind: multiclass, target: label}}
    metrics:
      nli: {class_path: HeadMetrics, init_args: {head: nli, kind: multiclass, target: label}}
    lr_groups: {"towers.*": 2.0e-4}
    optimizer: {class_path: torch.optim.AdamW, init_args: {lr: 1.0e-2}}
data:
  class_path: TableDataModule
  init_args:
    train: package://pixel_linguist/data/snli_dev_sample.tsv.gz
    val: package://pixel_linguist/data/snli_dev_sample.tsv.gz
    read_options: {quoting: 3}
    inputs: [premise, hypothesis]
    target: label
    classes: {label: [entailment, neutral, contradiction]}
    skip_bad_rows: true
    batch_size: 16
"""


def test_readme_composition_trains_a_pair_classifier(tmp_path):
    cfg = tmp_path / "nli.yaml"
    cfg.write_text(README_NLI)
    cli = main(["fit", "--config", str(cfg), f"--trainer.default_root_dir={tmp_path}"])
    metrics = cli.trainer.callback_metrics
    assert {"val/accuracy", "val/macro_f1", "val/loss"} <= set(metrics)
    assert isinstance(cli.model.heads["nli"], PairHead) and cli.model.heads["nli"].net[0].in_features == 32 * 4
    lrs = sorted(g["initial_lr"] for g in cli.model.optimizers().optimizer.param_groups)
    assert lrs == [2.0e-4, 1.0e-2]  # the tower's own learning-rate group, the head's
    # a label outside the declared classes is one line naming file, row and column
    bad = yaml.safe_load(README_NLI)
    bad["data"]["init_args"]["skip_bad_rows"] = False
    bad["data"]["init_args"]["classes"] = {"label": ["entailment", "contradiction"]}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ValueError, match=r"snli_dev_sample.tsv.gz: row \d+, column 'label': 'neutral' is not one of"):
        main(["fit", "--config", str(tmp_path / "bad.yaml"), f"--trainer.default_root_dir={tmp_path / 'b'}"])


def _tiny() -> TextEncoder:
    torch.manual_seed(0)
    return TextEncoder(model="test-bert", tokenizer="bytes", max_length=32)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of tower"),
        ({"tower": "T", "towers": {"a": "T"}}, "exactly one of tower"),
        ({"towers": {"a": "T"}, "routes": {"x": "b"}}, r"unknown tower\(s\) \['b'\]"),
        ({"tower": "T"}, "at least one objective"),
        ({"tower": "T", "loss": "L", "objectives": {"x": "L"}}, "not both"),
        ({"tower": "T", "objectives": {"a.b": "L"}}, "without '/' or '.'"),
        ({"tower": "T", "objectives": {"x": HeadLoss("nope")}}, r"reads head 'nope'; heads: \[\]"),
        ({"tower": "T", "loss": "L", "frozen": ["nothing.*"]}, "matches no parameter"),
        ({"tower": "T", "loss": "L", "schedule": "step"}, "linear, cosine or constant"),
        ({"tower": "T", "loss": "L", "pooler": "P", "poolers": {"shared": "P"}}, "not both"),
    ],
)
def test_bad_compositions_give_one_line(kwargs, message):
    from polymodal.losses import CoSENTLoss
    from polymodal.poolers import MeanPooler

    values = {"T": _tiny, "L": CoSENTLoss, "P": MeanPooler}

    def real(v):
        if isinstance(v, str) and v in values:
            return values[v]()
        if isinstance(v, dict):
            return {k: real(x) for k, x in v.items()}
        return v

    with pytest.raises((ValueError, TypeError), match=message) as info:
        System(**{k: real(v) for k, v in kwargs.items()})
    assert "\n" not in str(info.value)


def test_frozen_tower_checkpoint_holds_only_what_trains():
    system = System(
        tower=_tiny(),
        heads={"score": LinearHead(["a"], 1)},
        objectives={"score": HeadLoss("score", "regression")},
        frozen=["towers.*"],
        save_frozen=False,
    )
    system.train()
    assert not system.towers["shared"].training and system.heads.training  # frozen modules stay in eval
    trained = system._trained_keys()
    assert trained and all(k.startswith("heads.") for k in trained)
    checkpoint = {"state_dict": system.state_dict()}
    system.on_save_checkpoint(checkpoint)
    assert set(checkpoint["state_dict"]) == trained
    with pytest.raises(ValueError, match="lacks 2 trained tensor"):
        system.on_load_checkpoint({"state_dict": {}})


def test_one_training_lightning_module_in_the_tree():
    """Issue 13's acceptance: System is the only LightningModule; presets and recipes define no *_step."""
    import ast

    from tests.conftest import REPO

    modules, steps = [], []
    for folder in ("core", "plugins", "recipes"):
        for path in (REPO / folder).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    bases = {ast.unparse(b) for b in node.bases}
                    if bases & {"pl.LightningModule", "LightningModule", "pytorch_lightning.LightningModule"}:
                        modules.append(f"{path.relative_to(REPO)}:{node.name}")
                if (
                    isinstance(node, ast.FunctionDef)
                    and node.name.endswith("_step")
                    and node.name.split("_")[0]
                    in (
                        "training",
                        "validation",
                        "test",
                        "predict",
                    )
                ):
                    steps.append(f"{path.relative_to(REPO)}:{node.name}")
    assert modules == ["core/system.py:System"]
    assert all(s.startswith("core/system.py:") for s in steps), steps


@pytest.mark.parametrize(
    ("kwargs", "row", "message"),
    [
        ({"target": "score", "ranges": {"score": [0, 5]}}, {"score": 7.5}, r"row 2, column 'score': 7.5 is outside"),
        ({"target": "label", "classes": {"label": ["a", "b"]}}, {"label": "c"}, r"row 2, column 'label': 'c' is not"),
        ({"target": "score"}, {"score": "n/a"}, r"row 2, column 'score': not a finite number"),
        ({"target": "score", "ranges": {"score": [5, 0]}}, None, r"ranges.score: need \[low, high\]"),
        ({"target": "label", "classes": {"label": ["a"]}}, None, "classes.label: need at least two"),
    ],
)
def test_declared_targets_reject_silent_outliers(tmp_path, kwargs, row, message):
    import pandas as pd

    from polymodal.data import TableDataModule

    good = {"text": "fine", "score": 1.0, "label": "a"}
    pd.DataFrame([good, {**good, **(row or {})}]).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(ValueError, match=message) as info:
        TableDataModule(train=str(tmp_path / "t.csv"), inputs=["text"], **kwargs).load_split("train")
    assert "\n" not in str(info.value)


def test_head_loss_with_a_list_of_targets_is_a_vector_regression():
    from types import SimpleNamespace

    out = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    targets = {"a": torch.tensor([1.0, float("nan")]), "b": torch.tensor([0.0, 1.0]), "c": torch.tensor([3.0, 2.0])}
    step = SimpleNamespace(head=lambda name: out, target=lambda name: targets[name])
    loss = HeadLoss("h", "regression", target=["a", "b", "c"])
    assert loss.requires() == ([], ["a", "b", "c"])
    assert float(loss(step)) == pytest.approx((0 + 4 + 0) / 3)  # the NaN row is left out
    with pytest.raises(ValueError, match=r"expected \(B, 2\): one output per target"):
        HeadLoss("h", "regression", target=["a", "b"])(step)
    with pytest.raises(ValueError, match="a list of targets needs kind regression or soft"):
        HeadLoss("h", "multiclass", target=["a", "b"])
