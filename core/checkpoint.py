"""Checkpoints that survive a kill at any moment, and loading that never executes code."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from polymodal.io import atomic_path

__all__ = ["AtomicCheckpointIO"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO that writes to a temporary file beside the target, fsyncs it,
    and renames it into place (then fsyncs the folder), so a ``kill -9`` or power loss leaves
    the previous checkpoint intact. Loading uses ``torch.load(weights_only=True)``: a checkpoint
    can only hold tensors and plain containers and cannot run code.

    Remote (fsspec URL) paths fall back to Lightning's own saving.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        text = os.fspath(path)
        if "://" in text and not text.startswith("file://"):
            return super().save_checkpoint(checkpoint, path, storage_options)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)  # serialise fully before touching the disk
        with atomic_path(Path(text.removeprefix("file://"))) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(buffer.getbuffer())
        return None

    def load_checkpoint(self, path: Any, map_location: Any | None = None, weights_only: bool | None = None) -> Any:
        text = os.fspath(path)
        if not Path(text).exists() and "://" not in text:
            raise FileNotFoundError(f"checkpoint not found: {text}")
        try:
            return super().load_checkpoint(
                path, map_location=map_location, weights_only=True if weights_only is None else weights_only
            )
        except (RuntimeError, EOFError, pickle.UnpicklingError) as exc:
            raise RuntimeError(
                f"{text}: corrupt, truncated or unsafe checkpoint ({str(exc).splitlines()[0]})"
            ) from None
