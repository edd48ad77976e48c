"""Image-caption tables as a source: every image with its captions (grouped pairs), split by image.

One source serves every image <-> text recipe (CG-VLM, the grounded sentence encoder, zero-shot image
classification): a table with an image file-name column and a caption column (the layout of
``../shared/data/captions/captions.tsv``: ``image``, ``caption_idx``, ``caption``), images in a folder.
Rows come out one per caption with:

* ``image``: the image file's path (absolute; the image tower's input),
* ``image_name``: the file name as written in the table,
* ``caption``: the caption text, ``caption_idx``: its index among the image's captions,
* ``image_id``: the image's index among *all* distinct image names in sorted order, the same in every
  split: the group target of grouped Recall@k (:class:`polymodal.metrics.step.Retrieval`) and of losses
  that must not treat captions of one image as negatives,
* ``prompt``: a fixed prompt text (``""`` by default) for prefix-LM recipes.

Images are split with the one split helper (:func:`polymodal.data.splits.split_rows`) on the image name:
a hash split depends only on the names, so every recipe given the same table and sizes holds out the same
images, and all captions of an image stay in its part.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from polymodal.data.sources import Source
from polymodal.data.splits import SplitMethod, split_rows
from polymodal.data.tables import check_columns, read_table
from polymodal.io import resolve_path

__all__ = ["Captions"]

PARTS = {"train": 0, "val": 1, "test": 2}


class Captions(Source):
    """Captions of images, one row per caption, optionally one part of a split by image.

    Args:
        path: the caption table (csv/tsv/jsonl/parquet; ``package://`` for shipped files).
        images: folder holding the image files (default: ``images/`` beside the table).
        sizes: split the distinct images into these counts or fractions (e.g. ``[800, 100, 100]``);
            ``None`` keeps every image.
        part: which part of the split (index or ``"train"`` / ``"val"`` / ``"test"``).
        method: split method (``"hash"``: SHA-1 order of the image names).
        image_column: file-name column.
        caption_column: caption column.
        prompt: value of the ``prompt`` column of every row.
        read_options: extra ``pandas.read_*`` arguments (tab-separated, unquoted by default for ``.tsv``).

    Raises:
        ValueError: one line naming the table, the 1-based data row and the column of an empty caption,
            an empty image name, or an image file that is missing or empty.
    """

    def __init__(
        self,
        path: str,
        images: str | None = None,
        sizes: Sequence[float] | None = None,
        part: int | str = "train",
        method: SplitMethod = "hash",
        image_column: str = "image",
        caption_column: str = "caption",
        prompt: str = "",
        read_options: dict[str, Any] | None = None,
    ) -> None:
        if isinstance(part, str):
            if part not in PARTS:
                raise ValueError(f"part must be an index or one of {list(PARTS)}, got {part!r}")
            part = PARTS[part]
        if sizes is not None and not 0 <= int(part) < len(sizes):
            raise ValueError(f"part {part} out of range for {len(sizes)} split sizes")
        self.path, self.images = path, images
        self.sizes = None if sizes is None else list(sizes)
        self.part, self.method = int(part), method
        self.image_column, self.caption_column = image_column, caption_column
        self.prompt = str(prompt)
        self.read_options = dict(read_options or {})

    def describe(self) -> str:
        return str(self.path)

    def folder(self) -> Path:
        """The image folder."""
        if self.images is not None:
            return resolve_path(self.images, what="image folder")
        return resolve_path(self.path, what="caption table").parent / "images"

    def read(self) -> Any:
        import csv

        options = dict(self.read_options)
        if str(self.path).endswith((".tsv", ".tsv.gz")):
            options.setdefault("quoting", csv.QUOTE_NONE)  # captions hold bare quotes
        df = read_table(self.path, dtype={self.image_column: str, self.caption_column: str}, **options)
        check_columns(df, [self.image_column, self.caption_column], self.path)
        folder = self.folder()
        if not folder.is_dir():
            raise ValueError(f"{self.path}: image folder is not a directory: {folder}")
        names = df[self.image_column].fillna("").astype(str).str.strip().tolist()
        captions = df[self.caption_column].fillna("").astype(str).str.strip().tolist()
        checked: set[str] = set()
        for row, (name, caption) in enumerate(zip(names, captions), start=1):
            if not name:
                raise ValueError(f"{self.path}: row {row}, column {self.image_column!r}: empty image name")
            if not caption:
                raise ValueError(f"{self.path}: row {row}, column {self.caption_column!r}: empty caption")
            if name not in checked:
                file = folder / name
                if not file.is_file():
                    raise ValueError(f"{self.path}: row {row}, column {self.image_column!r}: image not found: {file}")
                if file.stat().st_size == 0:
                    raise ValueError(f"{self.path}: row {row}, column {self.image_column!r}: image is empty: {file}")
                checked.add(name)
        if not names:
            raise ValueError(f"{self.path}: no caption rows")
        ids = {n: i for i, n in enumerate(sorted(checked))}
        index: list[Any] = []
        if "caption_idx" in df.columns:
            index = df["caption_idx"].tolist()
        else:  # position of the caption among its image's rows
            counts: dict[str, int] = {}
            for n in names:
                index.append(counts.get(n, 0))
                counts[n] = index[-1] + 1
        import pandas as pd

        out = pd.DataFrame(
            {
                "image": [str(folder / n) for n in names],
                "image_name": names,
                "caption": captions,
                "caption_idx": index,
                "image_id": [ids[n] for n in names],
                "prompt": [self.prompt] * len(names),
            }
        )
        if self.sizes is not None:
            out = out.iloc[split_rows(names, self.sizes, self.part, self.method)].reset_index(drop=True)
        return out
