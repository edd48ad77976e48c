"""polymodal: multimodal representation learning on Lightning.

Importing :mod:`polymodal` is cheap and has no side effects: plugins load on the first call
that needs them (:func:`load_plugins`, :func:`load`, the CLI), never at import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Version of the plugin contract. A plugin module may declare ``polymodal_api_version``;
#: a plugin built for another major version is skipped with a warning instead of breaking the host.
PLUGIN_API_VERSION = 1

_LAZY = {
    "Features": "polymodal.features",
    "Encoder": "polymodal.modality",
    "Modality": "polymodal.modality",
    "Processor": "polymodal.modality",
    "load_plugins": "polymodal.plugins_manager",
    "get_modality": "polymodal.plugins_manager",
    "modalities": "polymodal.plugins_manager",
    "plugin_report": "polymodal.plugins_manager",
    "EmbeddingModel": "polymodal.model",
    "load": "polymodal.model",
    "PrefixLM": "polymodal.prefix_lm",
    "PrefixLMSystem": "polymodal.prefix_lm",
    "System": "polymodal.system",
    "Batch": "polymodal.contracts",
    "ContrastiveSystem": "polymodal.presets",
    "CrossEncoderSystem": "polymodal.presets",
    "LanguageModelSystem": "polymodal.presets",
    "PredictionSystem": "polymodal.presets",
    "Task": "polymodal.presets",
    "quantize": "polymodal.search",
    "int8_ranges": "polymodal.search",
    "semantic_search": "polymodal.search",
    "retrieve_rerank": "polymodal.search",
    "VectorIndex": "polymodal.index",
    "ZeroShotClassifier": "polymodal.zero_shot",
    "TableDataModule": "polymodal.data",
    "create_model": "polymodal.registry",
    "list_models": "polymodal.registry",
}

__all__ = ["PLUGIN_API_VERSION", "__version__", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover
    from polymodal.contracts import Batch
    from polymodal.data import TableDataModule
    from polymodal.features import Features
    from polymodal.index import VectorIndex
    from polymodal.modality import Encoder, Modality, Processor
    from polymodal.model import EmbeddingModel, load
    from polymodal.plugins_manager import get_modality, load_plugins, modalities, plugin_report
    from polymodal.prefix_lm import PrefixLM, PrefixLMSystem
    from polymodal.presets import ContrastiveSystem, CrossEncoderSystem, LanguageModelSystem, PredictionSystem, Task
    from polymodal.registry import create_model, list_models
    from polymodal.search import int8_ranges, quantize, retrieve_rerank, semantic_search
    from polymodal.system import System
    from polymodal.zero_shot import ZeroShotClassifier


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'polymodal' has no attribute {name!r}")
