"""Token Prepending (TP): a training-free way to let early tokens of a causal LM see the sentence.

Reference: Fu et al., "Token Prepending: A Training-Free Approach for Eliciting Better Sentence
Embeddings from LLMs" (ACL 2025), https://arxiv.org/abs/2412.11556 .

A placeholder token (``<PST>``) is inserted before the input. At the input of each decoder
layer in ``layers``, the placeholder's hidden state is overwritten with the current sentence
embedding, i.e. the last real token's hidden state at that point (the output of the previous
layer). Later tokens attend to the placeholder, so from then on every token sees a summary
of the whole sentence despite the causal mask. No weights change.

Implemented with forward pre-hooks on the decoder layers of any Hugging Face model that keeps
them in ``.layers`` (Llama, Mistral, Qwen2/3, SmolLM, Gemma, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from polymodal.modality import Processor
from polymodal.poolers.last_token import last_positions

__all__ = ["TokenPrepender", "TokenPrependingProcessor", "decoder_layers"]


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder layer list of a HF model (``model.layers`` or ``model.model.layers``)."""
    for owner in (model, getattr(model, "model", None), getattr(model, "decoder", None)):
        layers = getattr(owner, "layers", None)
        if isinstance(layers, nn.ModuleList) and len(layers):
            return layers
    raise ValueError(f"{type(model).__name__}: no decoder layers found (.layers); Token Prepending needs a decoder LM")


class TokenPrependingProcessor(Processor):
    """Inserts the placeholder token id after the BOS token (or first, without BOS).

    Wraps a text processor that returns right-padded ``input_ids``/``attention_mask``.
    Adds ``pst_position`` ``(B,)`` to the batch.

    Args:
        base: the wrapped processor.
        token_id: id inserted as the placeholder (its embedding is replaced before layer
            ``layers[0]``, so any id works when that is layer 0).
        bos_id: id of the tokenizer's BOS token; the placeholder goes after it when present.
    """

    def __init__(self, base: Processor, token_id: int, bos_id: int | None = None) -> None:
        self.base = base
        self.token_id = int(token_id)
        self.bos_id = bos_id

    def validate(self, value: Any) -> None:
        self.base.validate(value)

    def lengths(self, values: Sequence[Any]) -> list[int]:
        sizer = getattr(self.base, "lengths", None)
        return [n + 1 for n in sizer(values)] if sizer is not None else [len(v) + 1 for v in values]

    def __call__(self, values: Sequence[Any]) -> dict[str, Tensor]:
        batch = self.base(values)
        ids, mask = batch["input_ids"], batch["attention_mask"]  # (B, T)
        B = ids.shape[0]
        has_bos = self.bos_id is not None and bool((ids[:, 0] == self.bos_id).all())
        k = 1 if has_bos else 0
        pst = torch.full((B, 1), self.token_id, dtype=ids.dtype)
        one = torch.ones((B, 1), dtype=mask.dtype)
        out = dict(batch)
        out["input_ids"] = torch.cat([ids[:, :k], pst, ids[:, k:]], dim=1)  # (B, T+1)
        out["attention_mask"] = torch.cat([mask[:, :k], one, mask[:, k:]], dim=1)  # (B, T+1)
        out["pst_position"] = torch.full((B,), k, dtype=torch.long)
        return out

    def __getattr__(self, name: str) -> Any:
        if name in {"base", "token_id", "bos_id"}:
            raise AttributeError(name)
        return getattr(self.base, name)


class TokenPrepender:
    """Installs the TP hooks on a model's decoder layers.

    Args:
        model: a HF decoder model.
        layers: ``(first, last)`` decoder-layer indices (0-based, inclusive) whose input
            placeholder state is replaced; ``last`` may be negative (from the end) and is clipped
            to the model depth.

    Use :meth:`set_positions` before each forward (the encoder does it), and :meth:`remove`
    to uninstall.
    """

    def __init__(self, model: nn.Module, layers: tuple[int, int] = (0, 7)) -> None:
        all_layers = decoder_layers(model)
        n = len(all_layers)
        first, last = layers
        last = last + n if last < 0 else min(last, n - 1)  # a (0, 7) default fits shallow models too
        if not 0 <= first <= last < n:
            raise ValueError(f"token prepending layers {layers} out of range for a {n}-layer model")
        self.layers = (first, last)
        self._pst: Tensor | None = None
        self._last: Tensor | None = None
        self._handles = [
            all_layers[i].register_forward_pre_hook(self._hook, with_kwargs=True) for i in range(first, last + 1)
        ]

    def set_positions(self, pst_position: Tensor, attention_mask: Tensor) -> None:
        """Remember where the placeholder and each row's last real token are for the next forward."""
        self._pst = pst_position
        self._last = last_positions(attention_mask.bool())

    def clear(self) -> None:
        self._pst = self._last = None

    def _hook(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        if self._pst is None or self._last is None:
            return None  # not a TP forward (e.g. the model used directly)
        in_kwargs = "hidden_states" in kwargs
        hidden = kwargs["hidden_states"] if in_kwargs else args[0]  # (B, T, D)
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        sentence = hidden[rows, self._last.to(hidden.device)]  # (B, D)
        hidden = hidden.clone()
        hidden[rows, self._pst.to(hidden.device)] = sentence
        if in_kwargs:
            kwargs = {**kwargs, "hidden_states": hidden}
            return args, kwargs
        return (hidden, *args[1:]), kwargs

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
