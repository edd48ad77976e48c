"""Hugging Face transformer encoders and decoders as polymodal encoders."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from polymodal.features import Features
from polymodal.modality import Encoder
from polymodal.plugins.text.processor import TextProcessor, load_backend_tokenizer

__all__ = ["TextEncoder", "check_hf_folder", "check_hf_size"]

#: Files of a Hugging Face folder whose ``auto_map`` would name Python code inside the folder.
_CODE_DECLARING = ("config.json", "tokenizer_config.json", "preprocessor_config.json", "processor_config.json")


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: invalid JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got a {type(data).__name__}")
    return data


def check_hf_folder(folder: Path) -> dict[str, Any]:
    """Refuse a Hugging Face folder that declares its own Python code; returns its ``config.json``.

    polymodal never runs code from a model folder (``trust_remote_code=False`` everywhere), so a
    folder whose ``config.json`` / ``tokenizer_config.json`` has an ``auto_map`` (custom modelling
    code shipped beside the weights) is refused in one line instead of asking on a terminal.

    Raises:
        ValueError: one line naming the file.
    """
    config: dict[str, Any] = {}
    for name in _CODE_DECLARING:
        path = folder / name
        if not path.is_file():
            continue
        data = _read_json_object(path)
        if name == "config.json":
            config = data
        if data.get("auto_map"):
            raise ValueError(
                f"{path}: declares custom code (auto_map: {', '.join(map(str, data['auto_map']))[:80]}); "
                "polymodal never runs Python from a model folder (trust_remote_code=False)"
            )
    if (folder / "config.json").is_file() and not isinstance(config.get("model_type", ""), str):
        raise ValueError(f"{folder / 'config.json'}: field 'model_type' must be a string")
    return config


def _safetensors_numel(folder: Path) -> int | None:
    """Elements held by a folder's safetensors weights (header only); ``None`` when there are none."""
    from safetensors import SafetensorError, safe_open

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for f in files:
        try:
            with safe_open(str(f), framework="pt") as fh:
                for k in fh.keys():  # noqa: SIM118 - not a dict
                    shape = fh.get_slice(k).get_shape()
                    n = 1
                    for d in shape:
                        n *= int(d)
                    total += n
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise ValueError(f"{f}: corrupt or truncated weights file ({str(exc).splitlines()[0]})") from None
    return total


#: An architecture may exceed the weights it is loaded from by this factor before loading is refused.
_SIZE_SLACK = 1.5


def check_hf_size(config: Any, folder: Path) -> None:
    """Build ``config``'s architecture on the meta device (no memory) and refuse it when it declares
    far more parameters than the folder's safetensors files hold (a tiny folder declaring a huge
    ``hidden_size`` would otherwise allocate gigabytes before the weights are checked).

    Raises:
        ValueError: one line naming ``config.json``; FileNotFoundError: no safetensors weights.
    """
    import torch
    from transformers import AutoModel

    held = _safetensors_numel(folder)
    if held is None:
        bins = [p.name for p in folder.glob("*.bin")] + [p.name for p in folder.glob("*.pt")]
        extra = f" ({', '.join(bins)} are pickle files, which polymodal never loads)" if bins else ""
        raise FileNotFoundError(f"{folder}: no model.safetensors weights{extra}")
    try:
        with torch.device("meta"):
            meta = AutoModel.from_config(config, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001 - transformers raises many kinds for a bad config
        raise ValueError(
            f"{folder / 'config.json'}: cannot build the architecture ({str(exc).splitlines()[0]})"
        ) from None
    declared = sum(p.numel() for p in meta.parameters())
    if declared > _SIZE_SLACK * held + (4 << 20):
        raise ValueError(
            f"{folder / 'config.json'}: declares a model of {declared:,} parameters but the folder's weights hold "
            f"{held:,}; refusing to allocate a model its weights cannot fill"
        )


#: Attribute names under which Hugging Face models keep their stack of transformer layers.
_LAYER_LISTS = ("layer", "layers", "h", "block", "blocks")


def _resolve_model(model: str) -> Path:
    from polymodal.plugins.text.pretrained import ARCHITECTURES, PRETRAINED_PATHS, resolve_text_model

    path = resolve_text_model(model)
    if isinstance(path, Path) and path.is_dir():
        check_hf_folder(path)
        return path
    raise FileNotFoundError(
        f"text model {model!r} is not a local folder or a registered name "
        f"({', '.join([*PRETRAINED_PATHS, *ARCHITECTURES])}); polymodal never downloads weights implicitly"
    )


class TextEncoder(Encoder):
    """A Hugging Face model (``AutoModel``) with its fast tokenizer.

    Args:
        model: a short name (``"minilm-l6"``), a local model folder, or a config dict with
            ``model_type`` (random weights, e.g. for tests: ``{"model_type": "bert",
            "hidden_size": 32, ...}``).
        tokenizer: ``None`` (the model folder's), ``"bytes"`` (built-in byte-level), a
            ``tokenizer.json`` or a folder.
        pretrained: load the folder's weights; ``False`` builds the architecture with random weights.
        max_length: truncation length in tokens; default: the folder's
            ``sentence_bert_config.json`` ``max_seq_length``, else the model's
            ``max_position_embeddings`` (capped at 512).
        hidden_states: also return every layer's output in ``Features.hidden_states``.
        attn_implementation: ``"sdpa"`` (default) or ``"eager"``.
    """

    modality = "text"
    concurrent_forward = True  # a Hugging Face forward keeps no state on the modules

    def __init__(
        self,
        model: str | dict[str, Any] = "minilm-l6",
        tokenizer: str | None = None,
        pretrained: bool = True,
        max_length: int | None = None,
        hidden_states: bool = False,
        attn_implementation: str = "sdpa",
    ) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModel
        from transformers.utils import logging as hf_logging

        self.hidden_states = hidden_states
        self.attn_implementation = attn_implementation
        folder: Path | None = None
        from polymodal.plugins.text.pretrained import ARCHITECTURES, resolve_text_model

        if isinstance(model, Mapping) or model in ARCHITECTURES:
            cfg = dict(resolve_text_model(model))  # type: ignore[arg-type]
            model_type = cfg.pop("model_type", None)
            if model_type is None:
                raise ValueError("a TextEncoder config dict needs a 'model_type' (e.g. 'bert', 'llama')")
            config = AutoConfig.for_model(model_type, **cfg)
            self.model = AutoModel.from_config(config, attn_implementation=attn_implementation, trust_remote_code=False)
            tokenizer = tokenizer or "bytes"
        else:
            folder = _resolve_model(model)
            try:
                config = AutoConfig.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
            except (ValueError, OSError, KeyError, TypeError) as exc:
                raise ValueError(f"{folder / 'config.json'}: {str(exc).strip().splitlines()[0][:200]}") from None
            if pretrained:
                check_hf_size(config, folder)
                verbosity = hf_logging.get_verbosity()
                hf_logging.set_verbosity_error()  # "unused weights (pooler)" noise
                bars = hf_logging.is_progress_bar_enabled()
                hf_logging.disable_progress_bar()  # a "Loading weights" bar on every load
                try:
                    self.model = AutoModel.from_pretrained(
                        str(folder),
                        local_files_only=True,
                        attn_implementation=attn_implementation,
                        trust_remote_code=False,
                        use_safetensors=True,
                    )
                finally:
                    hf_logging.set_verbosity(verbosity)
                    if bars:
                        hf_logging.enable_progress_bar()
            else:
                self.model = AutoModel.from_config(
                    config, attn_implementation=attn_implementation, trust_remote_code=False
                )
        # BERT-style models carry an unused pooler head (dense + tanh over [CLS]); our poolers
        # replace it, and unused parameters break DDP's gradient reducer.
        if isinstance(getattr(self.model, "pooler", None), nn.Module):
            self.model.pooler = None
        # from_pretrained returns eval mode; an nn.Module starts in train mode (dropout on while training).
        self.model.train()
        backend = load_backend_tokenizer(tokenizer if tokenizer is not None else folder)  # type: ignore[arg-type]
        if max_length is None:
            max_length = self._default_max_length(folder)
        vocab = self.model.config.vocab_size
        if backend.get_vocab_size(with_added_tokens=True) > vocab:
            raise ValueError(
                f"tokenizer has {backend.get_vocab_size(with_added_tokens=True)} tokens but the model's "
                f"vocab_size is {vocab}; set vocab_size in the model config"
            )
        self._processor = TextProcessor(backend, max_length)

    def _default_max_length(self, folder: Path | None) -> int:
        if folder is not None and (folder / "sentence_bert_config.json").is_file():
            cfg = json.loads((folder / "sentence_bert_config.json").read_text())
            if cfg.get("max_seq_length"):
                return int(cfg["max_seq_length"])
        limit = getattr(self.model.config, "max_position_embeddings", 512) or 512
        return int(min(limit, 512))

    @property
    def processor(self) -> TextProcessor:
        return self._processor

    @property
    def output_dim(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def num_layers(self) -> int:
        return int(self.model.config.num_hidden_layers)

    def _layer_list(self) -> nn.ModuleList:
        """The model's stack of transformer layers (BERT ``encoder.layer``, Llama ``layers``, ...)."""
        depth = self.num_layers
        for name, module in self.model.named_modules():
            if isinstance(module, nn.ModuleList) and len(module) == depth and name.split(".")[-1] in _LAYER_LISTS:
                return module
        raise NotImplementedError(
            f"{type(self.model).__name__} has no layer list named {'/'.join(_LAYER_LISTS)} of length {depth}; "
            "it cannot be truncated"
        )

    def truncate_layers(self, layers: int) -> None:
        """Drop every transformer layer after the first ``layers`` (and from the saved config).

        For encoders without a final norm (the BERT family) the output equals
        ``Features.at_layer(layers)`` of the full model; models with a final norm (Llama) apply it
        to the last kept layer.
        """
        stack = self._layer_list()
        if not 1 <= layers <= len(stack):
            raise ValueError(f"layers must be between 1 and {len(stack)}, got {layers}")
        del stack[layers:]
        config = self.model.config
        config.num_hidden_layers = layers
        if isinstance(getattr(config, "layer_types", None), list):
            config.layer_types = config.layer_types[:layers]

    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        mask = inputs["attention_mask"]
        extra = {"token_type_ids": inputs["token_type_ids"]} if "token_type_ids" in inputs else {}  # sentence pairs
        out = self.model(
            input_ids=inputs["input_ids"],
            attention_mask=mask,
            output_hidden_states=self.hidden_states,
            return_dict=True,
            **extra,
        )
        hidden = tuple(out.hidden_states) if self.hidden_states else None
        return Features(sequence=out.last_hidden_state, mask=mask.bool(), hidden_states=hidden)

    def inference_backend(self, model: Any, name: str, **options: Any) -> Any:
        """``EmbeddingModel.set_backend`` hook: see :func:`polymodal.plugins.text.backends.make_backend`."""
        from polymodal.plugins.text.backends import make_backend

        return make_backend(model, name, **options)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ saving
    def get_config(self) -> dict[str, Any]:
        return {
            "max_length": self._processor.max_length,
            "pad_id": self._processor.pad_id,
            "hidden_states": self.hidden_states,
            "attn_implementation": self.attn_implementation,
        }

    def save_assets(self, directory: Path) -> None:
        self.model.config.save_pretrained(str(directory))
        self._processor.tokenizer.save(str(directory / "tokenizer.json"))

    @classmethod
    def _init_kwargs(cls, config: dict[str, Any]) -> dict[str, Any]:
        """Constructor arguments recorded in ``config`` (subclasses add theirs)."""
        return {
            "max_length": config["max_length"],
            "hidden_states": config.get("hidden_states", False),
            "attn_implementation": config.get("attn_implementation", "sdpa"),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], directory: Path) -> TextEncoder:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            enc = cls(
                model=str(directory),
                tokenizer=str(directory / "tokenizer.json"),
                pretrained=False,
                **cls._init_kwargs(config),
            )
        enc._processor.pad_id = int(config.get("pad_id", enc._processor.pad_id))
        return enc
