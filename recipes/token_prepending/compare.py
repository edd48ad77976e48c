"""SmolLM2-135M as a training-free embedder on STS pairs: last token vs PromptEOL vs PromptEOL +
Token Prepending (one model load, switches changed in place).

    python -m polymodal.recipes.token_prepending.compare [--data ../shared/data/stsb/sts-dev.csv.gz]
        [--limit 0] [--tp-layers 0 7] [--sweep 0 3 --sweep 0 15 ...] [--threads 2] [--batch-size 32]
        [--device cuda]

Prints cosine Spearman per variant and a JSON line. Each ``--sweep A B`` adds one more
"prompt + Token Prepending" variant with TP on layers A..B (the paper's ablation of where to stop
prepending).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

__all__ = ["compare", "main"]

DEFAULT_DATA = Path(os.environ.get("POLYMODAL_SHARED_DATA", "../shared/data")) / "stsb" / "sts-dev.csv.gz"

VARIANTS = {
    "last token": {"prompt": None, "token_prepending": False},
    "prompt (PromptEOL)": {"prompt": "prompteol", "token_prepending": False},
    "prompt + Token Prepending": {"prompt": "prompteol", "token_prepending": True},
}


def compare(encoder, data: str, limit: int = 0, batch_size: int = 32, tp_layers=(0, 7), sweep=()) -> dict[str, float]:
    """Spearman per variant for a :class:`DecoderTextEncoder` (switched in place); ``sweep``: extra
    ``(first, last)`` TP layer ranges, each run with the PromptEOL prompt."""
    from polymodal.data.tables import check_columns, read_table
    from polymodal.evaluation import STSEvaluator
    from polymodal.model import EmbeddingModel
    from polymodal.poolers import LastTokenPooler

    df = read_table(data)
    check_columns(df, ["sentence1", "sentence2", "score"], data)
    if limit:
        df = df.iloc[:limit]
    sts = STSEvaluator(
        df["sentence1"].astype(str).tolist(),
        df["sentence2"].astype(str).tolist(),
        df["score"].astype(float).tolist(),
        batch_size=batch_size,
    )
    variants = [(name, {**switches, "tp_layers": tuple(tp_layers)}) for name, switches in VARIANTS.items()]
    for first, last in sweep:
        variants.append(
            (
                f"prompt + TP layers {first}-{last}",
                {"prompt": "prompteol", "token_prepending": True, "tp_layers": (first, last)},
            )
        )
    results = {}
    for name, switches in variants:
        encoder.configure(**switches)
        start = time.perf_counter()
        res = sts(EmbeddingModel(encoder, LastTokenPooler()))
        results[name] = round(res.spearman, 4)
        print(
            f"{name:28s} Spearman {res.spearman:.4f}  Pearson {res.pearson:.4f}  ({time.perf_counter() - start:.0f} s)"
        )
    return results


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--limit", type=int, default=0, help="first N pairs only (0: all)")
    parser.add_argument("--tp-layers", nargs=2, type=int, default=[0, 7])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sweep", nargs=2, type=int, action="append", default=[], metavar=("FIRST", "LAST"))
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    args = parser.parse_args(argv)
    import torch

    from polymodal.plugins.text.decoder import DecoderTextEncoder

    if args.threads:
        torch.set_num_threads(args.threads)
    encoder = DecoderTextEncoder("smollm2-135m").eval().to(args.device)
    results = compare(encoder, args.data, args.limit, args.batch_size, args.tp_layers, args.sweep)
    print(
        json.dumps(
            {
                "data": args.data,
                "pairs_limit": args.limit,
                "tp_layers": args.tp_layers,
                "device": args.device,
                **results,
            }
        )
    )
    return results


if __name__ == "__main__":
    main()
