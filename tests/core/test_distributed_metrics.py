"""The System's step metrics are synced across processes by construction: two gloo processes, each holding an
uneven half of the rows, compute the same Recall@k, Spearman and ROC-AUC as one process holding all rows.

(The fit-level check, a 2-process DDP fit logging the whole-dataset Spearman, is in test_distributed_fit.py.)
"""

from __future__ import annotations

import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

N, DIM, GROUPS = 101, 8, 20  # odd N: the ranks hold 51 and 50 rows


def _data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    groups = rng.integers(0, GROUPS, N)
    centres = rng.normal(size=(GROUPS, DIM))
    return {
        "q": centres[groups] + rng.normal(scale=1.0, size=(N, DIM)),  # queries (captions) near their group
        "d": centres[groups],  # one document (image) per group, repeated on its rows
        "g": groups.astype(np.float64),
        "a": rng.normal(size=(N, DIM)),
        "b": rng.normal(size=(N, DIM)),
        "score": rng.uniform(0, 5, N),
        "logit": rng.normal(size=N),
        "label": rng.integers(0, 2, N).astype(np.float64),
    }


def _metrics_over(rows: np.ndarray) -> dict[str, float]:
    from polymodal.metrics.step import HeadMetrics, PairSimilarity, Retrieval

    x = {k: torch.as_tensor(v[rows]) for k, v in _data().items()}
    retrieval, pairs, head = Retrieval("caption", "image", group="g"), PairSimilarity(), HeadMetrics("h", "binary")
    # what each metric's update(step) appends, without building a Step
    retrieval.q.append(x["q"].float())
    retrieval.d.append(x["d"].float())
    retrieval.g.append(x["g"])
    pairs.cos.append(torch.nn.functional.cosine_similarity(x["a"], x["b"]).float())
    pairs.gold.append(x["score"].float())
    head.pred.append(x["logit"].float())
    head.gold.append(x["label"].float())
    out: dict[str, float] = {}
    for name, metric in (("retrieval", retrieval), ("pairs", pairs), ("head", head)):
        metric._update_count = 1
        out.update({f"{name}/{k}": float(v) for k, v in metric.compute().items()})
    return out


def _rank(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        values = _metrics_over(np.arange(N)[rank::2])
        if rank == 0:
            with open(out, "w") as f:
                json.dump(values, f)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_compute_the_single_process_values(tmp_path):
    out = tmp_path / "rank0.json"
    mp.spawn(_rank, args=(_free_port(), str(out)), nprocs=2, join=True)
    synced = json.loads(out.read_text())
    single = _metrics_over(np.arange(N))
    for key in ("retrieval/c2i_r1", "retrieval/c2i_r5", "retrieval/i2c_r1", "pairs/spearman", "head/roc_auc"):
        assert key in single, sorted(single)
    assert synced.keys() == single.keys()
    for key, value in single.items():
        assert synced[key] == pytest.approx(value, abs=1e-6), key
    # and a rank alone would have scored something else: the sync is what makes them equal
    alone = _metrics_over(np.arange(N)[0::2])
    assert any(abs(alone[k] - single[k]) > 1e-3 for k in ("retrieval/c2i_r1", "pairs/spearman", "head/roc_auc"))
