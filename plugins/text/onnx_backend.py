"""ONNX Runtime ``encode`` of text models through the dynamo exporter (unfused graph).

For speed use :mod:`polymodal.plugins.text.backends` (``polymodal.load(name, backend="auto")``): its
``"onnx"`` backend runs a graph with fused attention and layer norms (``benchmarks/encode.py`` times both).

The Hugging Face transformer is exported with ``torch.onnx.export(..., dynamo=True)`` and run with
ONNX Runtime (the TorchScript exporter on the eager-attention model in eval mode is exact too, 2e-7 on
MiniLM: ``backends.py`` uses it, because ONNX Runtime's optimizer fuses that graph and not this one);
tokenisation, length-sorted batching and pooling stay polymodal's own, so any pooler that needs only the
last layer works. Always compare against the torch model
(:meth:`OnnxEmbeddingModel.max_difference`); the tests do.

Needs ``pip install onnxruntime onnx onnxscript`` (``polymodal[onnx]``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from polymodal.features import Features

__all__ = ["OnnxEmbeddingModel", "export_onnx"]


class _LastHidden(nn.Module):
    def __init__(self, hf: nn.Module) -> None:
        super().__init__()
        self.hf = hf

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.hf(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def export_onnx(model: Any, path: str | os.PathLike[str], opset: int = 18) -> Path:
    """Export a text EmbeddingModel's transformer (``input_ids``, ``attention_mask`` ->
    ``last_hidden_state``) with dynamic batch and sequence axes; returns the file path."""
    from polymodal.plugins.text.encoder import TextEncoder

    encoder = model.encoder
    if not isinstance(encoder, TextEncoder):
        raise ValueError(f"ONNX export supports text encoders, got {type(encoder).__name__}")
    for switch in ("prompt", "token_prepending", "bidirectional"):
        if getattr(encoder, switch, None):
            raise ValueError(f"ONNX export does not support the {switch!r} switch")
    try:
        import onnxscript  # noqa: F401 - the dynamo exporter needs it
    except ImportError:
        raise ImportError("ONNX export needs onnx and onnxscript: pip install 'polymodal[onnx]'") from None
    sample = encoder.processor(["a first example sentence", "a second one"])
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    wrapper = _LastHidden(encoder.model).eval()
    target = Path(path)
    with torch.no_grad():
        program = torch.onnx.export(
            wrapper,
            (sample["input_ids"], sample["attention_mask"]),
            dynamo=True,
            opset_version=opset,
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
        )
    program.save(str(target))
    return target


class OnnxEmbeddingModel:
    """``encode`` like :class:`~polymodal.model.EmbeddingModel`, with the transformer in ONNX Runtime.

    Args:
        model: the torch EmbeddingModel (its processor, pooler and normalisation are reused).
        onnx_path: an exported file (:func:`export_onnx`); exported to a temporary file if omitted.
        threads: ONNX Runtime intra-op threads (default: ``torch.get_num_threads()``).
    """

    def __init__(self, model: Any, onnx_path: str | os.PathLike[str] | None = None, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ImportError("the ONNX backend needs onnxruntime: pip install 'polymodal[onnx]'") from None
        self.model = model
        self._tmp = None
        if onnx_path is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="polymodal-onnx-")
            onnx_path = export_onnx(model, Path(self._tmp.name) / "model.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

    @classmethod
    def from_model(cls, model: Any, threads: int | None = None) -> OnnxEmbeddingModel:
        return cls(model, None, threads)

    @property
    def dim(self) -> int:
        return int(self.model.dim)

    def encode(
        self, values: Sequence[Any], batch_size: int = 64, normalize: bool | None = None, **_: Any
    ) -> np.ndarray:
        """``(N, D)`` float32 embeddings, in input order (inputs are length-sorted internally)."""
        if isinstance(values, str):
            raise TypeError("encode() takes a list of inputs; wrap a single string in a list")
        values = list(values)
        normalize = self.model.normalize if normalize is None else normalize
        processor = self.model.encoder.processor
        order = np.argsort([-n for n in processor.lengths(values)], kind="stable")
        out = np.empty((len(values), self.dim), dtype=np.float32)
        pooler = self.model.pooler
        for start in range(0, len(values), batch_size):
            idx = order[start : start + batch_size]
            inputs = processor([values[i] for i in idx])
            (hidden,) = self.session.run(
                ["last_hidden_state"],
                {"input_ids": inputs["input_ids"].numpy(), "attention_mask": inputs["attention_mask"].numpy()},
            )
            with torch.inference_mode():
                emb = pooler(Features(torch.from_numpy(hidden), inputs["attention_mask"].bool())).float()
                if normalize:
                    emb = F.normalize(emb, dim=-1)
            out[idx] = emb.numpy()
        return out

    def max_difference(self, values: Sequence[Any], batch_size: int = 64) -> float:
        """Largest absolute difference to the torch model's ``encode`` on ``values``."""
        return float(np.abs(self.encode(values, batch_size) - self.model.encode(values, batch_size=batch_size)).max())
