"""The recipes/_scaling overlays compose with every shipped recipe config."""

from __future__ import annotations

import pytest
import yaml

from polymodal.cli import main
from polymodal.recipes import recipe_root, recipes

OVERLAYS = sorted((recipe_root() / "_scaling").glob("*.yaml"))
# One config per recipe (its tiny.yaml where there is one): the overlays only touch trainer keys.
CONFIGS = [next((c for c in configs if c.name == "tiny.yaml"), configs[0]) for configs in recipes().values()]


def test_scaling_folder_is_not_listed_as_a_recipe():
    assert "_scaling" not in recipes() and len(OVERLAYS) == 3


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.stem)
@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_overlay_composes_with_recipe(config, overlay, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--config", str(config), "--config", str(overlay), "--print_config"])
    assert exc.value.code in (0, None)
    merged = yaml.safe_load(capsys.readouterr().out)
    wanted = yaml.safe_load(overlay.read_text())["trainer"]
    assert merged["trainer"]["precision"] == wanted["precision"]
    assert merged["trainer"]["accelerator"] == wanted["accelerator"]
    if "strategy" in wanted:
        strategy = merged["trainer"]["strategy"]
        expected = wanted["strategy"]
        assert strategy == expected or strategy.get("class_path") == expected["class_path"]
    recipe = yaml.safe_load(config.read_text())
    assert merged["model"]["class_path"].rsplit(".", 1)[-1] == recipe["model"]["class_path"].rsplit(".", 1)[-1]
