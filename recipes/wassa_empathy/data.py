"""The WASSA 2022 files as a source: essays with empathy / distress, dev joined with its gold labels.

The official files (CodaLab competition 834): ``messages_train_ready_for_WS.tsv[.gz]`` (header, ``essay``,
``empathy``, ``distress``, ...), ``messages_dev_features_ready_for_WS_2022.tsv[.gz]`` (the dev essays, no
labels) and ``goldstandard_dev_2022.tsv[.gz]`` (NO header, 12 columns, row-aligned with the dev file:
empathy, distress, emotion, ...). Dev and gold are joined by row position (the organisers' convention)
after checking equal row counts, ratings in [1, 7], a known emotion in the third gold column (which
catches a shifted or wrong file) and no empty essay.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from polymodal.data.sources import Source
from polymodal.data.stratified import combine_bins, quantile_bins
from polymodal.io import resolve_path

__all__ = ["EMOTION_CLASSES", "FILES", "TARGETS", "TRAITS", "WassaEssays"]

TARGETS = ("empathy", "distress")
#: The essay writer's Big-Five personality (1-7) and Interpersonal Reactivity Index (1-5) scores: one value
#: per writer, repeated on each of their essays (train columns; gold columns 4-12 of dev).
TRAITS = (
    "personality_conscientiousness",
    "personality_openess",
    "personality_extraversion",
    "personality_agreeableness",
    "personality_stability",
    "iri_perspective_taking",
    "iri_personal_distress",
    "iri_fantasy",
    "iri_empathatic_concern",
)
GOLD = ["empathy", "distress", "emotion", *TRAITS]  # the gold file's 12 columns, in order
#: The emotion classes in a fixed order (``TableDataModule(classes={emotion: EMOTION_CLASSES})``).
EMOTION_CLASSES = ("sadness", "anger", "neutral", "fear", "surprise", "disgust", "joy")
EMOTIONS = set(EMOTION_CLASSES)
FILES = {
    "train": "messages_train_ready_for_WS.tsv.gz",
    "dev": "messages_dev_features_ready_for_WS_2022.tsv.gz",
    "gold": "goldstandard_dev_2022.tsv.gz",
}


def _read(path: Path, header: bool) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep="\t", header=0 if header else None, dtype=str, keep_default_na=False)
    except pd.errors.ParserError as exc:
        raise ValueError(f"{path}: not a valid TSV file: {exc}") from None


def _first_bad(path: Path, mask: Any, column: str, message: str) -> None:
    bad = np.flatnonzero(np.asarray(mask))
    if len(bad):
        raise ValueError(f"{path}: row {bad[0] + 1}, column {column}: {message}")


def _ratings(df: pd.DataFrame, path: Path, columns: tuple[str, ...] = TARGETS) -> None:
    for col in columns:
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() | (values < 1) | (values > 7)
        first = df[col].iloc[int(np.argmax(bad.to_numpy()))] if bad.any() else None
        _first_bad(path, bad, repr(col), f"expected a rating in [1, 7], got {first!r}")
        df[col] = values.astype(np.float64)


class WassaEssays(Source):
    """One WASSA 2022 split: ``essay``, ``empathy``, ``distress``, ``emotion`` (one of
    :data:`EMOTION_CLASSES`), the writer's nine :data:`TRAITS` (Big Five and IRI) and ``stratum`` (joint
    quantile bins of empathy x distress, for stratified splits and batches); dev has them from the gold file.

    Args:
        root: folder with the three files (``../shared/data/wassa22`` or ``package://wassa_empathy/data``).
        part: ``"train"`` (the official training file) or ``"dev"`` (dev essays + gold labels).
        bins: quantile bins per target in ``stratum``.
        max_rows: keep the first N rows (quick runs).
    """

    def __init__(
        self, root: str, part: Literal["train", "dev"] = "train", bins: int = 3, max_rows: int | None = None
    ) -> None:
        if part not in ("train", "dev"):
            raise ValueError(f"part must be 'train' or 'dev', got {part!r}")
        self.root, self.part, self.bins, self.max_rows = root, part, bins, max_rows

    def describe(self) -> str:
        return str(Path(self.root) / FILES[self.part])

    def read(self) -> pd.DataFrame:
        folder = resolve_path(self.root, what="WASSA data folder")
        path = resolve_path(folder / FILES[self.part], what=f"WASSA {self.part} file")
        df = _read(path, header=True)
        need = ["essay", *TARGETS, "emotion", *TRAITS] if self.part == "train" else ["essay"]
        if missing := [c for c in need if c not in df.columns]:
            raise ValueError(f"{path}: missing column(s) {missing}; found {list(df.columns)[:8]}")
        if self.part == "dev":
            gold_path = resolve_path(folder / FILES["gold"], what="WASSA gold file")
            gold = _read(gold_path, header=False)
            if gold.shape[1] != 12:
                raise ValueError(
                    f"{gold_path}: expected 12 tab-separated columns without a header "
                    f"(empathy, distress, emotion, ...), got {gold.shape[1]}"
                )
            if len(gold) != len(df):
                raise ValueError(
                    f"{gold_path} has {len(gold)} rows but {path} has {len(df)}: the gold file is "
                    "row-aligned with the dev essays, both must have the same number of rows"
                )
            gold = gold.set_axis(GOLD, axis=1)
            unknown = ~gold["emotion"].isin(EMOTIONS)
            _first_bad(gold_path, unknown, "3 (emotion)", f"not one of {sorted(EMOTIONS)}; is this the dev gold file?")
            _ratings(gold, gold_path, (*TARGETS, *TRAITS))
            df = df.reset_index(drop=True).assign(**{c: gold[c].to_numpy() for c in GOLD})
        else:
            unknown = ~df["emotion"].isin(EMOTIONS)
            _first_bad(path, unknown, "'emotion'", f"not one of {sorted(EMOTIONS)}")
            _ratings(df, path, (*TARGETS, *TRAITS))
        _first_bad(path, df["essay"].str.strip() == "", "'essay'", "empty essay")
        if self.max_rows is not None:
            df = df.iloc[: self.max_rows]
        df = df.reset_index(drop=True)
        strata = combine_bins(*(quantile_bins(df[t].to_numpy(), self.bins) for t in TARGETS), min_count=2)
        return df.assign(stratum=strata)
