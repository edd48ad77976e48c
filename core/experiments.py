"""``polymodal sweep``: named override sets over shipped configs, results collected into one table.

A sweep file (YAML) names runs; each run is a ``polymodal fit`` (optionally followed by ``test``) of the
shipped configs with command-line overrides, once per seed::

    description: multi-layer attention pooling vs mean pooling, full STS-B train
    configs: [recipes/multilayer_pooling/minilm.yaml]        # composed in order, like --config a --config b
    args: [--data.init_args.train=../shared/data/stsb/sts-train.csv.gz]   # for every run
    seeds: [0, 1]                                           # --seed_everything=<seed> (and {seed} below)
    test: false                                             # also run `test` after fitting
    metrics: [val/spearman]                                 # table columns (default: every logged metric)
    runs:
      multilayer: []
      mean:
        configs: [recipes/multilayer_pooling/minilm_mean.yaml]
      mean_lr:
        args: [--model.init_args.optimizer.init_args.lr=5e-5]

A run with ``command: test`` is a ``polymodal test`` instead (no fit): an evaluation of an earlier run's weights
(``--model.init_args.init_from={root}/<run>/seed{seed}/checkpoints/last.ckpt``) or of an untrained model, e.g. the
ablations of one tuned model over retrieval settings.

In ``args`` the placeholders ``{root}`` (the sweep's output folder), ``{run}`` and ``{seed}`` are replaced,
so a run can start from an earlier run's output (``--model.init_args.init_from={root}/stage1/seed{seed}/...``);
runs execute in file order. Each run's ``--trainer.default_root_dir`` is ``{root}/{run}/seed{seed}``; ``root``
(a key of the file, or ``--root``) defaults to ``runs/sweeps/<recipe>`` (``runs/sweeps/<recipe>/<stem>`` for
another file name than ``sweep.yaml``).

Every run is a separate process executing exactly the ``polymodal fit ...`` command recorded beside its
figures, so a table row can be reproduced by hand. Results go to ``{root}/results.json`` (every run, seed,
metric and wall time) and ``{root}/results.md`` (mean ± sample std over seeds per run and metric).
"""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Run", "Sweep", "format_table", "load_sweep", "run_sweep"]


@dataclass
class Run:
    """One named override set of a sweep."""

    name: str
    configs: list[str]
    args: list[str] = field(default_factory=list)
    test: bool = False
    command: str = "fit"


@dataclass
class Sweep:
    """A parsed sweep file."""

    path: str
    description: str
    runs: list[Run]
    seeds: list[int]
    metrics: list[str]
    root: str


def _strings(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
        raise ValueError(f"{where}: expected a list of strings, got {value!r:.80}")
    return [str(v) for v in value]


def load_sweep(path: str | os.PathLike[str], root: str | None = None) -> Sweep:
    """Parse and check a sweep file (one-line errors naming the file and the field)."""
    import yaml

    from polymodal.io import resolve_path

    file = resolve_path(path, what="sweep file")
    try:
        spec = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{file}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(spec, dict):
        raise ValueError(f"{file}: a sweep file is a mapping with 'runs'")
    unknown = sorted(set(spec) - {"description", "configs", "args", "seeds", "test", "metrics", "runs", "root"})
    if unknown:
        raise ValueError(f"{file}: unknown field(s) {unknown}")
    base = _strings(spec.get("configs"), f"{file}: configs")
    common = _strings(spec.get("args"), f"{file}: args")
    test = bool(spec.get("test", False))
    runs_spec = spec.get("runs")
    if not isinstance(runs_spec, dict) or not runs_spec:
        raise ValueError(f"{file}: 'runs' must map run names to override lists")
    runs = []
    for name, body in runs_spec.items():
        where = f"{file}: runs.{name}"
        if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"{where}: run names are letters, digits, '_' and '-'")
        if body is None or isinstance(body, list):
            body = {"args": body or []}
        if not isinstance(body, dict):
            raise ValueError(f"{where}: expected a list of overrides or a mapping with configs/args/test")
        extra = sorted(set(body) - {"configs", "args", "test", "command"})
        if extra:
            raise ValueError(f"{where}: unknown field(s) {extra}")
        command = str(body.get("command", "fit"))
        if command not in ("fit", "test"):
            raise ValueError(f"{where}.command: expected 'fit' or 'test', got {command!r}")
        configs = _strings(body.get("configs"), f"{where}.configs") or base
        if not configs:
            raise ValueError(f"{where}: no configs (set configs at the top or in the run)")
        args = common + _strings(body.get("args"), f"{where}.args")
        runs.append(Run(name, configs, args, bool(body.get("test", test)) and command == "fit", command))
    seeds = [int(s) for s in (spec.get("seeds") or [0])]
    metrics = _strings(spec.get("metrics"), f"{file}: metrics")
    # runs/sweeps/<recipe> for recipes/<recipe>/sweep.yaml, runs/sweeps/<recipe>/<stem> for sweep_cpu.yaml etc.
    default_root = str(Path("runs") / "sweeps" / file.resolve().parent.name)
    if file.stem != "sweep":
        default_root = str(Path(default_root) / file.stem)
    return Sweep(
        str(file), str(spec.get("description", "")), runs, seeds, metrics, root or spec.get("root") or default_root
    )


def run_command(run: Run, seed: int, root: str) -> list[str]:
    """The ``polymodal fit`` (or ``test``) arguments of one run and seed (placeholders filled)."""
    out = [run.command]
    for cfg in run.configs:
        out += ["--config", cfg]
    values = {"root": root, "run": run.name, "seed": str(seed)}
    out += [a.format(**values) for a in run.args]
    out += [f"--seed_everything={seed}", f"--trainer.default_root_dir={root}/{run.name}/seed{seed}"]
    return out


def _worker(argv: Sequence[str], out: str, test: bool) -> None:
    """Run one fit (and test) in this process and write its metrics to ``out`` (JSON)."""
    from polymodal.cli import main

    cli = main(list(argv))
    metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items() if getattr(v, "numel", lambda: 1)() == 1}
    if test:
        results = cli.trainer.test(cli.model, datamodule=cli.datamodule)
        for block in results:
            metrics.update({k: float(v) for k, v in block.items()})
    Path(out).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")


def run_sweep(
    sweep: Sweep, only: Sequence[str] | None = None, dry_run: bool = False, seeds: Sequence[int] | None = None
) -> list[dict[str, Any]]:
    """Run every (run, seed) in its own process; returns the records written to ``results.json``.

    ``only`` / ``seeds`` restrict the runs / seeds executed now; earlier results of the (run, seed) pairs not
    executed now are kept in the table."""
    from polymodal.io import atomic_path

    root = Path(sweep.root)
    root.mkdir(parents=True, exist_ok=True)
    results_path = root / "results.json"
    records: list[dict[str, Any]] = []
    if results_path.is_file():  # keep earlier results of runs not repeated now
        previous = json.loads(results_path.read_text())
        records = [r for r in previous if not _selected(r["run"], r["seed"], only, seeds)]
    unknown = sorted(set(seeds or []) - set(sweep.seeds))
    if unknown:
        raise ValueError(f"{sweep.path}: seeds {unknown} are not in the sweep's seeds {sweep.seeds}")
    for run in sweep.runs:
        if only is not None and run.name not in only:
            continue
        for seed in sweep.seeds:
            if seeds is not None and seed not in seeds:
                continue
            argv = run_command(run, seed, sweep.root)
            command = "polymodal " + " ".join(shlex.quote(a) for a in argv) + ("  # then: test" if run.test else "")
            print(f"polymodal sweep: [{run.name} seed {seed}] {command}", flush=True)
            if dry_run:
                continue
            out = root / run.name / f"seed{seed}" / "sweep_metrics.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            start = time.perf_counter()
            code = (
                "import json, sys; from polymodal.experiments import _worker; "
                "_worker(json.loads(sys.argv[1]), sys.argv[2], sys.argv[3] == '1')"
            )
            proc = subprocess.run([sys.executable, "-c", code, json.dumps(argv), str(out), "1" if run.test else "0"])
            seconds = time.perf_counter() - start
            if proc.returncode != 0 or not out.is_file():
                raise RuntimeError(f"run {run.name!r} seed {seed} failed (exit {proc.returncode}): {command}")
            metrics = json.loads(out.read_text())
            records.append(
                {"run": run.name, "seed": seed, "command": command, "seconds": round(seconds, 1), "metrics": metrics}
            )
            with atomic_path(results_path) as tmp:
                tmp.write_text(json.dumps(records, indent=2) + "\n")
    if not dry_run:
        with atomic_path(root / "results.md") as tmp:
            tmp.write_text(format_table(sweep, records))
    return records


def _selected(run: str, seed: int, only: Sequence[str] | None, seeds: Sequence[int] | None) -> bool:
    return (only is None or run in only) and (seeds is None or seed in seeds)


def _mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.4f}"
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return f"{mean:.4f} ± {std:.4f}"


def format_table(sweep: Sweep, records: list[dict[str, Any]]) -> str:
    """Markdown: one row per run, mean ± sample std over seeds per metric, mean wall time."""
    metrics = sweep.metrics or sorted({k for r in records for k in r["metrics"] if not k.startswith("train/")})
    lines = [
        f"# {sweep.description or Path(sweep.path).stem}",
        "",
        f"Sweep file: `{sweep.path}`; seeds {sweep.seeds}.",
        "",
    ]
    lines.append("| run | " + " | ".join(metrics) + " | s / run |")
    lines.append("|---|" + "---|" * (len(metrics) + 1))
    for run in sweep.runs:
        rows = [r for r in records if r["run"] == run.name]
        if not rows:
            continue
        cells = [_mean_std([r["metrics"][m] for r in rows if m in r["metrics"]]) for m in metrics]
        secs = sum(r["seconds"] for r in rows) / len(rows)
        lines.append(f"| {run.name} | " + " | ".join(cells) + f" | {secs:.0f} |")
    lines += ["", "Commands:", ""]
    lines += [f"- `{r['command']}`" for r in records]
    return "\n".join(lines) + "\n"
