"""A Vision Transformer over the patch sequence of rendered text.

The architecture is timm's ViT (pre-norm :class:`timm.models.vision_transformer.Block`,
learned position embeddings, final LayerNorm) with a linear patch embedding -- the same map as
timm's ``Conv2d(kernel=stride=patch)`` ``PatchEmbed`` -- applied to a variable-length, masked
sequence of ``height x patch_size`` patches, as in PIXEL. Padding patches are excluded from
attention, so a sentence gets the same embedding whatever the batch it is in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from polymodal.features import Features
from polymodal.modality import Encoder
from polymodal.plugins.pixel.processor import PixelProcessor
from polymodal.plugins.pixel.renderer import DEFAULT_FONTS, TextRenderer

__all__ = ["PixelEncoder"]


class PixelEncoder(Encoder):
    """Render text, then encode the patches with a ViT (random init; train it with a recipe).

    Args:
        fonts: renderer fonts in per-character fallback order.
        font_size: renderer font size (pixels).
        height: strip height (pixels).
        patch_size: patch width (pixels).
        max_patches: longest sequence in patches, end-of-sequence patch included (PIXEL: 529).
        hidden_size: transformer width ``D``.
        num_layers: transformer blocks.
        num_heads: attention heads.
        mlp_ratio: MLP width / ``D``.
        dropout: dropout on embeddings, attention output and MLP.
        cls_token: prepend a learned [CLS] patch (use with ``ClsPooler``); its mask is True.
        hidden_states: also return every layer's output in ``Features.hidden_states``.
        final_norm: apply the final LayerNorm; :meth:`truncate_layers` switches it off so a truncated
            encoder returns what the full one gives at that layer (``Features.at_layer``).
    """

    modality = "pixel"
    reads = "text"  # strings, rendered before the encoder sees them

    def __init__(
        self,
        fonts: Sequence[str] = DEFAULT_FONTS,
        font_size: int = 16,
        height: int = 16,
        patch_size: int = 16,
        max_patches: int = 529,
        hidden_size: int = 768,
        num_layers: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        cls_token: bool = False,
        hidden_states: bool = False,
        final_norm: bool = True,
    ) -> None:
        super().__init__()
        from timm.models.vision_transformer import Block

        if hidden_size % num_heads:
            raise ValueError(f"hidden_size ({hidden_size}) must be divisible by num_heads ({num_heads})")
        renderer = TextRenderer(fonts, font_size, height, patch_size, max_patches)
        self._processor = PixelProcessor(renderer)
        self.arch = {
            "hidden_size": int(hidden_size),
            "num_layers": int(num_layers),
            "num_heads": int(num_heads),
            "mlp_ratio": float(mlp_ratio),
            "dropout": float(dropout),
            "cls_token": bool(cls_token),
            "final_norm": bool(final_norm),
        }
        self.hidden_states = hidden_states
        patch_dim = height * patch_size
        self.patch_embed = nn.Linear(patch_dim, hidden_size)
        self.cls = nn.Parameter(torch.zeros(1, 1, hidden_size)) if cls_token else None
        self.pos_embed = nn.Parameter(torch.zeros(1, max_patches + int(cls_token), hidden_size))
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            Block(hidden_size, num_heads, mlp_ratio, qkv_bias=True, proj_drop=dropout, attn_drop=dropout)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(hidden_size, eps=1e-6)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls is not None:
            nn.init.normal_(self.cls, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @property
    def processor(self) -> PixelProcessor:
        return self._processor

    @property
    def renderer(self) -> TextRenderer:
        return self._processor.renderer

    @property
    def output_dim(self) -> int:
        return self.arch["hidden_size"]

    @property
    def num_layers(self) -> int:
        return self.arch["num_layers"]

    def truncate_layers(self, layers: int) -> None:
        """Keep the first ``layers`` ViT blocks; without the final norm unless all are kept, so the output
        equals the full encoder's ``Features.at_layer(layers)`` (what 2DMSE trains)."""
        if not 1 <= layers <= len(self.blocks):
            raise ValueError(f"layers must be between 1 and {len(self.blocks)}, got {layers}")
        if layers < len(self.blocks):
            del self.blocks[layers:]
            self.arch["num_layers"] = int(layers)
            self.arch["final_norm"] = False

    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        pixels = inputs["pixel_values"]  # (B, T, H*P) uint8, 255 = white
        mask = inputs["attention_mask"].bool()  # (B, T)
        x = pixels.to(self.patch_embed.weight.dtype) * (2.0 / 255.0) - 1.0  # [-1, 1], as PIXEL normalises
        x = self.patch_embed(x)  # (B, T, D)
        if self.cls is not None:
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)  # (B, 1+T, D)
            mask = torch.cat([mask.new_ones(mask.shape[0], 1), mask], dim=1)
        T = x.shape[1]
        if T > self.pos_embed.shape[1]:
            raise ValueError(f"{T} patches but the encoder has {self.pos_embed.shape[1]} positions")
        x = self.drop(x + self.pos_embed[:, :T])
        attn_mask = mask[:, None, None, :]  # (B, 1, 1, T): True = attend
        states = [x] if self.hidden_states else None
        for block in self.blocks:
            x = block(x, attn_mask=attn_mask)
            if states is not None:
                states.append(x)
        if self.arch["final_norm"]:
            x = self.norm(x)
        if states is not None:
            states[-1] = x
        return Features(sequence=x, mask=mask, hidden_states=tuple(states) if states is not None else None)

    # ------------------------------------------------------------------ saving
    def get_config(self) -> dict[str, Any]:
        return {"renderer": self.renderer.get_config(), **self.arch, "hidden_states": self.hidden_states}

    def save_assets(self, directory: Path) -> None:
        import json

        (directory / "renderer.json").write_text(json.dumps(self.renderer.get_config(), indent=2))

    @classmethod
    def from_config(cls, config: dict[str, Any], directory: Path) -> PixelEncoder:
        import warnings

        r = dict(config["renderer"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # missing-font warnings are repeated by from_config below
            enc = cls(
                fonts=r["fonts"],
                font_size=r["font_size"],
                height=r["height"],
                patch_size=r["patch_size"],
                max_patches=r["max_patches"],
                **{
                    k: config[k]
                    for k in ("hidden_size", "num_layers", "num_heads", "mlp_ratio", "dropout", "cls_token")
                },
                final_norm=config.get("final_norm", True),
                hidden_states=config.get("hidden_states", False),
            )
        enc._processor = PixelProcessor(TextRenderer.from_config(r))
        return enc
