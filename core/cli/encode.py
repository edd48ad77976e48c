"""``polymodal encode``."""

from __future__ import annotations

import argparse
import math
from typing import Any

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--column", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--layout", default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--normalize", action="store_true")
    parser.add_argument("--chunk-rows", type=int, default=8192, help="rows read and encoded at a time (bounds memory)")


def check_values(model: Any, values: list[Any], path: str, column: str, first_row: int = 0) -> None:
    """Validate each cell with the model's processor; the first bad one is one line naming the row."""
    validate = model.encoder.processor.validate
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            raise ValueError(f"{path}: row {first_row + i}, column {column!r} is empty; every row needs a value")
        try:
            validate(v)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: row {first_row + i}, column {column!r}: {exc}") from None


def run(ns: argparse.Namespace) -> int:
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
    from polymodal.datasets import LineProgress

    bar = LineProgress("encode", unit="item")  # a tqdm bar on a terminal, a line every 10 s in a log
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
                check_values(model, values, ns.input, ns.column, first_row=written)
                batches = model.iter_encode(
                    values,
                    ns.batch_size,
                    ns.normalize or None,
                    chunk_size=ns.chunk_rows,
                    progress=lambda k, offset=written: bar(offset + k, n),  # every batch, not every chunk
                )
                for _, emb in batches:
                    fh.write(emb.numpy().astype(np.float32, copy=False).tobytes())
                written += len(values)
                bar(written, n)
            if written != n:
                raise RuntimeError(f"{ns.input} changed while encoding: {n} rows counted, {written} read")
    finally:
        bar.close()
    emb = np.load(ns.output, mmap_mode="r")
    print(f"wrote {emb.shape[0]} x {emb.shape[1]} embeddings to {ns.output}")
    return 0
