"""Score sentence pairs with a cross-encoder teacher and write a table for student training.

    python -m polymodal.recipes.distilled.score --teacher runs/distilled-teacher/model \
        --input ../shared/data/stsb/sts-train.csv.gz --output runs/distilled/teacher_scores.tsv \
        [--augment ../shared/data/nli/snli_1.0_dev.tsv.gz --augment-columns premise,hypothesis]

    python -m polymodal.recipes.distilled.score --teacher runs/distilled-snli-teacher/model \
        --input ../shared/data/nli/snli_1.0_dev.tsv.gz --columns premise,hypothesis,label \
        --classes entailment,neutral,contradiction --output runs/distilled/snli_teacher_logits.tsv

The output (TSV, atomic write) has columns ``sentence1``, ``sentence2``, ``teacher_score`` (in
[0, 1] for a sigmoid teacher), ``score`` (the gold score where the input has one, else empty) and
``source`` (the table each pair came from). ``--augment`` adds unlabeled pairs the teacher labels:
the student then learns from more pairs than the gold data has, which is what distillation buys.

A pair *classifier* teacher (``CrossEncoderSystem(num_classes=K)``, e.g. SNLI three-way) writes its raw
logits ``teacher_logit_0`` ... ``teacher_logit_{K-1}`` (what the DSE student regresses), its probabilities
``teacher_prob_k``, ``teacher_label`` (the arg-max class name, with ``--classes`` in the teacher's class
order) and ``label`` (the gold label text where the input has one) instead of ``teacher_score`` / ``score``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np

from polymodal.data.tables import check_columns, read_table
from polymodal.io import atomic_path

__all__ = ["main", "score_table"]


def _pairs(
    path: str, columns: Sequence[str], layout: str | None, read_options: dict, text_gold: bool = False
) -> tuple[list, list, list]:
    max_rows = read_options.pop("max_rows", None)
    df = read_table(path, layout=layout, **read_options)
    if max_rows is not None:
        df = df.iloc[:max_rows]
    check_columns(df, list(columns), path)
    a, b = (df[c].tolist() for c in columns[:2])
    for name, values in zip(columns[:2], (a, b)):
        for row, v in enumerate(values):
            if not isinstance(v, str):
                raise ValueError(f"{path}: row {row + 1}, column {name!r}: expected text, got {v!r:.40}")
    if len(columns) <= 2:
        gold = [None if text_gold else float("nan")] * len(a)
    else:
        gold = df[columns[2]].astype(str).tolist() if text_gold else df[columns[2]].astype(float).tolist()
    return a, b, gold


def score_table(
    teacher_path: str,
    inputs: Sequence[tuple[str, Sequence[str], str | None, dict]],
    output: str,
    batch_size: int = 64,
    classes: Sequence[str] | None = None,
) -> dict[str, float]:
    """Score every pair of every input table with the teacher; write ``output``; return timings (and the
    teacher's Spearman, or accuracy for a classifier teacher, on the labelled pairs)."""
    import pandas as pd

    import polymodal
    from polymodal.plugins.text.cross_encoder import CrossEncoder

    teacher = polymodal.load(teacher_path)
    if not isinstance(teacher, CrossEncoder):
        raise TypeError(f"{teacher_path}: not a cross-encoder (saved by recipes/distilled/teacher.yaml)")
    k = teacher.num_labels
    if k > 1:
        names = list(classes) if classes else [str(i) for i in range(k)]
        if len(names) != k:
            raise ValueError(f"--classes names {len(names)} classes but the teacher has {k} outputs")
        teacher.activation = "identity"  # raw logits: what the DSE student reconstructs
    frames = []
    n = 0
    start = time.perf_counter()
    for path, columns, layout, options in inputs:
        a, b, gold = _pairs(path, columns, layout, options, text_gold=k > 1)
        scores = teacher.predict(list(zip(a, b)), batch_size=batch_size)
        if k == 1:
            frames.append(
                pd.DataFrame({"sentence1": a, "sentence2": b, "teacher_score": scores, "score": gold, "source": path})
            )
        else:
            z = scores - scores.max(axis=1, keepdims=True)
            prob = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)  # (N, K)
            cols: dict = {"sentence1": a, "sentence2": b}
            cols.update({f"teacher_logit_{j}": scores[:, j] for j in range(k)})
            cols.update({f"teacher_prob_{j}": prob[:, j] for j in range(k)})
            cols.update({"teacher_label": [names[j] for j in scores.argmax(axis=1)], "label": gold, "source": path})
            frames.append(pd.DataFrame(cols))
        n += len(a)
    seconds = time.perf_counter() - start
    table = pd.concat(frames, ignore_index=True)
    with atomic_path(output) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6f")
    report = {"pairs": float(n), "seconds": seconds}
    if k > 1:
        labelled = table.dropna(subset=["label"])
        if len(labelled):
            report["teacher_accuracy_on_labelled"] = float((labelled["teacher_label"] == labelled["label"]).mean())
        return report
    labelled = table.dropna(subset=["score"])
    if len(labelled) > 1:
        from polymodal.metrics.functional import spearman

        report["teacher_spearman_on_labelled"] = spearman(
            labelled["teacher_score"].to_numpy(np.float64), labelled["score"].to_numpy(np.float64)
        )
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True, help="cross-encoder folder (teacher.yaml's export)")
    parser.add_argument("--input", required=True, help="table of labelled pairs (STS-B train)")
    parser.add_argument("--columns", default="sentence1,sentence2,score", help="text_a,text_b[,gold score]")
    parser.add_argument("--layout", default=None)
    parser.add_argument("--augment", action="append", default=[], help="extra unlabeled pair tables")
    parser.add_argument("--augment-columns", default="premise,hypothesis")
    parser.add_argument("--output", required=True)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-rows", type=int, default=None, help="score only the first N rows of each table")
    parser.add_argument("--classes", default=None, help="class names in the teacher's order (a classifier teacher)")
    ns = parser.parse_args(argv)
    limit = {} if ns.max_rows is None else {"max_rows": ns.max_rows}
    inputs = [(ns.input, ns.columns.split(","), ns.layout, dict(limit))]
    for path in ns.augment:  # SNLI text has bare quotes
        inputs.append((path, ns.augment_columns.split(","), None, {"quoting": 3, **limit}))
    classes = ns.classes.split(",") if ns.classes else None
    report = score_table(ns.teacher, inputs, ns.output, ns.batch_size, classes)
    print(f"wrote {int(report['pairs'])} teacher-scored pairs to {ns.output} in {report['seconds']:.1f} s")
    if "teacher_spearman_on_labelled" in report:
        print(f"teacher Spearman on the labelled input pairs: {report['teacher_spearman_on_labelled']:.4f}")
    if "teacher_accuracy_on_labelled" in report:
        print(f"teacher accuracy on the labelled input pairs: {report['teacher_accuracy_on_labelled']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
