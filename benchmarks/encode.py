"""Text encode throughput: every polymodal backend vs the fastest paths a skilled user would pick, one process.

Same model everywhere (the bundled all-MiniLM-L6-v2), same sentences (unique STS-B dev sentences, every
k-th down to ``--limit``), same total threads (``--threads``, default 2), batch size 64. Rows:

peers
  * ``st torch``: ``SentenceTransformer.encode``, one batch on all threads.
  * ``st pool``: sentence-transformers' multi-process pool, ``--threads`` processes x 1 thread.
  * ``st onnx`` / ``st openvino``: ``SentenceTransformer(backend=...)`` when optimum installs here.
  * ``plain ort fused``: ONNX Runtime on the fused graph (TorchScript export of the eager model + ORT's
    transformer optimizer), the user's own tokenise / token-length sort / mean-pool loop, ``--threads``
    one-thread sessions in threads.
  * ``plain openvino``: OpenVINO fp32 (explicit precision hint), throughput hint, ``AsyncInferQueue`` with
    ``--threads`` jobs, the same loop.
polymodal (``EmbeddingModel.encode``: token-count sorted batches, ``--threads`` one-thread streams)
  * ``torch`` (and ``torch streams=1``), ``onnx dynamo`` (the older unfused export), ``onnx`` (fused),
    ``openvino``, ``onnx-int8`` (opt-in, changes outputs), ``auto`` (``polymodal.load(..., backend="auto")``).

Timing: ``--repeats`` rounds, every row once per round in turn (alternated, so load drifts hit all),
min / median printed with the load average. Each row's max |difference| to polymodal torch fp32 is
printed; fp32 rows must be within 1e-4. Padding: executed / real tokens when batches are sorted by
characters (sentence-transformers) and by tokens (polymodal). Compute limit: model FLOPs per sentence at
the measured mean padded length over the GFLOP/s of a 2048^2 fp32 matmul with the same threads.

``--scaling 1000,10000,30000`` adds a table (one timed pass per cell) of polymodal ``auto`` and the fastest
fp32 peer on short sentences (STS-B train+dev and SNLI sentences) and long ones (8 consecutive corpus
sentences joined, ~130 tokens); ``--scaling-kinds short`` limits it.

Ends with ``ratio: X`` = polymodal ``auto`` throughput / the fastest fp32 peer's (> 1: we win).

    python benchmarks/encode.py [--limit 640] [--repeats 3] [--threads 2] [--scaling 1000,10000,30000]
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("POLYMODAL_SHARED_DATA", REPO.parent / "shared" / "data"))
DEFAULT_DATA = SHARED / "stsb" / "sts-dev.csv.gz"


def sentences(path: Path) -> list[str]:
    from polymodal.data.tables import read_table

    df = read_table(path)
    return list(dict.fromkeys(df["sentence1"].tolist() + df["sentence2"].tolist()))


def corpus(n: int, kind: str) -> list[str]:
    """``n`` short sentences (STS-B train+dev, SNLI), or ``n`` long ones (8 consecutive joined)."""
    import pandas as pd

    pool = sentences(SHARED / "stsb" / "sts-train.csv.gz") + sentences(SHARED / "stsb" / "sts-dev.csv.gz")
    for split in ("dev", "test"):
        path = SHARED / "nli" / f"snli_1.0_{split}.tsv.gz"
        if path.is_file():
            df = pd.read_csv(path, sep="\t", usecols=["premise", "hypothesis"]).dropna()
            pool += df["premise"].tolist() + df["hypothesis"].tolist()
    pool = [s for s in dict.fromkeys(pool) if isinstance(s, str) and s.strip()]
    if kind == "long":
        pool = [" ".join(pool[i : i + 8]) for i in range(0, len(pool) - 7, 8)]
    if len(pool) < n:
        pool = (pool * (n // len(pool) + 1))[:n]  # repeated sentences still cost a full forward each
    return pool[:n]


def load_avg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# ---------------------------------------------------------------------------------------------- peers
def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[..., None].astype(np.float32)
    emb = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)  # (B, D)
    return emb / np.maximum(np.linalg.norm(emb, axis=-1, keepdims=True), 1e-12)


def plain_batches(tokenizer: Any, texts: Sequence[str], batch_size: int) -> list[tuple[np.ndarray, dict]]:
    """What a skilled user writes: tokenise once, sort by token count, pad per batch."""
    enc = tokenizer.encode_batch(list(texts))
    order = np.argsort([-len(e.ids) for e in enc], kind="stable")
    out = []
    for start in range(0, len(texts), batch_size):
        idx = order[start : start + batch_size]
        T = max(len(enc[i].ids) for i in idx)
        ids = np.zeros((len(idx), T), np.int64)
        mask = np.zeros((len(idx), T), np.int64)
        for row, i in enumerate(idx):
            ids[row, : len(enc[i].ids)] = enc[i].ids
            mask[row, : len(enc[i].ids)] = 1
        out.append((idx, {"input_ids": ids, "attention_mask": mask}))
    return out


def plain_tokenizer(folder: Path, max_length: int) -> Any:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length)
    return tok


def plain_ort(fused: Path, folder: Path, threads: int, max_length: int) -> Callable[[list[str], int], np.ndarray]:
    from concurrent.futures import ThreadPoolExecutor

    import onnxruntime as ort

    tok = plain_tokenizer(folder, max_length)
    free: queue.SimpleQueue[Any] = queue.SimpleQueue()  # one-thread sessions, one batch each at a time
    for _ in range(threads):
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
        free.put(ort.InferenceSession(str(fused), so, providers=["CPUExecutionProvider"]))
    pool = ThreadPoolExecutor(threads)

    def encode(texts: list[str], batch_size: int) -> np.ndarray:
        batches = plain_batches(tok, texts, batch_size)
        out = np.empty((len(texts), 384), np.float32)

        def run(batch: tuple[np.ndarray, dict]) -> None:
            idx, feeds = batch
            session = free.get()
            try:
                (hidden,) = session.run(["last_hidden_state"], feeds)
            finally:
                free.put(session)
            out[idx] = mean_pool(hidden, feeds["attention_mask"])

        list(pool.map(run, batches))
        return out

    return encode


def plain_openvino(raw: Path, folder: Path, threads: int, max_length: int) -> Callable[[list[str], int], np.ndarray]:
    import openvino as ov

    tok = plain_tokenizer(folder, max_length)
    core = ov.Core()
    config = {
        "PERFORMANCE_HINT": "THROUGHPUT",
        "NUM_STREAMS": str(threads),
        "INFERENCE_NUM_THREADS": str(threads),
        "INFERENCE_PRECISION_HINT": "f32",
    }
    compiled = core.compile_model(core.read_model(str(raw)), "CPU", config)
    jobs = ov.AsyncInferQueue(compiled, threads)

    def encode(texts: list[str], batch_size: int) -> np.ndarray:
        batches = plain_batches(tok, texts, batch_size)
        out = np.empty((len(texts), 384), np.float32)

        def done(request: Any, k: int) -> None:
            idx, feeds = batches[k]
            out[idx] = mean_pool(request.get_output_tensor(0).data, feeds["attention_mask"])

        jobs.set_callback(done)
        for k, (_, feeds) in enumerate(batches):
            jobs.start_async(feeds, userdata=k)
        jobs.wait_all()
        return out

    return encode


def st_pool_encoder(st: Any, threads: int) -> tuple[Callable[[list[str], int], np.ndarray], Callable[[], None]]:
    previous = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # each worker process: one thread
    try:
        pool = st.start_multi_process_pool(["cpu"] * threads)
    finally:
        if previous is None:
            os.environ.pop("OMP_NUM_THREADS")
        else:
            os.environ["OMP_NUM_THREADS"] = previous

    def encode(texts: list[str], batch_size: int) -> np.ndarray:
        return st.encode(texts, batch_size=batch_size, pool=pool, chunk_size=max(1, len(texts) // threads // 4))

    return encode, lambda: st.stop_multi_process_pool(pool)


# ---------------------------------------------------------------------------------------------- compute
def matmul_gflops(threads: int, n: int = 2048, repeats: int = 5) -> float:
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def executed_tokens(lengths: Sequence[int], keys: Sequence[int], batch_size: int) -> list[tuple[int, int]]:
    """(batch rows, padded length) of each batch when sorted by ``keys`` descending."""
    order = np.argsort([-k for k in keys], kind="stable")
    out = []
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        out.append((len(idx), max(lengths[i] for i in idx)))
    return out


def model_flops(batches: Sequence[tuple[int, int]], config: Any) -> float:
    """Multiply-add FLOPs of a BERT encoder over ``batches`` of (rows, padded length)."""
    D, inter, L = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    total = 0.0
    for rows, T in batches:
        total += rows * L * (T * (8 * D * D + 4 * D * inter) + 4 * T * T * D)  # QKVO + FFN, QK^T + PV
    return total


# ---------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=640, help="every k-th sentence down to N (0: all)")
    parser.add_argument("--skip", default="", help="comma-separated rows to leave out (e.g. 'st pool,onnx dynamo')")
    parser.add_argument("--scaling", default="", help="sizes for the scaling table, e.g. 1000,10000,30000")
    parser.add_argument("--scaling-kinds", default="short,long")
    args = parser.parse_args(argv)

    import torch
    from sentence_transformers import SentenceTransformer

    import polymodal
    from polymodal.plugins.text.backends import _graph_files, make_backend
    from polymodal.plugins.text.pretrained import minilm_l6_path

    torch.set_num_threads(args.threads)
    if not args.data.is_file():
        sys.exit(f"STS-B dev not found at {args.data} (set POLYMODAL_SHARED_DATA)")
    texts = sentences(args.data)
    if args.limit and len(texts) > args.limit:
        texts = texts[:: len(texts) // args.limit][: args.limit]
    bs, threads = args.batch_size, args.threads
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    folder = minilm_l6_path()
    print(f"load average at start: {load_avg()}")
    print(f"{len(texts)} STS-B dev sentences, batch {bs}, {threads} threads on every side; torch {torch.__version__}")

    ours = polymodal.load("minilm-l6")
    config = ours.encoder.model.config
    max_length = ours.encoder.processor.max_length
    ref = ours.encode(texts, batch_size=bs)  # polymodal torch fp32: the reference of every row

    rows: dict[str, Callable[[list[str], int], np.ndarray]] = {}
    notes: dict[str, str] = {}
    cleanup: list[Callable[[], None]] = []
    peers = ["st torch", "st pool", "st onnx", "st openvino", "plain ort fused", "plain openvino"]

    st = SentenceTransformer(str(folder), device="cpu")
    rows["st torch"] = lambda t, b: st.encode(t, batch_size=b, convert_to_numpy=True)
    notes["st torch"] = f"1 batch x {threads} threads"
    if "st pool" not in skip:
        rows["st pool"], stop = st_pool_encoder(st, threads)
        cleanup.append(stop)
        notes["st pool"] = f"{threads} processes x 1 thread"
    for kind in ("onnx", "openvino"):
        try:
            other = SentenceTransformer(str(folder), device="cpu", backend=kind)
            rows[f"st {kind}"] = lambda t, b, m=other: m.encode(t, batch_size=b, convert_to_numpy=True)
            notes[f"st {kind}"] = f"1 batch x {threads} threads"
        except Exception as exc:  # optimum is not installable next to transformers 5 (see results)
            notes[f"st {kind}"] = f"unavailable: {type(exc).__name__}: {str(exc).splitlines()[0][:90]}"
    try:
        fused = _graph_files(ours, "onnx", None)
        rows["plain ort fused"] = plain_ort(fused, folder, threads, max_length)
        notes["plain ort fused"] = f"{threads} sessions x 1 thread, token-sorted"
    except ImportError as exc:
        notes["plain ort fused"] = f"unavailable: {exc}"
    try:
        raw = _graph_files(ours, "openvino", None)
        rows["plain openvino"] = plain_openvino(raw, folder, threads, max_length)
        notes["plain openvino"] = f"f32, throughput hint, {threads} streams x 1 thread"
    except ImportError as exc:
        notes["plain openvino"] = f"unavailable: {exc}"

    rows["torch"] = lambda t, b: ours.encode(t, batch_size=b)
    notes["torch"] = f"{threads} streams x 1 thread"
    rows["torch streams=1"] = lambda t, b: ours.encode(t, batch_size=b, streams=1)
    notes["torch streams=1"] = f"1 stream x {threads} threads"
    if "onnx dynamo" not in skip:
        try:
            from polymodal.plugins.text.onnx_backend import OnnxEmbeddingModel

            dyn = OnnxEmbeddingModel.from_model(ours, threads=threads)
            rows["onnx dynamo"] = lambda t, b: dyn.encode(t, batch_size=b)
            notes["onnx dynamo"] = f"unfused, 1 session x {threads} threads"
        except ImportError as exc:
            notes["onnx dynamo"] = f"unavailable: {exc}"
    backends: dict[str, Any] = {}
    for name in ("onnx", "openvino", "onnx-int8"):
        try:
            backends[name] = make_backend(ours, name, streams=threads)
        except (ImportError, ValueError, RuntimeError) as exc:
            notes[name] = f"unavailable: {exc}"
            continue
        model = polymodal.load("minilm-l6")
        model.backend = backends[name]
        rows[name] = lambda t, b, m=model: m.encode(t, batch_size=b)
        notes[name] = f"{threads} streams x 1 thread" + (" (opt-in, not fp32)" if name == "onnx-int8" else "")
    start = time.perf_counter()
    auto = polymodal.load("minilm-l6", backend="auto")
    picked = time.perf_counter() - start
    rows["auto"] = lambda t, b: auto.encode(t, batch_size=b)
    notes["auto"] = f"picked {auto.backend.name!r} in {picked:.1f} s; {threads} streams x 1 thread"
    for name in list(rows):
        if name in skip:
            del rows[name]

    diffs = {}
    for name, fn in rows.items():  # warm-up + equality
        diffs[name] = float(np.abs(fn(texts, bs) - ref).max())
    times: dict[str, list[float]] = {k: [] for k in rows}
    for _ in range(args.repeats):
        for name, fn in rows.items():
            start = time.perf_counter()
            fn(texts, bs)
            times[name].append(time.perf_counter() - start)

    # padding and compute limit
    token_lengths = ours.encoder.processor.lengths(texts)
    real = sum(token_lengths)
    by_chars = executed_tokens(token_lengths, [len(t) for t in texts], bs)
    by_tokens = executed_tokens(token_lengths, token_lengths, bs)
    pad_chars = sum(r * T for r, T in by_chars) / real - 1
    pad_tokens = sum(r * T for r, T in by_tokens) / real - 1
    gflops = matmul_gflops(threads)
    torch.set_num_threads(threads)
    flops = {"chars": model_flops(by_chars, config) / len(texts), "tokens": model_flops(by_tokens, config) / len(texts)}
    print(f"load average after the timed rounds: {load_avg()}")
    print(
        f"tokens per sentence {real / len(texts):.1f}; executed with padding: +{100 * pad_chars:.0f} % sorted by "
        f"characters (sentence-transformers), +{100 * pad_tokens:.0f} % sorted by tokens (polymodal, plain peers)"
    )
    print(
        f"compute limit: {flops['tokens'] / 1e6:.0f} MFLOP/sentence at the token-sorted padded length "
        f"({flops['chars'] / 1e6:.0f} char-sorted) / {gflops:.1f} GFLOP/s (2048^2 fp32 matmul, {threads} threads) "
        f"= {gflops * 1e9 / flops['tokens']:.1f} sent/s"
    )
    print(f"{'row':18s} {'min sent/s':>10s} {'median':>8s} {'max|diff|':>10s} {'of limit':>8s}  threads / streams")
    fp32_peer, fp32_best = None, 0.0
    for name in peers + [r for r in rows if r not in peers]:
        if name not in rows:
            print(f"{name:18s} {'-':>10s} {'-':>8s} {'-':>10s} {'-':>8s}  {notes.get(name, 'left out')}")
            continue
        best, median = len(texts) / min(times[name]), len(texts) / statistics.median(times[name])
        limit_flops = flops["chars"] if name.startswith("st ") else flops["tokens"]
        share = best * limit_flops / (gflops * 1e9)
        print(f"{name:18s} {best:10.1f} {median:8.1f} {diffs[name]:10.2e} {100 * share:7.0f}%  {notes[name]}")
        if name != "onnx-int8" and not diffs[name] <= 1e-4:
            sys.exit(f"{name}: differs from polymodal torch fp32 by {diffs[name]:.2e} > 1e-4")
        if name in peers and best > fp32_best:
            fp32_peer, fp32_best = name, best
    ours_best = len(texts) / min(times["auto"])
    ratio = ours_best / fp32_best
    print(f"fastest fp32 peer: {fp32_peer} ({fp32_best:.1f} sent/s); auto ({auto.backend.name}) {ours_best:.1f}")

    if args.scaling:
        peer_fn = rows[fp32_peer]
        print(f"scaling (one timed pass per cell; load average {load_avg()}): sent/s, auto / {fp32_peer}")
        print(f"{'kind':6s} {'n':>7s} {'tokens':>7s} {'auto':>8s} {fp32_peer:>16s} {'ratio':>6s} {'max|diff|':>10s}")
        for kind in args.scaling_kinds.split(","):
            for n in (int(x) for x in args.scaling.split(",")):
                batch = corpus(n, kind)
                mean_tokens = float(np.mean(ours.encoder.processor.lengths(batch)))
                start = time.perf_counter()
                a = auto.encode(batch, batch_size=bs)
                t_auto = time.perf_counter() - start
                start = time.perf_counter()
                p = peer_fn(batch, bs)
                t_peer = time.perf_counter() - start
                diff = float(np.abs(a - p).max())
                print(
                    f"{kind:6s} {n:7d} {mean_tokens:7.1f} {n / t_auto:8.1f} {n / t_peer:16.1f} "
                    f"{t_peer / t_auto:6.2f} {diff:10.2e}"
                )
        print(f"load average at the end: {load_avg()}")
    for stop in cleanup:
        stop()
    print(f"ratio: {ratio:.3f}")
    return ratio


if __name__ == "__main__":
    main()
