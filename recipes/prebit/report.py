"""PreBit ensemble, modality ablation and trading backtest from saved run predictions.

Inputs are the run folders of the trained models (``polymodal sweep recipes/prebit/sweep.yaml``): each holds
the ``predictions.csv`` that :class:`polymodal.callbacks.PredictionWriter` wrote for the validation and test
periods and the ``prices.csv`` of :class:`~polymodal.recipes.prebit.PreBitDataModule`. A folder named
``seed<N>`` is named after its parent (the sweep's run name). Everything fit here is fit on the **validation**
period only and evaluated on the later **test** period:

* decision thresholds for precision/recall/F1 (F1-optimal on validation),
* the stacked meta-learner (L2-regularised logistic regression on the models' logits),
* the trading threshold (best validation Sharpe).

Soft voting averages the models' probabilities. The backtest trades BTC daily at the close:

* ``avoid_down`` (a risk-off rule driven by the extreme-drop signal): hold BTC, but stay in cash for day
  ``d+1`` when P(extreme down) >= threshold;
* ``long_up``: hold BTC for day ``d+1`` only when P(extreme up) >= threshold;

against buy-and-hold and a moving-average crossover (long while SMA(fast) > SMA(slow)), each
paying ``cost`` (a fraction, e.g. 0.001 = 10 bp) per unit of position change.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.data import check_columns
from polymodal.io import atomic_path, ensure_writable_dir
from polymodal.metrics.functional import binary_metrics

__all__ = ["backtest", "ensemble_probs", "load_runs", "main", "performance", "report"]

TASKS = ("up", "down")
DAYS_PER_YEAR = 365  # Bitcoin trades every day
#: Probability thresholds of the backtest (extreme moves are ~10 % of days: most of the range is below 0.5).
THRESHOLDS = (0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.7)


# ------------------------------------------------------------------ loading
def load_runs(runs: Sequence[str | Path]):
    """Merge the runs' predictions on (split, date); columns ``p_<task>__<run>``."""
    import pandas as pd

    base, names = None, []
    for run in runs:
        path = Path(run) / "predictions.csv"
        if not path.exists():
            raise FileNotFoundError(f"no predictions.csv in {run} (train it with `polymodal fit` first)")
        df = pd.read_csv(path)
        check_columns(df, ["split", "date", "next_return", *TASKS, *(f"extreme_{t}" for t in TASKS)], str(path))
        name = Path(run).parent.name if re.fullmatch(r"seed\d+", Path(run).name) else Path(run).name
        if name in names:
            raise ValueError(f"two runs named {name!r}; give runs distinct folder names")
        names.append(name)
        probs = df[["split", "date", *TASKS]].rename(columns={t: f"p_{t}__{name}" for t in TASKS})
        if base is None:
            base = df.drop(columns=list(TASKS)).merge(probs, on=["split", "date"])
        else:
            merged = base.merge(probs, on=["split", "date"], how="inner")
            if len(merged) != len(base):
                raise ValueError(f"{path}: its days differ from the other runs' ({len(df)} vs {len(base)} rows)")
            base = merged
    assert base is not None
    return base, names


# --------------------------------------------------------------- ensembles
def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The probability threshold with the best F1 on (validation) data."""
    candidates = np.unique(np.round(p, 6))
    best, best_t = -1.0, 0.5
    for t in candidates:
        f1 = binary_metrics(y, p, t)["f1"]
        if f1 > best:
            best, best_t = f1, float(t)
    return best_t


def ensemble_probs(frame, task: str, models: Sequence[str], method: str) -> tuple[np.ndarray, np.ndarray]:
    """(val, test) probabilities of one model or an ensemble of several."""
    val, test = frame[frame.split == "val"], frame[frame.split == "test"]
    cols = [f"p_{task}__{m}" for m in models]
    if method == "single" or len(models) == 1:
        return val[cols[0]].to_numpy(), test[cols[0]].to_numpy()
    if method == "soft_vote":
        return val[cols].mean(axis=1).to_numpy(), test[cols].mean(axis=1).to_numpy()
    if method == "stacked":  # L2-regularised logistic regression (C = 1) on the models' logits
        from sklearn.linear_model import LogisticRegression

        xv, xt = _logit(val[cols].to_numpy()), _logit(test[cols].to_numpy())
        meta = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(xv, val[f"extreme_{task}"].to_numpy())
        return meta.predict_proba(xv)[:, 1], meta.predict_proba(xt)[:, 1]
    raise ValueError(f"unknown ensemble method {method!r}; choose single, soft_vote or stacked")


def ablation(frame, models: Sequence[str], singles: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Test metrics of every model and every ensemble of 2+ ``models`` (soft vote and stacked);
    ``singles`` are reported on their own only (e.g. a fused model, an encoder variant)."""
    rows = []
    combos: list[tuple[tuple[str, ...], str]] = [((m,), "single") for m in [*models, *singles]]
    for k in range(2, len(models) + 1):
        for subset in itertools.combinations(models, k):
            combos += [(subset, "soft_vote"), (subset, "stacked")]
    val, test = frame[frame.split == "val"], frame[frame.split == "test"]
    for task in TASKS:
        yv, yt = val[f"extreme_{task}"].to_numpy(), test[f"extreme_{task}"].to_numpy()
        for subset, method in combos:
            pv, pt = ensemble_probs(frame, task, subset, method)
            t = best_f1_threshold(yv, pv)
            m = binary_metrics(yt, pt, t)
            rows.append({"task": task, "models": "+".join(subset), "method": method, "threshold": t, **m})
    return rows


# ----------------------------------------------------------------- backtest
def performance(daily: np.ndarray, position: np.ndarray) -> dict[str, float]:
    """Cumulative return, annualised Sharpe (rf = 0, 365 days), max drawdown, trades, exposure."""
    equity = np.cumprod(1.0 + daily)
    peak = np.maximum.accumulate(np.r_[1.0, equity])[1:]
    sd = daily.std(ddof=1) if len(daily) > 1 else 0.0
    changes = np.abs(np.diff(np.r_[0.0, position]))
    return {
        "cumulative_return": float(equity[-1] - 1.0) if len(equity) else 0.0,
        "sharpe": float(daily.mean() / sd * math.sqrt(DAYS_PER_YEAR)) if sd > 0 else 0.0,
        "max_drawdown": float((equity / peak - 1.0).min()) if len(equity) else 0.0,
        "trades": int((changes > 0).sum()),
        "exposure": float(position.mean()) if len(position) else 0.0,
    }


def backtest(next_return: np.ndarray, position: np.ndarray, cost: float) -> tuple[np.ndarray, dict[str, float]]:
    """Daily strategy returns for ``position`` (held over each next-day log return ``r``) net of
    ``cost`` per unit of position change (entering at the start counts as a trade)."""
    simple = np.expm1(next_return)
    turnover = np.abs(np.diff(np.r_[0.0, position]))
    daily = position * simple - cost * turnover
    return daily, performance(daily, position)


def ma_crossover_positions(close, dates, fast: int = 10, slow: int = 30) -> np.ndarray:
    """1 where SMA(fast) > SMA(slow) of the close up to each day, else 0 (on ``dates``)."""
    from polymodal.plugins.timeseries.indicators import sma

    f, s = sma(close.to_numpy(), fast), sma(close.to_numpy(), slow)
    signal = np.where(np.isfinite(f) & np.isfinite(s) & (f > s), 1.0, 0.0)
    import pandas as pd

    return pd.Series(signal, index=close.index).reindex(pd.to_datetime(dates)).fillna(0.0).to_numpy()


def _positions(strategy: str, p: np.ndarray, threshold: float) -> np.ndarray:
    if strategy == "avoid_down":
        return np.where(p >= threshold, 0.0, 1.0)
    if strategy == "long_up":
        return np.where(p >= threshold, 1.0, 0.0)
    raise ValueError(f"unknown strategy {strategy!r}; choose avoid_down or long_up")


def report(
    runs: Sequence[str | Path], out: str | Path, models_for_backtest: Sequence[str] | None = None,
    method: str = "stacked", cost: float = 0.001, thresholds: Sequence[float] = THRESHOLDS,
    png: str | Path | None = None, fast: int = 10, slow: int = 30, singles: Sequence[str | Path] = (),
) -> dict[str, Any]:  # fmt: skip
    """Write ``ablation.csv``, ``backtest.csv``, ``equity.csv``, ``equity.png``, ``report.md``
    and ``report.json`` to ``out``; returns the JSON summary."""
    import pandas as pd

    out_dir = ensure_writable_dir(out, what="report directory")
    frame, all_names = load_runs([*runs, *singles])
    names, single_names = all_names[: len(runs)], all_names[len(runs) :]
    table = pd.DataFrame(ablation(frame, names, single_names))
    with atomic_path(out_dir / "ablation.csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f")

    chosen = list(models_for_backtest or names)
    val, test = frame[frame.split == "val"], frame[frame.split == "test"]
    if not (Path(runs[0]) / "prices.csv").is_file():
        raise FileNotFoundError(f"no prices.csv in {runs[0]} (written by PreBitDataModule)")
    prices = pd.read_csv(Path(runs[0]) / "prices.csv", parse_dates=["date"]).set_index("date")["close"]
    sweep_rows, equity = [], {"date": test["date"].to_numpy()}
    rv, rt = val["next_return"].to_numpy(), test["next_return"].to_numpy()
    bh_daily, bh = backtest(rt, np.ones(len(rt)), cost)
    ma_pos = ma_crossover_positions(prices, test["date"], fast, slow)
    ma_daily, ma = backtest(rt, ma_pos, cost)
    equity["buy_and_hold"] = np.cumprod(1 + bh_daily)
    equity[f"ma_crossover_{fast}_{slow}"] = np.cumprod(1 + ma_daily)
    sweep_rows.append({"strategy": "buy_and_hold", "threshold": np.nan, **bh})
    sweep_rows.append({"strategy": f"ma_crossover_{fast}_{slow}", "threshold": np.nan, **ma})
    chosen_thresholds = {}
    for strategy, task in (("avoid_down", "down"), ("long_up", "up")):
        pv, pt = ensemble_probs(frame, task, chosen, method)
        val_sharpe = {t: backtest(rv, _positions(strategy, pv, t), cost)[1]["sharpe"] for t in thresholds}
        best_t = max(val_sharpe, key=lambda t: (val_sharpe[t], -abs(t - 0.5)))
        chosen_thresholds[strategy] = float(best_t)
        for t in thresholds:
            daily, perf = backtest(rt, _positions(strategy, pt, t), cost)
            sweep_rows.append({"strategy": strategy, "threshold": float(t), "val_sharpe": val_sharpe[t], **perf})
            if t == best_t:
                equity[f"{strategy}@{t:g}"] = np.cumprod(1 + daily)
    sweep = pd.DataFrame(sweep_rows)
    with atomic_path(out_dir / "backtest.csv") as tmp:
        sweep.to_csv(tmp, index=False, float_format="%.4f")
    eq = pd.DataFrame(equity)
    with atomic_path(out_dir / "equity.csv") as tmp:
        eq.to_csv(tmp, index=False, float_format="%.6f")
    plot_equity(
        eq, out_dir / "equity.png", f"PreBit backtest, test period, {'+'.join(chosen)} ({method}), cost {cost:g}"
    )
    if png is not None:
        shutil.copyfile(out_dir / "equity.png", png)
    summary = {
        "runs": [str(r) for r in runs],
        "models": names,
        "singles": single_names,
        "backtest_models": chosen,
        "method": method,
        "cost": cost,
        "test_days": int(len(test)),
        "test_period": [str(test["date"].iloc[0]), str(test["date"].iloc[-1])],
        "val_chosen_thresholds": chosen_thresholds,
        "positives_test": {t: int(test[f"extreme_{t}"].sum()) for t in TASKS},
    }
    with atomic_path(out_dir / "report.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    md = _markdown(table, sweep, summary)
    with atomic_path(out_dir / "report.md") as tmp:
        tmp.write_text(md)
    print(md)
    return summary


def plot_equity(eq, path: Path, title: str) -> None:
    """Equity curves (growth of 1) as a small PNG."""
    import matplotlib  # the prebit extra: pip install 'polymodal[prebit]'

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=90)
    dates = pd.to_datetime(eq["date"])
    for col in eq.columns[1:]:
        ax.plot(dates, eq[col], label=col, linewidth=1.2)
    ax.axhline(1.0, color="grey", linewidth=0.6)
    ax.set_ylabel("equity (start = 1)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    ensure_writable_dir(path.parent)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def _markdown(table, sweep, summary) -> str:
    lines = [
        f"## PreBit report: test period {summary['test_period'][0]} .. {summary['test_period'][1]} "
        f"({summary['test_days']} days; extreme up {summary['positives_test']['up']}, "
        f"down {summary['positives_test']['down']})",
        "",
        "Positive-class metrics on the test period; thresholds (and the stacked meta-learner) fit on validation.",
        "",
        "| task | models | method | thr | precision | recall | F1 | ROC-AUC | PR-AUC |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        lines.append(
            f"| {r.task} | {r.models} | {r.method} | {r.threshold:.3f} | {r.precision:.3f} | {r.recall:.3f} | "
            f"{r.f1:.3f} | {r.roc_auc:.3f} | {r.pr_auc:.3f} |"
        )
    lines += [
        "",
        f"Backtest ({summary['method']} ensemble of {'+'.join(summary['backtest_models'])}, "
        f"cost {summary['cost']:g} per unit of position change; thresholds chosen by validation Sharpe: "
        f"{summary['val_chosen_thresholds']}):",
        "",
        "| strategy | threshold | cumulative return | Sharpe | max drawdown | trades | exposure |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sweep.itertuples():
        thr = "" if not np.isfinite(r.threshold) else f"{r.threshold:g}"
        lines.append(
            f"| {r.strategy} | {thr} | {r.cumulative_return:+.3f} | {r.sharpe:.2f} | {r.max_drawdown:.3f} | "
            f"{r.trades} | {r.exposure:.2f} |"
        )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m polymodal.recipes.prebit report --runs DIR [DIR ...] --out DIR``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m polymodal.recipes.prebit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("report", help="ensemble + ablation + backtest from trained runs")
    p.add_argument("--runs", nargs="+", required=True, help="run folders with predictions.csv (one per model)")
    p.add_argument("--singles", nargs="*", default=[], help="more runs, reported alone (not ensembled)")
    p.add_argument("--out", default="runs/prebit/report")
    p.add_argument("--models", nargs="*", dest="models_for_backtest", help="runs behind the backtest (default: all)")
    p.add_argument("--method", default="stacked", choices=["single", "soft_vote", "stacked"])
    p.add_argument("--cost", type=float, default=0.001, help="cost per unit of position change (0.001 = 10 bp)")
    p.add_argument("--png", default=None, help="also write the equity plot here (e.g. docs/prebit_equity.png)")
    p.add_argument("--thresholds", type=float, nargs="+", default=list(THRESHOLDS), help="probability thresholds")
    p.add_argument("--fast", type=int, default=10)
    p.add_argument("--slow", type=int, default=30)
    ns = vars(parser.parse_args(argv))
    ns.pop("command")
    report(**ns)
    return 0
