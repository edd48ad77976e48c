"""WASSA 2022 empathy / distress regression from essays (NewsEmpathy, Buechel et al. 2018).

Predict empathic concern and personal distress (1-7) of essays written in reaction to news stories;
the metric is Pearson r per target and their mean. Frozen, cached essay features
(:class:`polymodal.data.features.TextFeatures`) -> a standardised :class:`~polymodal.vector.FeatureMLP`
-> two regression heads (:func:`polymodal.PredictionSystem`), the best validation epoch kept
(:class:`polymodal.callbacks.KeepBest`), scored on the official dev set as ``test``. The stage table of
Singh et al. (arXiv:2407.18496) is ``polymodal sweep recipes/wassa_empathy/sweep.yaml``.
"""

from __future__ import annotations

from polymodal.recipes.wassa_empathy.data import EMOTION_CLASSES, TARGETS, TRAITS, WassaEssays

__all__ = ["EMOTION_CLASSES", "TARGETS", "TRAITS", "WassaEssays"]
