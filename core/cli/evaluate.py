"""``polymodal evaluate``."""

from __future__ import annotations

import argparse
import json

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


def load_pairs(path: str, layout: str | None, columns: str | None):
    from polymodal.data.tables import check_columns, read_table

    names = [c.strip() for c in (columns or "sentence1,sentence2,score").split(",")]
    if len(names) == 2:  # two sentence columns: the score column keeps its default name
        names.append("score")
    if len(names) != 3 or not all(names):
        raise ValueError(f"--columns: expected 'sentence1,sentence2[,score]' column names, got {columns!r}")
    s1, s2, score = names
    df = read_table(path, layout=layout)
    check_columns(df, [s1, s2, score], path)
    return df[s1].astype(str).tolist(), df[s2].astype(str).tolist(), df[score].astype(float).tolist()


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
        "cosine_spearman": round(result.spearman, 6),
        "cosine_pearson": round(result.pearson, 6),
        "seconds": round(seconds, 2),
    }
    print(f"STS  {ns.data}  ({result.n} pairs)")
    print(f"  cosine Spearman  {result.spearman:.6f}")
    print(f"  cosine Pearson   {result.pearson:.6f}")
    print(json.dumps(record))
    return 0
