"""Time-series encoders: 1D CNN, GRU/LSTM and a small transformer over ``(B, T, F)`` windows.

All three normalise their input with a :class:`~polymodal.plugins.timeseries.windows.Normalizer`
whose statistics are weights (fit on training data with :meth:`fit_normalizer`), and return
:class:`~polymodal.features.Features` with a ``(B, T, D)`` sequence, so every pooler, loss and
system of polymodal works on them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from polymodal.features import Features
from polymodal.modality import Encoder
from polymodal.plugins.timeseries.processor import TimeSeriesProcessor
from polymodal.plugins.timeseries.windows import Normalizer

__all__ = ["TimeSeriesCNN", "TimeSeriesEncoder", "TimeSeriesRNN", "TimeSeriesTransformer"]


class TimeSeriesEncoder(Encoder):
    """Shared base: processor, normaliser, config round trip.

    Args:
        num_features: ``F`` (features per step).
        hidden_dim: output width ``D``.
        max_length: longest window (older steps are dropped); required by the transformer.
        normalize: standardise inputs with statistics fit on training data.
        allow_empty: accept zero-step windows (their mask is all False).
        feature_names: optional names of the ``F`` features, saved with the model.
        dropout: dropout probability inside the encoder.
    """

    modality = "timeseries"

    def __init__(
        self,
        num_features: int,
        hidden_dim: int = 64,
        max_length: int | None = None,
        normalize: bool = True,
        allow_empty: bool = False,
        feature_names: Sequence[str] | None = None,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if feature_names is not None and len(feature_names) != num_features:
            raise ValueError(f"feature_names has {len(feature_names)} names but num_features is {num_features}")
        self.num_features = int(num_features)
        self.hidden_dim = int(hidden_dim)
        self.max_length = max_length
        self.normalize = normalize
        self.allow_empty = allow_empty
        self.feature_names = list(feature_names) if feature_names is not None else None
        self.dropout_p = float(dropout)
        self.normalizer = Normalizer(self.num_features)
        self._processor = TimeSeriesProcessor(self.num_features, max_length, allow_empty)

    @property
    def processor(self) -> TimeSeriesProcessor:
        return self._processor

    @property
    def output_dim(self) -> int:
        return self.hidden_dim

    @property
    def normalizer_fitted(self) -> bool:
        return self.normalizer.is_fitted

    def fit_statistics(self, values: Any) -> bool:
        """Fit the normaliser on the training values unless it is fitted already (the data modules call this)."""
        if self.normalizer_fitted:
            return False
        self.fit_normalizer(values)
        return True

    def fit_normalizer(self, values: Any) -> None:
        """Fit the input statistics on *training* windows/rows only (see :class:`Normalizer`)."""
        self.normalizer.fit(values)

    def _inputs(self, inputs: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        x, mask = inputs["values"].float(), inputs["mask"].bool()  # (B, T, F), (B, T)
        if self.normalize:
            x = self.normalizer(x)
        return x * mask.unsqueeze(-1), mask

    def _extra_config(self) -> dict[str, Any]:
        return {}

    def get_config(self) -> dict[str, Any]:
        return {
            "num_features": self.num_features,
            "hidden_dim": self.hidden_dim,
            "max_length": self.max_length,
            "normalize": self.normalize,
            "allow_empty": self.allow_empty,
            "feature_names": self.feature_names,
            "dropout": self.dropout_p,
            **self._extra_config(),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], directory: Path) -> TimeSeriesEncoder:
        return cls(**config)


class TimeSeriesCNN(TimeSeriesEncoder):
    """Stacked 1D convolutions (same padding, GELU, residual) over time.

    Args:
        kernel_size: temporal kernel (odd).
        num_layers: convolution blocks.
        presence_channel: append a channel that is 1 at real steps and 0 at padding, so the
            pooled vector of an empty window (e.g. a day without text) is distinguishable from
            real data instead of passing zeros off as data.
        **kwargs: see :class:`TimeSeriesEncoder`.
    """

    def __init__(
        self, num_features: int, kernel_size: int = 3, num_layers: int = 2, presence_channel: bool = False, **kwargs
    ) -> None:
        super().__init__(num_features, **kwargs)
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.kernel_size, self.num_layers, self.presence_channel = kernel_size, num_layers, presence_channel
        width = self.hidden_dim - (1 if presence_channel else 0)
        if width < 1:
            raise ValueError("hidden_dim too small")
        dims = [self.num_features] + [width] * num_layers
        self.convs = nn.ModuleList(
            nn.Conv1d(a, b, kernel_size, padding=kernel_size // 2) for a, b in zip(dims, dims[1:])
        )
        self.act, self.drop = nn.GELU(), nn.Dropout(self.dropout_p)

    def _extra_config(self) -> dict[str, Any]:
        return {
            "kernel_size": self.kernel_size,
            "num_layers": self.num_layers,
            "presence_channel": self.presence_channel,
        }

    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        x, mask = self._inputs(inputs)  # (B, T, F), (B, T)
        m = mask.unsqueeze(1).to(x.dtype)  # (B, 1, T)
        h = x.transpose(1, 2)  # (B, F, T)
        for conv in self.convs:
            y = self.drop(self.act(conv(h))) * m  # (B, D', T)
            h = y + h if y.shape == h.shape else y
        seq = h.transpose(1, 2)  # (B, T, D')
        if self.presence_channel:
            seq = torch.cat([seq, mask.unsqueeze(-1).to(seq.dtype)], dim=-1)  # (B, T, D)
        return Features(sequence=seq, mask=mask)


class TimeSeriesRNN(TimeSeriesEncoder):
    """A GRU or LSTM; ``pooled`` is the state at each window's last real step.

    Args:
        cell: ``"gru"`` or ``"lstm"``.
        num_layers: stacked recurrent layers.
        **kwargs: see :class:`TimeSeriesEncoder`.
    """

    def __init__(self, num_features: int, cell: Literal["gru", "lstm"] = "gru", num_layers: int = 1, **kwargs) -> None:
        super().__init__(num_features, **kwargs)
        if cell not in ("gru", "lstm"):
            raise ValueError(f"cell must be 'gru' or 'lstm', got {cell!r}")
        if self.allow_empty:
            raise ValueError("TimeSeriesRNN cannot encode empty windows (allow_empty=True)")
        self.cell, self.num_layers = cell, num_layers
        rnn = nn.GRU if cell == "gru" else nn.LSTM
        self.rnn = rnn(
            self.num_features,
            self.hidden_dim,
            num_layers=num_layers,
            batch_first=True,
            dropout=self.dropout_p if num_layers > 1 else 0.0,
        )

    def _extra_config(self) -> dict[str, Any]:
        return {"cell": self.cell, "num_layers": self.num_layers}

    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        x, mask = self._inputs(inputs)  # (B, T, F)
        lengths = mask.sum(dim=1)  # (B,)
        if bool((lengths == mask.shape[1]).all()):
            seq, _ = self.rnn(x)  # (B, T, D)
        else:
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, _ = self.rnn(packed)
            seq, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        last = seq[torch.arange(seq.shape[0], device=seq.device), (lengths - 1).clamp(min=0)]  # (B, D)
        return Features(sequence=seq, mask=mask, pooled=last)


class TimeSeriesTransformer(TimeSeriesEncoder):
    """A small pre-norm transformer encoder with learned positions.

    Args:
        num_heads: attention heads (``hidden_dim`` must divide by it).
        num_layers: transformer blocks.
        ff_mult: feed-forward width as a multiple of ``hidden_dim``.
        **kwargs: see :class:`TimeSeriesEncoder` (``max_length`` is required).
    """

    def __init__(self, num_features: int, num_heads: int = 4, num_layers: int = 2, ff_mult: int = 4, **kwargs) -> None:
        super().__init__(num_features, **kwargs)
        if self.max_length is None:
            raise ValueError("TimeSeriesTransformer needs max_length (for its position embeddings)")
        if self.hidden_dim % num_heads:
            raise ValueError(f"hidden_dim {self.hidden_dim} is not divisible by num_heads {num_heads}")
        self.num_heads, self.num_layers, self.ff_mult = num_heads, num_layers, ff_mult
        self.proj = nn.Linear(self.num_features, self.hidden_dim)
        self.pos = nn.Parameter(torch.randn(self.max_length, self.hidden_dim) / math.sqrt(self.hidden_dim))
        layer = nn.TransformerEncoderLayer(
            self.hidden_dim,
            num_heads,
            ff_mult * self.hidden_dim,
            dropout=self.dropout_p,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(self.hidden_dim)

    def _extra_config(self) -> dict[str, Any]:
        return {"num_heads": self.num_heads, "num_layers": self.num_layers, "ff_mult": self.ff_mult}

    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        x, mask = self._inputs(inputs)  # (B, T, F)
        T = x.shape[1]
        h = self.proj(x) + self.pos[:T]  # (B, T, D)
        attend = mask.clone()
        attend[:, 0] |= ~mask.any(dim=1)  # an empty window attends to one (zeroed) step, not to nothing
        h = self.norm(self.blocks(h, src_key_padding_mask=~attend))  # (B, T, D)
        return Features(sequence=h * mask.unsqueeze(-1), mask=mask)
