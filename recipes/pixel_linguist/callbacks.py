"""Chain training stages: start a fit from the encoder weights of an exported model.

:class:`LoadEncoderWeights` now lives in :mod:`polymodal.callbacks`; this name stays for configs.
"""

from __future__ import annotations

from polymodal.callbacks import LoadEncoderWeights

__all__ = ["LoadEncoderWeights"]
