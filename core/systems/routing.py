"""Column -> encoder routing shared by the systems."""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from polymodal.modality import Encoder

__all__ = ["route_encoder"]


def route_encoder(encoders: Mapping[str, nn.Module], routes: Mapping[str, str], column: str) -> Encoder:
    """The encoder for an input column: the single ``"shared"`` one, else ``routes[column]`` (or the
    encoder named like the column); the error lists the encoders there are."""
    if len(encoders) == 1 and "shared" in encoders:
        return encoders["shared"]  # type: ignore[return-value]
    key = routes.get(column, column)
    if key not in encoders:
        raise KeyError(f"no encoder for input column {column!r}: add it to routes (encoders: {sorted(encoders)})")
    return encoders[key]  # type: ignore[return-value]
