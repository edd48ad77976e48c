"""Leaderboard of cached bench results (Markdown, HTML, PNG charts) and MMTEB's greedy task selection.

As MMTEB reports: per-type means (the mean of a type's task scores), the mean over types, and a Borda
rank (each task ranks the models; a model earns one point per model it beats, half per tie; points
summed over tasks). The *main* mean leaves out every task that is in-domain for a model on the board
(its recipe trains on the task's data, see :class:`~polymodal.bench.tasks.TaskCard`), so all rows
are averaged over the same tasks; the all-task mean is shown beside it. Scores are shown x100.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.bench.tasks import TASK_TYPES, TASKS, Task
from polymodal.metrics.functional import rankdata, spearman

__all__ = ["Leaderboard", "Selection", "load_results", "select_tasks"]


def load_results(out: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every result JSON under ``<out>/results`` for a current task version; unreadable files are errors."""
    root = Path(out).expanduser() / "results"
    if not root.is_dir():
        raise FileNotFoundError(f"no bench results under {root} (run polymodal bench --model ... --out {out})")
    records = []
    for path in sorted(root.glob("*/*.json")):
        try:
            record = json.loads(path.read_text())
            task = TASKS.get(record["task"])
            ok = task is not None and record["task_version"] == task.card.version
            float(record["main_score"]), str(record["label"]), str(record["fingerprint"])
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: not a bench result ({type(exc).__name__}: {exc})") from None
        if ok:
            records.append(record)
    return records


@dataclass
class Leaderboard:
    """Scores of models (rows, by fingerprint) on tasks; see the module docstring for the columns."""

    records: list[dict[str, Any]]
    models: list[str] = field(init=False)
    labels: dict[str, str] = field(init=False)
    recipes: dict[str, str | None] = field(init=False)
    tasks: list[Task] = field(init=False)
    scores: dict[tuple[str, str], float] = field(init=False)

    def __post_init__(self) -> None:
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for r in self.records:
            key = (r["fingerprint"], r["task"])
            if key not in latest or str(r.get("date", "")) >= str(latest[key].get("date", "")):
                latest[key] = r
        self.models = list(dict.fromkeys(r["fingerprint"] for r in self.records))
        names: dict[str, str] = {}
        self.recipes = {}
        for r in latest.values():
            names.setdefault(r["fingerprint"], r["label"])
            self.recipes.setdefault(r["fingerprint"], r.get("recipe"))
        counts = {n: list(names.values()).count(n) for n in names.values()}
        self.labels = {fp: (n if counts[n] == 1 else f"{n} ({fp[:8]})") for fp, n in names.items()}
        used = {r["task"] for r in latest.values()}
        self.tasks = [t for name, t in TASKS.items() if name in used]
        self.scores = {key: float(r["main_score"]) for key, r in latest.items()}

    # ------------------------------------------------------------------------------------ numbers
    def in_domain(self, fingerprint: str, task: Task) -> bool:
        return self.recipes.get(fingerprint) in task.card.trained_by

    def main_tasks(self) -> list[Task]:
        """Tasks in-domain for no model on the board."""
        recipes = {r for r in self.recipes.values() if r}
        return [t for t in self.tasks if not recipes & set(t.card.trained_by)]

    def type_means(self, fingerprint: str, tasks: Sequence[Task] | None = None) -> dict[str, float]:
        """Mean score per task type, for the types where this model has every task (others are left out)."""
        out = {}
        for kind in TASK_TYPES:
            of_kind = [t for t in (self.tasks if tasks is None else tasks) if t.card.type == kind]
            vals = [self.scores.get((fingerprint, t.name), float("nan")) for t in of_kind]
            if vals and all(v == v for v in vals):
                out[kind] = float(np.mean(vals))
        return out

    def mean_over_types(self, fingerprint: str, tasks: Sequence[Task] | None = None) -> float:
        tasks = list(self.tasks if tasks is None else tasks)
        if any((fingerprint, t.name) not in self.scores for t in tasks):
            return float("nan")
        means = self.type_means(fingerprint, tasks)
        return float(np.mean(list(means.values()))) if means else float("nan")

    def complete_tasks(self) -> list[Task]:
        """Tasks every model on the board has a score for."""
        return [t for t in self.tasks if all((m, t.name) in self.scores for m in self.models)]

    def borda(self) -> dict[str, float]:
        """Borda points over the tasks every model has scored."""
        points = dict.fromkeys(self.models, 0.0)
        for task in self.complete_tasks():
            ranks = rankdata(np.array([self.scores[(m, task.name)] for m in self.models]))
            for m, r in zip(self.models, ranks):
                points[m] += r - 1.0  # models beaten, ties counted half
        return points

    def order(self) -> list[str]:
        points = self.borda()
        return sorted(self.models, key=lambda m: (-points[m], -np.nan_to_num(self.mean_over_types(m), nan=-1.0)))

    # ------------------------------------------------------------------------------------ output
    def _rows(self) -> tuple[list[str], list[list[str]], list[str], list[list[str]]]:
        main = self.main_tasks()
        kinds = [k for k in TASK_TYPES if any(t.card.type == k for t in self.tasks)]
        points = self.borda()
        order = self.order()
        ranks = rankdata(np.array([-points[m] for m in order]))
        head = ["Borda rank", "model", "mean (main)", "mean (all types)", *kinds]
        rows = []
        for m, rank in zip(order, ranks):
            means = self.type_means(m)
            rows.append(
                [
                    f"{rank:g}",
                    self.labels[m],
                    _pct(self.mean_over_types(m, main)),
                    _pct(self.mean_over_types(m)),
                    *[_pct(means.get(k, float("nan"))) for k in kinds],
                ]
            )
        task_head = ["model", *[t.name for t in self.tasks]]
        task_rows = []
        for m in order:
            cells = []
            for t in self.tasks:
                cell = _pct(self.scores.get((m, t.name), float("nan")))
                cells.append(cell + (" †" if self.in_domain(m, t) else ""))
            task_rows.append([self.labels[m], *cells])
        return head, rows, task_head, task_rows

    def _notes(self) -> list[str]:
        main = {t.name for t in self.main_tasks()}
        left_out = [t.name for t in self.tasks if t.name not in main]
        notes = [
            f"{len(self.models)} models, {len(self.tasks)} tasks; scores x100. Borda rank over the "
            f"{len(self.complete_tasks())} tasks every model has scored.",
            "mean (main): mean over task types of the tasks in-domain for no model on this board"
            + (f" (left out: {', '.join(left_out)})" if left_out else " (all tasks)")
            + "; mean (all types): every task; a blank mean means a task is missing for that model.",
        ]
        if any(self.in_domain(m, t) for m in self.models for t in self.tasks):
            notes.append("†: the model's recipe trains on this task's data (in-domain).")
        return notes

    def markdown(self) -> str:
        head, rows, task_head, task_rows = self._rows()
        lines = [*_md_table(head, rows), "", *_md_table(task_head, task_rows), ""]
        lines += [f"- {n}" for n in self._notes()]
        metrics = ", ".join(f"{t.name}: {t.card.metric}" for t in self.tasks)
        lines.append(f"- main score per task: {metrics}.")
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        head, rows, task_head, task_rows = self._rows()
        parts = ["<!doctype html><meta charset='utf-8'><title>polymodal bench</title>", "<h1>polymodal bench</h1>"]
        for h, body in ((head, rows), (task_head, task_rows)):
            parts.append("<table border='1' cellspacing='0' cellpadding='4'>")
            parts.append("<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in h) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body]
            parts.append("</table><p></p>")
        parts += [f"<p>{html.escape(n)}</p>" for n in self._notes()]
        return "\n".join(parts) + "\n"

    def charts(self, directory: str | os.PathLike[str]) -> list[Path]:
        """One PNG bar chart per task type (tasks on the x axis, one bar per model); returns the paths."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from polymodal.io import atomic_path

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        order = self.order()
        for kind in TASK_TYPES:
            tasks = [t for t in self.tasks if t.card.type == kind]
            if not tasks:
                continue
            fig, ax = plt.subplots(figsize=(max(4.0, 1.6 * len(tasks) + 0.25 * len(order)), 3.6))
            width = 0.8 / max(1, len(order))
            x = np.arange(len(tasks))
            for i, m in enumerate(order):
                vals = [100 * self.scores.get((m, t.name), np.nan) for t in tasks]
                ax.bar(x + (i - (len(order) - 1) / 2) * width, vals, width, label=self.labels[m])
            ax.set_xticks(x, [t.name for t in tasks], fontsize=8)
            ax.set_ylabel(" / ".join(dict.fromkeys(t.card.metric for t in tasks)) + " x100")
            ax.set_title(f"polymodal bench: {kind}")
            ax.legend(fontsize=6, loc="lower right")
            fig.tight_layout()
            path = directory / f"{kind}.png"
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format="png", dpi=110)
            plt.close(fig)
            paths.append(path)
        return paths

    def write(self, out: str | os.PathLike[str]) -> list[Path]:
        """``leaderboard.md``, ``leaderboard.html`` and ``charts/<type>.png`` under ``out``."""
        from polymodal.io import atomic_path

        out = Path(out).expanduser()
        written = []
        for name, text in (("leaderboard.md", self.markdown()), ("leaderboard.html", self.html())):
            with atomic_path(out / name) as tmp:
                tmp.write_text(text)
            written.append(out / name)
        return written + self.charts(out / "charts")


def _pct(x: float) -> str:
    return "" if x != x else f"{100 * x:.2f}"


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
        *["| " + " | ".join(r) + " |" for r in rows],
    ]


# ------------------------------------------------------------------------------------ task selection
@dataclass(frozen=True)
class Selection:
    """Result of :func:`select_tasks`.

    Attributes:
        kept: tasks of the lite subset.
        removed: ``(task, predictability, ranking correlation after removal)`` in removal order.
        models: labels of the models the selection is based on.
        threshold: the Spearman floor that stopped it.
    """

    kept: tuple[str, ...]
    removed: tuple[tuple[str, float, float], ...]
    models: tuple[str, ...]
    threshold: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "kept": list(self.kept),
            "removed": [{"task": t, "predictability": p, "ranking_spearman": r} for t, p, r in self.removed],
            "models": list(self.models),
            "threshold": self.threshold,
        }


def _predictability(y: np.ndarray, X: np.ndarray, alpha: float = 1.0) -> float:
    """Spearman of a task's scores with their leave-one-model-out ridge predictions from the other tasks."""
    n = len(y)
    preds = np.empty(n)
    for i in range(n):
        keep = np.arange(n) != i
        Xt, yt = X[keep], y[keep]
        mu, sd = Xt.mean(0), Xt.std(0)
        sd[sd == 0] = 1.0
        Z = (Xt - mu) / sd
        A = Z.T @ Z + alpha * np.eye(Z.shape[1])
        w = np.linalg.solve(A, Z.T @ (yt - yt.mean()))
        preds[i] = yt.mean() + ((X[i] - mu) / sd) @ w
    if np.std(preds) == 0 or np.std(y) == 0:
        return float("nan")
    return spearman(preds, y)


def select_tasks(board: Leaderboard, threshold: float = 0.9, keep_types: bool = True) -> Selection:
    """MMTEB's greedy task selection over the tasks every model on ``board`` has scored.

    Repeatedly drop the task whose scores are best predicted (Spearman of leave-one-model-out ridge
    predictions) from the remaining tasks, provided the Spearman correlation between the models' ranking
    by mean over types on the remaining tasks and on all tasks stays ``>= threshold``; with
    ``keep_types`` every task type keeps at least one task. Stops when no task can be dropped.
    """
    tasks = board.complete_tasks()
    models = board.models
    if len(models) < 4:
        raise ValueError(f"task selection needs scores of at least 4 models, the board has {len(models)}")
    scores = {t.name: np.array([board.scores[(m, t.name)] for m in models]) for t in tasks}
    full = np.array([board.mean_over_types(m, tasks) for m in models])
    remaining = list(tasks)
    removed: list[tuple[str, float, float]] = []
    while len(remaining) > 1:
        candidates = []
        for t in remaining:
            if keep_types and sum(1 for u in remaining if u.card.type == t.card.type) == 1:
                continue
            others = [u for u in remaining if u is not t]
            X = np.stack([scores[u.name] for u in others], axis=1)
            p = _predictability(scores[t.name], X)
            candidates.append((-1.0 if p != p else p, t))
        candidates.sort(key=lambda c: -c[0])
        for p, t in candidates:
            rest = [u for u in remaining if u is not t]
            corr = spearman(np.array([board.mean_over_types(m, rest) for m in models]), full)
            if corr >= threshold:
                remaining = rest
                removed.append((t.name, float(p), float(corr)))
                break
        else:
            break
    return Selection(
        tuple(t.name for t in remaining), tuple(removed), tuple(board.labels[m] for m in models), threshold
    )
