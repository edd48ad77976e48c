"""Evaluate models on STS pairs at every (layer, dim) point and print one table per model.

    python -m polymodal.recipes.matryoshka_2d.evaluate --models runs/matryoshka_2d/model \
        runs/matryoshka_2d-baseline/model [--data ../shared/data/stsb/sts-dev.csv.gz] \
        [--layers 2 4 6] [--dims 48 96 192 384] [--threads 2] [--json out.json]

Models are saved folders or short names (``minilm-l6``); a model whose encoder cannot return
hidden states is evaluated at its last layer only.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

__all__ = ["evaluate_models", "main"]

DEFAULT_DATA = Path(os.environ.get("POLYMODAL_SHARED_DATA", "../shared/data")) / "stsb" / "sts-dev.csv.gz"


def evaluate_models(models: list[str], data: str, layers: list[int], dims: list[int], limit: int = 0) -> dict:
    import polymodal
    from polymodal.data.tables import check_columns, read_table
    from polymodal.evaluation import ElasticEvaluator, STSEvaluator

    df = read_table(data)
    check_columns(df, ["sentence1", "sentence2", "score"], data)
    if limit:
        df = df.iloc[:limit]
    sts = STSEvaluator(
        df["sentence1"].astype(str).tolist(), df["sentence2"].astype(str).tolist(), df["score"].astype(float).tolist()
    )
    out = {}
    for name in models:
        model = polymodal.load(name)
        result = ElasticEvaluator(sts, layers=layers, dims=dims, metric="spearman")(model)
        print(f"\n{name}  (STS {data}, {len(df)} pairs, cosine Spearman)")
        print(result.table())
        out[name] = {f"{layer}x{dim}": round(v, 4) for (layer, dim), v in result.scores.items()}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--layers", nargs="+", type=int, default=[2, 4, 6])
    parser.add_argument("--dims", nargs="+", type=int, default=[48, 96, 192, 384])
    parser.add_argument("--limit", type=int, default=0, help="first N pairs only (0: all)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the scores here")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    scores = evaluate_models(args.models, args.data, args.layers, args.dims, args.limit)
    if args.json:
        Path(args.json).write_text(json.dumps(scores, indent=2))
    return scores


if __name__ == "__main__":
    main()
