"""CG-VLM recipe: "Contrastive Vision-Language Alignment Makes Efficient Instruction Learner"
(Liu et al., 2023, arXiv:2311.17945) at CPU scale.

Frozen EfficientNet-lite0 feature-map cells -> MLP adapter -> SmolLM2-135M (image tokens as
prefix embeddings). Stage 1 aligns with a generative captioning loss plus a contrastive
patch--token loss (LM frozen); stage 2 instruction-tunes on a fraction of instruction/answer
pairs built from the captions. See ``recipes/cg_vlm/*.yaml``.
"""

from __future__ import annotations

from polymodal.recipes.cg_vlm.data import DEFAULT_INSTRUCTIONS, CaptionsDataModule, split_images
from polymodal.recipes.cg_vlm.model import CGVLM, PrefixBatch, build_prefix_batch
from polymodal.recipes.cg_vlm.system import CGVLMSystem, image_text_recall
from polymodal.recipes.cg_vlm.writer import CaptionWriter, StepStats

__all__ = [
    "CGVLM",
    "DEFAULT_INSTRUCTIONS",
    "CGVLMSystem",
    "CaptionWriter",
    "CaptionsDataModule",
    "PrefixBatch",
    "build_prefix_batch",
    "image_text_recall",
    "split_images",
    "StepStats",
]
