"""StepTimer: per-step wall times and steady-state throughput of a fit."""

from __future__ import annotations

from polymodal.callbacks import StepTimer
from polymodal.cli import main


def test_step_timer_counts_steps_and_samples(tmp_path, capsys):
    cli = main(
        [
            "fit",
            "--config",
            "recipes/sbert/tiny.yaml",
            "--trainer.limit_val_batches=0",
            "--trainer.callbacks+=polymodal.callbacks.StepTimer",
            "--trainer.callbacks.skip=1",
            f"--trainer.default_root_dir={tmp_path}",
        ]
    )
    timer = next(cb for cb in cli.trainer.callbacks if isinstance(cb, StepTimer))
    assert len(timer.times) == cli.trainer.global_step == 4
    assert timer.sizes == [16, 16, 16, 16]  # batch_size of tiny.yaml, read from the batch
    assert timer.summary["steps"] == 3  # the first (warm-up) step is not timed
    assert abs(timer.summary["samples_per_s"] - 16 * timer.summary["steps_per_s"]) < 1e-6
    assert "3 timed steps" in capsys.readouterr().out


def test_step_timer_without_enough_steps_reports_nothing():
    timer = StepTimer(skip=5)
    timer.times, timer.sizes = [0.1, 0.1], [8, 8]
    timer.on_fit_end(None, None)
    assert timer.summary == {}
