"""``polymodal data list|fetch|verify [NAME] [--dir DIR]``: the datasets recipes use.

Nothing downloads unless you run ``fetch``. ``fetch`` takes the archive ``<mirror>/<NAME>.tar.gz``
from ``--from URL`` (or ``$POLYMODAL_DATA_MIRROR``), resumes a partial download, and installs the
folder only when every file matches its registered sha256 (see :mod:`polymodal.datasets`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["list", "fetch", "verify"])
    parser.add_argument("names", nargs="*", metavar="NAME", help="dataset names (default for list/verify: all)")
    parser.add_argument("--dir", type=Path, default=None, help="dataset root to use instead of the cache")
    parser.add_argument(
        "--from",
        dest="mirror",
        default=None,
        help="base URL holding NAME.tar.gz (http(s):// or file://); default $POLYMODAL_DATA_MIRROR",
    )


def _list(names: list[str], extra: Path | None) -> int:
    from polymodal.datasets import DATASETS, locate

    rows = [("dataset", "MB", "status", "licence", "title")]
    for name in names:
        ds = DATASETS[name]
        found = locate(name, extra)
        status = f"present ({found[0]}: {found[1]})" if found else f"missing: {ds.fetch_command}"
        rows.append((name, f"{ds.bytes / 1e6:.1f}", status, ds.licence, ds.title))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + f"  {r[3]}")
    print("\nsources (see each dataset's SOURCE.md for how the team's copy was derived):")
    for name in names:
        print(f"  {name}: {DATASETS[name].source}")
    return 0


def _verify(names: list[str], extra: Path | None) -> int:
    from polymodal.datasets import DATASETS, locate, verify

    bad = 0
    for name in names:
        found = locate(name, extra)
        if found is None:
            print(f"{name}: missing (run `{DATASETS[name].fetch_command}`)")
            bad += 1
            continue
        problems = verify(name, found[1])
        if problems:
            bad += 1
            print(f"{name}: {len(problems)} problem(s) in {found[1]}: " + "; ".join(problems[:3]))
        else:
            print(f"{name}: ok, {len(DATASETS[name].files)} files verified ({found[0]}: {found[1]})")
    return 1 if bad else 0


def _fetch(names: list[str], extra: Path | None, mirror: str | None) -> int:
    from polymodal.datasets import LineProgress, cache_dir, fetch, locate, verify

    if not names:
        raise ValueError("fetch needs dataset names (polymodal data list shows them)")
    mirror = mirror or os.environ.get("POLYMODAL_DATA_MIRROR")
    for name in names:
        found = locate(name, extra)
        if found is not None and not verify(name, found[1]):
            print(f"{name}: already present and verified ({found[0]}: {found[1]})")
            continue
        if not mirror:
            raise ValueError(
                f"{name}: no download source: pass --from URL (a folder serving {name}.tar.gz) or set "
                "POLYMODAL_DATA_MIRROR; the team's copies also register as-is via POLYMODAL_SHARED_DATA"
            )
        progress = LineProgress(f"fetch {name}")
        try:
            target = fetch(name, mirror, extra or cache_dir(), progress)
        finally:
            progress.close()
        print(f"{name}: fetched and verified -> {target}")
    return 0


def run(ns: argparse.Namespace) -> int:
    from polymodal.datasets import DATASETS, _get

    names = list(ns.names) or ([] if ns.action == "fetch" else sorted(DATASETS))
    for name in names:
        _get(name)  # unknown names fail first, with a did-you-mean
    if ns.action == "list":
        return _list(names, ns.dir)
    if ns.action == "verify":
        return _verify(names, ns.dir)
    return _fetch(names, ns.dir, ns.mirror)
