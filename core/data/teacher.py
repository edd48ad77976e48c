"""A source whose rows gain a teacher's score for each (query, candidate) pair: soft labels for distillation.

LG-ANNA-style soft labels need, for every training query, a teacher score of each of its candidates (its
positive and hard negatives). :class:`TeacherScores` reads any other source, scores the named column pairs
with a cross-encoder model folder (``polymodal.load``: a folder is data, never code — e.g. the
``recipes/distilled`` teacher export) and adds one score column per pair, for
:class:`~polymodal.losses.ListwiseDistillationLoss`.
"""

from __future__ import annotations

import logging
from typing import Any

from polymodal.data.sources import Source

__all__ = ["TeacherScores"]

log = logging.getLogger(__name__)


class TeacherScores(Source):
    """Rows of ``source`` plus teacher scores.

    Args:
        source: the rows (e.g. :class:`~polymodal.data.NLITriplets`).
        teacher: a cross-encoder model folder (anything ``polymodal.load`` returns with ``predict(pairs)``).
        pairs: new column -> ``[query column, candidate column]``, e.g.
            ``{t_positive: [anchor, positive], t_negative: [anchor, negative]}``.
        batch_size: teacher batch size.
    """

    def __init__(self, source: Source, teacher: str, pairs: dict[str, list[str]], batch_size: int = 64) -> None:
        if not pairs:
            raise ValueError("TeacherScores: pairs must name at least one new column -> [query, candidate]")
        for name, columns in pairs.items():
            if len(columns) != 2:
                raise ValueError(
                    f"TeacherScores: pairs.{name}: expected [query column, candidate column], got {columns}"
                )
        self.source, self.teacher, self.batch_size = source, str(teacher), int(batch_size)
        self.pairs = {str(k): [str(c) for c in v] for k, v in pairs.items()}

    def describe(self) -> str:
        return f"{self.source.describe()} scored by {self.teacher}"

    def read(self) -> Any:
        import polymodal
        from polymodal.data.tables import check_columns
        from polymodal.io import resolve_path

        df = self.source.frame().copy()
        check_columns(df, sorted({c for cols in self.pairs.values() for c in cols}), self.source.describe())
        model = polymodal.load(str(resolve_path(self.teacher, what="teacher model folder")))
        if not callable(getattr(model, "predict", None)):
            raise ValueError(
                f"TeacherScores: {self.teacher} is not a cross-encoder (no predict); export one with head: score"
            )
        for name, (query, candidate) in self.pairs.items():
            if name in df.columns:
                raise ValueError(f"TeacherScores: {self.source.describe()} already has a column {name!r}")
            df[name] = model.predict(list(zip(df[query].tolist(), df[candidate].tolist())), batch_size=self.batch_size)
        log.info("%s: %d rows x %d teacher scores", self.describe(), len(df), len(self.pairs))
        return df
