"""No data is lost: atomic checkpoints, kill -9 and resume, safe loading."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from polymodal.checkpoint import AtomicCheckpointIO
from tests.conftest import REPO
from tests.helpers import TINY_BERT


def _config(root: Path, max_epochs: int, slow: float) -> Path:
    model_cfg = dict(TINY_BERT, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    cfg = {
        "seed_everything": 7,
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "max_epochs": max_epochs,
            "limit_train_batches": 12,
            "logger": False,
            "enable_progress_bar": False,
            "default_root_dir": str(root),
            "deterministic": True,
            "callbacks": [
                {"class_path": "ExportModel"},
                {"class_path": "StepSeeder"},
                {"class_path": "tests.helpers.SlowDown", "init_args": {"seconds": slow}},
                {
                    "class_path": "pytorch_lightning.callbacks.ModelCheckpoint",
                    "init_args": {"dirpath": str(root / "checkpoints"), "save_last": True, "save_top_k": -1},
                },
            ],
        },
        "model": {
            "class_path": "polymodal.ContrastiveSystem",
            "init_args": {
                "encoder": {
                    "class_path": "TextEncoder",
                    "init_args": {"model": model_cfg, "tokenizer": "bytes", "max_length": 48},
                },
                "loss": {"class_path": "polymodal.losses.CoSENTLoss"},
                "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.001}},
            },
        },
        "data": {
            "class_path": "TableDataModule",
            "init_args": {
                "train": "package://sbert/data/stsb_train_sample.tsv.gz",
                "inputs": ["sentence1", "sentence2"],
                "target": "score",
                "batch_size": 8,
            },
        },
    }
    path = root / "config.in.yaml"
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg))
    return path


def _fit(cfg: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-m", "polymodal.cli", "fit", "--config", str(cfg), *extra],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _weights(root: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(root / "model" / "model.safetensors"))


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_equals_uninterrupted_run(tmp_path):
    reference = _fit(_config(tmp_path / "ref", max_epochs=3, slow=0.0))
    victim = _fit(_config(tmp_path / "victim", max_epochs=3, slow=0.3))
    last = tmp_path / "victim" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not last.exists() and time.time() < deadline and victim.poll() is None:
        time.sleep(0.05)
    time.sleep(1.0)  # a few steps into epoch 2
    assert victim.poll() is None, "run finished before it could be killed:\n" + victim.stdout.read()
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert not (tmp_path / "victim" / "model").exists()  # it really died before the end
    # The checkpoint left behind is complete and loads safely.
    state = AtomicCheckpointIO().load_checkpoint(last)
    assert state["epoch"] == 0 and "state_dict" in state

    resumed = _fit(_config(tmp_path / "victim", max_epochs=3, slow=0.0), "--ckpt_path", "last")
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    ref_out, _ = reference.communicate(timeout=300)
    assert reference.returncode == 0, ref_out
    a, b = _weights(tmp_path / "ref"), _weights(tmp_path / "victim")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs after resume"


def test_atomic_checkpoint_io_leaves_old_checkpoint_on_failure(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": torch.tensor(1)}, path)

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="could not write .*last.ckpt: No space left on device"):
        io.save_checkpoint({"step": torch.tensor(2)}, path)
    monkeypatch.undo()
    assert io.load_checkpoint(path)["step"].item() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_checkpoint_that_would_run_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.ckpt"
    torch.save({"x": Evil()}, path)
    with pytest.raises(RuntimeError, match="evil.ckpt: corrupt, truncated or unsafe checkpoint"):
        AtomicCheckpointIO().load_checkpoint(path)


def test_truncated_checkpoint_gives_clear_error(tmp_path):
    path = tmp_path / "t.ckpt"
    AtomicCheckpointIO().save_checkpoint({"w": torch.ones(1000)}, path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(RuntimeError, match="t.ckpt: corrupt, truncated or unsafe checkpoint"):
        AtomicCheckpointIO().load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*nope.ckpt"):
        AtomicCheckpointIO().load_checkpoint(tmp_path / "nope.ckpt")


def test_cli_uses_atomic_checkpoint_io_by_default(tmp_path):
    from polymodal.cli import main

    cli = main(
        [
            "fit",
            "--config",
            "recipes/sbert/tiny.yaml",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.limit_train_batches=1",
            "--trainer.limit_val_batches=1",
        ]
    )
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    ckpt = next((tmp_path / "checkpoints").glob("*.ckpt"))
    assert AtomicCheckpointIO().load_checkpoint(ckpt)["global_step"] == 1
