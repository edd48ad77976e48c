"""Render a batch of strings to padded patch sequences (run in DataLoader workers)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from polymodal.modality import Processor
from polymodal.plugins.pixel.renderer import TextRenderer

__all__ = ["PixelProcessor"]


class PixelProcessor(Processor):
    """Strings -> ``{"pixel_values": (B, T, H*P) uint8, "attention_mask": (B, T) int64}``.

    ``T`` is the largest patch count in the batch (dynamic padding, like token padding), at
    most ``max_patches``. Pixel values stay uint8 (255 = white) to keep batches small; the
    encoder scales them. Truncation is reported once with a warning and counted in
    :attr:`truncated`.

    Args:
        renderer: the :class:`TextRenderer` (its config is saved with the model).
    """

    def __init__(self, renderer: TextRenderer) -> None:
        self.renderer = renderer
        self.truncated = 0
        self._warned = False

    def validate(self, value: Any) -> None:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {type(value).__name__} ({value!r:.40})")

    def lengths(self, values: Sequence[Any]) -> list[int]:
        """Patches per text (for length-sorted encoding)."""
        return self.renderer.num_patches(values)

    def __call__(self, values: Sequence[Any]) -> dict[str, Tensor]:
        batch = self.renderer.render_batch(values)
        cut = int(batch.truncated.sum())
        if cut:
            self.truncated += cut
            if not self._warned:
                self._warned = True
                warnings.warn(
                    f"{cut} of {len(values)} texts in a batch did not fit in max_patches="
                    f"{self.renderer.config.max_patches} patches and were cut (further cuts are counted in "
                    "PixelProcessor.truncated)",
                    stacklevel=2,
                )
        return {
            "pixel_values": torch.from_numpy(batch.patches()),
            "attention_mask": torch.from_numpy(batch.mask().astype("int64")),
        }
