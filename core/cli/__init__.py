"""The ``polymodal`` command: LightningCLI (fit/validate/test/predict) plus plain subcommands.

Each plain subcommand lives in its own module ``polymodal.cli.<name>`` with ``add_arguments(parser)``
and ``run(namespace) -> int``; :data:`COMMANDS` lists them with their one-line help, so the top-level
help needs no imports. Plugins load before a Lightning command parses, so short class names from
plugins resolve in YAML.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["COMMANDS", "LIGHTNING_COMMANDS", "main", "run"]

#: Lightning subcommands (YAML configs, ``--trainer.*`` / ``--model.*`` / ``--data.*`` options).
LIGHTNING_COMMANDS = {
    "fit": "train a recipe config (LightningCLI)",
    "validate": "run validation of a config / checkpoint",
    "test": "run the test split of a config / checkpoint",
    "predict": "run prediction of a config / checkpoint",
}

#: Plain subcommands: name -> one-line help. The module ``polymodal.cli.<name>`` implements it.
COMMANDS: dict[str, str] = {
    "plugins": "list plugins, their modalities and status",
    "recipes": "list shipped recipes and their configs",
    "evaluate": "STS evaluation: cosine Spearman/Pearson of a model on scored pairs",
    "encode": "embed one column of a table into a .npy file",
    "sweep": "run named override sets of shipped configs and collect one results table",
    "models": "list registered model names (pretrained and architectures) with their cards",
    "caption": "caption images (or answer a prompt about them) with a saved prefix-LM (CG-VLM) model folder",
}


def _command_parser(name: str) -> argparse.ArgumentParser:
    module = importlib.import_module(f"polymodal.cli.{name}")
    parser = argparse.ArgumentParser(prog=f"polymodal {name}", description=COMMANDS[name])
    module.add_arguments(parser)
    parser.set_defaults(func=module.run)
    return parser


def main(args: Sequence[str] | None = None) -> Any:
    """Entry point of the ``polymodal`` script; tests call ``main([...])``.

    Returns the LightningCLI object for Lightning subcommands, else an exit code.
    """
    argv = list(sys.argv[1:] if args is None else args)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the Hub implicitly
    from polymodal.plugins_manager import load_plugins

    load_plugins()
    if argv and argv[0] in COMMANDS:
        ns = _command_parser(argv[0]).parse_args(argv[1:])
        try:
            return ns.func(ns)
        except (FileNotFoundError, KeyError, ValueError, OSError, ImportError) as exc:
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            print(f"polymodal {argv[0]}: error: {msg}", file=sys.stderr)
            if args is None:
                raise SystemExit(2) from None
            raise
    from polymodal.cli.lightning import lightning_cli, resolve_config_args

    if argv and argv[0] in LIGHTNING_COMMANDS:
        argv = resolve_config_args(argv)
    if args is None:  # LightningCLI reads sys.argv itself and warns if given both
        sys.argv[1:] = argv
        return lightning_cli(None)
    return lightning_cli(argv)


def run() -> int:
    """Console-script wrapper: exit status 0 on success (Lightning raises on failure)."""
    result = main()
    return result if isinstance(result, int) else 0
