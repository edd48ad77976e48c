"""polymodal sweep: sweep files parse with one-line errors, runs execute as separate fits, results table."""

from __future__ import annotations

import json

import pytest

from polymodal.cli import main
from polymodal.experiments import format_table, load_sweep, run_command


def _write(tmp_path, text: str):
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("runs: []\n", "'runs' must map run names"),
        ("configs: [a.yaml]\nrunz: {}\n", r"unknown field\(s\) \['runz'\]"),
        ("runs:\n  'a b': []\n", "run names are letters"),
        ("runs:\n  a: {argz: []}\n", r"runs.a: unknown field\(s\) \['argz'\]"),
        ("runs:\n  a: []\n", "runs.a: no configs"),
        ("configs: [a.yaml]\nruns:\n  a: {args: {x: 1}}\n", "runs.a.args: expected a list of strings"),
        ("runs: [\n", "not valid YAML"),
        ("command: train\nconfigs: [a.yaml]\nruns:\n  a: []\n", "command: expected 'fit', 'validate' .* got 'train'"),
        ("configs: [a.yaml]\nruns:\n  a: {command: predict}\n", "runs.a.command: expected .*'predict'"),
    ],
)
def test_bad_sweep_files_give_one_line(tmp_path, text, message):
    with pytest.raises(ValueError, match=message) as info:
        load_sweep(_write(tmp_path, text))
    assert "\n" not in str(info.value)


def test_commands_fill_placeholders_and_seeds(tmp_path):
    sweep = load_sweep(
        _write(
            tmp_path,
            "configs: [recipes/sbert/tiny.yaml]\nargs: [--trainer.max_epochs=1]\nseeds: [3]\n"
            "runs:\n  first: []\n  second:\n    args: ['--model.init_args.init_from={root}/first/seed{seed}/x.ckpt']\n",
        ),
        root=str(tmp_path / "out"),
    )
    cmd = run_command(sweep.runs[1], 3, sweep.root)
    assert cmd[:3] == ["fit", "--config", "recipes/sbert/tiny.yaml"]
    assert f"--model.init_args.init_from={tmp_path}/out/first/seed3/x.ckpt" in cmd
    assert cmd[-2:] == ["--seed_everything=3", f"--trainer.default_root_dir={tmp_path}/out/second/seed3"]


def test_sweep_runs_fits_and_collects_one_table(tmp_path, capsys):
    path = _write(
        tmp_path,
        "description: tiny lr sweep\nconfigs: [recipes/sbert/tiny.yaml]\nseeds: [0, 1]\ntest: false\n"
        "metrics: [val/spearman, train/loss]\n"
        "runs:\n  slow: [--model.init_args.optimizer.init_args.lr=0.0001]\n  fast: []\n",
    )
    assert main(["sweep", str(path), "--root", str(tmp_path / "out"), "--only", "fast", "--seeds", "0"]) == 0
    records = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [(r["run"], r["seed"]) for r in records] == [("fast", 0)]
    # one more (run, seed) later: the earlier rows stay, and two seeds give a spread
    assert main(["sweep", str(path), "--root", str(tmp_path / "out"), "--only", "fast", "--seeds", "1"]) == 0
    records = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [(r["run"], r["seed"]) for r in records] == [("fast", 0), ("fast", 1)]
    assert all(-1 <= r["metrics"]["val/spearman"] <= 1 for r in records)
    table = (tmp_path / "out" / "results.md").read_text()
    assert "| run | val/spearman | train/loss | s / run |" in table and "| fast | " in table and "±" in table
    assert "polymodal fit --config recipes/sbert/tiny.yaml" in table  # every row's exact command
    assert "| slow |" not in table  # a run never started has no row
    # a run can be reproduced: the recorded command's model matches the table's figure
    sweep = load_sweep(path, root=str(tmp_path / "out"))
    assert format_table(sweep, records) == table
    with pytest.raises(ValueError, match=r"seeds \[7\] are not in the sweep's seeds \[0, 1\]"):
        main(["sweep", str(path), "--root", str(tmp_path / "out"), "--seeds", "7"])


def test_validate_sweeps_run_training_free_evaluations(tmp_path):
    path = _write(
        tmp_path,
        "command: validate\nconfigs: [recipes/token_prepending/tiny.yaml]\nmetrics: [val/spearman]\n"
        "runs:\n  tp: []\n  plain: [--model.init_args.encoder.init_args.token_prepending=false]\n",
    )
    sweep = load_sweep(path, root=str(tmp_path / "out"))
    assert run_command(sweep.runs[0], 0, sweep.root)[:3] == [
        "validate",
        "--config",
        "recipes/token_prepending/tiny.yaml",
    ]
    assert main(["sweep", str(path), "--root", str(tmp_path / "out")]) == 0
    records = json.loads((tmp_path / "out" / "results.json").read_text())
    values = [r["metrics"]["val/spearman"] for r in records]
    assert len(values) == 2 and values[0] != values[1]  # the switch changed the embeddings
    assert (
        "polymodal validate --config recipes/token_prepending/tiny.yaml"
        in (tmp_path / "out" / "results.md").read_text()
    )


@pytest.mark.parametrize(
    "name, root",
    [
        ("recipes/matryoshka_2d/sweep.yaml", "runs/sweeps/matryoshka_2d"),
        ("recipes/cg_vlm/sweep_cpu.yaml", "runs/sweeps/cg_vlm/sweep_cpu"),
        ("recipes/sbert/sweep.yaml", "runs/sweeps/sbert"),  # names its own root
    ],
)
def test_default_root_is_named_after_the_recipe_folder(name, root):
    from polymodal.recipes import recipe_root

    sweep = load_sweep(recipe_root() / name.removeprefix("recipes/"))
    assert sweep.root == root
