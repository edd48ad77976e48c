"""A small Hugging Face causal LM with frozen glyph (or ordinary trainable) input embeddings.

The model of the ``glyph_lm`` recipe: the same architecture, tokenizer and seed, differing only
in the input embedding, reproduces the comparison of Bochkov (2025).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from polymodal.plugins.glyph.embedding import replace_input_embeddings
from polymodal.plugins.glyph.tokenizers import as_glyph_tokenizer

__all__ = ["GlyphCausalLM"]


class GlyphCausalLM(nn.Module):
    """``AutoModelForCausalLM`` from a config dict, with glyph or trainable input embeddings.

    Args:
        config: Hugging Face config with ``model_type`` (e.g. ``llama``); ``vocab_size``
            defaults to the tokenizer's.
        tokenizer: any glyph tokenizer spec (``"codepoints"``, ``"bytes"``, a ``tokenizer.json``,
            ``package://glyph_lm/data/tokenizer.json``).
        embeddings: ``"glyph"`` (frozen glyph table) or ``"trainable"`` (the model's own).
        font, size, width, seed: glyph table options (see ``build_glyph_table``).
        init_seed: seed for the model's random initialisation (same for both variants).
    """

    def __init__(
        self,
        config: dict[str, Any],
        tokenizer: str = "codepoints",
        embeddings: Literal["glyph", "trainable"] = "glyph",
        font: str = "unifont",
        size: int = 16,
        width: int | None = None,
        seed: int = 0,
        init_seed: int = 0,
    ) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModelForCausalLM

        if embeddings not in ("glyph", "trainable"):
            raise ValueError(f"embeddings must be 'glyph' or 'trainable', got {embeddings!r}")
        cfg = dict(config)
        model_type = cfg.pop("model_type", None)
        if model_type is None:
            raise ValueError("config needs a 'model_type' (e.g. 'llama', 'gpt2')")
        self.tokenizer = as_glyph_tokenizer(tokenizer)
        cfg.setdefault("vocab_size", self.tokenizer.vocab_size)
        if cfg["vocab_size"] < self.tokenizer.vocab_size:
            raise ValueError(f"vocab_size {cfg['vocab_size']} < tokenizer vocabulary {self.tokenizer.vocab_size}")
        cfg.setdefault("pad_token_id", self.tokenizer.pad_id)
        with torch.random.fork_rng():
            torch.manual_seed(init_seed)
            self.model = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **cfg))
        self.embeddings = embeddings
        if embeddings == "glyph":
            replace_input_embeddings(self.model, self.tokenizer, font=font, size=size, width=width, seed=seed)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, labels: Tensor | None = None) -> Any:
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)

    @torch.no_grad()
    def generate_text(
        self, prompt: str, max_new_tokens: int = 100, temperature: float = 0.8, top_k: int = 40, seed: int = 0
    ) -> str:
        """Sample a continuation of ``prompt`` (seeded), returned as text."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        ids = torch.tensor([self.tokenizer.encode(prompt)], device=device)
        generator = torch.Generator(device=device).manual_seed(seed)
        limit = getattr(self.model.config, "max_position_embeddings", None) or 10**9
        for _ in range(max_new_tokens):
            logits = self.model(input_ids=ids[:, -limit:]).logits[0, -1] / max(temperature, 1e-6)  # (V,)
            logits[self.tokenizer.vocab_size :] = -float("inf")
            if top_k:
                kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
                logits[logits < kth] = -float("inf")
            nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)
            ids = torch.cat([ids, nxt[None]], dim=1)
        self.train(was_training)
        return self.tokenizer.decode(ids[0].tolist())

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)
