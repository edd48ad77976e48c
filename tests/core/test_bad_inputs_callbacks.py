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


def test_load_encoder_weights_averages_several_folders(tmp_path, capsys):
    """A list of exports loads their uniform weight average (Pixel-Linguist's stage-0 ensemble)."""
    import torch
    from safetensors.torch import load_file

    from polymodal.callbacks import LoadEncoderWeights

    folders = []
    for i in range(3):
        torch.manual_seed(i)  # three different weight sets of one architecture
        folders.append(str(_export(tmp_path / f"e{i}")))
    file, state = LoadEncoderWeights(folders).averaged_state()
    assert any(
        not torch.equal(w["encoder." + k], v)
        for k, v in state.items()
        for w in [load_file(f"{folders[0]}/model.safetensors")]
    )
    assert file == Path(folders[0]) / "model.safetensors"
    weights = [load_file(str(Path(f) / "model.safetensors")) for f in folders]
    for key, value in state.items():
        parts = [w["encoder." + key] for w in weights]
        if value.is_floating_point():
            torch.testing.assert_close(value, sum(p.float() for p in parts) / 3)
        else:
            assert torch.equal(value, parts[0])
    main(
        [
            "fit",
            "--config",
            TINY,
            f"--trainer.default_root_dir={tmp_path / 'run'}",
            "--trainer.callbacks+=LoadEncoderWeights",
            f"--trainer.callbacks.path=[{','.join(folders)}]",
        ]
    )
    assert "the average of 3 exports" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("other", "expected"),
    [
        ({"hidden_size": 48, "intermediate_size": 96}, "has shape"),
        ({"num_hidden_layers": 3}, "encoder tensors differ"),
    ],
)
def test_load_encoder_weights_refuses_to_average_other_architectures(tmp_path, other, expected):
    from polymodal.callbacks import LoadEncoderWeights

    a, b = _export(tmp_path / "a"), _export(tmp_path / "b", **other)
    with pytest.raises(ValueError) as err:
        LoadEncoderWeights([str(a), str(b)]).averaged_state()
    msg = str(err.value)
    assert "\n" not in msg and expected in msg and str(b) in msg and "averaged" in msg, msg


def test_load_encoder_weights_under_validate_scores_the_loaded_encoder(tmp_path):
    """`polymodal validate` (no fit) loads the weights before evaluating: same score as the exported model."""
    from polymodal import load
    from polymodal.data import read_table
    from polymodal.evaluation.sts import STSEvaluator

    folder = _export(tmp_path / "exported")
    cli = main(
        [
            "validate",
            "--config",
            TINY,
            f"--trainer.default_root_dir={tmp_path / 'run'}",
            "--trainer.limit_val_batches=1.0",
            "--trainer.callbacks+=LoadEncoderWeights",
            f"--trainer.callbacks.path={folder}",
        ]
    )
    df = read_table("package://sbert/data/stsb_dev_sample.tsv.gz")
    ref = STSEvaluator(df.sentence1.tolist(), df.sentence2.tolist(), df.score.astype(float).tolist())(load(folder))
    assert float(cli.trainer.callback_metrics["val/spearman"]) == pytest.approx(ref.spearman, abs=2e-3)
