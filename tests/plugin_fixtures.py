"""Make throw-away installed distributions with ``polymodal`` entry points (no pip needed)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path


def make_dist(
    site: Path,
    name: str,
    entry_points: dict[str, str],
    modules: dict[str, str] | None = None,
    version: str = "0.1.0",
) -> Path:
    """Write ``<site>/<name>-<version>.dist-info`` (METADATA + entry_points.txt) and module files."""
    site.mkdir(parents=True, exist_ok=True)
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = ["[polymodal]"] + [f"{k} = {v}" for k, v in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for module, source in (modules or {}).items():
        (site / f"{module}.py").write_text(source)
    return site


def activate(monkeypatch, *paths: Path) -> None:
    """Put ``paths`` on sys.path for this test and make importlib see them."""
    for p in paths:
        monkeypatch.syspath_prepend(str(p))
    importlib.invalidate_caches()


def forget_modules(prefixes: tuple[str, ...]) -> None:
    for mod in list(sys.modules):
        if mod.startswith(prefixes):
            del sys.modules[mod]
