"""What the opt-in int8 text backend costs in quality, and what it buys in speed, on STS-B dev with MiniLM.

One process: the bundled all-MiniLM-L6-v2 with the fp32 ``"onnx"`` backend (fused graph) and with
``"onnx-int8"`` (the same graph, weights dynamically quantised to int8 per channel), both as ``--threads``
one-thread streams. Prints the STS-B dev cosine Spearman of each, the min / mean cosine between the int8 and
fp32 embedding of every unique sentence, the max abs difference, and throughput over ``--repeats``
alternated passes (min / median, load average).

    python benchmarks/int8_quality.py [--threads 2] [--repeats 2]

Ends with ``ratio: X`` = int8 throughput / fp32 ONNX throughput. ``"auto"`` never picks int8.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT = Path(os.environ.get("POLYMODAL_SHARED_DATA", REPO.parent / "shared" / "data")) / "stsb" / "sts-dev.csv.gz"


def main() -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import torch

    import polymodal
    from polymodal.data.tables import read_table
    from polymodal.evaluation.sts import STSEvaluator

    torch.set_num_threads(args.threads)
    df = read_table(args.data)
    s1, s2, gold = df["sentence1"].tolist(), df["sentence2"].tolist(), df["score"].to_numpy(float)
    unique = list(dict.fromkeys(s1 + s2))
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    models = {name: polymodal.load("minilm-l6", backend=name) for name in ("onnx", "onnx-int8")}
    emb = {name: m.encode(unique, batch_size=64) for name, m in models.items()}
    torch_emb = polymodal.load("minilm-l6").encode(unique, batch_size=64)
    times: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(args.repeats):
        for name, m in models.items():
            start = time.perf_counter()
            m.encode(unique, batch_size=64)
            times[name].append(time.perf_counter() - start)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    a, b = emb["onnx"], emb["onnx-int8"]
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    print(f"{len(unique)} unique STS-B dev sentences, {len(gold)} pairs, {args.threads} one-thread streams each")
    print(f"fp32 onnx vs torch: max |diff| {np.abs(a - torch_emb).max():.2e}")
    diff = float(np.abs(a - b).max())
    print(f"int8 vs fp32: min cosine {cos.min():.4f}, mean cosine {cos.mean():.4f}, max |diff| {diff:.3f}")
    index = {s: i for i, s in enumerate(unique)}
    for name, e in (("torch fp32", torch_emb), ("onnx fp32", a), ("onnx-int8", b)):
        result = STSEvaluator.score(e[[index[s] for s in s1]], e[[index[s] for s in s2]], gold)
        print(f"STS-B dev cosine Spearman, {name:10s}: {result.spearman:.4f}")
    for name, ts in times.items():
        print(f"{name:10s} {len(unique) / min(ts):7.1f} sent/s best, {len(unique) / statistics.median(ts):7.1f} median")
    ratio = min(times["onnx"]) / min(times["onnx-int8"])
    print(f"ratio: {ratio:.3f}")
    return ratio


if __name__ == "__main__":
    main()
