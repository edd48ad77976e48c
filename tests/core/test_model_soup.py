"""ModelSoup: the trainable weights become the uniform average of snapshots, final weights and checkpoints."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from polymodal.callbacks import ModelSoup


def _module() -> nn.Module:
    module = nn.Linear(2, 1)
    module.bias.requires_grad_(False)  # frozen: never averaged
    return module


def _set(module: nn.Module, value: float) -> None:
    with torch.no_grad():
        module.weight.fill_(value)
        module.bias.fill_(value)


def test_snapshots_final_weights_and_a_checkpoint_are_averaged_uniformly(tmp_path):
    module, soup = _module(), ModelSoup(every_n_steps=2, start_step=2, ingredients=[str(tmp_path / "other.ckpt")])
    torch.save({"state_dict": {"weight": torch.full((1, 2), 10.0), "bias": torch.zeros(1)}}, tmp_path / "other.ckpt")
    trainer = SimpleNamespace(global_step=0)
    for step, value in [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0), (5, 6.0)]:  # snapshots at steps 2 and 4
        _set(module, value)
        trainer.global_step = step
        soup.on_train_batch_end(trainer, module, None, None, step - 1)
    soup.on_train_end(trainer, module)
    torch.testing.assert_close(module.weight, torch.full((1, 2), (2.0 + 4.0 + 6.0 + 10.0) / 4))
    torch.testing.assert_close(module.bias, torch.full((1,), 6.0))  # frozen parameter untouched


def test_last_step_snapshot_is_not_counted_twice():
    module, soup = _module(), ModelSoup(every_n_steps=1)
    trainer = SimpleNamespace(global_step=0)
    for step, value in [(1, 1.0), (2, 3.0)]:
        _set(module, value)
        trainer.global_step = step
        soup.on_train_batch_end(trainer, module, None, None, step - 1)
    soup.on_train_end(trainer, module)
    torch.testing.assert_close(module.weight, torch.full((1, 2), 2.0))


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"state_dict": {"bias": torch.zeros(1)}}, "has no parameter 'weight'"),
        ({"state_dict": {"weight": torch.zeros(3, 2)}}, r"'weight' has shape \(3, 2\), expected \(1, 2\)"),
    ],
)
def test_bad_ingredients_are_one_line(tmp_path, state, message):
    torch.save(state, tmp_path / "bad.ckpt")
    soup = ModelSoup(ingredients=[str(tmp_path / "bad.ckpt")])
    with pytest.raises(ValueError, match=message) as info:
        soup.on_train_end(SimpleNamespace(global_step=1), _module())
    assert "bad.ckpt" in str(info.value) and "\n" not in str(info.value)


def test_missing_ingredient_file_is_one_line(tmp_path):
    soup = ModelSoup(ingredients=[str(tmp_path / "absent.ckpt")])
    with pytest.raises(FileNotFoundError, match="absent.ckpt"):
        soup.on_train_end(SimpleNamespace(global_step=1), _module())
