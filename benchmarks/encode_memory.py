"""Peak memory of encoding N texts: streaming ``polymodal encode`` vs the naive in-memory path.

Each measurement runs in a fresh subprocess and reports its own peak RSS. Ours streams
length-sorted chunks into a memory-mapped ``.npy``; the naive baseline embeds everything into
one array (what ``SentenceTransformer.encode`` does) and then saves it. A one-layer random BERT
of MiniLM's width (384) is used so the model is cheap but the output rows are as large as
MiniLM's (the data path is what scales).

    python benchmarks/encode_memory.py [--sizes 10000 30000 100000] [--width 384] [--naive-max N]

Prints RSS per N for both, and ``ratio: X`` = naive peak RSS / ours at the largest N.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, numpy as np, pandas as pd
mode, model_dir, table, out = sys.argv[1:5]
if mode == "ours":
    from polymodal.cli import main
    main(["encode", "--model", model_dir, "--input", table, "--column", "text", "--output", out,
          "--batch-size", "64"])
else:
    import polymodal
    texts = pd.read_csv(table)["text"].tolist()
    emb = polymodal.load(model_dir).encode(texts, batch_size=64)
    np.save(out, emb)
print(json.dumps({"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    parser.add_argument("--width", type=int, default=384, help="embedding width (MiniLM: 384)")
    parser.add_argument("--naive-max", type=int, default=None, help="run the naive path only up to this N")
    args = parser.parse_args()

    import pandas as pd
    import torch

    from polymodal.data import read_table
    from polymodal.model import EmbeddingModel
    from polymodal.plugins.text import TextEncoder

    work = Path(tempfile.mkdtemp(prefix="pm-encmem-"))
    torch.manual_seed(0)
    tiny = {
        "model_type": "bert",
        "vocab_size": 261,
        "hidden_size": args.width,
        "num_hidden_layers": 1,
        "num_attention_heads": max(1, args.width // 64),
        "intermediate_size": args.width,
        "max_position_embeddings": 64,
    }
    EmbeddingModel(TextEncoder(model=tiny, tokenizer="bytes", max_length=32)).save(work / "model")
    df = read_table("package://sbert/data/stsb_train_sample.tsv.gz")
    base = df["sentence1"].tolist() + df["sentence2"].tolist()
    results: dict[str, dict[int, float]] = {"ours": {}, "naive": {}}
    for n in args.sizes:
        table = work / f"texts_{n}.csv"
        pd.DataFrame({"text": [f"{base[i % len(base)]} #{i}" for i in range(n)]}).to_csv(table, index=False)
        for mode in ("ours", "naive") if args.naive_max is None or n <= args.naive_max else ("ours",):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, mode, str(work / "model"), str(table), str(work / f"{mode}_{n}.npy")],
                capture_output=True,
                text=True,
                check=True,
            )
            rss = json.loads(out.stdout.strip().splitlines()[-1])["rss_mb"]
            results[mode][n] = rss
            print(f"{mode:5s} N={n:>7,d}  peak RSS {rss:7.1f} MB", flush=True)
    for mode, by_n in results.items():
        sizes = sorted(by_n)
        growth = by_n[sizes[-1]] - by_n[sizes[0]]
        print(f"{mode}: +{growth:.1f} MB from N={sizes[0]:,} to N={sizes[-1]:,}")
    largest = max(results["naive"])
    print(f"ratio: {results['naive'][largest] / results['ours'][largest]:.3f}")


if __name__ == "__main__":
    main()
