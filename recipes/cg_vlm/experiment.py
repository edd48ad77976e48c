"""The paper's comparison at our scale, in one process: stage 1 contrastive+generative vs
generative-only, each followed by stage 2 on 10 % and 100 % of the instruction pairs; every
model is evaluated on the held-out test images (``polymodal test`` metrics).

Usage::

    python -m polymodal.recipes.cg_vlm.experiment [--accelerator gpu] [--out runs/cg_vlm-experiment]
        [--runs stage1_cg,stage1_gen,stage2_cg_10,...] [-- extra overrides for every run]

Each run is exactly ``polymodal fit --config recipes/cg_vlm/<cfg>.yaml <overrides>`` followed by
``trainer.test`` on the fitted module (the same as ``polymodal test --ckpt_path .../last.ckpt``).
Results go to ``<out>/results.json`` and a Markdown table to ``<out>/results.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["RUNS", "main"]

#: run name -> (config, overrides)
RUNS: dict[str, tuple[str, list[str]]] = {
    "stage1_cg": ("stage1_cg.yaml", []),
    "stage1_gen": ("stage1_gen.yaml", []),
    "stage2_cg_10": ("stage2_cg_10.yaml", []),
    "stage2_cg_100": ("stage2_cg.yaml", []),
    "stage2_gen_10": ("stage2_gen_10.yaml", []),
    "stage2_gen_100": ("stage2_gen.yaml", []),
}

_COLUMNS = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "caption_ppl", "bleu4", "cider")


def _callbacks(out: Path) -> list[dict[str, Any]]:
    """The configs' callbacks with the checkpoint folder moved under ``out``."""
    return [
        {
            "class_path": "pytorch_lightning.callbacks.ModelCheckpoint",
            "init_args": {"dirpath": str(out / "checkpoints"), "filename": "last", "enable_version_counter": False},
        },
        {"class_path": "polymodal.recipes.cg_vlm.StepStats"},
    ]


def _run(name: str, root: Path, accelerator: str, extra: list[str]) -> dict[str, Any]:
    from polymodal.cli import main as cli_main
    from polymodal.recipes import recipe_root

    config, overrides = RUNS[name]
    out = root / name
    s1 = {"stage2_cg": root / "stage1_cg", "stage2_gen": root / "stage1_gen"}
    args = [
        "fit",
        "--config",
        str(recipe_root() / "cg_vlm" / config),
        f"--trainer.default_root_dir={out}",
        f"--trainer.logger.init_args.save_dir={out}",
        f"--trainer.accelerator={accelerator}",
        "--trainer.callbacks=" + json.dumps(_callbacks(out)),
        *overrides,
    ]
    for prefix, stage1 in s1.items():
        if name.startswith(prefix):
            args.append(f"--model.init_args.init_from={stage1 / 'checkpoints' / 'last.ckpt'}")
    args += extra
    start = time.perf_counter()
    cli = cli_main(args)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
    test_s = time.perf_counter() - start
    stats_file = out / "step_stats.json"
    stats = json.loads(stats_file.read_text()) if stats_file.is_file() else {}
    result = {
        "run": name,
        "command": "polymodal " + " ".join(args),
        "train_rows": cli.datamodule.describe()["train_rows"],
        "steps": int(cli.trainer.global_step),
        "fit_seconds": round(fit_s, 1),
        "test_seconds": round(test_s, 1),
        "mean_step_s": stats.get("mean_step_s"),
        "peak_rss_gib": stats.get("peak_rss_gib"),
        **cli.model.test_results,
    }
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def table(results: list[dict[str, Any]]) -> str:
    """Markdown table of the test metrics (recalls in %, BLEU-4 in %, CIDEr-D x 100)."""
    head = "| run | train rows | steps | I→T R@1/5/10 | T→I R@1/5/10 | caption ppl | BLEU-4 | CIDEr-D |"
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for r in results:
        m = r["metrics"]
        i2t = "/".join(f"{100 * m[f'i2t_r{k}']:.1f}" for k in (1, 5, 10))
        t2i = "/".join(f"{100 * m[f't2i_r{k}']:.1f}" for k in (1, 5, 10))
        lines.append(
            f"| {r['run']} | {r['train_rows']} | {r['steps']} | {i2t} | {t2i} | {m['caption_ppl']:.2f} | "
            f"{100 * m['bleu4']:.2f} | {100 * m['cider']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(prog="python -m polymodal.recipes.cg_vlm.experiment")
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--out", default="runs/cg_vlm-experiment")
    parser.add_argument("--runs", default=",".join(RUNS))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ns = parser.parse_args(argv)
    import torch

    if ns.threads:
        torch.set_num_threads(ns.threads)
    names = [n.strip() for n in ns.runs.split(",") if n.strip()]
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        raise SystemExit(f"unknown run(s) {unknown}; choose from {', '.join(RUNS)}")
    root = Path(ns.out)
    root.mkdir(parents=True, exist_ok=True)
    results = []
    for name in names:
        print(f"=== cg_vlm experiment: {name}", flush=True)
        results.append(_run(name, root, ns.accelerator, extra))
        (root / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        (root / "results.md").write_text(table(results) + "\n")
        print(table(results), flush=True)
    return results


if __name__ == "__main__":  # pragma: no cover
    main()
