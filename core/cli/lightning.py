"""The Lightning subcommands (``fit``/``validate``/``test``/``predict``) through LightningCLI."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

__all__ = ["alias_lightning_paths", "lightning_cli", "resolve_config_args"]


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
    import polymodal.losses  # noqa: F401
    import polymodal.poolers  # noqa: F401
    import polymodal.systems  # noqa: F401
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


#: ``lightning.pytorch.X`` (the unified ``lightning`` package) where a class path starts.
_UNIFIED = re.compile(r"(?<![\w.])lightning\.pytorch\.")


def alias_lightning_paths(args: list[str]) -> list[str]:
    """Accept ``lightning.pytorch.*`` class paths next to ``pytorch_lightning.*`` ones.

    The ``lightning`` package ships the same classes as ``pytorch_lightning`` under another module
    tree; a Trainer of one rejects callbacks, loggers and modules of the other. So whether or not
    ``lightning`` is installed, every ``lightning.pytorch.`` prefix in ``--config`` files and in
    command-line values is rewritten to ``pytorch_lightning.`` before parsing: the objects built are
    always the ``pytorch_lightning`` ones that polymodal's Trainer uses. A rewritten config file is
    passed on as YAML text (the file itself is never modified).
    """
    out = list(args)
    for i, a in enumerate(out):
        if a == "--config" and i + 1 < len(out) and Path(out[i + 1]).is_file():
            text = Path(out[i + 1]).read_text()
            if _UNIFIED.search(text):
                out[i + 1] = _UNIFIED.sub("pytorch_lightning.", text)
        elif a.startswith("--config=") and Path(a.split("=", 1)[1]).is_file():
            text = Path(a.split("=", 1)[1]).read_text()
            if _UNIFIED.search(text):
                out[i] = "--config=" + _UNIFIED.sub("pytorch_lightning.", text)
        elif i == 0 or out[i - 1] != "--config":
            out[i] = _UNIFIED.sub("pytorch_lightning.", a)
    return out
