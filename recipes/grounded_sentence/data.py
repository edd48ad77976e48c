"""Image-caption tables split by image (no image in two splits)."""

from __future__ import annotations

import math
from typing import Any

from polymodal.data import TableDataModule
from polymodal.data.datamodule import RowsDataset
from polymodal.data.tables import check_columns, read_table
from polymodal.io import resolve_path

__all__ = ["CaptionsDataModule", "split_images"]

SPLITS = ("train", "val", "test")


def split_images(names: list[str], sizes: tuple[int, int, int]) -> dict[str, list[str]]:
    """Distinct image names sorted, then cut into consecutive train / val / test blocks.

    Raises:
        ValueError: the sizes ask for more images than there are.
    """
    distinct = sorted(set(names))
    if any(s < 0 for s in sizes) or sum(sizes) > len(distinct):
        raise ValueError(f"split {list(sizes)} needs {sum(sizes)} images, the table has {len(distinct)}")
    out, start = {}, 0
    for split, size in zip(SPLITS, sizes):
        out[split] = distinct[start : start + size]
        start += size
    return out


class CaptionsDataModule(TableDataModule):
    """A caption table (``image``, ``caption`` columns; e.g. Flickr8k's ``captions.tsv``) split by image.

    The distinct image names are sorted and cut into ``split = [train, val, test]`` images; every
    caption goes with its image. Each row yields ``[caption, <images>/<image>]`` and the image's
    index (over all sorted names) as the target, which the grounding loss and the Recall@k
    validation use to group captions of one image.

    Args:
        captions: the table (path or ``package://...``; csv/tsv/jsonl/parquet).
        images: folder holding the image files.
        split: number of images for train, val and test.
        caption_column: caption column name.
        image_column: image file-name column name.
        batch_size: training batch size.
        eval_batch_size: val/test batch size.
        num_workers: DataLoader workers.
        skip_bad_rows: drop rows with a missing caption or image file instead of raising.
        drop_last: drop the last incomplete training batch (default True: in-batch negatives).
        seed: shuffling seed (default: the ``seed_everything`` seed).
    """

    def __init__(
        self,
        captions: str,
        images: str,
        split: tuple[int, int, int] = (800, 100, 100),
        caption_column: str = "caption",
        image_column: str = "image",
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        skip_bad_rows: bool = False,
        drop_last: bool = True,
        seed: int | None = None,
        read_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            train=captions,
            val=captions if split[1] > 0 else None,
            test=captions if split[2] > 0 else None,
            inputs=[caption_column, image_column],
            target="image_id",
            read_options=read_options,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            skip_bad_rows=skip_bad_rows,
            drop_last=drop_last,
            seed=seed,
        )
        if len(split) != 3:
            raise ValueError(f"split must be [train, val, test] image counts, got {split}")
        self.captions = captions
        self.images = images
        self.split = tuple(int(s) for s in split)
        self.caption_column = caption_column
        self.image_column = image_column
        self._table = None

    def table(self):
        """The whole caption table (read once)."""
        if self._table is None:
            df = read_table(self.captions, **self.read_options)
            check_columns(df, [self.caption_column, self.image_column], self.captions)
            self._table = df
        return self._table

    def image_split(self) -> dict[str, list[str]]:
        df = self.table()
        return split_images([str(v) for v in df[self.image_column].tolist() if isinstance(v, str)], self.split)

    def load_split(self, split: str) -> RowsDataset:
        if split in self.datasets:
            return self.datasets[split]
        if split not in SPLITS:
            raise ValueError(f"{type(self).__name__} has splits {SPLITS}, not {split!r}")
        df = self.table()
        root = resolve_path(self.images, what="image folder").resolve()
        if not root.is_dir():
            raise ValueError(f"image folder is not a directory: {root}")
        names = self.image_split()
        everything = sorted({n for block in names.values() for n in block})
        image_id = {n: i for i, n in enumerate(everything)}
        wanted = set(names[split])
        processors = self._processors
        captions: list[Any] = []
        paths: list[str] = []
        target: list[float] = []
        rows: list[int] = []
        bad: list[tuple[int, str, str]] = []
        for i, (caption, image) in enumerate(zip(df[self.caption_column].tolist(), df[self.image_column].tolist())):
            if not isinstance(image, str) or image not in wanted:
                if not isinstance(image, str):
                    bad.append((i, self.image_column, "missing value"))
                continue
            path = str(root / image)
            reason = None
            if caption is None or (isinstance(caption, float) and math.isnan(caption)) or not str(caption).strip():
                reason = (self.caption_column, "missing or empty caption")
            elif processors is not None:
                for j, (col, value) in enumerate(((self.caption_column, caption), (self.image_column, path))):
                    try:
                        processors[j].validate(value)
                    except ValueError as exc:
                        reason = (col, str(exc))
                        break
            if reason is not None:
                bad.append((i, *reason))
                continue
            captions.append(str(caption))
            paths.append(path)
            target.append(float(image_id[image]))
            rows.append(i)
        if bad:
            first = min(bad)
            where = f"{self.captions}: row {first[0] + 1}, column {first[1]!r}: {first[2]}"
            if not self.skip_bad_rows:
                raise ValueError(f"{where} ({len(bad)} bad row(s); set data.skip_bad_rows=true to drop them)")
            self.skipped[split] = len(bad)
        if not captions:
            raise ValueError(f"{self.captions}: no rows for the {split} split ({len(wanted)} images)")
        ds = RowsDataset([captions, paths], target, rows)
        self.datasets[split] = ds
        return ds
