"""Sweep runs with ``command: test`` (evaluations of an earlier run's weights)."""

from __future__ import annotations

import pytest

from polymodal.experiments import load_sweep, run_command


def test_command_test_runs_are_test_commands_without_a_second_test(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(
        "configs: [a.yaml]\ntest: true\nruns:\n  train: []\n  evaluate:\n    command: test\n"
        "    args: ['--model.init_args.init_from={root}/train/seed{seed}/last.ckpt']\n"
    )
    sweep = load_sweep(path, root="R")
    train, evaluate = sweep.runs
    assert (train.command, train.test) == ("fit", True)
    assert (evaluate.command, evaluate.test) == ("test", False)
    argv = run_command(evaluate, 3, "R")
    assert argv[:3] == ["test", "--config", "a.yaml"] and "--model.init_args.init_from=R/train/seed3/last.ckpt" in argv


def test_unknown_command_is_one_line(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("configs: [a.yaml]\nruns:\n  a: {command: predict}\n")
    with pytest.raises(ValueError, match=r"runs.a.command: expected 'fit' or 'test', got 'predict'"):
        load_sweep(path)
