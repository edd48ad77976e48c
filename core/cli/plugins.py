"""``polymodal plugins``."""

from __future__ import annotations

import argparse
import json

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(ns: argparse.Namespace) -> int:
    from polymodal.plugins_manager import load_plugins, modalities

    plugins = load_plugins()
    mods = modalities()
    if ns.json:
        print(json.dumps([vars(p) for p in plugins.values()], indent=2))
        return 0
    rows = [("plugin", "distribution", "version", "modalities", "import", "status")]
    for p in plugins.values():
        status = p.status if p.status == "loaded" else f"{p.status}: {p.error}"
        took = f"{p.import_seconds:.2f}s" if p.status != "disabled" else "-"
        rows.append((p.name, p.distribution, p.version, ",".join(p.modalities) or "-", took, status))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5])
    named = sorted(n for m in mods.values() for n in m.pretrained)
    if named:
        print(f"\npretrained short names: {', '.join(named)}")
    return 0
