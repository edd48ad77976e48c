"""Poolers: :class:`~polymodal.features.Features` -> ``(B, D)``, for any modality."""

from __future__ import annotations

from polymodal.poolers.base import Pooler
from polymodal.poolers.cls import ClsPooler
from polymodal.poolers.last_token import LastTokenPooler
from polymodal.poolers.max import MaxPooler
from polymodal.poolers.mean import MeanPooler
from polymodal.poolers.multilayer import MultiLayerAttentionPooler
from polymodal.poolers.prompt import PROMPTS, PromptedProcessor, PromptLastTokenPooler, PromptTemplate
from polymodal.poolers.weighted_mean import WeightedMeanPooler

__all__ = [
    "PROMPTS",
    "ClsPooler",
    "LastTokenPooler",
    "MaxPooler",
    "MeanPooler",
    "MultiLayerAttentionPooler",
    "PromptLastTokenPooler",
    "PromptTemplate",
    "PromptedProcessor",
    "Pooler",
    "WeightedMeanPooler",
    "build_pooler",
]

POOLERS: dict[str, type[Pooler]] = {
    "mean": MeanPooler,
    "cls": ClsPooler,
    "max": MaxPooler,
    "last": LastTokenPooler,
    "weighted_mean": WeightedMeanPooler,
    "prompt_last": PromptLastTokenPooler,
    "multilayer": MultiLayerAttentionPooler,
}


def build_pooler(name: str, **kwargs) -> Pooler:
    """Build a pooler from its short name; unknown names raise an error listing valid ones."""
    try:
        return POOLERS[name](**kwargs)
    except KeyError:
        raise ValueError(f"unknown pooler {name!r}; choose one of {', '.join(POOLERS)}") from None


def pooler_config(pooler: Pooler) -> dict:
    """``{"name": ..., "args": ...}`` for saving; the inverse of :func:`pooler_from_config`."""
    for name, cls in POOLERS.items():
        if type(pooler) is cls:
            return {"name": name, "args": pooler.get_config()}
    return {"class": f"{type(pooler).__module__}.{type(pooler).__qualname__}", "args": pooler.get_config()}


def pooler_from_config(config: dict) -> Pooler:
    if "name" in config:
        return build_pooler(config["name"], **config.get("args", {}))
    import importlib

    module, _, cls_name = config["class"].rpartition(".")
    cls = getattr(importlib.import_module(module), cls_name)
    if not issubclass(cls, Pooler):
        raise TypeError(f"{config['class']} is not a polymodal Pooler")
    return cls(**config.get("args", {}))
