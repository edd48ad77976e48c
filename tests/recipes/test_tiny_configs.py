"""Every shipped recipe's ``tiny.yaml`` fits end to end on the CPU in seconds (the contract of a recipe folder)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from polymodal.cli import main
from polymodal.recipes import recipe_root

TINY = sorted(p.parent.name for p in recipe_root().glob("*/tiny.yaml"))


def test_every_recipe_has_a_tiny_config():
    from polymodal.recipes import recipes

    assert set(TINY) == set(recipes()), "each recipe folder ships recipes/<name>/tiny.yaml"


def _training_free(recipe: str) -> bool:
    """A tiny config without train data is a training-free recipe's (run with ``polymodal validate``)."""
    import yaml

    data = yaml.safe_load((recipe_root() / recipe / "tiny.yaml").read_text())["data"].get("init_args", {})
    return not data.get("train") and "train" not in (data.get("sources") or {})


@pytest.mark.parametrize("recipe", TINY)
def test_tiny_config_fits(recipe, tmp_path):
    from polymodal.system import System

    if _training_free(recipe):
        cli = main(["validate", "--config", f"recipes/{recipe}/tiny.yaml", f"--trainer.default_root_dir={tmp_path}"])
        assert type(cli.model) is System
        values = {k: float(v) for k, v in cli.trainer.callback_metrics.items() if k.startswith("val/")}
        assert values and all(math.isfinite(v) for v in values.values()), values
        return
    cli = main(["fit", "--config", f"recipes/{recipe}/tiny.yaml", f"--trainer.default_root_dir={tmp_path}"])
    assert cli.trainer.state.finished and cli.trainer.global_step > 0
    assert type(cli.model) is System  # a composition, not a fork
    losses = {k: float(v) for k, v in cli.trainer.callback_metrics.items() if k.endswith("loss")}
    assert losses and all(math.isfinite(v) for v in losses.values()), losses


SWEEPS = sorted(recipe_root().glob("*/sweep*.yaml"))


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_sweep_file_loads_and_names_shipped_configs(path):
    from polymodal.experiments import load_sweep

    sweep = load_sweep(path)
    assert sweep.runs, path
    repo = recipe_root().parent
    for run in sweep.runs:
        for cfg in run.configs:
            assert (repo / cfg).is_file() or (recipe_root() / cfg.removeprefix("recipes/")).is_file(), (path, cfg)


def test_every_overlay_is_used_by_a_sweep_or_its_recipe_tests():
    from polymodal.experiments import load_sweep

    named = {c for p in SWEEPS for run in load_sweep(p).runs for c in run.configs}
    tests = Path(__file__).resolve().parent
    for overlay in recipe_root().glob("*/overlays/*.yaml"):
        recipe = overlay.parent.parent.name
        shipped = f"recipes/{recipe}/overlays/{overlay.name}"
        own_tests = tests / f"test_{recipe}.py"
        fitted = own_tests.is_file() and f'"{overlay.stem}"' in own_tests.read_text()
        assert shipped in named or fitted, f"{shipped}: used by no sweep and not fitted by {own_tests.name}"
