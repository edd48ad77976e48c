"""Grouped pairs: rows that share a group key (an image and its captions, a product and its reviews) turned into
pairs of values of the same group, for ranking objectives (train) and grouped retrieval (eval)."""

from __future__ import annotations

from typing import Any, Literal

from polymodal.data.sources import Source
from polymodal.data.tables import check_columns

__all__ = ["GroupedPairs"]


class GroupedPairs(Source):
    """Pairs of values that share a group.

    ``mode="train"``: for every group with values ``v0 .. vn-1`` (in row order), the pairs ``(vi, v(i+1 mod n))``
    — every value once as an anchor, its positive another value of its group. ``mode="eval"``: one row per
    value but the first, ``(vi, v0)`` — the query ``vi`` must retrieve its group's first value among the first
    values of all groups (:class:`~polymodal.metrics.Retrieval` with ``group=group_id``).

    Output columns: ``a``, ``b``, ``group`` (the key), ``group_id`` (index of the key among the sorted keys) and
    ``others`` (every value of the group except ``a``, joined by ``" | "``: held-out text about the same item).

    Args:
        source: the rows.
        group: the group-key column (e.g. ``image``).
        value: the value column (e.g. ``caption``).
        mode: ``train`` or ``eval``.
        min_size: groups with fewer values are dropped.
    """

    def __init__(
        self, source: Source, group: str, value: str, mode: Literal["train", "eval"] = "train", min_size: int = 2
    ) -> None:
        if mode not in ("train", "eval"):
            raise ValueError(f"mode must be train or eval, got {mode!r}")
        if min_size < 2:
            raise ValueError(f"min_size must be >= 2, got {min_size}")
        self.source, self.group, self.value, self.mode, self.min_size = source, group, value, mode, min_size

    def describe(self) -> str:
        return self.source.describe()

    def read(self) -> Any:
        import pandas as pd

        df = self.source.frame()
        check_columns(df, [self.group, self.value], self.source.describe())
        groups: dict[str, list[str]] = {}
        for key, v in zip(df[self.group].astype(str).tolist(), df[self.value].tolist()):
            if isinstance(v, str) and v.strip():
                groups.setdefault(key, []).append(v)
        keys = sorted(k for k, vs in groups.items() if len(vs) >= self.min_size)
        if not keys:
            raise ValueError(f"{self.source.describe()}: no group with {self.min_size}+ values in {self.value!r}")
        rows = []
        for gid, key in enumerate(keys):
            vs = groups[key]
            pairs = (
                [(i, (i + 1) % len(vs)) for i in range(len(vs))]
                if self.mode == "train"
                else [(i, 0) for i in range(1, len(vs))]
            )
            for i, j in pairs:
                others = " | ".join(v for k, v in enumerate(vs) if k != i)
                rows.append((vs[i], vs[j], key, gid, others))
        return pd.DataFrame(rows, columns=["a", "b", "group", "group_id", "others"])
