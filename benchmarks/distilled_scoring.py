"""Scoring 1,000 candidates for a query: cross-encoder teacher vs distilled bi-encoder student (DSE).

A cross-encoder must run once per (query, candidate) pair; the bi-encoder embeds the query and
the candidates independently and compares them by cosine. Two bi-encoder timings are reported:
*cold* (the candidates are embedded now, together with the query) and *indexed* (candidate
embeddings computed beforehand, as in retrieval: only the query is embedded). Both models are
MiniLM-L6 sized (the recipe's teacher and student), so architecture, not training, sets speed.

    python benchmarks/distilled_scoring.py [--teacher runs/distilled-teacher/model]
        [--student runs/distilled-student/model] [--candidates 1000] [--repeats 3]
        [--head-student runs/distilled-snli-student-head/model
         --head-checkpoint runs/distilled-snli-student-head/checkpoints/last.ckpt --head-name nli]

With ``--head-student`` the DSE head student is timed too: its tower embeds the query and candidates like
the cosine student, then its trained :class:`~polymodal.heads.PairHead` (``[u, v, |u-v|, u*v]`` -> FC) scores
the 1,000 feature rows instead of a dot product (cold and indexed). Every model runs in this one process
with the same torch thread count and the same CPU streams (``--streams``, default 1: one batch at a time on all
threads; both are printed), the cross-encoder's ``predict`` and the bi-encoders' ``encode`` alike.

Prints the times and ``ratio: X`` = cross-encoder time / cold bi-encoder time (the
conservative figure; the indexed ratio is printed above it).
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default=None, help="cross-encoder folder (default: MiniLM-L6 weights + new head)")
    parser.add_argument("--student", default="minilm-l6", help="bi-encoder folder or short name")
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--streams", type=int, default=1, help="one-thread CPU streams, every side (1: none)")
    parser.add_argument("--head-student", default=None, help="the DSE head student's exported tower")
    parser.add_argument("--head-checkpoint", default=None, help="its Lightning checkpoint (PairHead weights)")
    parser.add_argument("--head-name", default="nli")
    args = parser.parse_args()

    import numpy as np
    import torch

    import polymodal
    from polymodal.data import read_table
    from polymodal.plugins.text import TextEncoder
    from polymodal.plugins.text.cross_encoder import CrossEncoder

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    teacher = polymodal.load(args.teacher) if args.teacher else CrossEncoder(TextEncoder("minilm-l6", max_length=128))
    student = polymodal.load(args.student)
    df = read_table("package://sbert/data/stsb_dev_sample.tsv.gz")
    pool = list(dict.fromkeys(df["sentence1"].tolist() + df["sentence2"].tolist()))
    candidates = [pool[i % len(pool)] for i in range(args.candidates)]
    query = "A man is playing a guitar on stage."

    def cross() -> np.ndarray:
        return teacher.predict([(query, c) for c in candidates], batch_size=args.batch_size, streams=args.streams)

    def bi_cold() -> np.ndarray:
        emb = student.encode([query, *candidates], batch_size=args.batch_size, normalize=True, streams=args.streams)
        return emb[1:] @ emb[0]

    index = student.encode(candidates, batch_size=args.batch_size, normalize=True, streams=args.streams)

    def bi_indexed() -> np.ndarray:
        q = student.encode([query], normalize=True, streams=args.streams)[0]
        return index @ q

    head_times: tuple[float, float] | None = None
    if args.head_student:
        from polymodal.recipes.distilled.compare import load_pair_head

        tower = polymodal.load(args.head_student)
        raw = tower.encode(candidates[:1], streams=args.streams)
        head = load_pair_head(args.head_checkpoint, args.head_name, raw.shape[1])
        head_index = torch.from_numpy(
            np.asarray(tower.encode(candidates, batch_size=args.batch_size, streams=args.streams))
        )

        def head_scores(q: torch.Tensor, cands: torch.Tensor) -> np.ndarray:
            with torch.inference_mode():
                return head([q.expand_as(cands), cands]).numpy()  # (N, out_dim)

        def head_cold() -> np.ndarray:
            emb = torch.from_numpy(
                np.asarray(tower.encode([query, *candidates], batch_size=args.batch_size, streams=args.streams))
            )
            return head_scores(emb[:1], emb[1:])

        def head_indexed() -> np.ndarray:
            q = torch.from_numpy(np.asarray(tower.encode([query], streams=args.streams)))
            return head_scores(q, head_index)

    def best(fn) -> float:
        fn()  # warm-up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    t_cross, t_cold, t_indexed = best(cross), best(bi_cold), best(bi_indexed)
    if head_times is None and args.head_student:
        head_times = (best(head_cold), best(head_indexed))
    print(
        f"{args.candidates} candidates, threads={torch.get_num_threads()}, streams={args.streams} (every side), "
        f"best of {args.repeats}"
    )
    print(f"cross-encoder (teacher)        {t_cross * 1000:9.1f} ms")
    print(f"bi-encoder, cold (student)     {t_cold * 1000:9.1f} ms   speed-up {t_cross / t_cold:6.2f}x")
    print(f"bi-encoder, indexed (student)  {t_indexed * 1000:9.1f} ms   speed-up {t_cross / t_indexed:6.1f}x")
    if head_times is not None:
        h_cold, h_indexed = head_times
        print(f"head student, cold (DSE head)  {h_cold * 1000:9.1f} ms   speed-up {t_cross / h_cold:6.2f}x")
        print(f"head student, indexed          {h_indexed * 1000:9.1f} ms   speed-up {t_cross / h_indexed:6.1f}x")
    print(f"ratio: {t_cross / t_cold:.3f}")


if __name__ == "__main__":
    main()
