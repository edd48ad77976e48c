"""WASSA 2022 empathy / distress regression from essays (NewsEmpathy, Buechel et al. 2018).

Predict empathic concern and personal distress (1-7) of each essay written in reaction to a
news story; the metric is Pearson r per target and their mean. Follows the staged design of
"Towards More Accurate Prediction of Human Empathy and Emotion in Text and Multi-turn
Conversations by Combining Advanced NLP, Transformers-based Networks, and Linguistic
Methodologies" (Stage 1: FFN on sentence embeddings; Stage 2: revisions incl. stratified
sampling and lexicon features; Stage 3: ensemble).

Run::

    polymodal fit --config recipes/wassa_empathy/minilm.yaml        # one model, dev r printed
    python -m polymodal.recipes.wassa_empathy.run                    # the whole stage table
"""

from __future__ import annotations

from polymodal.recipes.wassa_empathy.data import WassaDataModule, load_wassa
from polymodal.recipes.wassa_empathy.model import DevReport, EmpathySystem, FeatureMLP, KeepBest, VectorProcessor

__all__ = ["DevReport", "EmpathySystem", "FeatureMLP", "KeepBest", "VectorProcessor", "WassaDataModule", "load_wassa"]
