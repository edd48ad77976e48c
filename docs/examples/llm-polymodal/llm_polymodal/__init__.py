"""polymodal embedding models for simonw/llm.

Registers ``polymodal/<name>`` for every pretrained polymodal model and for each
``name=folder`` entry of ``LLM_POLYMODAL_MODELS`` (``;``-separated). Models load lazily, once.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from typing import Any

import llm

__all__ = ["PolymodalEmbeddingModel", "register_embedding_models"]

ENV = "LLM_POLYMODAL_MODELS"


def _user_models() -> dict[str, str]:
    out: dict[str, str] = {}
    for entry in os.environ.get(ENV, "").split(";"):
        if not entry.strip():
            continue
        name, sep, folder = entry.partition("=")
        if not sep or not name.strip() or not folder.strip():
            raise ValueError(f"{ENV}: entry {entry!r} must look like name=folder")
        out[name.strip()] = folder.strip()
    return out


class PolymodalEmbeddingModel(llm.EmbeddingModel):
    """An llm embedding model backed by ``polymodal.load(source)``.

    Args:
        model_id: the llm model id (``polymodal/<name>``).
        source: a registered polymodal model name or a model folder.
        binary: the model embeds binary content (image bytes) instead of text.
    """

    batch_size = 32

    def __init__(self, model_id: str, source: str, binary: bool = False) -> None:
        self.model_id = model_id
        self.source = source
        self.supports_text = not binary
        self.supports_binary = binary
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            import polymodal

            self._model = polymodal.load(self.source)
        return self._model

    def embed_batch(self, items: Iterable[str | bytes], *, key: str | None = None) -> Iterator[list[float]]:
        model = self._load()
        values: list[Any] = list(items)
        if self.supports_binary:
            from PIL import Image

            values = [Image.open(io.BytesIO(v)).convert("RGB") for v in values]
        encode = getattr(model, "encode_document", model.encode)
        for row in encode(values, batch_size=self.batch_size):
            yield [float(x) for x in row]


@llm.hookimpl
def register_embedding_models(register: Any) -> None:
    from polymodal.registry import list_models, model_card

    for name in list_models(kind="pretrained"):
        binary = model_card(name).modality == "image"
        register(PolymodalEmbeddingModel(f"polymodal/{name}", name, binary=binary))
    for name, folder in _user_models().items():
        register(PolymodalEmbeddingModel(f"polymodal/{name}", folder, binary=_is_image(folder)))


def _is_image(folder: str) -> bool:
    """True for a saved image tower (its polymodal.json names the image modality)."""
    import json
    from pathlib import Path

    config = Path(folder).expanduser() / "polymodal.json"
    try:
        return json.loads(config.read_text()).get("modality") == "image"
    except (OSError, ValueError):
        return False
