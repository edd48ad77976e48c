"""``polymodal index``: embed one column of a table into a FAISS or usearch index folder."""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from polymodal.index import BACKENDS

    precisions = sorted({p for ps in BACKENDS.values() for p in ps})
    parser.add_argument("--model", required=True, help="registered model name or model folder")
    parser.add_argument("--input", required=True, help="table (csv/tsv/jsonl/parquet, optionally .gz)")
    parser.add_argument("--column", required=True, help="column to embed")
    parser.add_argument("--output", required=True, help="index folder to write")
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="faiss")
    parser.add_argument("--precision", choices=precisions, default="float32")
    parser.add_argument("--layout", default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--no-documents", action="store_true", help="store ids only, not the texts")


def run(ns: argparse.Namespace) -> int:
    import polymodal
    from polymodal.data.tables import iter_table

    values: list = []
    for frame in iter_table(ns.input, layout=ns.layout, columns=[ns.column]):
        values.extend(frame[ns.column].tolist())
    model = polymodal.load(ns.model)
    index = model.build_index(
        values,
        ns.output,
        backend=ns.backend,
        precision=ns.precision,
        batch_size=ns.batch_size,
        model_ref=ns.model,
        store_documents=not ns.no_documents,
    )
    print(f"indexed {index.count} x {index.dim} {ns.precision} vectors with {ns.backend} in {ns.output}")
    return 0
