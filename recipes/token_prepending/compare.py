"""SmolLM2-135M as a training-free embedder on STS pairs: plain last token, PromptEOL, and Token Prepending as
its authors define it, next to polymodal's earlier TP (one model load, switches changed in place).

    python -m polymodal.recipes.token_prepending.compare [--data data://stsb/sts-dev.csv.gz] [--limit 0]
        [--grid] [--threads 2] [--batch-size 32] [--device cuda]

Prints cosine Spearman per variant and a JSON line. ``--grid`` adds the layer sweep: TP starting layer
{0, 1, 2} x exiting layer {4, 8, all} x output layer {-1, -2}. The same variants, one ``polymodal validate``
process each, are ``recipes/token_prepending/sweep.yaml`` (``polymodal sweep``).

The earlier polymodal TP differed from the authors' in four ways, each switchable here: placement (before the
whole prompt: ``tp_placement="start"``), placeholder (an existing token id, irrelevant when replacement starts at
layer 0), starting layer (0 instead of 1) and output layer (the last instead of an early exit).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

__all__ = ["GRID", "VARIANTS", "compare", "main", "variants"]

DEFAULT_DATA = "data://stsb/sts-dev.csv.gz"

_TP = {"prompt": "prompteol", "token_prepending": True}

#: name -> ``DecoderTextEncoder.configure`` switches (every other switch at its default).
VARIANTS: dict[str, dict[str, Any]] = {
    "last token": {"prompt": None, "token_prepending": False},
    "PromptEOL": {"prompt": "prompteol", "token_prepending": False},
    "PromptEOL, output -2": {"prompt": "prompteol", "token_prepending": False, "output_layer": -2},
    # polymodal's earlier TP: placeholder before the prompt, layers 0-7, last layer out
    "earlier TP (start, 0-7)": {**_TP, "tp_placement": "start", "tp_starting_layer": 0, "tp_exiting_layer": 8},
    # one difference at a time
    "TP slot, 0-7": {**_TP, "tp_starting_layer": 0, "tp_exiting_layer": 8},
    "TP start, 1-7": {**_TP, "tp_placement": "start", "tp_starting_layer": 1, "tp_exiting_layer": 8},
    "TP slot, 1-7": {**_TP, "tp_starting_layer": 1, "tp_exiting_layer": 8},
    "TP slot, 1-7, output -2": {**_TP, "tp_starting_layer": 1, "tp_exiting_layer": 8, "output_layer": -2},
    # the official defaults: <PST> at the slot, from layer 1 through the last
    "TP official defaults (slot, 1-all)": {**_TP, "tp_starting_layer": 1, "tp_exiting_layer": None},
}

#: the layer sweep added by ``--grid``: (starting, exiting (None: all), output)
GRID: list[tuple[int, int | None, int]] = [
    (start, stop, out) for start in (0, 1, 2) for stop in (4, 8, None) for out in (-1, -2)
]


def variants(grid: bool = False) -> dict[str, dict[str, Any]]:
    """The named variants, with the layer grid when ``grid``."""
    out = dict(VARIANTS)
    if grid:
        for start, stop, layer in GRID:
            name = f"TP slot, layers {start}-{'all' if stop is None else stop - 1}, output {layer}"
            out[name] = {**_TP, "tp_starting_layer": start, "tp_exiting_layer": stop, "output_layer": layer}
    return out


def compare(
    encoder: Any, data: str, limit: int = 0, batch_size: int = 32, grid: bool = False, names: list[str] | None = None
) -> dict[str, float]:
    """Spearman per variant for a :class:`DecoderTextEncoder`, switched in place (``names``: a subset)."""
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
    table = variants(grid)
    unknown = sorted(set(names or []) - set(table))
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; choose from {list(table)}")
    results = {}
    for name, switches in table.items():
        if names and name not in names:
            continue
        defaults = {"tp_placement": "slot", "tp_starting_layer": 1, "tp_exiting_layer": None, "output_layer": -1}
        encoder.configure(**{**defaults, **switches})
        start = time.perf_counter()
        res = sts(EmbeddingModel(encoder, LastTokenPooler()))
        results[name] = round(res.spearman, 4)
        seconds = time.perf_counter() - start
        print(f"{name:44s} Spearman {res.spearman:.4f}  Pearson {res.pearson:.4f}  ({seconds:.0f} s)", flush=True)
    return results


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=0, help="first N pairs only (0: all)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--grid", action="store_true", help="add the starting x exiting x output layer sweep")
    parser.add_argument("--only", nargs="*", default=None, help="run only these variant names")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.only or []) - set(variants(args.grid)))
    if unknown:  # before the model load: a typo costs one line, not a minute
        parser.error(f"unknown variant(s) {unknown}; choose from {list(variants(args.grid))}")
    import torch

    from polymodal.io import resolve_path
    from polymodal.plugins.text.decoder import DecoderTextEncoder

    if args.threads:
        torch.set_num_threads(args.threads)
    data = str(resolve_path(args.data, what="STS table"))
    encoder = DecoderTextEncoder("smollm2-135m").eval().to(args.device)
    start = time.process_time()
    results = compare(encoder, data, args.limit, args.batch_size, args.grid, args.only)
    summary = {
        "data": args.data,
        "pairs_limit": args.limit,
        "device": args.device,
        "cpu_s": time.process_time() - start,
    }
    print(json.dumps({**summary, **results}))
    return results


if __name__ == "__main__":
    main()
