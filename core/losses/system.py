"""Backward-compatible name: :class:`~polymodal.systems.contrastive.ContrastiveSystem` itself now
runs losses with ``uses_context = True`` (``CachedInfoNCELoss``, ``Matryoshka2DLoss``,
``EmbeddingDistillationLoss``) through ``loss_from_context``. Use ``class_path: ContrastiveSystem``.
"""

from __future__ import annotations

from polymodal.systems.contrastive import ContrastiveSystem

__all__ = ["BatchLossSystem"]

#: Alias kept for configs written against the first version of the suite.
BatchLossSystem = ContrastiveSystem
