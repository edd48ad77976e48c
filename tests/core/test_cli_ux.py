"""What a new user sees: top-level help, did-you-mean, one-line config errors, progress lines in
logs, metrics.csv + curves.png + summary after every fit, ``polymodal plot``, predictions written
to a named file (never on random weights by accident), ``polymodal recipes``, evaluate/encode."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from polymodal.callbacks import (
    LoadEncoderWeights,
    MetricsReport,
    PredictionWriter,
    ProgressLog,
    read_metrics,
    summary_table,
    weights_source,
)
from polymodal.cli import COMMANDS, LIGHTNING_COMMANDS, main
from tests.conftest import REPO
from tests.helpers import tiny_text_encoder

TINY = "recipes/sbert/tiny.yaml"


# ----------------------------------------------------------------------------- top level
def test_top_level_help_lists_every_command_without_heavy_imports():
    code = (
        "import sys, time; t = time.perf_counter()\n"
        "from polymodal.cli import main; main(['--help'])\n"
        "heavy = [m for m in ('torch', 'pytorch_lightning', 'polymodal.plugins', 'pluggy') if m in sys.modules]\n"
        "print('HEAVY', heavy, round(time.perf_counter() - t, 3))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    for name, help_line in {**LIGHTNING_COMMANDS, **COMMANDS}.items():
        assert f"  {name}" in out and help_line in out, name
    assert "HEAVY []" in out, "the top-level help must not import torch, Lightning or plugins"


UNKNOWN = [("fitt", "'fit'"), ("plugin", "'plugins'"), ("recipe", "'recipes'"), ("dat", "'data'"), ("zzzz", None)]


@pytest.mark.parametrize("typo,suggestion", UNKNOWN, ids=[u[0] for u in UNKNOWN])
def test_unknown_subcommand_suggests(typo, suggestion, capsys):
    assert main([typo]) == 2
    err = capsys.readouterr().err
    assert f"unknown command {typo!r}" in err and len(err.strip().splitlines()) == 1
    assert (f"did you mean {suggestion}" in err) if suggestion else ("did you mean" not in err)


def _typo(tmp_path: Path, old: str, new: str) -> Path:
    path = tmp_path / "typo.yaml"
    path.write_text((REPO / TINY).read_text().replace(old, new, 1))
    return path


CONFIG_TYPOS = [
    ("class-name", "class_path: TextEncoder", "class_path: TextEncodr", "unknown class 'TextEncodr'", "'TextEncoder'"),
    ("init-arg", "batch_size: 16", "batch_sise: 16", "Option 'batch_sise' is not accepted", "'batch_size'"),
    ("trainer-option", "max_epochs: 1", "max_epocs: 1", "unknown option 'trainer.max_epocs'", "'trainer.max_epochs'"),
]


@pytest.mark.parametrize("old,new,what,suggestion", [c[1:] for c in CONFIG_TYPOS], ids=[c[0] for c in CONFIG_TYPOS])
def test_yaml_mistake_is_one_line_with_file_line_and_did_you_mean(tmp_path, capsys, old, new, what, suggestion):
    cfg = _typo(tmp_path, old, new)
    line_no = next(i for i, ln in enumerate(cfg.read_text().splitlines(), 1) if new in ln)
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(cfg), f"--trainer.default_root_dir={tmp_path}"])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) <= 2, err  # the error line and the --help pointer, no usage wall
    assert what in err[0] and f"did you mean {suggestion}" in err[0] and f"{cfg} line {line_no}" in err[0]


def test_error_while_building_a_class_is_one_line_from_the_console(tmp_path):
    cfg = _typo(tmp_path, "tokenizer: bytes", "tokenizer: /nonexistent/tok.json")
    env = {**os.environ, "POLYMODAL_TRACEBACK": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "polymodal.cli", "fit", "--config", str(cfg), f"--trainer.default_root_dir={tmp_path}"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("Seed set")]
    assert "Traceback" not in proc.stderr and len(lines) <= 2, lines
    assert "building TextEncoder: FileNotFoundError: tokenizer not found: /nonexistent/tok.json" in lines[0]
    assert f"{cfg} line" in lines[0]


def test_yaml_syntax_error_names_file_line_and_column(tmp_path, capsys):
    cfg = _typo(tmp_path, "  max_epochs: 1", " max_epochs: 1")
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(cfg)])
    err = capsys.readouterr().err.splitlines()
    assert f"{cfg} line 6, column 2: YAML syntax error" in err[0] and len(err) <= 2


def test_missing_model_path_is_one_line(tmp_path):
    from polymodal.cli.lightning import describe_exception

    cfg = tmp_path / "missing.yaml"
    text = (REPO / "recipes/sbert/minilm.yaml").read_text()
    cfg.write_text(text.replace("model: minilm-l6", "model: /nonexistent/m"))
    with pytest.raises(Exception) as info:
        main(["fit", "--config", str(cfg), f"--trainer.default_root_dir={tmp_path}"])
    line = describe_exception(info.value, [cfg])
    assert "\n" not in line and "building TextEncoder: FileNotFoundError: text model '/nonexistent/m'" in line
    assert f"{cfg} line 22" in line


# ----------------------------------------------------------------------------- fit leaves things to look at
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One fit of the tiny recipe (logger: false in the YAML) with a progress line every step."""
    root = tmp_path_factory.mktemp("run")
    mp = pytest.MonkeyPatch()
    mp.setenv("POLYMODAL_PROGRESS_SECONDS", "0")
    import contextlib
    import io

    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            cli = main(["fit", "--config", TINY, f"--trainer.default_root_dir={root}"])
    finally:
        mp.undo()
    return SimpleNamespace(root=root, out=out.getvalue(), cli=cli)


def test_fit_writes_metrics_csv_curves_png_and_prints_the_summary(tiny_run):
    frame = read_metrics(tiny_run.root / "metrics.csv")
    assert list(frame["step"][frame["train/loss"].notna()]) == [1, 2, 3, 4]  # every step, not every 50
    assert {"val/spearman", "val/pearson", "val/loss"} <= set(frame.columns)
    png = (tiny_run.root / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert (tiny_run.root / "model" / "model.safetensors").is_file(), "the PNG lies next to the exported model"
    table = tiny_run.out[tiny_run.out.index("metric ") :]
    assert "val/spearman" in table and "(max)" in table and "train/loss" in table and "(min)" in table
    assert not (tiny_run.root / "lightning_logs").exists(), "logger: false in the YAML is respected"


def test_progress_lines_in_a_non_tty_log(tiny_run):
    lines = [ln for ln in tiny_run.out.splitlines() if ln.startswith("polymodal: fit epoch 1/1 batch")]
    assert len(lines) == 4 and "batch 4/4 (100%) step 4 | train/loss" in lines[-1] and "it/s" in lines[-1]
    assert "polymodal: validation at step 4: val/loss" in tiny_run.out
    assert any(isinstance(cb, ProgressLog) for cb in tiny_run.cli.trainer.callbacks)
    assert not tiny_run.cli.trainer.progress_bar_callback, "no \\r-bar when stdout is not a terminal"


def test_progress_lines_come_on_the_clock_even_during_a_slow_batch(capsys):
    import time

    log = ProgressLog(every_s=0.1, when="always")
    trainer = SimpleNamespace(
        is_global_zero=True, max_epochs=1, current_epoch=0, global_step=1, max_steps=-1, callbacks=[],
        callback_metrics={"train/loss": torch.tensor(0.5)}, validating=False, sanity_checking=False,
        num_training_batches=10, progress_bar_callback=None,
    )  # fmt: skip
    log.on_train_start(trainer, None)
    log.on_train_batch_end(trainer, None, None, None, 0)
    time.sleep(0.6)  # the next batch takes 6 intervals
    log.on_train_end(trainer, None)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "fit epoch 1/1 batch 1/10 (10%) step 1" in ln]
    assert len(lines) >= 3 and "train/loss 0.5" in lines[0] and "eta" in lines[0]
    assert log._thread is None, "the clock thread stops with the fit"


def test_plot_redraws_from_metrics_csv(tiny_run, tmp_path, capsys):
    target = tmp_path / "again.png"
    assert main(["plot", str(tiny_run.root), "--output", str(target)]) == 0
    assert target.read_bytes()[:4] == b"\x89PNG"
    assert "val/spearman" in capsys.readouterr().out


def test_plot_reads_lightning_csvlogger_files(tmp_path, capsys):
    run = tmp_path / "lightning_logs" / "version_0"
    run.mkdir(parents=True)
    rows = "epoch,step,train/loss,val/acc\n0,49,0.9,\n0,99,0.7,\n0,99,,0.61\n1,199,0.5,0.66\n"
    (run / "metrics.csv").write_text(rows)
    assert main(["plot", str(tmp_path)]) == 0
    assert (run / "curves.png").is_file()
    out = capsys.readouterr().out
    assert "0.6600 (max)" in out and "0.5000 (min)" in out


BAD_METRICS = [
    ("missing", None, FileNotFoundError, "no metrics.csv in"),
    ("no-step", "epoch,loss\n0,1\n", ValueError, "no 'step' column"),
    ("no-metrics", "epoch,step\n0,1\n", ValueError, "no metric columns"),
    ("empty", "", ValueError, "not a metrics CSV"),
]


@pytest.mark.parametrize("content,raises,match", [c[1:] for c in BAD_METRICS], ids=[c[0] for c in BAD_METRICS])
def test_plot_bad_inputs_are_one_line(tmp_path, content, raises, match):
    if content is not None:
        (tmp_path / "metrics.csv").write_text(content)
    with pytest.raises(raises, match=match):
        main(["plot", str(tmp_path)])


def test_default_logger_is_csvlogger_and_a_configured_logger_is_kept(tmp_path):
    cli = main(["fit", "--config", TINY, f"--trainer.default_root_dir={tmp_path / 'a'}", "--trainer.logger=true"])
    assert type(cli.trainer.logger).__name__ == "CSVLogger"
    assert (tmp_path / "a" / "lightning_logs" / "version_0" / "metrics.csv").is_file()
    own = ["--trainer.logger=pytorch_lightning.loggers.CSVLogger", f"--trainer.logger.save_dir={tmp_path / 'own'}"]
    cli = main(["fit", "--config", TINY, f"--trainer.default_root_dir={tmp_path / 'b'}", *own])
    assert Path(cli.trainer.logger.save_dir) == tmp_path / "own"
    assert sum(isinstance(cb, MetricsReport) for cb in cli.trainer.callbacks) == 1


def test_summary_table_best_and_last():
    import pandas as pd

    frame = pd.DataFrame(
        {"epoch": [0, 0, 1], "step": [1, 2, 3], "val/loss": [3.0, 1.0, 2.0], "val/f1": [0.1, 0.5, 0.4]}
    )
    lines = summary_table(frame).splitlines()
    loss = next(ln for ln in lines if ln.startswith("val/loss")).split()
    f1 = next(ln for ln in lines if ln.startswith("val/f1")).split()
    assert loss[1:5] == ["1.0000", "(min)", "2", "2.0000"] and f1[1:5] == ["0.5000", "(max)", "2", "0.4000"]


# ----------------------------------------------------------------------------- predict
def test_predict_refuses_random_weights_then_writes_a_file(tiny_run, tmp_path, capsys):
    args = ["predict", "--config", TINY, "--data.predict", "package://sbert/data/stsb_dev_sample.tsv.gz"]
    args += [f"--trainer.default_root_dir={tmp_path}"]
    with pytest.raises(SystemExit, match="refusing to predict with random weights.*--allow-random-weights"):
        main(args)
    assert not (tmp_path / "predictions.npy").exists()
    main([*args, "--allow-random-weights"])
    assert np.load(tmp_path / "predictions.npy").shape == (2, 300, 32)  # (columns, rows, dim)
    ckpt = next((tiny_run.root / "checkpoints").glob("*.ckpt"))
    main([*args, f"--ckpt_path={ckpt}"])
    out = capsys.readouterr().out
    assert f"weights from checkpoint {ckpt}" in out and f"to {tmp_path / 'predictions.npy'}" in out


def _writer_outputs(kind):
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    return {
        "tensor": ([t, t + 1], ".npy", (6, 4)),
        "list-same": ([[t, t], [t, t]], ".npy", (2, 6, 4)),
        "list-mixed": ([[t, t[:, :2]], [t, t[:, :2]]], ".npz", None),
        "dict-csv": ([{"label": t.softmax(-1), "score": t[:, 0]}] * 2, ".csv", (6, 5)),
        "dict-parquet": ([{"label": t.softmax(-1), "score": t[:, 0]}] * 2, ".parquet", (6, 5)),
        "strings": ([["a cat", "a dog", "a tree"], ["x", "y", "z"]], ".csv", (6, 1)),
    }[kind]


@pytest.mark.parametrize("kind", ["tensor", "list-same", "list-mixed", "dict-csv", "dict-parquet", "strings"])
def test_prediction_writer_picks_the_format_from_the_outputs(tmp_path, kind):
    import pandas as pd

    batches, ext, shape = _writer_outputs(kind)
    output = str(tmp_path / "p.parquet") if ext == ".parquet" else None
    writer = PredictionWriter(output=output)
    trainer = SimpleNamespace(is_global_zero=True, default_root_dir=str(tmp_path))
    writer.on_predict_start(trainer, None)
    for i, b in enumerate(batches):
        writer.write_on_batch_end(trainer, None, b, None, None, i, 0)
    writer.on_predict_end(trainer, None)
    assert writer.path.suffix == ext
    if ext == ".npy":
        assert np.load(writer.path).shape == shape
    elif ext == ".npz":
        data = np.load(writer.path)
        assert data["output_0"].shape == (6, 4) and data["output_1"].shape == (6, 2)
    else:
        frame = pd.read_parquet(writer.path) if ext == ".parquet" else pd.read_csv(writer.path)
        columns = ["prediction"] if kind == "strings" else ["label_0", "label_1", "label_2", "label_3", "score"]
        assert frame.shape == shape and list(frame.columns) == columns


def _source_case(kind, tmp_path):
    trainer = SimpleNamespace(callbacks=[])
    if kind == "checkpoint":
        return trainer, {}, "x.ckpt", "checkpoint x.ckpt"
    if kind == "callback":
        return SimpleNamespace(callbacks=[LoadEncoderWeights("runs/m/model")]), {}, None, "LoadEncoderWeights"
    if kind == "short-name":
        return trainer, {"init_args": {"encoder": {"init_args": {"model": "minilm-l6"}}}}, None, "'minilm-l6'"
    if kind == "folder":
        (tmp_path / "m").mkdir()
        (tmp_path / "m" / "config.json").write_text("{}")
        return trainer, {"init_args": {"model": str(tmp_path / "m")}}, None, "pretrained model folder"
    if kind == "weights-file":
        (tmp_path / "w.safetensors").write_bytes(b"")
        return trainer, {"init_args": {"path": str(tmp_path / "w.safetensors")}}, None, "weights file"
    # random: a model config dict and a data-like existing file that is not weights
    (tmp_path / "tok.json").write_text("{}")
    return trainer, {"init_args": {"model": {"hidden_size": 32}, "tokenizer": str(tmp_path / "tok.json")}}, None, None


@pytest.mark.parametrize("kind", ["checkpoint", "callback", "short-name", "folder", "weights-file", "random"])
def test_weights_source_rule(tmp_path, kind):
    trainer, config, ckpt, expected = _source_case(kind, tmp_path)
    got = weights_source(trainer, config, ckpt)
    assert (got is None) if expected is None else (expected in got)


# ----------------------------------------------------------------------------- recipes, evaluate, encode
def test_recipes_lists_full_descriptions_and_needs(capsys, monkeypatch):
    from polymodal.cli.recipes import describe
    from polymodal.recipes import recipes

    monkeypatch.setenv("POLYMODAL_SHARED_DATA", "/nonexistent")
    monkeypatch.setenv("POLYMODAL_DATA", "/nonexistent-cache")
    assert main(["recipes"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for name, configs in recipes().items():
        for cfg in configs:
            assert f"recipes/{name}/{cfg.name}" in out
            for para in describe(cfg.read_text()):
                assert " ".join(para.split()) in out, f"{cfg}: description cut"
    assert "data: stsb [missing: polymodal data fetch stsb]" in out
    assert out.count("extras:") == sum(len(c) for c in recipes().values())


DESCRIPTIONS = [
    ("# one line\nkey: 1\n", ["one line"]),
    ("# first half of a sentence\n# and its end.\nkey: 1\n", ["first half of a sentence and its end."]),
    (
        "# run with\n#   polymodal fit --config x.yaml\n# then look.\n",
        ["run with", "$ polymodal fit --config x.yaml", "then look."],
    ),
    ("key: 1\n# not a header\n", []),
]  # fmt: skip


@pytest.mark.parametrize("text,expected", DESCRIPTIONS, ids=["one", "wrapped", "command", "none"])
def test_recipe_description_is_never_cut(text, expected):
    from polymodal.cli.recipes import describe

    assert describe(text) == expected


COLUMNS = [
    ("a,b", None),
    ("a,b,score", None),
    (" a , b , score ", None),
    ("a", "--columns: expected 'sentence1,sentence2\\[,score\\]'"),
    ("a,b,c,d", "--columns: expected"),
    ("a,,score", "--columns: expected"),
]


@pytest.mark.parametrize("columns,error", COLUMNS, ids=[c[0].strip() or "blank" for c in COLUMNS])
def test_evaluate_columns(tmp_path, columns, error):
    from polymodal.cli.evaluate import load_pairs

    (tmp_path / "p.csv").write_text("a,b,score\nx y,x z,1.0\nu v,w q,2.0\n")
    if error:
        with pytest.raises(ValueError, match=error):
            load_pairs(str(tmp_path / "p.csv"), None, columns)
    else:
        assert load_pairs(str(tmp_path / "p.csv"), None, columns) == (["x y", "u v"], ["x z", "w q"], [1.0, 2.0])


def test_encode_progress_is_per_batch_in_a_log(tmp_path, capsys, monkeypatch):
    from polymodal.model import EmbeddingModel
    from polymodal.poolers import MeanPooler

    monkeypatch.setenv("POLYMODAL_PROGRESS_SECONDS", "0")
    EmbeddingModel(tiny_text_encoder(), MeanPooler()).save(tmp_path / "m")
    (tmp_path / "t.csv").write_text("text\n" + "\n".join(f"row {i}" for i in range(12)) + "\n")
    args = ["encode", "--model", str(tmp_path / "m"), "--input", str(tmp_path / "t.csv"), "--column", "text"]
    assert main([*args, "--output", str(tmp_path / "e.npy"), "--batch-size", "3", "--chunk-rows", "100"]) == 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("polymodal: encode:")]
    assert [ln.split()[2] for ln in lines[:4]] == ["3/12", "6/12", "9/12", "12/12"]  # one line per batch of 3


@pytest.mark.parametrize(
    ("name", "higher"),
    [
        ("val/spearman", True), ("val/p@10", True), ("val/map", True), ("val/c2i_r1", True), ("val/rsum", True),
        ("val/v_measure", True), ("val/loss", False), ("val/i2c_medr", False), ("val/pk", False),
        ("val/windowdiff", False), ("val/ppl", False),
    ],
)  # fmt: skip
def test_the_summary_knows_which_way_each_metric_improves(name, higher):
    from polymodal.callbacks import higher_is_better

    assert higher_is_better(name) is higher
