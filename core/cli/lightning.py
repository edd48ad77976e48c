"""The Lightning subcommands (``fit``/``validate``/``test``/``predict``) through LightningCLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["lightning_cli", "resolve_config_args"]


def resolve_config_args(args: list[str]) -> list[str]:
    """Let ``--config recipes/<name>/<cfg>.yaml`` find the installed recipe outside a checkout."""
    from polymodal.recipes import recipe_root

    out = list(args)
    for i, a in enumerate(out):
        value = None
        if a == "--config" and i + 1 < len(out):
            value, idx = out[i + 1], i + 1
        elif a.startswith("--config="):
            value, idx = a.split("=", 1)[1], i
        if value is None or Path(value).exists():
            continue
        rel = Path(value)
        if rel.parts and rel.parts[0] == "recipes":
            candidate = recipe_root().joinpath(*rel.parts[1:])
            if candidate.exists():
                out[idx] = str(candidate) if idx != i else f"--config={candidate}"
            else:
                raise SystemExit(f"polymodal: config not found: {value} (see `polymodal recipes`)")
        else:
            raise SystemExit(f"polymodal: config not found: {value}")
    return out


def lightning_cli(args: list[str] | None) -> Any:
    import pytorch_lightning as pl
    from pytorch_lightning.cli import LightningCLI

    import polymodal.callbacks  # noqa: F401 - short names for callbacks
    import polymodal.checkpoint  # noqa: F401 - the default checkpoint IO
    import polymodal.data  # noqa: F401 - short names for data modules
    import polymodal.heads  # noqa: F401 - short names for heads
    import polymodal.losses  # noqa: F401
    import polymodal.metrics.step  # noqa: F401 - short names for metrics
    import polymodal.objectives  # noqa: F401 - short names for objectives
    import polymodal.poolers  # noqa: F401
    import polymodal.presets  # noqa: F401 - ContrastiveSystem, PredictionSystem, ... by short name
    import polymodal.system  # noqa: F401
    import polymodal.vector  # noqa: F401 - FeatureMLP by its short name

    return LightningCLI(
        pl.LightningModule,
        pl.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=args,
        parser_kwargs={"prog": "polymodal"},
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        trainer_defaults={"plugins": [{"class_path": "polymodal.checkpoint.AtomicCheckpointIO"}]},
    )
