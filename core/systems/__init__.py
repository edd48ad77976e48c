"""Generic LightningModules. Recipes compose them in YAML; they hold no modality code."""

from __future__ import annotations

from polymodal.systems.contrastive import ContrastiveSystem
from polymodal.systems.language_model import LanguageModelSystem
from polymodal.systems.prediction import PredictionSystem, Task

__all__ = ["ContrastiveSystem", "LanguageModelSystem", "PredictionSystem", "Task"]
