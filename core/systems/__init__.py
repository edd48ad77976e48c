"""Generic LightningModules. Recipes compose them in YAML; they hold no modality code."""

from __future__ import annotations

from polymodal.systems.contrastive import ContrastiveSystem

__all__ = ["ContrastiveSystem"]
