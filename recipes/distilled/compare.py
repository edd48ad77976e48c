"""Teacher vs cosine student vs head student on a pair classification task (SNLI three-way), one table.

    python -m polymodal.recipes.distilled.compare --scored runs/distilled/snli_teacher_logits.tsv \
        --test runs/distilled/snli_test_teacher.tsv \
        --cosine runs/distilled-snli-student-cosine/model --cosine minilm-l6 \
        --head runs/distilled-snli-student-head/model \
        --head-checkpoint runs/distilled-snli-student-head/checkpoints/last.ckpt

* teacher: its arg-max class on the test table (``teacher_label``, written by ``score.py``);
* cosine student(s): the pair cosine gives one number, so three classes need two thresholds
  (``cos >= hi``: the first class, ``cos < lo``: the last, else the middle one), chosen to maximise accuracy on
  the validation part of ``--scored`` (the same 90/10 row split as the students' YAMLs) — never on test;
* head student: the :class:`~polymodal.heads.PairHead` of ``--head-checkpoint`` (the Lightning checkpoint of
  ``student_head_snli.yaml``, read with ``weights_only=True``) on the exported tower's embeddings.

Prints one line per model (accuracy, macro-F1 on the test pairs) and writes nothing.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
import torch

from polymodal.data import Split, read_table
from polymodal.metrics.functional import multiclass_metrics, pair_cosine

__all__ = ["cosine_thresholds", "load_pair_head", "main", "threshold_classes"]


def threshold_classes(cos: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Class index per pair: 0 where ``cos >= hi``, 2 where ``cos < lo``, else 1."""
    return np.where(cos >= hi, 0, np.where(cos < lo, 2, 1))


def cosine_thresholds(cos: np.ndarray, labels: np.ndarray, grid: int = 60) -> tuple[float, float]:
    """``(lo, hi)`` maximising the three-way accuracy of :func:`threshold_classes` on ``(cos, labels)``,
    searched over ``grid`` quantiles of ``cos`` (ties: the first found)."""
    qs = np.unique(np.quantile(cos, np.linspace(0.0, 1.0, grid)))
    best, best_acc = (float(qs[0]), float(qs[-1])), -1.0
    for i, lo in enumerate(qs):
        for hi in qs[i:]:
            acc = float((threshold_classes(cos, lo, hi) == labels).mean())
            if acc > best_acc:
                best, best_acc = (float(lo), float(hi)), acc
    return best


def load_pair_head(checkpoint: str, name: str, width: int) -> torch.nn.Module:
    """The trained :class:`~polymodal.heads.PairHead` ``heads.<name>`` of a System checkpoint (weights only)."""
    from polymodal.heads import PairHead

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    prefix = f"heads.{name}."
    sub = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not sub:
        heads = sorted({k.split(".")[1] for k in state if k.startswith("heads.")})
        raise ValueError(f"{checkpoint}: no head {name!r} (heads: {heads})")
    linears = sorted(k for k in sub if k.endswith(".weight"))
    out_dim = int(sub[linears[-1]].shape[0])
    hidden = int(sub[linears[0]].shape[0]) if len(linears) > 1 else 0
    n_features = int(sub[linears[0]].shape[1]) // width
    features = ("u", "v", "abs_diff", "product") if n_features == 4 else ("u", "v", "abs_diff")
    head = PairHead(out_dim=out_dim, features=features, hidden=hidden)
    head.build([width, width])
    head.load_state_dict(sub)
    return head.eval()


def _labels(values: Sequence[str], classes: Sequence[str], where: str) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    bad = [(i, v) for i, v in enumerate(values) if v not in index]
    if bad:
        raise ValueError(f"{where}: row {bad[0][0] + 1}, column 'label': {bad[0][1]!r} is not one of {list(classes)}")
    return np.array([index[v] for v in values])


def _report(name: str, gold: np.ndarray, pred: np.ndarray, note: str = "") -> dict[str, float]:
    onehot = np.eye(3)[pred]
    m = multiclass_metrics(gold, onehot)
    print(f"{name:<40} accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}  {note}")
    return m


def main(argv: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scored", required=True, help="score.py's table of the training pool (train/val parts)")
    parser.add_argument("--test", required=True, help="score.py's table of the test pairs (gold 'label')")
    parser.add_argument("--cosine", action="append", default=[], help="bi-encoder folder or name (repeatable)")
    parser.add_argument("--head", default=None, help="the head student's exported tower")
    parser.add_argument("--head-checkpoint", default=None, help="its Lightning checkpoint (for the PairHead)")
    parser.add_argument("--head-name", default="nli")
    parser.add_argument("--classes", default="entailment,neutral,contradiction")
    parser.add_argument("--batch-size", type=int, default=128)
    ns = parser.parse_args(argv)

    import polymodal

    classes = ns.classes.split(",")
    val = Split([0.9, 0.1], "val", path=ns.scored).frame()
    val = val[val["label"].notna()].reset_index(drop=True)  # pairs added with --augment have no gold label
    test = read_table(ns.test)
    y_val = _labels(val["label"].tolist(), classes, f"{ns.scored} (val part)")
    y_test = _labels(test["label"].tolist(), classes, ns.test)
    results = {"teacher": _report("teacher (cross-encoder)", y_test, _labels(test["teacher_label"], classes, ns.test))}

    def embed(model, frame) -> tuple[np.ndarray, np.ndarray]:
        a = model.encode(frame["sentence1"].tolist(), batch_size=ns.batch_size)
        b = model.encode(frame["sentence2"].tolist(), batch_size=ns.batch_size)
        return np.asarray(a), np.asarray(b)

    for path in ns.cosine:
        model = polymodal.load(path)
        lo, hi = cosine_thresholds(pair_cosine(*embed(model, val)), y_val)
        pred = threshold_classes(pair_cosine(*embed(model, test)), lo, hi)
        note = f"(lo {lo:.3f}, hi {hi:.3f} on val)"
        results[f"cosine:{path}"] = _report(f"cosine student {path}", y_test, pred, note)
    if ns.head:
        if not ns.head_checkpoint:
            raise ValueError("--head needs --head-checkpoint (the PairHead's weights)")
        model = polymodal.load(ns.head)
        a, b = embed(model, test)
        head = load_pair_head(ns.head_checkpoint, ns.head_name, a.shape[1])
        with torch.inference_mode():
            logits = head([torch.from_numpy(a), torch.from_numpy(b)]).numpy()
        results["head"] = _report(f"head student {ns.head}", y_test, logits.argmax(axis=1))
    return results


if __name__ == "__main__":
    main()
