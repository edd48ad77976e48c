"""``polymodal models``: registered model names and their cards."""

from __future__ import annotations

import argparse
import json

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pattern", nargs="?", default=None, help="shell glob over names, e.g. '*minilm*'")
    parser.add_argument("--kind", choices=["pretrained", "architecture"], default=None)
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(ns: argparse.Namespace) -> int:
    from polymodal.registry import list_models, model_card

    cards = [model_card(n) for n in list_models(ns.pattern, kind=ns.kind)]
    if ns.json:
        keys = ("name", "kind", "modality", "description", "source", "licence", "paper", "preprocessing", "owner")
        print(json.dumps([{k: getattr(c, k) for k in keys} for c in cards], indent=2))
        return 0
    for c in cards:
        print(f"{c.name}  [{c.kind}, {c.modality or '-'}, from {c.owner}]  {c.description}")
        for label, value in (
            ("source", c.source),
            ("licence", c.licence),
            ("paper", c.paper),
            ("input", c.preprocessing),
        ):
            if value:
                print(f"    {label}: {value}")
    if not cards:
        print("no registered model matches")
    return 0
