"""What systems, data modules and processors ask of each other, declared once.

* A **data module** yields :class:`Batch` objects (Lightning moves their tensors to the device; no
  ``transfer_batch_to_device`` copies). Before building loaders it may ask the attached system for one
  :class:`~polymodal.modality.Processor` per input column (:meth:`SystemContract.processors_for`) and
  hand the training split's raw values to :meth:`SystemContract.fit_input_statistics` (normalisers fit
  on training data only).
* A **system** (:class:`polymodal.System`) implements :class:`SystemContract`; exporters call
  :meth:`SystemContract.inference_model`.
* A **processor** implements :class:`~polymodal.modality.Processor` (``__call__``, ``validate``,
  ``lengths``); an **encoder** implements :class:`~polymodal.modality.Encoder` (including
  ``fit_statistics``).

Data modules find the system through ``trainer.lightning_module`` and check it with
``isinstance(module, SystemContract)`` (a runtime-checkable protocol) instead of probing attributes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from torch import Tensor

__all__ = ["Batch", "SystemContract", "system_of"]


@dataclass
class Batch:
    """One collated batch.

    Attributes:
        inputs: input column name -> the processed inputs of that column (a dict of tensors, as the
            column's processor returned it).
        targets: target name -> ``(B,)`` (or ``(B, K)``) tensor; empty when the split has none.
        meta: column name -> list of raw per-row values that are not model inputs (ids, file names,
            reference texts); never moved to a device.
        rows: 1-based row numbers in the source file (for error messages), when known.
    """

    inputs: dict[str, dict[str, Any]]
    targets: dict[str, Tensor] = field(default_factory=dict)
    meta: dict[str, list[Any]] = field(default_factory=dict)
    rows: list[int] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return list(self.inputs)

    def __len__(self) -> int:
        for t in self.targets.values():
            return int(t.shape[0])
        for inputs in self.inputs.values():
            for v in inputs.values():
                if isinstance(v, Tensor) and v.dim() >= 1:
                    return int(v.shape[0])
                if isinstance(v, list):
                    return len(v)
        for values in self.meta.values():
            return len(values)
        return 0


@runtime_checkable
class SystemContract(Protocol):
    """What data modules and exporters may ask of a system."""

    def processors_for(self, columns: Sequence[str]) -> list[Any]:
        """One processor per input column, in order (the column's tower's processor)."""

    def fit_input_statistics(self, columns: Sequence[str], values: Sequence[Sequence[Any]]) -> list[str]:
        """Fit input normalisers on the training split's raw values; returns the columns fitted."""

    def inference_model(self, column: str | None = None, *, tower: str | None = None, head: str | None = None) -> Any:
        """The inference model to export (an :class:`~polymodal.model.EmbeddingModel` or subclass)."""


def system_of(trainer: Any) -> SystemContract | None:
    """The trainer's LightningModule if it implements :class:`SystemContract`, else ``None``."""
    module = getattr(trainer, "lightning_module", None) if trainer is not None else None
    return module if isinstance(module, SystemContract) else None
