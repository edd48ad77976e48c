"""Topic segmentation with a siamese multi-task sentence-pair model (Lee, Han, Baek & Song,
"Topic Segmentation Model Focusing on Local Context", arXiv:2301.01935, 2023) on Choi's (2000)
synthetic benchmark, with a TextTiling-style baseline on the same embeddings.

Heads: same-topic prediction (STP), next-sentence prediction (NSP), topic classification (TC;
on Choi the topic label is the Brown source text of the segment). Metrics: Pk and WindowDiff
(:mod:`polymodal.evaluation.segmentation`).

Run::

    polymodal fit --config recipes/topic_segmentation/choi.yaml     # STP+NSP+TC, Pk/WD printed
    python -m polymodal.recipes.topic_segmentation.run               # baseline + all ablations
"""

from __future__ import annotations

from polymodal.recipes.topic_segmentation.callbacks import SegmentationReport
from polymodal.recipes.topic_segmentation.data import Document, load_choi, split_documents
from polymodal.recipes.topic_segmentation.datamodule import ChoiPairDataModule
from polymodal.recipes.topic_segmentation.model import SiameseSegmenter, boundary_scores

__all__ = [
    "ChoiPairDataModule",
    "Document",
    "SegmentationReport",
    "SiameseSegmenter",
    "boundary_scores",
    "load_choi",
    "split_documents",
]
