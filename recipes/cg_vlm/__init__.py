"""CG-VLM recipe: "Contrastive Vision-Language Alignment Makes Efficient Instruction Learner" (Liu et al., 2023,
arXiv:2311.17945) at CPU scale, as YAML compositions of :func:`polymodal.PrefixLMSystem`.

Frozen EfficientNet-lite0 feature-map cells -> MLP adapter -> SmolLM2-135M (image tokens as prefix embeddings),
:class:`polymodal.PrefixLM`. Stage 1 aligns with the generative captioning loss plus the contrastive
patch--token loss (LM frozen); stage 2 instruction-tunes on a fraction of instruction/answer pairs built from the
captions (:class:`Instructions`, the recipe's own part). The six-run comparison of the paper:
``polymodal sweep recipes/cg_vlm/sweep.yaml`` (``sweep_cpu.yaml``: the reduced CPU run).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

from polymodal.data import Captions
from polymodal.data.sources import Source

__all__ = ["DEFAULT_INSTRUCTIONS", "Instructions"]

#: Instruction templates of stage 2 (each answered by one reference caption).
DEFAULT_INSTRUCTIONS = (
    "Describe the image.",
    "What is in the picture?",
    "Write a short caption.",
    "What do you see in this photo?",
    "Give a one-sentence description of the image.",
)


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class Instructions(Source):
    """Stage-2 instruction/answer rows built from a captions source.

    Each image's first ``pairs_per_image`` captions (by ``caption_idx``) become one pair each, under the
    instruction template chosen by ``sha1("<image>#<k>")``; the pairs are ordered by that hash and the first
    ``ceil(fraction * n)`` are kept (the 10 % subset is deterministic and nested in the 100 % set). The
    ``prompt`` column is ``template.format(instruction=...)``; every other column is the captions source's.

    Args:
        captions: the training part of a :class:`polymodal.data.Captions` source.
        fraction: share of the pairs used (0 < f <= 1).
        pairs_per_image: captions per image turned into pairs (1-5).
        instructions: the instruction templates.
        template: how an instruction becomes the prompt text (must contain ``{instruction}``).
    """

    def __init__(
        self,
        captions: Captions,
        fraction: float = 1.0,
        pairs_per_image: int = 5,
        instructions: Sequence[str] = DEFAULT_INSTRUCTIONS,
        template: str = "{instruction}\n",
    ) -> None:
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        if not 1 <= pairs_per_image <= 5:
            raise ValueError(f"pairs_per_image must be in 1..5, got {pairs_per_image}")
        if "{instruction}" not in template or not instructions:
            raise ValueError(f"need instructions and a template with '{{instruction}}', got {template!r}")
        self.captions, self.fraction, self.pairs_per_image = captions, fraction, pairs_per_image
        self.instructions, self.template = list(instructions), template

    def describe(self) -> str:
        return f"{self.captions.describe()} (instruction pairs, {self.fraction:.0%})"

    def read(self) -> Any:
        df = self.captions.frame().sort_values(["image_name", "caption_idx"], kind="stable")
        df = df.assign(k=df.groupby("image_name").cumcount())
        df = df[df["k"] < self.pairs_per_image].copy()
        keys = [_sha1(f"{name}#{k}") for name, k in zip(df["image_name"], df["k"])]
        chosen = [self.instructions[int(key[:8], 16) % len(self.instructions)] for key in keys]
        df["prompt"] = [self.template.format(instruction=text) for text in chosen]
        df["key"] = keys
        keep = max(1, math.ceil(len(df) * self.fraction))
        return df.sort_values("key", kind="stable").iloc[:keep].drop(columns=["k", "key"]).reset_index(drop=True)
