"""Recipes: YAML compositions of modalities, encoders, poolers, losses and evaluators.

Each sub-folder is one system from the literature with a ``tiny.yaml`` (random tiny model,
seconds, run by the test suite) and real configs. ``polymodal recipes`` lists them.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["recipe_root", "recipes"]


def recipe_root() -> Path:
    """Folder holding the shipped recipes."""
    return Path(__file__).resolve().parent


def recipes() -> dict[str, list[Path]]:
    """Recipe name -> its YAML configs, sorted (sweep files, ``sweep*.yaml``, are not configs)."""
    root = recipe_root()
    found = {
        d.name: sorted(p for p in d.glob("*.yaml") if not p.name.startswith("sweep"))
        for d in sorted(root.iterdir())
        if d.is_dir() and not d.name.startswith(("_", "."))
    }
    return {name: configs for name, configs in found.items() if configs}
