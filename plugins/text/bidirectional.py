"""Switch a Hugging Face decoder LM between causal and bidirectional self-attention.

References: ULLME (Man et al. 2024, https://arxiv.org/abs/2408.03402) and KaLM-Embedding-V2
(Zhao et al. 2025, https://arxiv.org/abs/2506.20923) fine-tune decoder LMs as embedders with
the causal mask removed, so every token sees the whole input.

transformers >= 4.56 builds a bidirectional (padding-only) mask when ``config.is_causal`` is
False; attention modules additionally carry ``is_causal``, which SDPA uses when the mask is
skipped (no padding), so both are switched.
"""

from __future__ import annotations

from torch import nn

__all__ = ["is_bidirectional", "set_bidirectional"]


def _attention_modules(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if hasattr(m, "is_causal") and isinstance(m, nn.Module)]


def set_bidirectional(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Make ``model`` (a Llama-style HF model) attend bidirectionally (``enabled``) or causally.

    Returns the model (changed in place). Raises if the model has no causal attention to switch.
    """
    modules = _attention_modules(model)
    config = getattr(model, "config", None)
    if config is None or not modules:
        raise ValueError(f"{type(model).__name__} has no causal self-attention to switch (not a decoder LM?)")
    config.is_causal = not enabled
    for m in modules:
        m.is_causal = not enabled
    return model


def is_bidirectional(model: nn.Module) -> bool:
    """True when :func:`set_bidirectional` switched ``model`` to bidirectional attention."""
    return getattr(getattr(model, "config", None), "is_causal", True) is False
