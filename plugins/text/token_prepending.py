"""Token Prepending (TP): a training-free way to let early tokens of a causal LM see the sentence.

Reference: Fu et al., "Token Prepending: A Training-Free Approach for Eliciting Better Sentence
Embeddings from LLMs" (ACL 2025), https://arxiv.org/abs/2412.11556 ; official code
https://github.com/fuyuchenIfyw/token_prepending (``evaluate.py``, ``senllm/modeling_llama.py``).

As the authors define it:

* a **new** token ``<PST>`` is added to the tokenizer; the input embeddings are resized and its row is drawn
  from a standard normal (:func:`add_placeholder_token`, seeded here so that runs repeat);
* ``<PST>`` sits **inside the prompt, immediately before the quoted sentence**:
  ``This sentence : <PST> "{text}" means in one word:"`` (:func:`placeholder_template`);
* at the input of every decoder layer ``i`` with ``tp_starting_layer <= i < tp_exiting_layer`` the
  placeholder's hidden state is overwritten with the current sentence embedding, i.e. the last token's
  hidden state there (the output of layer ``i - 1``). The official default starts at layer 1, so layer 0
  reads the ``<PST>`` embedding itself; later tokens of the sentence attend to the placeholder and so see
  a summary of the whole prompt despite the causal mask;
* the sentence embedding may be read from an intermediate layer (``output_layer``, early exit; the official
  configs use e.g. ``-2``, the second-to-last hidden state), see
  :class:`~polymodal.plugins.text.decoder.DecoderTextEncoder`.

Implemented with forward pre-hooks on the decoder layers of any Hugging Face model that keeps them in
``.layers`` (Llama, Mistral, Qwen2/3, SmolLM, Gemma, ...). No weights change (apart from the new row).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from polymodal.modality import Processor
from polymodal.poolers.last_token import last_positions

__all__ = [
    "PLACEHOLDER",
    "Placement",
    "TokenPrepender",
    "TokenPrependingProcessor",
    "add_placeholder_token",
    "decoder_layers",
    "placeholder_template",
]

#: The placeholder token the authors add to the vocabulary.
PLACEHOLDER = "<PST>"

Placement = Literal["slot", "start"]


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder layer list of a HF model (``model.layers`` or ``model.model.layers``)."""
    for owner in (model, getattr(model, "model", None), getattr(model, "decoder", None)):
        layers = getattr(owner, "layers", None)
        if isinstance(layers, nn.ModuleList) and len(layers):
            return layers
    raise ValueError(f"{type(model).__name__}: no decoder layers found (.layers); Token Prepending needs a decoder LM")


def placeholder_template(template: str | None, placement: Placement = "slot") -> str:
    """The prompt with ``<PST>`` placed where Token Prepending reads it.

    ``placement="slot"`` (the authors'): immediately before the sentence slot, before its opening quote when
    the slot is quoted (``: "{text}"`` becomes ``: <PST> "{text}"``); ``"start"``: before the whole prompt
    (polymodal's earlier placement, kept for the ablation). A template that already holds ``<PST>`` is used
    as written. Without a template the input is ``<PST>{text}``.

    Raises:
        ValueError: the template has no ``{text}`` slot, or ``<PST>`` more than once / after the slot.
    """
    text = template if template is not None else "{text}"
    if text.count("{text}") != 1:
        raise ValueError(f"Token Prepending template must contain '{{text}}' exactly once, got {text!r:.80}")
    if placement not in ("slot", "start"):
        raise ValueError(f"tp_placement must be 'slot' or 'start', got {placement!r}")
    if PLACEHOLDER in text:
        if text.count(PLACEHOLDER) != 1 or text.index(PLACEHOLDER) > text.index("{text}"):
            raise ValueError(f"Token Prepending template must hold {PLACEHOLDER} once, before '{{text}}': {text!r:.80}")
        return text
    if placement == "start":
        return PLACEHOLDER + text
    if '"{text}' in text:
        return text.replace('"{text}', f'{PLACEHOLDER} "{{text}}', 1)
    return text.replace("{text}", PLACEHOLDER + "{text}", 1)


def add_placeholder_token(model: nn.Module, tokenizer: Any, seed: int = 0) -> int:
    """Add ``<PST>`` to a ``tokenizers.Tokenizer`` and give ``model`` a standard-normal embedding row for it.

    As the official code (``tokenizer.add_tokens``, ``resize_token_embeddings``, ``torch.randn(dim)``), with the
    draw seeded by ``seed`` (a generator of its own: the global RNG is untouched). A tokenizer that already
    knows the token (a saved model) keeps it and the model's row is left as loaded. Returns the token id.
    """
    from tokenizers import AddedToken

    embeddings = model.get_input_embeddings()
    existing = tokenizer.token_to_id(PLACEHOLDER)
    if existing is not None and existing < embeddings.num_embeddings:
        return int(existing)
    if existing is None:
        tokenizer.add_special_tokens([AddedToken(PLACEHOLDER, special=True, normalized=False)])
        existing = tokenizer.token_to_id(PLACEHOLDER)
    token_id = int(existing)
    if token_id >= embeddings.num_embeddings:
        model.resize_token_embeddings(token_id + 1, mean_resizing=False)
        embeddings = model.get_input_embeddings()
    generator = torch.Generator().manual_seed(int(seed))
    row = torch.randn(embeddings.weight.shape[1], generator=generator)
    with torch.no_grad():
        embeddings.weight[token_id] = row.to(embeddings.weight)
    return token_id


class TokenPrependingProcessor(Processor):
    """Finds the ``<PST>`` placeholder in each tokenised row and adds ``pst_position`` ``(B,)``.

    Wraps a processor whose texts already hold ``<PST>`` (a prompted processor with
    :func:`placeholder_template`) and that returns ``input_ids`` / ``attention_mask``.

    Args:
        base: the wrapped processor.
        token_id: the placeholder's id.
    """

    def __init__(self, base: Processor, token_id: int) -> None:
        self.base = base
        self.token_id = int(token_id)

    def validate(self, value: Any) -> None:
        self.base.validate(value)

    def lengths(self, values: Sequence[Any]) -> list[int]:
        sizer = getattr(self.base, "lengths", None)
        return list(sizer(values)) if sizer is not None else [len(v) for v in values]

    def __call__(self, values: Sequence[Any]) -> dict[str, Tensor]:
        batch = dict(self.base(values))
        ids = batch["input_ids"]  # (B, T)
        hit = ids == self.token_id  # (B, T)
        missing = (~hit.any(dim=1)).nonzero().flatten().tolist()
        if missing:
            raise ValueError(f"input {missing[0]} of the batch lost its {PLACEHOLDER} placeholder (cut by max_length?)")
        batch["pst_position"] = hit.int().argmax(dim=1)  # (B,) first occurrence
        return batch

    def __getattr__(self, name: str) -> Any:
        if name in {"base", "token_id"}:
            raise AttributeError(name)
        return getattr(self.base, name)


class TokenPrepender:
    """Installs the TP hooks on a model's decoder layers.

    Args:
        model: a HF decoder model.
        starting_layer: first decoder layer (0-based) whose input placeholder state is replaced (the official
            default is 1).
        exiting_layer: the first layer where replacing stops (exclusive; ``None``: through the last layer; values
            past the depth are clipped, as the official default of 99 is).

    Use :meth:`set_positions` before each forward (the encoder does it), and :meth:`remove` to uninstall.
    """

    def __init__(self, model: nn.Module, starting_layer: int = 1, exiting_layer: int | None = None) -> None:
        all_layers = decoder_layers(model)
        n = len(all_layers)
        stop = n if exiting_layer is None else min(int(exiting_layer), n)
        if not 0 <= starting_layer < n:
            raise ValueError(f"tp_starting_layer {starting_layer} out of range for a {n}-layer model (0..{n - 1})")
        if stop <= starting_layer:
            raise ValueError(
                f"tp_exiting_layer {exiting_layer} must be greater than tp_starting_layer {starting_layer}"
            )
        self.layers = (int(starting_layer), stop)  # replaced before layers starting..stop-1
        self._pst: Tensor | None = None
        self._last: Tensor | None = None
        self._handles = [
            all_layers[i].register_forward_pre_hook(self._hook, with_kwargs=True) for i in range(starting_layer, stop)
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
