"""Definition -> entry retrieval on the HELD-OUT entries of a dictionary (entries no training row belongs to).

For every held-out definition, the entries are ranked by the cosine between the definition's embedding and each
entry's table vector (mean of the entry's definitions, centred + normalised as in training), where the
definition's own entry uses the mean of its OTHER definitions (leave-one-out, so the answer is never the query
itself). Reports top-1 / top-10 accuracy and MRR for each model::

    python -m polymodal.recipes.defsent_plus.heldout --model minilm-l6 --model runs/.../model
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from polymodal.recipes.defsent_plus.data import DictionaryDefinitions
from polymodal.recipes.defsent_plus.table import DefinitionEntryLoss

__all__ = ["heldout_retrieval", "main"]


def heldout_retrieval(model: object, source: DictionaryDefinitions, batch_size: int = 128) -> dict[str, float]:
    """Top-1, top-10 accuracy and MRR of leave-one-out definition -> entry retrieval over ``source``'s rows."""
    df = source.frame()
    emb = model.encode(df["definition"].tolist(), batch_size=batch_size, convert_to="tensor").clone()  # (N, D)
    ids = torch.tensor(df["entry_id"].tolist())
    objective = DefinitionEntryLoss(leave_one_out=True)
    table = objective.entries
    rows = list(range(1, len(df) + 1))
    table.set_rows(emb, ids, rows, keep_rows=True)
    logits = table.logits(emb, 1.0)  # (N, E) cosines
    own = (table.project(emb) * table.leave_one_out(ids, rows)).sum(-1)  # (N,)
    logits = logits.scatter(1, ids[:, None], own[:, None])
    rank = (logits > own[:, None]).sum(1) + 1  # (N,) 1 = best
    return {
        "definitions": float(len(df)),
        "entries": float(table.table.shape[0]),
        "top1": float((rank == 1).float().mean()),
        "top10": float((rank <= 10).float().mean()),
        "mrr": float((1.0 / rank.float()).mean()),
    }


def main(argv: list[str] | None = None) -> int:
    import polymodal

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="a registered name or a model folder")
    parser.add_argument("--path", default=None, help="dictionary JSON (default: the installed GCIDE)")
    parser.add_argument("--max-entries", type=int, default=2000)
    parser.add_argument("--heldout", type=float, default=0.1)
    parser.add_argument("--max-definitions", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    source = DictionaryDefinitions(
        path=args.path,
        max_definitions=args.max_definitions,
        min_definitions=2,
        max_entries=args.max_entries,
        heldout=args.heldout,
        part="heldout",
        missing="skip",
        seed=args.seed,
    )
    for name in args.model:
        start = time.perf_counter()
        result = heldout_retrieval(polymodal.load(name), source)
        result["seconds"] = round(time.perf_counter() - start, 1)
        print(json.dumps({"model": name, **result}), flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
