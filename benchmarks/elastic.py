"""Elastic inference of a 2DMSE model: ``EmbeddingModel.truncate(layers, dim)`` vs the full-depth model.

For every layer count ``k`` the model is truncated (layers after ``k`` are removed from the module),
the unique STS-B dev sentences are encoded, and each ``(k, dim)`` cell reports the encode time and
the STS-B dev cosine Spearman of the first ``dim`` dimensions. The full-depth model is the peer: a
user without truncation runs all layers and can only cut dimensions (sentence-transformers'
``truncate_dim``). Timings alternate between the layer counts in one process, best of ``--repeats``.
Checked: each truncated model's embeddings equal the full model's layer-``k`` embeddings
(:func:`polymodal.evaluation.elastic.encode_layers`, what 2DMSE trains) to 1e-4.

    python benchmarks/elastic.py --model runs/matryoshka_2d/model [--layers 1 2 3 4 5 6] \\
        [--dims 48 96 192 384] [--default 4 192] [--threads 1] [--repeats 3] [--markdown out.md]

Prints ``ratio: X`` = full-depth encode time / truncated encode time at the ``--default`` cell
(the one the README recommends).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = (
    Path(os.environ.get("POLYMODAL_SHARED_DATA", REPO.parent / "shared" / "data")) / "stsb" / "sts-dev.csv.gz"
)


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="runs/matryoshka_2d/model")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--layers", nargs="+", type=int, default=None, help="layer counts (default: 1..depth)")
    parser.add_argument("--dims", nargs="+", type=int, default=[48, 96, 192, 384])
    parser.add_argument("--default", nargs=2, type=int, default=[4, 192], metavar=("LAYERS", "DIM"))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    parser.add_argument("--time-sentences", type=int, default=0, help="time on N of the sentences (0: all)")
    parser.add_argument(
        "--cpu-time", action="store_true", help="time with process CPU seconds (robust on a loaded machine)"
    )
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    import polymodal
    from polymodal.data.tables import read_table
    from polymodal.evaluation.elastic import encode_layers
    from polymodal.evaluation.sts import STSEvaluator

    torch.set_num_threads(args.threads)
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    df = read_table(args.data)
    s1, s2 = df["sentence1"].astype(str).tolist(), df["sentence2"].astype(str).tolist()
    gold = df["score"].astype(float).to_numpy()
    unique = list(dict.fromkeys(s1 + s2))
    pos = {s: i for i, s in enumerate(unique)}
    i1, i2 = [pos[s] for s in s1], [pos[s] for s in s2]

    full = polymodal.load(args.model)
    depth = full.encoder.num_layers
    layers = sorted(set(args.layers or range(1, depth + 1)) | {depth, args.default[0]})
    dims = sorted(set(args.dims) | {args.default[1], full.dim})
    print(f"model {args.model}: {depth} layers, {full.dim} dims; {len(unique)} sentences, {len(df)} pairs")

    reference = encode_layers(full, unique, layers, batch_size=args.batch_size)
    models = {k: full.truncate(layers=k) for k in layers}
    emb: dict[int, np.ndarray] = {}
    for k, m in models.items():
        emb[k] = m.encode(unique, batch_size=args.batch_size, streams=1)
        diff = float(np.abs(emb[k] - reference[k]).max())
        assert diff < 1e-4, f"truncated {k}-layer model differs from layer {k} embeddings by {diff}"
    params = {k: sum(p.numel() for p in m.parameters()) for k, m in models.items()}

    timed = unique
    if args.time_sentences:
        pick = np.random.default_rng(0).choice(len(unique), size=min(args.time_sentences, len(unique)), replace=False)
        timed = [unique[i] for i in sorted(pick)]
    times: dict[int, list[float]] = {k: [] for k in layers}
    walls: dict[int, list[float]] = {k: [] for k in layers}
    for _ in range(args.repeats):
        for k in layers:  # alternate so machine load hits every layer count alike
            start, cpu = time.perf_counter(), time.process_time()
            models[k].encode(timed, batch_size=args.batch_size, streams=1)
            times[k].append(time.process_time() - cpu if args.cpu_time else time.perf_counter() - start)
            walls[k].append(time.perf_counter() - start)
    best = {k: min(v) for k, v in times.items()}
    print(f"timed {len(timed)} sentences; {'process CPU' if args.cpu_time else 'wall'} seconds, best of {args.repeats}")
    print("wall seconds, best: " + ", ".join(f"{k} layers {min(walls[k]):.2f}" for k in layers))
    scores = {(k, d): STSEvaluator.score(emb[k][i1, :d], emb[k][i2, :d], gold).spearman for k in layers for d in dims}

    head = "| layers | params (M) | encode s | sent/s | speed-up | " + " | ".join(f"dim {d}" for d in dims) + " |"
    rule = "|---|---|---|---|---|" + "---|" * len(dims)
    rows = [
        f"| {k} | {params[k] / 1e6:.1f} | {best[k]:.2f} | {len(timed) / best[k]:.0f} | {best[depth] / best[k]:.2f}x | "
        + " | ".join(f"{scores[(k, d)]:.4f}" for d in dims)
        + " |"
        for k in layers
    ]
    table = "\n".join([head, rule, *rows])
    print(f"\nSTS-B dev cosine Spearman per (layers, dim); encode best of {args.repeats}, {args.threads} thread(s)")
    print(table)
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    if args.markdown:
        args.markdown.write_text(table + "\n")
    k, d = args.default
    ratio = best[depth] / best[k]
    print(
        f"default cell ({k} layers, {d} dims): Spearman {scores[(k, d)]:.4f} vs full {scores[(depth, full.dim)]:.4f}; "
        f"{best[k]:.2f}s vs {best[depth]:.2f}s"
    )
    print(f"ratio: {ratio:.2f}")
    return ratio


if __name__ == "__main__":
    main()
