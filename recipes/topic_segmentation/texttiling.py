"""TextTiling (Hearst, 1997) on frozen sentence embeddings: the unsupervised baseline of the Choi table.

The similarity at a gap is the cosine of the mean embedding of the ``w`` sentences before and after it;
a gap's depth is how far its similarity lies below the nearest peaks on either side (climbing while the
similarity rises). Boundaries: depth peaks above a threshold tuned on val, or Hearst's ``mean - std / 2``.

    python -m polymodal.recipes.topic_segmentation.texttiling [--data choi.jsonl.gz] [--protocols document]
        [--heldout-docs 40]  # text-disjoint val / test size (default 200)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from polymodal.evaluation.segmentation import score_segmentations, threshold_boundaries, tune_threshold
from polymodal.io import atomic_path

__all__ = ["depth_scores", "hearst_boundaries", "main", "window_similarities"]


def window_similarities(embeddings: np.ndarray, window: int) -> np.ndarray:
    """``(N - 1,)`` cosine of the means of the ``window`` sentences either side of each gap."""
    x = np.asarray(embeddings, dtype=np.float64)
    if window < 1 or len(x) < 2:
        raise ValueError(f"need window >= 1 and at least 2 sentences, got {window} and {len(x)}")
    csum, n = np.vstack([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)]), len(x)  # (N + 1, D)
    g = np.arange(n - 1)
    lo, hi = np.maximum(0, g + 1 - window), np.minimum(n, g + 1 + window)
    left, right = (csum[g + 1] - csum[lo]) / (g + 1 - lo)[:, None], (csum[hi] - csum[g + 1]) / (hi - g - 1)[:, None]
    denom = np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1)
    return np.where(denom > 0, (left * right).sum(1) / np.where(denom > 0, denom, 1), 0.0)


def depth_scores(similarities: np.ndarray) -> np.ndarray:
    """Hearst's depth: ``(left peak - s) + (right peak - s)``, peaks found by climbing while rising."""
    s, depth = np.asarray(similarities, dtype=np.float64), np.zeros(len(similarities))
    for g in range(len(s)):
        left, right = g, g
        while left > 0 and s[left - 1] >= s[left]:
            left -= 1
        while right < len(s) - 1 and s[right + 1] >= s[right]:
            right += 1
        depth[g] = (s[left] - s[g]) + (s[right] - s[g])
    return depth


def hearst_boundaries(depth: np.ndarray) -> np.ndarray:
    """Depth peaks above ``mean - std / 2`` (a gap of zero depth is never a boundary)."""
    return threshold_boundaries(depth, max(depth.mean() - depth.std() / 2, 0.0), peaks=True)


def documents(frame) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per document of a ``ChoiPairs`` + ``TextFeatures`` frame: (sentence embeddings, boundaries)."""
    out: tuple[list, list] = ([], [])
    for _, d in frame.sort_values(["doc", "gap"]).groupby("doc"):
        out[0].append(np.stack([d["left"].iloc[0], *d["right"]]))
        out[1].append(d["boundary"].to_numpy().astype(np.int64))
    return out


def main(argv: list[str] | None = None) -> dict:
    from polymodal.data.features import TextFeatures
    from polymodal.plugins.text import TextEncoder
    from polymodal.recipes.topic_segmentation.data import ChoiPairs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data://topicseg_choi/choi.jsonl.gz")
    parser.add_argument("--protocols", nargs="+", default=["document", "text-disjoint"])
    parser.add_argument("--windows", nargs="+", type=int, default=[1, 2, 3, 4, 5, 6, 8])
    parser.add_argument("--heldout-docs", type=int, default=200, help="text-disjoint val / test documents")
    parser.add_argument("--cache-dir", default="/tmp/polymodal_cache/topicseg")
    parser.add_argument("--out", default="runs/topicseg/texttiling.json")
    args = parser.parse_args(argv)
    encoder, results = TextEncoder("minilm-l6", hidden_states=True), {}
    for protocol in args.protocols:
        data = {
            part: documents(
                TextFeatures(
                    ChoiPairs(args.data, part, protocol, heldout_docs=args.heldout_docs),
                    ["left", "right"],
                    encoder,
                    cache_dir=args.cache_dir,
                ).frame()
            )
            for part in ("val", "test")
        }

        def depths(part: str, w: int) -> list[np.ndarray]:
            return [depth_scores(window_similarities(e, w)) for e in data[part][0]]  # noqa: B023

        tuned = {w: tune_threshold(depths("val", w), data["val"][1], peaks=True) for w in args.windows}
        pk = {w: score_segmentations(depths("val", w), data["val"][1], t, peaks=True)["pk"] for w, t in tuned.items()}
        w = min(pk, key=pk.get)  # type: ignore[arg-type]
        test, refs = depths("test", w), data["test"][1]
        hearst = score_segmentations([hearst_boundaries(d).astype(float) for d in test], refs, 0.5)
        results[protocol] = {
            "window": w,
            "tuned": score_segmentations(test, refs, tuned[w], peaks=True),
            "hearst": {"pk": hearst["pk"], "windowdiff": hearst["windowdiff"]},
        }
        print(protocol, json.dumps(results[protocol]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
