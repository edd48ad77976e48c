"""The final stage: average the dev predictions of every fitted model, per task, and score them.

    python -m polymodal.recipes.wassa_empathy.ensemble runs/sweeps/wassa_fidelity runs/sweeps/wassa_tasks \
        [--data ../shared/data/wassa22] [--out runs/wassa/ensemble.json]

Each run of ``sweep_fidelity.yaml`` / ``sweep_tasks.yaml`` leaves ``<root>/<run>/seed<N>/predictions.csv``
(:class:`~polymodal.callbacks.PredictionWriter` after fit, with the best validation epoch's weights): the
official dev essays' ``message_id`` and one column per head (``empathy``, ``distress``, the nine trait
heads, ``emotion_0`` ... ``emotion_6`` class probabilities). The ensemble of a task is the plain mean over
every member that predicts it (regression values, or class probabilities for emotion) — no member is
chosen on dev. Printed: each member's and each ensemble's dev Pearson r (empathy, distress, their mean; the
mean over the nine traits) and emotion macro-F1 / accuracy.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polymodal.io import atomic_path
from polymodal.metrics.functional import multiclass_metrics, pearson
from polymodal.recipes.wassa_empathy.data import EMOTION_CLASSES, TARGETS, TRAITS, WassaEssays

__all__ = ["load_members", "main", "score"]


def load_members(roots: Sequence[str]) -> dict[str, pd.DataFrame]:
    """``"<run>/seed<N>" -> predictions`` of every finished run under the sweep ``roots``."""
    members = {}
    for root in roots:
        files = sorted(Path(root).glob("*/seed*/predictions.csv"))
        if not files:
            raise FileNotFoundError(f"{root}: no <run>/seed<N>/predictions.csv (run the sweep first)")
        for f in files:
            frame = pd.read_csv(f)
            if "message_id" not in frame.columns:
                raise ValueError(f"{f}: no message_id column; was it written with data.meta: [message_id]?")
            members[f"{f.parent.parent.name}/{f.parent.name}"] = frame.set_index("message_id")
    return members


def score(gold: pd.DataFrame, members: dict[str, pd.DataFrame]) -> list[dict[str, Any]]:
    """One record per member and per task ensemble (``members`` averaged where they predict the task)."""
    gold = gold.set_index("message_id")
    emotion_cols = [f"emotion_{k}" for k in range(len(EMOTION_CLASSES))]
    y_emotion = gold["emotion"].map({c: i for i, c in enumerate(EMOTION_CLASSES)}).to_numpy()
    for name, frame in members.items():
        if set(frame.index) != set(gold.index):
            raise ValueError(f"{name}: its {len(frame)} predictions are not the {len(gold)} dev essays")

    def metrics(frame: pd.DataFrame) -> dict[str, float]:
        frame = frame.loc[gold.index]
        out: dict[str, float] = {}
        if all(t in frame.columns for t in TARGETS):
            for t in TARGETS:
                out[f"{t}_r"] = pearson(frame[t].to_numpy(np.float64), gold[t].to_numpy(np.float64))
            out["pearson_avg"] = float(np.mean([out[f"{t}_r"] for t in TARGETS]))
        if all(t in frame.columns for t in TRAITS):
            rs = [pearson(frame[t].to_numpy(np.float64), gold[t].to_numpy(np.float64)) for t in TRAITS]
            out["traits_pearson_avg"] = float(np.mean(rs))
        if all(c in frame.columns for c in emotion_cols):
            m = multiclass_metrics(y_emotion, frame[emotion_cols].to_numpy(np.float64))
            out["emotion_macro_f1"], out["emotion_accuracy"] = m["macro_f1"], m["accuracy"]
        return out

    records = [{"model": name, "members": 1, **metrics(frame)} for name, frame in members.items()]
    tasks = {"empathy/distress": list(TARGETS), "traits": list(TRAITS), "emotion": emotion_cols}
    for task, cols in tasks.items():
        having = {n: f for n, f in members.items() if all(c in f.columns for c in cols)}
        if not having:
            continue
        mean = sum(f.loc[gold.index, cols] for f in having.values()) / len(having)
        records.append({"model": f"ensemble: {task}", "members": len(having), **metrics(mean)})
    return records


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("roots", nargs="+", help="sweep roots holding <run>/seed<N>/predictions.csv")
    parser.add_argument("--data", default="data://wassa22", help="the WASSA folder (dev essays + gold)")
    parser.add_argument("--out", default=None, help="also write the records as JSON")
    ns = parser.parse_args(argv)
    records = score(WassaEssays(ns.data, "dev").frame(), load_members(ns.roots))
    keys = ["empathy_r", "distress_r", "pearson_avg", "traits_pearson_avg", "emotion_macro_f1", "emotion_accuracy"]
    print("| model | members | " + " | ".join(keys) + " |")
    print("|---|---|" + "---|" * len(keys))
    for r in records:
        cells = [f"{r[k]:.4f}" if k in r else "" for k in keys]
        print(f"| {r['model']} | {r['members']} | " + " | ".join(cells) + " |")
    if ns.out:
        with atomic_path(ns.out) as tmp:
            Path(tmp).write_text(json.dumps(records, indent=1))
    return records


if __name__ == "__main__":
    main()
