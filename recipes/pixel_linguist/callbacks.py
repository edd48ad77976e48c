"""Chain training stages: start a fit from the encoder weights of an exported model."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl

from polymodal.io import resolve_path

__all__ = ["LoadEncoderWeights"]


class LoadEncoderWeights(pl.Callback):
    """At the start of fitting, load the encoder weights of a model saved by ``ExportModel``
    (``polymodal.load`` format) into the system's encoder(s); optimizer and step start fresh.

    Args:
        path: the exported model folder (``.../model``).
        strict: every encoder weight must match (names and shapes).
    """

    def __init__(self, path: str, strict: bool = True) -> None:
        self.path = path
        self.strict = strict

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from safetensors.torch import load_file

        folder = resolve_path(self.path, what="exported model folder")
        weights = load_file(str(Path(folder) / "model.safetensors"))
        state = {k[len("encoder.") :]: v for k, v in weights.items() if k.startswith("encoder.")}
        if not state:
            raise ValueError(f"{folder}: model.safetensors holds no encoder.* weights")
        encoders = getattr(pl_module, "encoders", None)
        if encoders is None or len(encoders) != 1:
            raise ValueError("LoadEncoderWeights needs a system with exactly one encoder")
        encoder = next(iter(encoders.values()))
        missing, unexpected = encoder.load_state_dict(state, strict=self.strict)
        print(f"polymodal: loaded {len(state)} encoder tensors from {folder}")
        if missing or unexpected:
            print(f"polymodal: missing {missing}, unexpected {unexpected}")
