"""DDP through Lightning (2 CPU processes, gloo): a contrastive recipe trains, and validation
metrics cover the whole dataset exactly once (no per-rank metrics, no padding duplicates)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest

import polymodal
from polymodal.data import read_table
from polymodal.evaluation import STSEvaluator
from tests.conftest import REPO


@pytest.mark.slow
@pytest.mark.distributed
def test_ddp_two_cpu_processes_fit_and_whole_dataset_spearman(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [
        sys.executable,
        "-m",
        "polymodal.cli",
        "fit",
        "--config",
        "recipes/sbert/tiny.yaml",
        "--trainer.strategy=ddp",
        "--trainer.devices=2",
        "--trainer.accelerator=cpu",
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.limit_val_batches=1.0",
        "--trainer.logger=CSVLogger",
        f"--trainer.logger.save_dir={tmp_path}",
        "--data.init_args.max_rows=299",
        "--data.init_args.eval_batch_size=32",
    ]
    run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    metrics_file = next(tmp_path.rglob("metrics.csv"))
    rows = [r for r in csv.DictReader(metrics_file.open()) if r.get("val/spearman")]
    logged = float(rows[-1]["val/spearman"])

    # The same final weights evaluated in one process on the same 299 validation pairs.
    model = polymodal.load(tmp_path / "model")
    df = read_table("package://sbert/data/stsb_dev_sample.tsv.gz").iloc[:299]
    single = STSEvaluator(df.sentence1.tolist(), df.sentence2.tolist(), df.score.tolist())(model)
    assert logged == pytest.approx(single.spearman, abs=1e-5)
