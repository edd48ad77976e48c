"""WASSA 2022 empathy/distress data: reading, joining the dev gold labels, the data module.

The official files (CodaLab competition 834) are

* ``messages_train_ready_for_WS.tsv[.gz]``: header, 23 columns, ``essay``, ``empathy``, ``distress``;
* ``messages_dev_features_ready_for_WS_2022.tsv[.gz]``: header, the essays of dev (no labels);
* ``goldstandard_dev_2022.tsv[.gz]``: NO header, 12 columns, row-aligned with the dev file; the
  first two columns are empathy and distress, the third the emotion label.

:func:`load_wassa` joins dev features and gold by row position (the organisers' convention) and
validates both: equal row counts, ratings that parse as numbers in ``[1, 7]``, a known emotion
label in the third gold column (which catches a shifted or wrong file), no empty essay.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from polymodal.data.datamodule import Collator, EpochShuffleSampler, RowsDataset
from polymodal.data.stratified import StratifiedSampler, combine_bins, quantile_bins, stratified_split
from polymodal.io import resolve_path

__all__ = ["GOLD_COLUMNS", "TARGETS", "WassaDataModule", "load_wassa"]

log = logging.getLogger(__name__)

TARGETS = ("empathy", "distress")
#: Column order of ``goldstandard_dev_2022.tsv`` (header-less; the organisers' evaluation order).
GOLD_COLUMNS = [
    "empathy",
    "distress",
    "emotion",
    "personality_conscientiousness",
    "personality_openess",
    "personality_extraversion",
    "personality_agreeableness",
    "personality_stability",
    "iri_perspective_taking",
    "iri_personal_distress",
    "iri_fantasy",
    "iri_empathatic_concern",
]
EMOTIONS = {"sadness", "anger", "neutral", "fear", "surprise", "disgust", "joy"}
FILES = {
    "train": "messages_train_ready_for_WS.tsv.gz",
    "dev": "messages_dev_features_ready_for_WS_2022.tsv.gz",
    "gold": "goldstandard_dev_2022.tsv.gz",
}


def _read_tsv(path: Path, header: bool) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep="\t", header=0 if header else None, dtype=str, keep_default_na=False)
    except pd.errors.ParserError as exc:
        raise ValueError(f"{path}: not a valid TSV file: {exc}") from None


def _check_ratings(df: pd.DataFrame, path: Path, columns: tuple[str, ...], row_offset: int) -> None:
    for col in columns:
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() | (values < 1) | (values > 7)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(
                f"{path}: row {i + row_offset}, column {col!r}: expected a rating in [1, 7], got {df[col].iloc[i]!r}"
            )
        df[col] = values.astype(np.float64)


def _check_essays(df: pd.DataFrame, path: Path) -> None:
    empty = df["essay"].str.strip() == ""
    if empty.any():
        raise ValueError(f"{path}: row {int(np.flatnonzero(empty.to_numpy())[0]) + 1}, column 'essay': empty essay")


def load_wassa(
    root: str | Path, files: dict[str, str] | None = None, max_rows: int | None = None
) -> dict[str, pd.DataFrame]:
    """Read train and dev (with gold labels joined) as frames with ``essay``, ``empathy``, ``distress``.

    Args:
        root: folder with the three files (or ``package://...``).
        files: override file names (keys ``train``, ``dev``, ``gold``).
        max_rows: keep the first N rows of each split (quick runs).

    Returns:
        ``{"train": frame, "dev": frame}``; dev also has ``emotion`` from the gold file.
    """
    names = {**FILES, **(files or {})}
    folder = resolve_path(root, what="WASSA data folder")
    paths = {k: resolve_path(folder / v, what=f"WASSA {k} file") for k, v in names.items()}
    train = _read_tsv(paths["train"], header=True)
    missing = [c for c in ("essay", *TARGETS) if c not in train.columns]
    if missing:
        raise ValueError(f"{paths['train']}: missing column(s) {missing}; found {list(train.columns)}")
    _check_ratings(train, paths["train"], TARGETS, row_offset=1)
    _check_essays(train, paths["train"])
    dev = _read_tsv(paths["dev"], header=True)
    if "essay" not in dev.columns:
        raise ValueError(f"{paths['dev']}: no 'essay' column; found {list(dev.columns)}")
    gold = _read_tsv(paths["gold"], header=False)
    if gold.shape[1] != len(GOLD_COLUMNS):
        raise ValueError(
            f"{paths['gold']}: expected {len(GOLD_COLUMNS)} tab-separated columns without a header "
            f"({', '.join(GOLD_COLUMNS[:3])}, ...), got {gold.shape[1]}"
        )
    gold.columns = GOLD_COLUMNS
    if len(gold) != len(dev):
        raise ValueError(
            f"{paths['gold']} has {len(gold)} rows but {paths['dev']} has {len(dev)}: the gold file is "
            "row-aligned with the dev essays, both must have the same number of rows"
        )
    unknown = ~gold["emotion"].isin(EMOTIONS)
    if unknown.any():
        i = int(np.flatnonzero(unknown.to_numpy())[0])
        raise ValueError(
            f"{paths['gold']}: row {i + 1}, column 3 (emotion): {gold['emotion'].iloc[i]!r} is not one of "
            f"{sorted(EMOTIONS)}; is this the dev gold file (empathy, distress, emotion, ...)?"
        )
    _check_ratings(gold, paths["gold"], TARGETS, row_offset=1)
    dev = dev.reset_index(drop=True).assign(**{c: gold[c].to_numpy() for c in (*TARGETS, "emotion")})
    _check_essays(dev, paths["dev"])
    if max_rows is not None:
        train, dev = train.iloc[:max_rows], dev.iloc[:max_rows]
    return {"train": train.reset_index(drop=True), "dev": dev.reset_index(drop=True)}


class WassaDataModule(pl.LightningDataModule):
    """Essays -> cached feature vectors (embeddings and lexicon features) -> (empathy, distress).

    Splits: ``train`` and ``val`` come from the official training file by a stratified split
    (joint quantile bins of empathy x distress), ``test`` is the official dev set with gold labels
    (the shared task's evaluation set for systems without test labels). ``predict`` is dev too.

    Feature vectors are standardised with the *training* part's mean and standard deviation.
    The one input column is ``features``; targets are ``(B, 2)`` = (empathy, distress).

    Args:
        root: data folder (``../shared/data/wassa22`` or ``package://wassa_empathy/data``).
        features: featurizer names (see :data:`polymodal.recipes.wassa_empathy.features.FEATURIZERS`),
            concatenated in order.
        files: override file names (keys ``train``, ``dev``, ``gold``).
        val_fraction: share of the training file held out for model selection.
        n_bins: quantile bins per target for the stratified split and sampler.
        sampler: ``"shuffle"`` (plain), ``"stratified"`` (every batch holds the joint bins in
            proportion) or ``"balanced"`` (oversample rare bins, weights ``count ** alpha``).
        alpha: balanced sampler exponent.
        batch_size: training batch size.
        cache_dir: where feature matrices are cached.
        max_rows: keep the first N rows of each file (quick runs).
        seed: split and shuffling seed.
    """

    def __init__(
        self,
        root: str = "../shared/data/wassa22",
        features: list[str] | None = None,
        files: dict[str, str] | None = None,
        val_fraction: float = 0.1,
        n_bins: int = 3,
        sampler: Literal["shuffle", "stratified", "balanced"] = "shuffle",
        alpha: float = 0.5,
        batch_size: int = 32,
        cache_dir: str = "/tmp/polymodal_cache/wassa",
        max_rows: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if sampler not in ("shuffle", "stratified", "balanced"):
            raise ValueError(f"sampler must be 'shuffle', 'stratified' or 'balanced', got {sampler!r}")
        self.root = root
        self.features = list(features or ["minilm-mean"])
        self.files = files
        self.val_fraction = val_fraction
        self.n_bins = n_bins
        self.sampler = sampler
        self.alpha = alpha
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self.max_rows = max_rows
        self.seed = seed
        self.frames: dict[str, pd.DataFrame] = {}
        self.matrices: dict[str, np.ndarray] = {}
        self.datasets: dict[str, RowsDataset] = {}
        self.train_bins: np.ndarray | None = None

    @property
    def feature_dim(self) -> int:
        self.prepare()
        return int(self.matrices["train"].shape[1])

    def prepare(self) -> None:
        """Read, split, featurise and standardise (once)."""
        if self.datasets:
            return
        from polymodal.recipes.wassa_empathy.features import featurize

        frames = load_wassa(self.root, self.files, self.max_rows)
        train_all = frames["train"]
        bins = combine_bins(
            *(quantile_bins(train_all[t].to_numpy(), self.n_bins) for t in TARGETS), min_count=2
        )  # joint strata
        tr_idx, va_idx = stratified_split(bins, self.val_fraction, seed=self.seed)
        self.frames = {
            "train": train_all.iloc[tr_idx].reset_index(drop=True),
            "val": train_all.iloc[va_idx].reset_index(drop=True),
            "test": frames["dev"],
        }
        self.train_bins = bins[tr_idx]
        every = pd.concat([train_all["essay"], frames["dev"]["essay"]]).tolist()
        blocks = [featurize(name, every, self.cache_dir) for name in self.features]
        matrix = np.concatenate(blocks, axis=1).astype(np.float32)  # (N_train + N_dev, D)
        n = len(train_all)
        parts = {"train": matrix[:n][tr_idx], "val": matrix[:n][va_idx], "test": matrix[n:]}
        mean = parts["train"].mean(axis=0)
        std = parts["train"].std(axis=0)
        std[std < 1e-8] = 1.0
        for split, m in parts.items():
            self.matrices[split] = (m - mean) / std
            frame = self.frames[split]
            target = frame[list(TARGETS)].to_numpy(np.float32).tolist()
            self.datasets[split] = RowsDataset([list(self.matrices[split])], target)
        log.info(
            "WASSA features %s: %d dims; train %d, val %d, test (dev) %d",
            self.features,
            matrix.shape[1],
            *(len(self.frames[s]) for s in ("train", "val", "test")),
        )

    def setup(self, stage: str | None = None) -> None:
        self.prepare()
        model = self.trainer.lightning_module if self.trainer is not None else None
        encoders = getattr(model, "encoders", None)
        shared = encoders["shared"] if encoders is not None and "shared" in encoders else None
        expected = getattr(shared, "input_dim", None)
        if expected is not None and expected != self.matrices["train"].shape[1]:
            raise ValueError(
                f"features {self.features} give {self.matrices['train'].shape[1]} dims but the model's "
                f"encoder expects input_dim={expected}; set model.encoder.init_args.input_dim accordingly"
            )

    def _collator(self) -> Collator:
        from polymodal.vector import VectorProcessor

        return Collator([VectorProcessor(self.matrices["train"].shape[1])], ["features"], str(self.root))

    def loader(self, split: str, train: bool = False) -> DataLoader:
        self.prepare()
        ds = self.datasets[split]
        sampler: Any = None
        if train:
            if self.sampler == "shuffle":
                sampler = EpochShuffleSampler(len(ds), self.seed)
            else:
                sampler = StratifiedSampler(self.train_bins, mode=self.sampler, alpha=self.alpha, seed=self.seed)
        return DataLoader(
            ds, batch_size=self.batch_size if train else 256, sampler=sampler, collate_fn=self._collator()
        )

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self.loader("test")

    def transfer_batch_to_device(self, batch: dict[str, Any], device: torch.device, dataloader_idx: int) -> Any:
        return {
            "inputs": [{k: v.to(device) for k, v in x.items()} for x in batch["inputs"]],
            "target": None if batch["target"] is None else batch["target"].to(device),
        }
