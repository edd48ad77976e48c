"""polymodal ``EmbeddingModel.encode`` vs ``SentenceTransformer.encode`` on the same MiniLM.

Both encode the unique STS-B dev sentences (about 3,000) with the bundled all-MiniLM-L6-v2,
the same batch size and torch thread count, alternating runs in one process; the best of
``--repeats`` timings per side is compared. Embeddings must agree to 1e-5.

    python benchmarks/encode.py [--batch-size 64] [--threads 2] [--repeats 3] [--limit N] [--onnx] [--streams N]

``--streams`` sets ``EmbeddingModel.encode(streams=)`` (default: one one-thread CPU stream per torch
thread; ``--streams 1`` is one batch at a time on all threads, as sentence-transformers runs).

``--onnx`` also times the opt-in ONNX Runtime backend (``polymodal.plugins.text.onnx_backend``,
needs onnxruntime, onnx, onnxscript) and prints ``ratio onnx: X``; the main ``ratio`` stays torch.

Prints ``ratio: X`` (polymodal throughput / sentence-transformers throughput; > 1 = faster).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = (
    Path(os.environ.get("POLYMODAL_SHARED_DATA", REPO.parent / "shared" / "data")) / "stsb" / "sts-dev.csv.gz"
)


def sentences(path: Path) -> list[str]:
    from polymodal.data.tables import read_table

    df = read_table(path)
    return list(dict.fromkeys(df["sentence1"].tolist() + df["sentence2"].tolist()))


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N sentences (0: all)")
    parser.add_argument("--onnx", action="store_true", help="also time the ONNX Runtime backend")
    parser.add_argument("--streams", type=int, default=None, help="encode(streams=) for polymodal (default: auto)")
    args = parser.parse_args(argv)

    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    import polymodal
    from polymodal.plugins.text.pretrained import minilm_l6_path

    torch.set_num_threads(args.threads)
    if not args.data.is_file():
        sys.exit(f"STS-B dev not found at {args.data} (set POLYMODAL_SHARED_DATA)")
    texts = sentences(args.data)
    if args.limit:
        texts = texts[: args.limit]
    peer = SentenceTransformer(str(minilm_l6_path()), device="cpu")
    ours = polymodal.load("minilm-l6")
    bs = args.batch_size

    def run_peer():
        return peer.encode(texts, batch_size=bs, convert_to_numpy=True)

    def run_ours():
        return ours.encode(texts, batch_size=bs, streams=args.streams)

    ref, emb = run_peer(), run_ours()  # warm-up + correctness
    diff = float(np.abs(ref - emb).max())
    streams = args.streams or "auto"
    print(f"sentences: {len(texts)}  batch_size: {bs}  threads: {torch.get_num_threads()}  streams: {streams}")
    print(f"max |difference| polymodal vs sentence-transformers: {diff:.2e}")
    if diff > 1e-5:
        sys.exit(f"embeddings differ by {diff:.2e} > 1e-5")
    t_peer = t_ours = float("inf")
    for _ in range(args.repeats):  # alternate so machine-load drifts hit both sides
        t_peer = min(t_peer, best_time(run_peer, 1))
        t_ours = min(t_ours, best_time(run_ours, 1))
    print(f"sentence-transformers encode:        {len(texts) / t_peer:8.1f} sent/s ({t_peer:.2f} s)")
    print(f"polymodal encode (torch):            {len(texts) / t_ours:8.1f} sent/s ({t_ours:.2f} s)")
    ratio = t_peer / t_ours
    if args.onnx:
        from polymodal.plugins.text.onnx_backend import OnnxEmbeddingModel

        onnx_model = OnnxEmbeddingModel.from_model(ours, threads=args.threads)
        diff_onnx = float(np.abs(ref - onnx_model.encode(texts, batch_size=bs)).max())
        if diff_onnx > 1e-5:
            sys.exit(f"ONNX embeddings differ by {diff_onnx:.2e} > 1e-5")
        t_onnx = float("inf")
        for _ in range(args.repeats):
            t_peer = min(t_peer, best_time(run_peer, 1))
            t_onnx = min(t_onnx, best_time(lambda: onnx_model.encode(texts, batch_size=bs), 1))
        print(f"polymodal encode (onnxruntime):     {len(texts) / t_onnx:8.1f} sent/s, max |diff| {diff_onnx:.2e}")
        print(f"ratio onnx: {t_peer / t_onnx:.3f}")
    print(f"ratio: {ratio:.3f}")
    return ratio


if __name__ == "__main__":
    main()
