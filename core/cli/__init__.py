"""The ``polymodal`` command: LightningCLI (fit/validate/test/predict) plus plain subcommands.

Each plain subcommand lives in its own module ``polymodal.cli.<name>`` with ``add_arguments(parser)``
and ``run(namespace) -> int``; :data:`COMMANDS` lists them with their one-line help, so the top-level
help needs no imports (it answers in well under a second). The subcommand is parsed first; plugins
load only after that, and only for the commands that need them (the Lightning commands, so short
class names from plugins resolve in YAML, and ``plugins``).
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["COMMANDS", "LIGHTNING_COMMANDS", "main", "run"]

#: Lightning subcommands (YAML configs, ``--trainer.*`` / ``--model.*`` / ``--data.*`` options).
LIGHTNING_COMMANDS = {
    "fit": "train a recipe config (LightningCLI); writes metrics.csv, curves.png and the model",
    "validate": "run validation of a config / checkpoint",
    "test": "run the test split of a config / checkpoint",
    "predict": "write predictions of a config / checkpoint to a file (refuses random weights)",
}

#: Plain subcommands: name -> one-line help. The module ``polymodal.cli.<name>`` implements it.
COMMANDS: dict[str, str] = {
    "plugins": "list plugins, their modalities and status (with the pip install that fixes a missing extra)",
    "recipes": "list shipped recipes, their configs and the datasets/extras each needs",
    "data": "list, fetch or verify the datasets recipes use (data://NAME/FILE paths)",
    "plot": "redraw the curves and summary of a finished run from its metrics.csv",
    "evaluate": "STS evaluation: cosine Spearman/Pearson of a model on scored pairs",
    "encode": "embed one column of a table into a .npy file",
    "sweep": "run named override sets of shipped configs and collect one results table",
    "models": "list registered model names (pretrained and architectures) with their cards",
    "bench": "MMTEB-style task suite over every modality: scores, cached results, leaderboard",
    "index": "embed one column of a table into a FAISS or usearch index folder",
    "search": "query an index folder with texts (the model that built it)",
    "caption": "caption images (or answer a prompt about them) with a saved prefix-LM (CG-VLM) model folder",
}

#: Plain commands that need the plugin table before they run.
_NEEDS_PLUGINS = {"plugins"}


def _usage() -> str:
    names = {**LIGHTNING_COMMANDS, **COMMANDS}
    width = max(len(n) for n in names)
    lines = [
        "usage: polymodal COMMAND [options]    (polymodal COMMAND --help for a command's options)",
        "",
        "Multimodal representation learning on Lightning.",
        "",
        "commands:",
    ]
    lines += [f"  {n.ljust(width)}  {h}" for n, h in names.items()]
    lines += [
        "",
        "examples:",
        "  polymodal recipes",
        "  polymodal fit --config recipes/sbert/tiny.yaml",
        "  polymodal plot runs/sbert-tiny",
    ]
    return "\n".join(lines)


def suggest(name: str, choices: Sequence[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown_command(name: str) -> str:
    names = [*LIGHTNING_COMMANDS, *COMMANDS]
    return f"polymodal: unknown command {name!r}{suggest(name, names)}; commands: {', '.join(names)}"


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
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from polymodal import __version__

        print(f"polymodal {__version__}")
        return 0
    if argv[0] not in COMMANDS and argv[0] not in LIGHTNING_COMMANDS:
        print(_unknown_command(argv[0]), file=sys.stderr)
        if args is None:
            raise SystemExit(2)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the Hub implicitly
    from polymodal.plugins_manager import load_plugins

    if argv[0] in COMMANDS:
        ns = _command_parser(argv[0]).parse_args(argv[1:])
        if argv[0] in _NEEDS_PLUGINS:
            load_plugins()
        try:
            return ns.func(ns)
        except BrokenPipeError:  # `polymodal recipes | head`: the reader left, nothing to report
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        except (FileNotFoundError, KeyError, ValueError, OSError, ImportError) as exc:
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            print(f"polymodal {argv[0]}: error: {msg}", file=sys.stderr)
            if args is None:
                raise SystemExit(2) from None
            raise
    from polymodal.cli.lightning import alias_lightning_paths, lightning_cli, resolve_config_args

    load_plugins()
    argv = alias_lightning_paths(resolve_config_args(argv))
    if args is None:  # LightningCLI reads sys.argv itself and warns if given both
        sys.argv[1:] = argv
        return lightning_cli(None)
    return lightning_cli(argv)


def run() -> int:
    """Console-script wrapper: exit status 0 on success (Lightning raises on failure)."""
    result = main()
    return result if isinstance(result, int) else 0
