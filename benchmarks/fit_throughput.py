"""Training throughput of a recipe under different precisions / Lightning strategies.

Runs ``polymodal fit`` (in this process, one run after another) on the same config with a fixed
number of steps and the :class:`~polymodal.callbacks.StepTimer` callback, and prints steady-state
samples/s per variant. The peer is the first variant (full fp32, single device); ``ratio`` is
the best other variant's samples/s over it.

    python benchmarks/fit_throughput.py --config recipes/sbert/minilm.yaml --steps 60 \
        --variants 32 bf16-mixed fsdp:bf16-mixed  [extra --key=value overrides for polymodal fit]

A variant is ``[strategy:]precision``; strategies are Lightning's (``ddp``, ``fsdp``, ...).
"""

from __future__ import annotations

import argparse
import tempfile


def run_variant(config: str, variant: str, steps: int, extra: list[str]) -> dict[str, float]:
    from polymodal.callbacks import StepTimer
    from polymodal.cli import main

    strategy, _, precision = variant.rpartition(":")
    args = [
        "fit",
        "--config",
        config,
        f"--trainer.max_steps={steps}",
        "--trainer.max_epochs=1000",
        "--trainer.limit_train_batches=1.0",
        "--trainer.limit_val_batches=0",
        "--trainer.enable_checkpointing=false",
        "--trainer.enable_progress_bar=false",
        "--trainer.logger=false",
        f"--trainer.precision={precision}",
        f"--trainer.default_root_dir={tempfile.mkdtemp(prefix='pm-throughput-')}",
        "--trainer.callbacks=polymodal.callbacks.StepTimer",
    ]
    if strategy:
        args.append(f"--trainer.strategy={strategy}")
    cli = main(args + extra)
    timer = next(cb for cb in cli.trainer.callbacks if isinstance(cb, StepTimer))
    if not timer.summary:
        raise SystemExit(f"{variant}: fewer than {timer.skip + 1} training steps ran; raise --steps")
    return timer.summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="recipes/sbert/minilm.yaml")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--variants", nargs="+", default=["32", "bf16-mixed"])
    args, extra = parser.parse_known_args()
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    results = {}
    for variant in args.variants:
        results[variant] = run_variant(args.config, variant, args.steps, extra)
    print(f"\n{args.config} on {device}, {args.steps} steps (first 10 not timed)")
    print(f"{'variant':24s} {'samples/s':>10s} {'ms/step':>9s}")
    for variant, s in results.items():
        print(f"{variant:24s} {s['samples_per_s']:10.1f} {s['ms_per_step']:9.1f}")
    base = results[args.variants[0]]["samples_per_s"]
    best = max(s["samples_per_s"] for v, s in results.items() if v != args.variants[0]) if len(results) > 1 else base
    print(f"ratio: {best / base:.3f}")


if __name__ == "__main__":
    main()
