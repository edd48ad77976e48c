"""``LoadEncoderWeights`` on bad folders and ``ExportModel`` on an empty fit: one line each."""

from __future__ import annotations

from pathlib import Path

import pytest

from polymodal.cli import main
from polymodal.model import EmbeddingModel
from polymodal.plugins.text.pretrained import ARCHITECTURES
from polymodal.poolers import MeanPooler
from tests.helpers import tiny_text_encoder

TINY = "recipes/sbert/tiny.yaml"


def _export(folder: Path, **config) -> Path:
    cfg = {**ARCHITECTURES["test-bert"](), **config}  # what recipes/sbert/tiny.yaml's `model: test-bert` builds
    return EmbeddingModel(tiny_text_encoder(cfg), MeanPooler()).save(folder)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (
            lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:3000]),
            "corrupt or truncated weights file",
        ),
        (lambda f: (f / "model.safetensors").write_bytes(b"\x00" * 64), "corrupt or truncated weights file"),
        (lambda f: (f / "model.safetensors").unlink(), "holds no model.safetensors"),
        (
            lambda f: (
                _export(f.parent / "wide", hidden_size=48, num_attention_heads=3)
                and (f / "model.safetensors").write_bytes((f.parent / "wide" / "model.safetensors").read_bytes())
            ),
            "the system's encoder expects [32] (35 tensor(s) differ)",
        ),
        (
            lambda f: (
                _export(f.parent / "deep", num_hidden_layers=3)
                and (f / "model.safetensors").write_bytes((f.parent / "deep" / "model.safetensors").read_bytes())
            ),
            "weights do not match the encoder",
        ),
    ],
)
def test_load_encoder_weights_faults_are_one_line(tmp_path, fault, expected):
    folder = _export(tmp_path / "exported")
    fault(folder)
    with pytest.raises((ValueError, FileNotFoundError)) as err:
        main(
            [
                "fit",
                "--config",
                TINY,
                f"--trainer.default_root_dir={tmp_path / 'run'}",
                "--trainer.callbacks+=LoadEncoderWeights",
                f"--trainer.callbacks.path={folder}",
            ]
        )
    msg = str(err.value)
    assert "\n" not in msg and expected in msg and "LoadEncoderWeights" in msg, msg


def test_load_encoder_weights_loads_a_good_folder(tmp_path, capsys):
    folder = _export(tmp_path / "exported")
    main(
        [
            "fit",
            "--config",
            TINY,
            f"--trainer.default_root_dir={tmp_path / 'run'}",
            "--trainer.callbacks+=LoadEncoderWeights",
            f"--trainer.callbacks.path={folder}",
        ]
    )
    assert "encoder tensors from" in capsys.readouterr().out


def test_export_model_refuses_an_untrained_model_outside_the_cli(tmp_path):
    """The Python API path (no PolymodalCLI guard): ExportModel itself refuses."""
    import pytorch_lightning as pl

    from polymodal.callbacks import ExportModel
    from polymodal.data import TableDataModule
    from polymodal.losses import CoSENTLoss
    from polymodal.presets import ContrastiveSystem

    system = ContrastiveSystem(encoder=tiny_text_encoder(), pooler=MeanPooler(), loss=CoSENTLoss())
    data = TableDataModule(
        train="package://sbert/data/stsb_train_sample.tsv.gz", inputs=["sentence1", "sentence2"], target="score"
    )
    trainer = pl.Trainer(
        limit_train_batches=0,
        max_epochs=1,
        callbacks=[ExportModel(str(tmp_path / "model"))],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
    )
    with pytest.raises(ValueError, match="0 training batches; refusing to export an untrained model"):
        trainer.fit(system, data)
    assert not (tmp_path / "model").exists()
