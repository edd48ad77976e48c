"""Export a text :class:`~polymodal.model.EmbeddingModel` to the sentence-transformers folder format.

The folder loads with ``sentence_transformers.SentenceTransformer(path)`` (any version from
2.x to 6.x: the classic ``modules.json`` layout is written) and with
:func:`polymodal.plugins.text.from_sentence_transformers`, giving the same embeddings.

Layout::

    modules.json  sentence_bert_config.json  config_sentence_transformers.json
    config.json  model.safetensors  tokenizer.json  tokenizer_config.json   (the Transformer)
    1_Pooling/config.json
    2_Normalize/                                                             (if normalize)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from polymodal.io import atomic_dir
from polymodal.poolers import ClsPooler, LastTokenPooler, MaxPooler, MeanPooler, Pooler, WeightedMeanPooler

__all__ = ["st_pooling_mode", "to_sentence_transformers"]

_POOLING_KEYS = {
    "cls": "pooling_mode_cls_token",
    "mean": "pooling_mode_mean_tokens",
    "max": "pooling_mode_max_tokens",
    "mean_sqrt_len_tokens": "pooling_mode_mean_sqrt_len_tokens",
    "weightedmean": "pooling_mode_weightedmean_tokens",
    "lasttoken": "pooling_mode_lasttoken",
}


def st_pooling_mode(pooler: Pooler) -> str:
    """The sentence-transformers pooling mode equal to ``pooler``; raises for poolers ST lacks."""
    if type(pooler) is MeanPooler:
        return "mean"
    if type(pooler) is MaxPooler:
        return "max"
    if type(pooler) is ClsPooler and not pooler.use_pooled:
        return "cls"
    if isinstance(pooler, LastTokenPooler):
        return "lasttoken"
    if type(pooler) is WeightedMeanPooler:
        return "weightedmean" if pooler.scheme == "linear" else "mean"
    raise ValueError(
        f"{type(pooler).__name__} has no sentence-transformers equivalent; exportable poolers: "
        "MeanPooler, MaxPooler, ClsPooler, LastTokenPooler, WeightedMeanPooler"
    )


def _tokenizer_config(processor: Any) -> dict[str, Any]:
    tok = processor.tokenizer
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": processor.max_length,
        "padding_side": "right",
        "truncation_side": "right",
        "clean_up_tokenization_spaces": False,
    }
    pad = tok.id_to_token(processor.pad_id)
    if pad is not None:
        config["pad_token"] = pad
    for key, candidates in {
        "cls_token": ("[CLS]", "<s>"),
        "sep_token": ("[SEP]", "</s>"),
        "unk_token": ("[UNK]", "<unk>"),
        "mask_token": ("[MASK]", "<mask>"),
    }.items():
        for c in candidates:
            if tok.token_to_id(c) is not None:
                config[key] = c
                break
    return config


def to_sentence_transformers(model: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` (a text EmbeddingModel) as a sentence-transformers folder; returns its path.

    Raises:
        ValueError: the encoder is not a plain Hugging Face text encoder (prompts, Token
            Prepending or bidirectional switches cannot be expressed), or the pooler has no
            sentence-transformers equivalent.
    """
    from polymodal.plugins.text.encoder import TextEncoder

    encoder = model.encoder
    if not isinstance(encoder, TextEncoder):
        raise ValueError(f"only text models export to sentence-transformers, got {type(encoder).__name__}")
    for switch in ("prompt", "token_prepending", "bidirectional"):
        if getattr(encoder, switch, None):
            raise ValueError(f"the encoder's {switch!r} setting has no sentence-transformers equivalent")
    mode = st_pooling_mode(model.pooler)
    target = Path(path).expanduser()
    with atomic_dir(target, what="sentence-transformers folder", replaceable=("modules.json",)) as directory:
        _write_st_folder(model, encoder, mode, directory)
    return target


def _write_st_folder(model: Any, encoder: Any, mode: str, directory: Path) -> None:
    """Write the folder's files into ``directory`` (a fresh folder that :func:`atomic_dir` swaps in)."""
    processor = encoder.processor
    encoder.model.save_pretrained(str(directory), safe_serialization=True)
    processor.tokenizer.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(json.dumps(_tokenizer_config(processor), indent=2))
    (directory / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": processor.max_length, "do_lower_case": False}, indent=2)
    )
    pooling = directory / "1_Pooling"
    pooling.mkdir()
    pooling_config: dict[str, Any] = {"word_embedding_dimension": encoder.output_dim}
    pooling_config.update({key: name == mode for name, key in _POOLING_KEYS.items()})
    pooling_config["include_prompt"] = True
    (pooling / "config.json").write_text(json.dumps(pooling_config, indent=2))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if model.normalize:
        (directory / "2_Normalize").mkdir()
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    (directory / "modules.json").write_text(json.dumps(modules, indent=2))
    import polymodal

    (directory / "config_sentence_transformers.json").write_text(
        json.dumps(
            {
                "__version__": {"polymodal": polymodal.__version__},
                "prompts": dict(getattr(model, "prompts", {}) or {}),
                "default_prompt_name": getattr(model, "default_prompt_name", None),
                "similarity_fn_name": "cosine",
            },
            indent=2,
        )
    )
