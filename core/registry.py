"""One registry: the classes a saved artefact may name, and named models (pretrained or architectures).

Two things live here, both filled by the core and by loaded plugins, never by a file on disk:

* **Classes** (``kind`` = ``"encoder"``, ``"pooler"``, ``"model"``, ``"head"``, ...). A saved model
  folder or checkpoint names its classes as ``"module.QualName"`` strings. They are resolved with
  :func:`resolve_class` against this allow-list only: a name that is not registered is a one-line error
  naming the field, and no module is imported on a file's say-so. Core classes are listed statically
  below (their modules are ours, imported on first use); plugin classes come from the
  :class:`~polymodal.modality.Modality` objects that loaded plugins register.
* **Named models** (timm's ``create_model`` / ``list_models``): a short name (``"minilm-l6"``) -> a
  factory and a card (modality, source, licence, paper, preprocessing). ``kind="pretrained"`` factories
  return ready :class:`~polymodal.model.EmbeddingModel` objects with weights from installed packages (no
  network); ``kind="architecture"`` factories build a component (e.g. a tiny test encoder) from its name.
  ``kind="weights"`` names a local checkpoint that components load by name (``TextEncoder(model="minilm-l6")``,
  ``DecoderTextEncoder("smollm2-135m")``); its card's ``weights()`` returns the local path. Registering a taken
  name warns and keeps the first (built-ins load first).
"""

from __future__ import annotations

import fnmatch
import importlib
import threading
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ModelCard",
    "RegistryWarning",
    "class_name",
    "create_model",
    "list_models",
    "model_card",
    "model_weights",
    "register_class",
    "register_model",
    "registered_classes",
    "resolve_class",
]


class RegistryWarning(UserWarning):
    """A name was registered twice; the first registration is kept."""


#: Core classes a saved artefact may name, by kind. Only these modules are ever imported by
#: :func:`resolve_class` on behalf of a saved name (they are polymodal's own).
_CORE_CLASSES: dict[str, tuple[str, ...]] = {
    "encoder": ("polymodal.vector.FeatureMLP",),
    "pooler": (
        "polymodal.poolers.mean.MeanPooler",
        "polymodal.poolers.cls.ClsPooler",
        "polymodal.poolers.max.MaxPooler",
        "polymodal.poolers.last_token.LastTokenPooler",
        "polymodal.poolers.weighted_mean.WeightedMeanPooler",
        "polymodal.poolers.prompt.PromptLastTokenPooler",
        "polymodal.poolers.multilayer.MultiLayerAttentionPooler",
    ),
    "model": ("polymodal.model.EmbeddingModel", "polymodal.prefix_lm.PrefixLM"),
}


@dataclass(frozen=True)
class ModelCard:
    """What ``polymodal models`` shows for a named model.

    Attributes:
        name: the short name (``"minilm-l6"``).
        factory: ``factory(**kwargs)`` builds it (no network).
        kind: ``"pretrained"`` (a ready model with weights), ``"architecture"`` (a component's configuration,
            random weights, e.g. the tiny test encoders) or ``"weights"`` (a local checkpoint components load by
            name).
        modality: the modality it belongs to (``"text"``).
        description: one line.
        source: where the weights or the architecture come from (package, paper repo).
        licence: licence of the weights.
        paper: reference (title or URL).
        preprocessing: what the processor does (tokenizer, image size, ...).
        owner: the plugin (or ``"core"``) that registered it.
        weights: returns the local path of the weights (a folder or a file), for named checkpoints.
    """

    name: str
    factory: Callable[..., Any] = field(repr=False, compare=False)
    kind: str = "pretrained"
    modality: str = ""
    description: str = ""
    source: str = ""
    licence: str = ""
    paper: str = ""
    preprocessing: str = ""
    owner: str = "core"
    weights: Callable[[], Any] | None = field(default=None, repr=False, compare=False)


_lock = threading.RLock()
_classes: dict[str, dict[str, type]] = {}
_models: dict[str, ModelCard] = {}


def class_name(cls: type) -> str:
    """The name a saved artefact stores for ``cls``: ``"module.QualName"``."""
    return f"{cls.__module__}.{cls.__qualname__}"


def register_class(cls: type, kind: str) -> type:
    """Allow saved artefacts to name ``cls`` (as ``class_name(cls)``) for ``kind``; returns ``cls``."""
    with _lock:
        _classes.setdefault(kind, {})[class_name(cls)] = cls
    return cls


def _ensure_core(kind: str) -> dict[str, type]:
    table = _classes.setdefault(kind, {})
    for path in _CORE_CLASSES.get(kind, ()):
        if path not in table:
            module, _, name = path.rpartition(".")
            table[path] = getattr(importlib.import_module(module), name)
    return table


def _ensure_plugins() -> None:
    from polymodal.plugins_manager import load_plugins

    load_plugins()


def registered_classes(kind: str) -> dict[str, type]:
    """Every class registered for ``kind`` (core and loaded plugins), by saved name."""
    _ensure_plugins()
    with _lock:
        return dict(_ensure_core(kind))


def resolve_class(name: Any, kind: str, *, field: str, base: type | None = None, where: str = "") -> type:
    """The registered class a saved artefact names; never imports a module the name points to.

    Args:
        name: the saved string (``"module.QualName"``); short names (``"MeanPooler"``) match a
            registered class of that kind whose qualified name ends with it, when unambiguous.
        kind: ``"encoder"``, ``"pooler"``, ``"model"``, ...
        field: the field that held the name (for the error, e.g. ``"encoder.class"``).
        base: if given, the class must be a subclass of it.
        where: the file the name came from (for the error).

    Raises:
        ValueError: one line naming the file, the field and the registered names.
    """
    prefix = f"{where}: " if where else ""
    if not isinstance(name, str) or not name:
        raise ValueError(f"{prefix}field {field!r} must be a class name string, got {name!r:.60}")
    table = registered_classes(kind)
    found = table.get(name)
    if found is None:
        matches = [c for path, c in table.items() if path.rsplit(".", 1)[-1] == name]
        found = matches[0] if len(matches) == 1 else None
    if found is None:
        known = ", ".join(sorted(p.rsplit(".", 1)[-1] for p in table)) or "none"
        raise ValueError(
            f"{prefix}field {field!r} names {name!r:.120}, which is not a registered {kind} class "
            f"(registered: {known}); saved files may only name classes of polymodal or of an installed plugin"
        )
    if base is not None and not (isinstance(found, type) and issubclass(found, base)):
        raise ValueError(f"{prefix}field {field!r}: {name!r} is not a {base.__name__}")
    return found


# ------------------------------------------------------------------------------------------ models
def register_model(
    name: str,
    factory: Callable[..., Any],
    *,
    kind: str = "pretrained",
    modality: str = "",
    description: str = "",
    source: str = "",
    licence: str = "",
    paper: str = "",
    preprocessing: str = "",
    owner: str = "core",
    weights: Callable[[], Any] | None = None,
) -> ModelCard:
    """Register a named model; a taken name warns (naming both owners) and keeps the first."""
    if kind not in ("pretrained", "architecture", "weights"):
        raise ValueError(f"kind must be 'pretrained', 'architecture' or 'weights', got {kind!r}")
    card = ModelCard(name, factory, kind, modality, description, source, licence, paper, preprocessing, owner, weights)
    with _lock:
        if name in _models:
            first = _models[name]
            if first.factory is not factory:
                warnings.warn(
                    f"polymodal: model name {name!r} from {owner!r} is already registered by {first.owner!r}; "
                    f"keeping {first.owner!r}'s",
                    RegistryWarning,
                    stacklevel=2,
                )
            return first
        _models[name] = card
    return card


def _all_models() -> dict[str, ModelCard]:
    _ensure_plugins()
    with _lock:
        return dict(_models)


def list_models(pattern: str | None = None, kind: str | None = None, modality: str | None = None) -> list[str]:
    """Registered model names, sorted; ``pattern`` is a shell glob (``"*minilm*"``)."""
    cards = _all_models().values()
    return sorted(
        c.name
        for c in cards
        if (pattern is None or fnmatch.fnmatch(c.name, pattern))
        and (kind is None or c.kind == kind)
        and (modality is None or c.modality == modality)
    )


def model_card(name: str) -> ModelCard:
    """The card of a registered model; the error lists close names."""
    cards = _all_models()
    if name not in cards:
        import difflib

        close = difflib.get_close_matches(name, list(cards), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; registered: {', '.join(sorted(cards)) or 'none'}"
        raise KeyError(f"unknown model name {name!r}{hint}")
    return cards[name]


def create_model(name: str, **kwargs: Any) -> Any:
    """Build a registered model by name (no network: weights come from installed packages)."""
    return model_card(name).factory(**kwargs)


def model_weights(name: str) -> Any:
    """The local path of a named checkpoint (a ``weights`` card, or a pretrained card that has weights)."""
    card = model_card(name)
    if card.weights is None:
        raise KeyError(f"model name {name!r} ({card.kind}) has no local weights to load by name")
    return card.weights()


def _register_modality(modality: Any, owner: str) -> None:
    """Called by the plugin manager for every registered modality."""
    for cls in getattr(modality, "encoders", ()):
        register_class(cls, "encoder")
    for cls in getattr(modality, "poolers", ()):
        register_class(cls, "pooler")
    for cls in getattr(modality, "models", ()):
        register_class(cls, "model")
    cards = dict(getattr(modality, "cards", {}) or {})
    weights = dict(getattr(modality, "weights", {}) or {})
    for short, factory in dict(getattr(modality, "pretrained", {}) or {}).items():
        info = dict(cards.get(short, {}))
        register_model(short, factory, modality=modality.name, owner=owner, weights=weights.get(short), **info)
    for short, locate in weights.items():
        if short not in (getattr(modality, "pretrained", {}) or {}):
            info = dict(cards.get(short, {}))
            register_model(short, locate, kind="weights", modality=modality.name, owner=owner, weights=locate, **info)
    for short, factory in dict(getattr(modality, "architectures", {}) or {}).items():
        info = dict(cards.get(short, {}))
        register_model(short, factory, kind="architecture", modality=modality.name, owner=owner, **info)


def _forget_plugin_entries(keep_owner: Iterable[str] = ("core",)) -> None:
    """Drop what plugins registered (used when plugins are reloaded)."""
    keep = set(keep_owner)
    with _lock:
        for name in [n for n, c in _models.items() if c.owner not in keep]:
            del _models[name]
        _classes.clear()
