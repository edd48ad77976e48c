"""Score every exported run of an llm_embedder sweep on the whole of STS-B dev and on SNLI premise retrieval,
and test each row against the base with a paired bootstrap over the STS-B pairs.

    python -m polymodal.recipes.llm_embedder.evaluate runs/sweeps/llm_embedder/sweep_cpu
        [--out <root>/evaluation] [--bench-out runs/bench] [--data-root ../shared/data]
        [--base base] [--samples 2000] [--batch-size 32] [--threads 1] [--only RUN ...]

The sweep trains and validates each row (``val/spearman``: the validation subset of its config); this script
loads each ``<root>/<run>/seed<k>/model`` once and scores it with the bench's own tasks (``stsb``: all 1,500
dev pairs; ``snli-premise-retrieval``: 1,383 SNLI test premises retrieve their entailed hypotheses among 4,382,
nDCG@10 / Recall@1), caching the results in the bench folder (``--bench-out``; ``polymodal bench
--leaderboard --out runs/bench`` then lists them beside every other model). The STS-B cosines of every pair
are kept (``<out>/<run>_seed<k>.npy``) for the paired bootstrap (:func:`polymodal.metrics.functional.
paired_bootstrap`, Koehn 2004): each row vs ``--base`` on the same seed, and the Pooling-and-Attention grid's
pairs (bidirectional vs causal at each pooler; mean / multi-layer vs last token at each attention). Writes
``<out>/evaluation.json`` and ``<out>/evaluation.md``; runs already scored are read back, not re-encoded.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["GRID_PAIRS", "SAME_AS", "evaluate", "find_runs", "main"]

TASKS = ("stsb", "snli-premise-retrieval")

#: (run b, run a, what b - a tests): the Pooling-and-Attention grid of sweep_cpu.yaml / sweep.yaml
GRID_PAIRS: list[tuple[str, str, str]] = [
    ("bidir_last", "base", "bidirectional vs causal, last token"),
    ("bidir_mean", "causal_mean", "bidirectional vs causal, mean"),
    ("bidir_multilayer", "causal_multilayer", "bidirectional vs causal, multi-layer"),
    ("causal_mean", "base", "mean vs last token, causal"),
    ("causal_multilayer", "base", "multi-layer vs last token, causal"),
    ("bidir_mean", "bidir_last", "mean vs last token, bidirectional"),
    ("bidir_multilayer", "bidir_last", "multi-layer vs last token, bidirectional"),
]

#: a grid cell that is the same composition as a component row (one overlay vs two): used when the cell itself
#: was not scored (sweep_cpu.yaml's ``bidir_mean`` = ``bidirectional.yaml`` + ``mean.yaml`` = ``bidirectional_mean``)
SAME_AS = {"bidir_mean": "bidirectional_mean"}


def find_runs(root: Path) -> list[tuple[str, int, Path]]:
    """``(run, seed, model folder)`` for every ``<root>/<run>/seed<k>/model`` holding an export, sorted."""
    found = []
    for model in sorted(root.glob("*/seed*/model")):
        seed_dir = model.parent
        if not (model / "polymodal.json").is_file() or not seed_dir.name[4:].isdigit():
            continue
        found.append((seed_dir.parent.name, int(seed_dir.name[4:]), model))
    return found


def _sweep_records(root: Path) -> dict[tuple[str, int], dict[str, Any]]:
    path = root / "results.json"
    if not path.is_file():
        return {}
    try:
        records = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not JSON ({err.msg}, line {err.lineno})") from None
    return {(r["run"], int(r["seed"])): r for r in records if isinstance(r, dict) and "run" in r and "seed" in r}


def _sts_data(data_root: Path) -> tuple[dict[str, Any], str]:
    """The bench's STS-B dev pairs (read once per call of :func:`evaluate`) and their data digest."""
    from polymodal.bench import get_tasks

    (sts,) = get_tasks(["stsb"])
    return sts.load(sts.folder(data_root)), sts.data_digest(data_root)


def _score_one(
    run: str,
    seed: int,
    model_dir: Path,
    data_root: Path,
    sts: dict[str, Any],
    bench_out: Path | None,
    batch_size: int,
) -> tuple[dict[str, float], np.ndarray]:
    from polymodal.bench import get_tasks, load_models
    from polymodal.bench import run as bench_run
    from polymodal.metrics.functional import pair_cosine

    (model,) = load_models([f"{model_dir}@label=llm_embedder/{run}/seed{seed}"])
    records = bench_run([model], get_tasks(list(TASKS)), data_root, out=bench_out, batch_size=batch_size)
    scores: dict[str, float] = {}
    for rec in records:
        for key, value in rec["scores"].items():
            if key != "n":
                scores[f"{rec['task']}/{key}"] = float(value)
        scores[f"{rec['task']}/seconds"] = float(rec["seconds"])
    # memoised: bench_run just encoded these sentences
    cos = pair_cosine(model.encode(sts["s1"], batch_size=batch_size), model.encode(sts["s2"], batch_size=batch_size))
    return scores, cos


def evaluate(
    root: str | Path,
    out: str | Path | None = None,
    data_root: str | Path | None = None,
    bench_out: str | Path | None = "runs/bench",
    base: str = "base",
    samples: int = 2000,
    batch_size: int = 32,
    only: list[str] | None = None,
    say: Any = None,
) -> dict[str, Any]:
    """Score the sweep under ``root``; returns ``{"rows": [...], "tests": [...]}`` (also written to ``out``)."""
    from polymodal.bench.tasks import default_data_root
    from polymodal.metrics.functional import paired_bootstrap

    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a sweep folder (expected <root>/<run>/seed<k>/model)")
    out = Path(out) if out is not None else root / "evaluation"
    data_root = Path(data_root) if data_root is not None else default_data_root()
    runs = [r for r in find_runs(root) if only is None or r[0] in only]
    if not runs:
        raise FileNotFoundError(f"{root}: no exported model under <run>/seed<k>/model")
    sweep = _sweep_records(root)
    sts, digest = _sts_data(data_root)
    gold = np.asarray(sts["score"], dtype=np.float64)
    out.mkdir(parents=True, exist_ok=True)
    rows, cosines = [], {}
    for run, seed, model_dir in runs:
        cache_json, cache_npy = out / f"{run}_seed{seed}.json", out / f"{run}_seed{seed}.npy"
        weights = model_dir / "model.safetensors"
        stamp = {"model_mtime": weights.stat().st_mtime if weights.exists() else 0, "stsb_digest": digest}
        cached = json.loads(cache_json.read_text()) if cache_json.is_file() and cache_npy.is_file() else None
        if cached is not None and all(cached.get(k) == v for k, v in stamp.items()):  # same export, same data
            scores, cos = cached["scores"], np.load(cache_npy)
            say(f"{run} seed {seed}: cached")
        else:
            say(f"{run} seed {seed}: scoring {model_dir}")
            bench = Path(bench_out) if bench_out else None
            scores, cos = _score_one(run, seed, model_dir, data_root, sts, bench, batch_size)
            from polymodal.io import atomic_path

            with atomic_path(cache_npy) as tmp, open(tmp, "wb") as f:
                np.save(f, cos)
            with atomic_path(cache_json) as tmp:
                tmp.write_text(json.dumps({"scores": scores, **stamp}, indent=2) + "\n")
            gc.collect()
        if len(cos) != len(gold):
            raise ValueError(f"{cache_npy}: {len(cos)} STS-B cosines but the dev set has {len(gold)} pairs")
        record = sweep.get((run, seed), {})
        rows.append(
            {
                "run": run,
                "seed": seed,
                "val/spearman": record.get("metrics", {}).get("val/spearman"),
                "train_seconds": record.get("seconds"),
                **scores,
            }
        )
        cosines[(run, seed)] = cos
    tests = []
    seeds = sorted({seed for _, seed, _ in runs})
    names = list(dict.fromkeys(run for run, _, _ in runs))
    wanted = {(b, base): f"{b} vs {base}" for b in names if b != base}
    scored = {run for run, _ in cosines}
    for b, a, what in GRID_PAIRS:
        b, a = (x if x in scored else SAME_AS.get(x, x) for x in (b, a))
        wanted[(b, a)] = what
    for (b, a), what in wanted.items():
        for seed in seeds:
            if (a, seed) in cosines and (b, seed) in cosines:
                res = paired_bootstrap(gold, cosines[(a, seed)], cosines[(b, seed)], samples=samples, seed=seed)
                tests.append({"b": b, "a": a, "what": what, "seed": seed, **res})
    result = {"root": str(root), "base": base, "samples": samples, "rows": rows, "tests": tests}
    from polymodal.io import atomic_path

    with atomic_path(out / "evaluation.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    with atomic_path(out / "evaluation.md") as tmp:
        tmp.write_text(markdown(result))
    return result


def _f(value: Any, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def markdown(result: dict[str, Any]) -> str:
    """The rows table and the paired-bootstrap table of :func:`evaluate`'s result."""
    lines = [
        "| run | seed | val/spearman (sweep) | STS-B dev Spearman (1,500) | SNLI retrieval nDCG@10 | Recall@1 "
        "| train s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['run']} | {r['seed']} | {_f(r['val/spearman'])} | {_f(r.get('stsb/spearman'))} | "
            f"{_f(r.get('snli-premise-retrieval/ndcg@10'))} | {_f(r.get('snli-premise-retrieval/recall@1'))} | "
            f"{_f(r['train_seconds'], 0)} |"
        )
    lines += [
        "",
        f"Paired bootstrap over the 1,500 STS-B dev pairs ({result['samples']} resamples; delta = b - a in Spearman):",
        "",
        "| b | a | test | seed | delta | 95 % interval | p |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in result["tests"]:
        lines.append(
            f"| {t['b']} | {t['a']} | {t['what']} | {t['seed']} | {t['delta']:+.4f} | "
            f"[{t['low']:+.4f}, {t['high']:+.4f}] | {t['p']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("root", help="the sweep's output folder (runs/sweeps/llm_embedder/sweep_cpu)")
    parser.add_argument("--out", default=None, help="output folder (default <root>/evaluation)")
    parser.add_argument("--bench-out", default="runs/bench", help="bench results cache ('' : none)")
    parser.add_argument("--data-root", default=None, help="folder of the data folders (default ../shared/data)")
    parser.add_argument("--base", default="base", help="the run every other row is tested against")
    parser.add_argument("--samples", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--only", nargs="*", default=None, help="score only these runs")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        result = evaluate(
            args.root,
            args.out,
            args.data_root,
            args.bench_out or None,
            args.base,
            args.samples,
            args.batch_size,
            args.only,
        )
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"llm_embedder.evaluate: {err}") from None
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
