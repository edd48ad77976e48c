"""The modality contract that every plugin implements.

A :class:`Modality` names a kind of input and knows its encoders and pretrained short names.
An :class:`Encoder` is a plain ``nn.Module`` that

* owns a picklable :class:`Processor` (raw values -> padded model inputs, run in DataLoader
  workers), and
* maps those inputs to :class:`~polymodal.features.Features`.

Encoders describe themselves with :meth:`Encoder.get_config` (JSON) and rebuild from it with
:meth:`Encoder.from_config`, so a saved model carries its preprocessing with its weights.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from torch import Tensor, nn

from polymodal.features import Features

__all__ = ["Encoder", "Modality", "Processor", "encoder_class"]


class Processor(abc.ABC):
    """Turns a list of raw values into a batch of model inputs (padded tensors).

    Must be picklable: DataLoader workers receive a copy.
    """

    @abc.abstractmethod
    def __call__(self, values: Sequence[Any]) -> dict[str, Tensor]:
        """Process and collate ``values`` into a dict of tensors with a leading batch dim."""

    def validate(self, value: Any) -> None:  # noqa: B027 - optional hook
        """Raise ``ValueError`` with a clear message if ``value`` cannot be processed.

        Data modules call it per row so that a bad row is reported by file, row and column.
        """

    def lengths(self, values: Sequence[Any]) -> list[int]:
        """Cheap size of each value (tokens, patches, steps) used to sort batches by length so
        that they carry little padding. Default: ``len(value)`` where defined, else 0."""
        return [len(v) if hasattr(v, "__len__") else 0 for v in values]


class Encoder(nn.Module, abc.ABC):
    """Base class of every modality encoder."""

    #: Name of the modality this encoder belongs to (e.g. ``"text"``).
    modality: ClassVar[str] = ""
    #: The kind of raw value its processor reads, when it is another modality's (pixel- and glyph-rendered text
    #: encoders read strings: ``"text"``); empty: its own modality. Evaluations that feed raw values (the bench's
    #: text tasks) match on this.
    reads: ClassVar[str] = ""

    #: ``True`` when two threads may run :meth:`forward` on different batches at once (no
    #: per-call state kept on the module). ``EmbeddingModel.encode`` then runs several one-thread
    #: batch streams on CPU; the default ``False`` keeps encoding one batch at a time.
    concurrent_forward: bool = False

    @property
    @abc.abstractmethod
    def processor(self) -> Processor:
        """The processor that prepares inputs for this encoder."""

    @property
    @abc.abstractmethod
    def output_dim(self) -> int:
        """Width ``D`` of ``Features.sequence``."""

    @abc.abstractmethod
    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        """Encode a processed batch."""

    @abc.abstractmethod
    def get_config(self) -> dict[str, Any]:
        """JSON-serialisable description that :meth:`from_config` rebuilds the architecture from."""

    @classmethod
    @abc.abstractmethod
    def from_config(cls, config: dict[str, Any], directory: Path) -> Encoder:
        """Rebuild the encoder (architecture and processor, random weights) from a saved config.

        Args:
            config: what :meth:`get_config` returned.
            directory: the folder :meth:`save_assets` wrote to.
        """

    def save_assets(self, directory: Path) -> None:  # noqa: B027 - optional hook
        """Write files the processor needs (tokenizer, font metadata, ...) into ``directory``."""

    def fit_statistics(self, values: Sequence[Any]) -> bool:
        """Fit input statistics that are weights (e.g. time-series normalisers) on the *training*
        split's raw values, once, before any batch is seen. Returns ``True`` if anything was fitted.
        Default: nothing to fit."""
        del values
        return False

    def truncate_layers(self, layers: int) -> None:
        """Keep only the first ``layers`` layers (in place), so a forward computes no more than those.

        Optional hook behind :meth:`polymodal.model.EmbeddingModel.truncate`. An encoder that has a
        stack of layers implements it by dropping the later layers from the module and from what
        :meth:`get_config` returns (so a saved truncated encoder reloads truncated), and exposes
        its depth as ``num_layers``. The output after truncation must equal the full encoder's
        ``Features.at_layer(layers)``, which is what layer-elastic (2DMSE) training optimises.
        ``TextEncoder`` (any Hugging Face layer list) and ``PixelEncoder`` (ViT blocks) implement it.
        """
        raise NotImplementedError(f"{type(self).__name__} does not expose layers; it cannot be truncated")


#: Saved encoder names of classes that moved (model folders exported before the move keep loading): the
#: old name is read as the new one, which must itself be registered (by its plugin). Data, not imports.
MOVED_ENCODERS: dict[str, str] = {
    "polymodal.recipes.grounded_sentence.encoders.CharGRUEncoder": "polymodal.plugins.text.char.CharGRUEncoder",
    "polymodal.recipes.grounded_sentence.encoders.ImageProjection": (
        "polymodal.plugins.image.projection.ImageProjection"
    ),
}


def encoder_class(path: str, *, where: str = "", field: str = "encoder.class") -> type[Encoder]:
    """The registered encoder class a saved name refers to (``"module.Class"`` or ``"module:Class"``).

    Resolved only against :mod:`polymodal.registry` (core classes and loaded plugins' encoders; names of
    classes that moved are read through :data:`MOVED_ENCODERS`); a name that is not registered is a one-line
    ``ValueError`` naming ``where`` and ``field``. No module named by a file is ever imported.
    """
    from polymodal.registry import resolve_class

    name = path.replace(":", ".") if isinstance(path, str) else path
    if isinstance(name, str):
        name = MOVED_ENCODERS.get(name, name)
    return resolve_class(name, "encoder", field=field, base=Encoder, where=where)


@dataclass(frozen=True)
class Modality:
    """What a plugin registers.

    Attributes:
        name: short unique name, e.g. ``"text"``.
        description: one line for ``polymodal plugins``.
        encoders: encoder classes this modality provides (their short names resolve in YAML, and
            saved model folders may name them: see :mod:`polymodal.registry`).
        pretrained: short model names -> zero-argument factory returning a ready
            :class:`polymodal.model.EmbeddingModel` (no network: weights come from installed
            packages or local files).
        poolers: extra :class:`~polymodal.poolers.Pooler` classes saved models may name.
        models: :class:`~polymodal.model.EmbeddingModel` subclasses saved models may name.
        architectures: named architectures (e.g. tiny test encoders) -> factory(**kwargs).
        weights: names of local checkpoints components load by name -> zero-argument function returning the
            path (a folder or a file inside an installed package; never the network).
        cards: per pretrained/architecture name, card fields for ``polymodal models``
            (``description``, ``source``, ``licence``, ``paper``, ``preprocessing``).
    """

    name: str
    description: str = ""
    encoders: tuple[type[Encoder], ...] = ()
    pretrained: Mapping[str, Callable[[], Any]] = field(default_factory=dict)
    poolers: tuple[type, ...] = ()
    models: tuple[type, ...] = ()
    architectures: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    weights: Mapping[str, Callable[[], Any]] = field(default_factory=dict)
    cards: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
