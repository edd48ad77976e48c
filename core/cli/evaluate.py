"""``polymodal evaluate``."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="short name (minilm-l6) or saved model folder")
    parser.add_argument("--data", required=True, help="table with two sentence columns and a score")
    parser.add_argument("--layout", default=None, help="named layout for header-less files (stsb; auto-detected)")
    parser.add_argument(
        "--columns", default=None, help="sentence1,sentence2[,score] column names (score defaults to 'score')"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")


def _text_column(values: list[Any], path: str, column: str) -> list[str]:
    """The column's cells, which must be text: an empty cell or a number is one line naming the row."""
    for i, v in enumerate(values):
        if not isinstance(v, str):
            what = "is empty" if v is None or (isinstance(v, float) and math.isnan(v)) else f"holds {v!r:.40}, not text"
            raise ValueError(f"{path}: row {i}, column {column!r} {what}; every pair needs two texts")
    return values


def _gold_column(values: list[Any], path: str, column: str) -> list[float]:
    out = []
    for i, v in enumerate(values):
        try:
            f = float(v)
        except (TypeError, ValueError):
            f = float("nan")
        if not math.isfinite(f):
            what = "is empty" if v is None or v == "" or (isinstance(v, float) and math.isnan(v)) else f"is {v!r:.40}"
            raise ValueError(f"{path}: row {i}, column {column!r} {what}; gold scores must be finite numbers")
        out.append(f)
    return out


def load_pairs(path: str, layout: str | None, columns: str | None) -> tuple[list[str], list[str], list[float]]:
    """Sentence pairs and gold scores; a bad cell is one line naming the file, row and column."""
    from polymodal.data.tables import check_columns, read_table

    names = [c.strip() for c in (columns or "sentence1,sentence2,score").split(",")]
    if len(names) == 2:  # two sentence columns: the score column keeps its default name
        names.append("score")
    if len(names) != 3 or not all(names):
        raise ValueError(f"--columns: expected 'sentence1,sentence2[,score]' column names, got {columns!r}")
    s1, s2, score = names
    df = read_table(path, layout=layout)
    check_columns(df, [s1, s2, score], path)
    if len(df) == 0:
        raise ValueError(f"{path}: no rows to evaluate")
    return (
        _text_column(df[s1].tolist(), path, s1),
        _text_column(df[s2].tolist(), path, s2),
        _gold_column(df[score].tolist(), path, score),
    )


def _json_number(x: float) -> float | None:
    """JSON has no NaN: an undefined correlation is ``null``."""
    return round(x, 6) if math.isfinite(x) else None


def run(ns: argparse.Namespace) -> int:
    import time

    import torch

    import polymodal
    from polymodal.evaluation import STSEvaluator

    if ns.threads:
        torch.set_num_threads(ns.threads)
    s1, s2, gold = load_pairs(ns.data, ns.layout, ns.columns)
    model = polymodal.load(ns.model)
    start = time.perf_counter()
    result = STSEvaluator(s1, s2, gold, batch_size=ns.batch_size)(model)
    seconds = time.perf_counter() - start
    record = {
        "model": ns.model,
        "data": ns.data,
        "pairs": result.n,
        "cosine_spearman": _json_number(result.spearman),
        "cosine_pearson": _json_number(result.pearson),
        "seconds": round(seconds, 2),
    }
    if not (math.isfinite(result.spearman) and math.isfinite(result.pearson)):
        print(
            "polymodal evaluate: warning: correlation undefined (all gold scores or all similarities are equal); "
            "reported as null",
            file=sys.stderr,
        )
    print(f"STS  {ns.data}  ({result.n} pairs)")
    print(f"  cosine Spearman  {result.spearman:.6f}")
    print(f"  cosine Pearson   {result.pearson:.6f}")
    print(json.dumps(record))
    return 0
