"""PyKEEN baselines on the recipe's shipped splits: TransE, RotatE and QuatE trained the way the recipe trains
(LCWA = 1-N scoring with reciprocal relations, BCE with label smoothing 0.1, Adam lr 0.002, batch 64, the same
epochs), evaluated with PyKEEN's filtered rank-based evaluator (train + valid + test filter, both sides, realistic
ranks: the same definition as :func:`polymodal.metrics.functional.filtered_ranks`).

Usage (needs ``pip install 'polymodal[kg-baselines]'``)::

    OMP_NUM_THREADS=1 python -m polymodal.recipes.kg_hypercomplex.pykeen_baselines --graph umls --seeds 0 1 \
        --out runs/kg-pykeen-umls.json

Prints one markdown row per model (mean ± std over seeds) and writes every figure to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from polymodal.cli.lightning import run_script
from polymodal.io import atomic_path, resolve_path

MODELS = {"TransE": {}, "RotatE": {}, "QuatE": {}}
REAL_DIM = 256  # reals per entity, as the recipe's quaternion model (4 x 64)


def run(graph: str, model: str, seed: int, epochs: int) -> dict[str, float]:
    import torch
    from pykeen.pipeline import pipeline
    from pykeen.triples import TriplesFactory

    folder = resolve_path(f"package://kg_hypercomplex/data/{graph}", what="graph folder")
    train = TriplesFactory.from_path(folder / "train.txt.gz", create_inverse_triples=True)
    valid = TriplesFactory.from_path(
        folder / "valid.txt.gz", entity_to_id=train.entity_to_id, relation_to_id=train.relation_to_id
    )
    test = TriplesFactory.from_path(
        folder / "test.txt.gz", entity_to_id=train.entity_to_id, relation_to_id=train.relation_to_id
    )
    # complex models count two reals per dimension, quaternions four
    dim = {"TransE": REAL_DIM, "RotatE": REAL_DIM // 2, "QuatE": REAL_DIM // 4}[model]
    start = time.perf_counter()
    result = pipeline(
        training=train,
        validation=valid,
        testing=test,
        model=model,
        model_kwargs={"embedding_dim": dim},
        training_loop="lcwa",
        loss="BCEWithLogitsLoss",
        training_kwargs={"num_epochs": epochs, "batch_size": 64, "label_smoothing": 0.1, "use_tqdm": False},
        optimizer="Adam",
        optimizer_kwargs={"lr": 0.002},
        evaluation_kwargs={"use_tqdm": False},
        random_seed=seed,
        device=torch.device("cpu"),
    )
    seconds = time.perf_counter() - start
    m = result.metric_results
    return {
        "mrr": float(m.get_metric("both.realistic.inverse_harmonic_mean_rank")),
        "hits@1": float(m.get_metric("both.realistic.hits_at_1")),
        "hits@3": float(m.get_metric("both.realistic.hits_at_3")),
        "hits@10": float(m.get_metric("both.realistic.hits_at_10")),
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--graph", default="umls", choices=["umls", "nations"])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    results: dict[str, list[dict[str, float]]] = {}
    for model in args.models:
        for seed in args.seeds:
            results.setdefault(model, []).append(run(args.graph, model, seed, args.epochs))
            print(f"{args.graph} {model} seed {seed}: {results[model][-1]}", flush=True)
    print(
        f"| model ({args.graph}, {args.epochs} epochs, seeds {args.seeds}) | MRR | Hits@1 | Hits@3 | Hits@10 | s/run |"
    )
    print("|---|---|---|---|---|---|")
    for model, rows in results.items():
        cells = []
        for key in ("mrr", "hits@1", "hits@3", "hits@10", "seconds"):
            values = [r[key] for r in rows]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(
                f"{statistics.mean(values):.3f} ± {sd:.3f}" if key != "seconds" else f"{statistics.mean(values):.0f}"
            )
        print(f"| PyKEEN {model} | " + " | ".join(cells) + " |")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(args.out) as tmp:
            tmp.write_text(json.dumps({"graph": args.graph, "epochs": args.epochs, "results": results}, indent=2))


def cli(argv: list[str] | None = None) -> None:
    """:func:`main` for the command line: bad input exits with one line (``POLYMODAL_TRACEBACK=1``: the traceback)."""
    run_script(main, "python -m polymodal.recipes.kg_hypercomplex.pykeen_baselines", argv)


if __name__ == "__main__":
    cli()
