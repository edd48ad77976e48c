"""``polymodal recipes``."""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def run(ns: argparse.Namespace) -> int:
    from polymodal.recipes import recipe_root, recipes

    for name, configs in recipes().items():
        print(name)
        for cfg in configs:
            first = cfg.read_text().splitlines()[:1]
            about = first[0].lstrip("# ").strip() if first and first[0].startswith("#") else ""
            print(f"  recipes/{name}/{cfg.name}" + (f"  - {about}" if about else ""))
    print(f"\n(installed at {recipe_root()})")
    return 0
