"""The plugin guide's prediction config (docs/plugins.md section 6) runs as written, and
``polymodal predict`` on its checkpoint writes the table the guide shows."""

from __future__ import annotations

import re

import pandas as pd

from polymodal.cli import main
from tests.conftest import REPO


def _guide_yaml(section: str) -> str:
    text = (REPO / "docs" / "plugins.md").read_text()
    body = text[text.index(section) :]
    return re.search(r"```yaml\n(.*?)```", body, re.S).group(1)


def test_prediction_guide_config_fits_and_predicts_to_a_csv(tmp_path, capsys):
    cfg = tmp_path / "predict.yaml"
    cfg.write_text(_guide_yaml("## 6. Prediction plugins"))
    root = f"--trainer.default_root_dir={tmp_path}"
    cli = main(["fit", "--config", str(cfg), root])
    assert {"val/mse", "val/spearman"} <= set(cli.trainer.callback_metrics)
    assert (tmp_path / "metrics.csv").is_file() and (tmp_path / "curves.png").is_file()
    ckpt = next((tmp_path / "checkpoints").glob("*.ckpt"))
    data = "--data.predict=package://sbert/data/stsb_dev_sample.tsv.gz"
    main(["predict", "--config", str(cfg), root, data, f"--ckpt_path={ckpt}"])
    frame = pd.read_csv(tmp_path / "predictions.csv")
    assert list(frame.columns) == ["score"] and len(frame) == 300
    assert "300 rows x 1 columns (score)" in capsys.readouterr().out


def test_guide_trainer_block_is_complete():
    block = _guide_yaml("A complete\nconfig")
    for key in ("trainer:", "accelerator:", "max_epochs:", "default_root_dir:", "callbacks:", "model:", "data:"):
        assert key in block, key
