"""The ``polymodal`` command: LightningCLI (fit/validate/test/predict) plus plain subcommands.

Plain subcommands: ``plugins``, ``recipes``, ``evaluate``, ``encode``. Plugins load before any
parsing so short class names from plugins resolve in YAML.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

LIGHTNING_COMMANDS = {"fit", "validate", "test", "predict"}
PLAIN_COMMANDS = {"plugins", "recipes", "evaluate", "encode"}


def _resolve_config_args(args: list[str]) -> list[str]:
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


def _lightning(args: list[str] | None) -> Any:
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


def _cmd_plugins(ns: argparse.Namespace) -> int:
    from polymodal.plugins_manager import load_plugins, modalities

    plugins = load_plugins()
    mods = modalities()
    if ns.json:
        print(json.dumps([vars(p) for p in plugins.values()], indent=2))
        return 0
    rows = [("plugin", "distribution", "version", "modalities", "status")]
    for p in plugins.values():
        status = p.status if p.status == "loaded" else f"{p.status}: {p.error}"
        rows.append((p.name, p.distribution, p.version, ",".join(p.modalities) or "-", status))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
    named = sorted(n for m in mods.values() for n in m.pretrained)
    if named:
        print(f"\npretrained short names: {', '.join(named)}")
    return 0


def _cmd_recipes(ns: argparse.Namespace) -> int:
    from polymodal.recipes import recipe_root, recipes

    for name, configs in recipes().items():
        print(name)
        for cfg in configs:
            first = cfg.read_text().splitlines()[:1]
            about = first[0].lstrip("# ").strip() if first and first[0].startswith("#") else ""
            print(f"  recipes/{name}/{cfg.name}" + (f"  - {about}" if about else ""))
    print(f"\n(installed at {recipe_root()})")
    return 0


def _load_pairs(path: str, layout: str | None, columns: str | None):
    from polymodal.data.tables import check_columns, read_table

    df = read_table(path, layout=layout)
    s1, s2, score = (columns or "sentence1,sentence2,score").split(",")
    check_columns(df, [s1, s2, score], path)
    return df[s1].astype(str).tolist(), df[s2].astype(str).tolist(), df[score].astype(float).tolist()


def _cmd_evaluate(ns: argparse.Namespace) -> int:
    import time

    import torch

    import polymodal
    from polymodal.evaluation import STSEvaluator

    if ns.threads:
        torch.set_num_threads(ns.threads)
    s1, s2, gold = _load_pairs(ns.data, ns.layout, ns.columns)
    model = polymodal.load(ns.model)
    start = time.perf_counter()
    result = STSEvaluator(s1, s2, gold, batch_size=ns.batch_size)(model)
    seconds = time.perf_counter() - start
    record = {
        "model": ns.model,
        "data": ns.data,
        "pairs": result.n,
        "cosine_spearman": round(result.spearman, 6),
        "cosine_pearson": round(result.pearson, 6),
        "seconds": round(seconds, 2),
    }
    print(f"STS  {ns.data}  ({result.n} pairs)")
    print(f"  cosine Spearman  {result.spearman:.6f}")
    print(f"  cosine Pearson   {result.pearson:.6f}")
    print(json.dumps(record))
    return 0


def _cmd_encode(ns: argparse.Namespace) -> int:
    import numpy as np

    import polymodal
    from polymodal.data.tables import iter_table
    from polymodal.io import atomic_path

    def chunks():
        return iter_table(ns.input, layout=ns.layout, columns=[ns.column], chunk_rows=ns.chunk_rows)

    # First pass counts rows (the .npy header needs the shape); the second streams chunks of the
    # table through the model straight into the file. Neither the table, the texts nor the
    # embeddings are ever resident as a whole: memory is flat in the number of rows.
    n = sum(len(c) for c in chunks())
    model = polymodal.load(ns.model)
    bar = None
    try:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc="encode", unit="item")
    except ImportError:  # pragma: no cover
        pass
    written = 0
    try:
        with atomic_path(ns.output) as tmp, open(tmp, "wb") as fh:
            header = {
                "descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                "fortran_order": False,
                "shape": (n, model.dim),
            }
            np.lib.format.write_array_header_2_0(fh, header)
            for frame in chunks():
                values = frame[ns.column].tolist()
                for _, emb in model.iter_encode(values, ns.batch_size, ns.normalize or None, chunk_size=ns.chunk_rows):
                    fh.write(emb.numpy().astype(np.float32, copy=False).tobytes())
                written += len(values)
                if bar is not None:
                    bar.update(len(values))
            if written != n:
                raise RuntimeError(f"{ns.input} changed while encoding: {n} rows counted, {written} read")
    finally:
        if bar is not None:
            bar.close()
    emb = np.load(ns.output, mmap_mode="r")
    print(f"wrote {emb.shape[0]} x {emb.shape[1]} embeddings to {ns.output}")
    return 0


def _plain_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="polymodal", description="polymodal plain subcommands")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plugins", help="list plugins, their modalities and status")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_plugins)
    p = sub.add_parser("recipes", help="list shipped recipes and their configs")
    p.set_defaults(func=_cmd_recipes)
    p = sub.add_parser("evaluate", help="STS evaluation: cosine Spearman/Pearson of a model on scored pairs")
    p.add_argument("--model", required=True, help="short name (minilm-l6) or saved model folder")
    p.add_argument("--data", required=True, help="table with two sentence columns and a score")
    p.add_argument("--layout", default=None, help="named layout for header-less files (stsb; auto-detected)")
    p.add_argument("--columns", default=None, help="sentence1,sentence2,score column names")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.set_defaults(func=_cmd_evaluate)
    p = sub.add_parser("encode", help="embed one column of a table into a .npy file")
    p.add_argument("--model", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--column", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--layout", default=None)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--normalize", action="store_true")
    p.add_argument("--chunk-rows", type=int, default=8192, help="rows read and encoded at a time (bounds memory)")
    p.set_defaults(func=_cmd_encode)
    return parser


def main(args: Sequence[str] | None = None) -> Any:
    """Entry point of the ``polymodal`` script; tests call ``main([...])``.

    Returns the LightningCLI object for Lightning subcommands, else an exit code.
    """
    argv = list(sys.argv[1:] if args is None else args)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the Hub implicitly
    from polymodal.plugins_manager import load_plugins

    load_plugins()
    if argv and argv[0] in PLAIN_COMMANDS:
        ns = _plain_parser().parse_args(argv)
        try:
            return ns.func(ns)
        except (FileNotFoundError, KeyError, ValueError, OSError, ImportError) as exc:
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            print(f"polymodal {argv[0]}: error: {msg}", file=sys.stderr)
            if args is None:
                raise SystemExit(2) from None
            raise
    if argv and argv[0] in LIGHTNING_COMMANDS:
        argv = _resolve_config_args(argv)
    if args is None:  # LightningCLI reads sys.argv itself and warns if given both
        sys.argv[1:] = argv
        return _lightning(None)
    return _lightning(argv)


def run() -> int:
    """Console-script wrapper: exit status 0 on success (Lightning raises on failure)."""
    result = main()
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(run())
