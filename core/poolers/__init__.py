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


def pooler_from_config(config: dict, *, where: str = "") -> Pooler:
    """Rebuild a saved pooler; a class name resolves only against :mod:`polymodal.registry`.

    Raises:
        ValueError: one line naming ``where`` and the field (unknown name, bad arguments).
    """
    prefix = f"{where}: " if where else ""
    if not isinstance(config, dict):
        raise ValueError(f"{prefix}field 'pooler' must be an object, got {config!r:.60}")
    args = config.get("args", {})
    if not isinstance(args, dict):
        raise ValueError(f"{prefix}field 'pooler.args' must be an object, got {args!r:.60}")
    if "name" in config:
        name = config["name"]
        if not isinstance(name, str) or name not in POOLERS:
            known = ", ".join(POOLERS)
            raise ValueError(f"{prefix}field 'pooler.name': unknown pooler {name!r:.60}; choose one of {known}")
        cls: type[Pooler] = POOLERS[config["name"]]
    else:
        from polymodal.registry import resolve_class

        cls = resolve_class(config.get("class"), "pooler", field="pooler.class", base=Pooler, where=where)
    try:
        return cls(**args)
    except TypeError as exc:
        raise ValueError(f"{prefix}field 'pooler.args' do not fit {cls.__name__}: {exc}") from None
