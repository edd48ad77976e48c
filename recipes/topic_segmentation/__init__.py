"""Topic segmentation with a siamese multi-task sentence-pair model (Lee, Han, Baek & Song, "Topic
Segmentation Model Focusing on Local Context", arXiv:2301.01935, 2023) on Choi's (2000) benchmark.

Frozen, cached sentence embeddings (:class:`polymodal.data.features.TextFeatures` over
:class:`ChoiPairs`) -> a shared :class:`~polymodal.vector.FeatureMLP` tower -> STP / NSP / TC heads
(:func:`SiameseSegmenter`); Pk / WindowDiff over whole documents
(:class:`polymodal.metrics.segmentation.Segmentation`). The table: ``polymodal sweep
recipes/topic_segmentation/sweep.yaml`` plus the TextTiling baseline, ``python -m
polymodal.recipes.topic_segmentation.texttiling``.
"""

from __future__ import annotations

from polymodal.recipes.topic_segmentation.data import ChoiPairs, Document, load_choi, split_documents
from polymodal.recipes.topic_segmentation.segmenter import SiameseSegmenter

__all__ = ["ChoiPairs", "Document", "SiameseSegmenter", "load_choi", "split_documents"]
