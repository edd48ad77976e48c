"""Image-caption data for CG-VLM: a fixed split by image, frozen image features computed once,
caption batches (stage 1) and instruction/answer batches built from the captions (stage 2).

The table is tab-separated with columns ``image`` (file name under ``images``), ``caption_idx``
and ``caption`` (the layout of ``../shared/data/captions/captions.tsv``, Flickr8k). Images are
split by a hash of their file name, sorted (``sha1(name)``), so the split never depends on row
order or on the machine: by default the first 80 % of images train, the next 10 % validate and
the last 10 % test (800 / 100 / 100 for the 1,000-image subset).
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from polymodal.io import atomic_path, resolve_path

__all__ = ["DEFAULT_INSTRUCTIONS", "CaptionsDataModule", "split_images"]

log = logging.getLogger(__name__)

#: Instruction templates of stage 2 (each answered by one reference caption).
DEFAULT_INSTRUCTIONS = (
    "Describe the image.",
    "What is in the picture?",
    "Write a short caption.",
    "What do you see in this photo?",
    "Give a one-sentence description of the image.",
)


def _h(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def split_images(names: Sequence[str], sizes: Sequence[int]) -> dict[str, list[str]]:
    """Assign images to train/val/test by their sorted ``sha1(name)``: deterministic, order-free.

    Args:
        names: unique image file names.
        sizes: ``(n_train, n_val, n_test)``; must add up to at most ``len(names)``.
    """
    if len(sizes) != 3 or any(s < 0 for s in sizes):
        raise ValueError(f"split must be three non-negative counts (train, val, test), got {list(sizes)}")
    if sum(sizes) > len(names):
        raise ValueError(f"split {list(sizes)} needs {sum(sizes)} images but the table has {len(names)}")
    order = sorted(set(names), key=lambda n: (_h(n), n))
    a, b, c = sizes
    return {"train": order[:a], "val": order[a : a + b], "test": order[a + b : a + b + c]}


class _Rows(Dataset):
    """``(image index, prompt, answer)`` rows over a feature tensor."""

    def __init__(self, rows: list[tuple[int, str, str]], names: list[str], features: Tensor) -> None:
        self.rows = rows
        self.names = names
        self.features = features

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        img, prompt, answer = self.rows[i]
        return {"image": self.names[img], "image_features": self.features[img], "prompt": prompt, "answer": answer}


class _Images(Dataset):
    """Raw image files for prediction (decoded and preprocessed in the workers)."""

    def __init__(self, paths: list[str], processor: Any, prompt: str) -> None:
        self.paths = paths
        self.processor = processor
        self.prompt = prompt

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        pixels = torch.from_numpy(self.processor.transform(self.paths[i]))  # (3, S, S)
        return {"image": self.paths[i], "pixel_values": pixels, "prompt": self.prompt}


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in items[0]:
        vals = [it[key] for it in items]
        out[key] = torch.stack(vals).float() if isinstance(vals[0], Tensor) else vals
    return out


class CaptionsDataModule(pl.LightningDataModule):
    """Flickr-style captions for CG-VLM stage 1 (captioning) and stage 2 (instructions).

    Stage 1 (``task="caption"``): every epoch visits each training image once with one of its
    captions, drawn per epoch (so no image repeats within a batch: the in-batch contrastive
    negatives are other images); the prompt is empty.

    Stage 2 (``task="instruct"``): the instruction set pairs each training image with
    ``pairs_per_image`` of its captions, each under one instruction template (chosen by hash);
    ``instruction_fraction`` keeps a deterministic subset (sorted by hash) of those pairs. The
    prompt is ``prompt_template.format(instruction=...)`` and only the answer is a target.

    Validation and test use every caption of their images with ``eval_instruction`` (stage 2)
    or an empty prompt (stage 1).

    Frozen image features are computed once with the model's vision encoder and, with
    ``cache_dir``, stored there keyed by the encoder's fingerprint and the image files (name and
    size), so later runs (stage 2, evaluation) skip the CNN.

    Args:
        captions: the caption table (tsv; ``package://`` allowed).
        images: folder with the image files (default: ``images/`` beside the table).
        task: ``"caption"`` (stage 1) or ``"instruct"`` (stage 2).
        split: image counts ``(train, val, test)``; default 80/10/10 % of the images.
        instruction_fraction: fraction of the stage-2 instruction pairs used (0 < f <= 1).
        pairs_per_image: captions per training image turned into instruction pairs (1-5).
        instructions: instruction templates for stage 2.
        prompt_template: how an instruction becomes the prompt text.
        eval_instruction: instruction used for validation/test/prediction prompts in stage 2.
        batch_size: training batch size.
        eval_batch_size: validation/test batch size.
        max_val_images: cap on validation images (evaluation cost).
        max_train_images: train on the first N training images only (CPU budgets; the split
            itself is unchanged).
        max_test_images: evaluate on the first N test images only (CPU budgets).
        cache_dir: folder for the frozen feature cache (``None``: keep in memory only).
        predict: image paths for ``polymodal predict``.
        feature_batch_size: images per forward pass when computing frozen features.
        num_workers: DataLoader workers for training batches.
        seed: seed of the per-epoch caption draw.
    """

    def __init__(
        self,
        captions: str = "../shared/data/captions/captions.tsv",
        images: str | None = None,
        task: Literal["caption", "instruct"] = "caption",
        split: tuple[int, int, int] | None = None,
        instruction_fraction: float = 1.0,
        pairs_per_image: int = 5,
        instructions: Sequence[str] = DEFAULT_INSTRUCTIONS,
        prompt_template: str = "{instruction}\n",
        eval_instruction: str = "Describe the image.",
        batch_size: int = 16,
        eval_batch_size: int = 32,
        max_val_images: int | None = None,
        max_train_images: int | None = None,
        max_test_images: int | None = None,
        cache_dir: str | None = None,
        predict: list[str] | None = None,
        feature_batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if task not in ("caption", "instruct"):
            raise ValueError(f"task must be 'caption' or 'instruct', got {task!r}")
        if not 0.0 < instruction_fraction <= 1.0:
            raise ValueError(f"instruction_fraction must be in (0, 1], got {instruction_fraction}")
        if not 1 <= pairs_per_image <= 5:
            raise ValueError(f"pairs_per_image must be in 1..5, got {pairs_per_image}")
        if "{instruction}" not in prompt_template:
            raise ValueError(f"prompt_template must contain '{{instruction}}', got {prompt_template!r}")
        if not instructions:
            raise ValueError("instructions must not be empty")
        self.captions = captions
        self.images = images
        self.task = task
        self.split = tuple(split) if split is not None else None
        self.instruction_fraction = instruction_fraction
        self.pairs_per_image = pairs_per_image
        self.instructions = list(instructions)
        self.prompt_template = prompt_template
        self.eval_instruction = eval_instruction
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.max_val_images = max_val_images
        self.max_train_images = max_train_images
        self.max_test_images = max_test_images
        self.cache_dir = cache_dir
        self.predict = list(predict or [])
        self.feature_batch_size = feature_batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.refs: dict[str, list[str]] = {}
        self.splits: dict[str, list[str]] = {}
        self.features: Tensor | None = None
        self.index: dict[str, int] = {}
        self._loaded = False

    # ------------------------------------------------------------------ table
    @property
    def eval_prompt(self) -> str:
        """Prompt for evaluation and prediction: empty in stage 1, the eval instruction in stage 2."""
        return self.prompt_template.format(instruction=self.eval_instruction) if self.task == "instruct" else ""

    def _folder(self) -> Path:
        table = resolve_path(self.captions, what="caption table")
        return resolve_path(self.images, what="image folder") if self.images else table.parent / "images"

    def read_table(self) -> dict[str, list[str]]:
        """``{image: [captions in caption_idx order]}``; every referenced file must exist.

        Raises:
            ValueError: missing columns, empty captions, or a missing/empty image file (naming
                the table, the 1-based data row and the file).
        """
        import csv

        path = resolve_path(self.captions, what="caption table")
        folder = self._folder()
        refs: dict[str, list[tuple[int, str]]] = {}
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
            missing = {"image", "caption"} - set(reader.fieldnames or [])
            if missing:
                raise ValueError(f"{path}: missing column(s) {sorted(missing)}; found {reader.fieldnames}")
            checked: set[str] = set()
            for row_no, row in enumerate(reader, start=1):
                name = (row.get("image") or "").strip()
                caption = (row.get("caption") or "").strip()
                if not name or not caption:
                    raise ValueError(f"{path} row {row_no}: empty image name or caption")
                if name not in checked:
                    f = folder / name
                    if not f.is_file():
                        raise ValueError(f"{path} row {row_no}: image file not found: {f}")
                    if f.stat().st_size == 0:
                        raise ValueError(f"{path} row {row_no}: image file is empty (0 bytes): {f}")
                    checked.add(name)
                idx = int(row["caption_idx"]) if row.get("caption_idx", "").strip() else len(refs.get(name, []))
                refs.setdefault(name, []).append((idx, caption))
        if not refs:
            raise ValueError(f"{path}: no caption rows")
        return {k: [c for _, c in sorted(v)] for k, v in refs.items()}

    # --------------------------------------------------------------- features
    def _cache_file(self, model: Any, names: list[str], folder: Path) -> Path | None:
        if not self.cache_dir:
            return None
        h = hashlib.sha256(model.vision_fingerprint().encode())
        for n in names:
            h.update(f"{n}\t{(folder / n).stat().st_size}\n".encode())
        return Path(self.cache_dir).expanduser() / f"cg_vlm-features-{h.hexdigest()[:24]}.pt"

    def compute_features(self, model: Any, names: list[str]) -> Tensor:
        """Frozen grid features ``(N_images, N_tokens, C)`` (float16 in the cache) for ``names``,
        loaded from the cache when present; a corrupt image names the file and its table row."""
        folder = self._folder()
        cache = self._cache_file(model, names, folder)
        if cache is not None and cache.is_file():
            data = torch.load(cache, map_location="cpu", weights_only=True)
            if list(data["names"]) == names:
                log.info("cg_vlm: image features from cache %s", cache)
                return data["features"].float()
        processor = model.vision.processor
        device = next(model.adapter.parameters()).device
        chunks = []
        for start in range(0, len(names), self.feature_batch_size):
            batch = []
            for n in names[start : start + self.feature_batch_size]:
                try:
                    batch.append(torch.from_numpy(processor.transform(str(folder / n))))
                except ValueError as exc:
                    raise ValueError(f"{self.captions} row {self._row_of(n)}: {exc}") from None
            pixels = torch.stack(batch).to(device)  # (b, 3, S, S)
            chunks.append(model.vision_features(pixels).to("cpu", torch.float16))
        features = torch.cat(chunks)  # (N, T, C)
        if cache is not None:
            with atomic_path(cache) as tmp:
                torch.save({"names": names, "features": features}, tmp)
            log.info("cg_vlm: cached %d image features in %s", len(names), cache)
        return features.float()

    def _row_of(self, name: str) -> int:
        """1-based data row of the first caption of ``name`` (for error messages)."""
        path = resolve_path(self.captions, what="caption table")
        with open(path, encoding="utf-8") as fh:
            next(fh, None)
            for i, line in enumerate(fh, start=1):
                if line.split("\t", 1)[0].strip() == name:
                    return i
        return -1

    def _model(self) -> Any:
        module = self.trainer.lightning_module if self.trainer is not None else None
        model = getattr(module, "model", None)
        if model is None or not hasattr(model, "vision_features"):
            raise ValueError("CaptionsDataModule needs a trainer whose module has a CG-VLM .model")
        return model

    def setup(self, stage: str | None = None) -> None:
        if stage == "predict" or self._loaded:
            return
        self.refs = self.read_table()
        names = sorted(self.refs)
        sizes = self.split
        if sizes is None:
            n = len(names)
            n_val = n_test = max(1, round(0.1 * n))
            sizes = (n - n_val - n_test, n_val, n_test)
        self.splits = split_images(names, sizes)
        used = self.splits["train"] + self.splits["val"] + self.splits["test"]
        self.index = {n: i for i, n in enumerate(used)}
        self.features = self.compute_features(self._model(), used)
        self._loaded = True

    # ------------------------------------------------------------------- rows
    def instruction_pairs(self) -> list[tuple[int, str, str]]:
        """Stage-2 rows ``(image index, prompt, answer)`` (the configured fraction)."""
        pairs = []
        for name in self._train_names():
            for k, cap in enumerate(self.refs[name][: self.pairs_per_image]):
                key = _h(f"{name}#{k}")
                instr = self.instructions[int(key[:8], 16) % len(self.instructions)]
                pairs.append((key, self.index[name], self.prompt_template.format(instruction=instr), cap))
        pairs.sort()
        keep = max(1, math.ceil(len(pairs) * self.instruction_fraction))
        return [(i, p, a) for _, i, p, a in pairs[:keep]]

    def caption_rows(self, epoch: int) -> list[tuple[int, str, str]]:
        """Stage-1 rows for one epoch: each training image once with a caption drawn for the epoch."""
        rng = random.Random(self.seed * 100_003 + epoch)
        return [(self.index[n], "", rng.choice(self.refs[n])) for n in self._train_names()]

    def _train_names(self) -> list[str]:
        names = self.splits["train"]
        return names[: self.max_train_images] if self.max_train_images else names

    def eval_rows(self, split: str, max_images: int | None = None) -> list[tuple[int, str, str]]:
        names = self.splits[split][:max_images] if max_images else self.splits[split]
        return [(self.index[n], self.eval_prompt, c) for n in names for c in self.refs[n]]

    def _names(self) -> list[str]:
        return list(self.index)

    # ------------------------------------------------------------ dataloaders
    def train_dataloader(self) -> DataLoader:
        assert self.features is not None
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        rows = self.caption_rows(epoch) if self.task == "caption" else self.instruction_pairs()
        return DataLoader(
            _Rows(rows, self._names(), self.features),
            batch_size=self.batch_size,
            shuffle=True,
            collate_fn=_collate,
            num_workers=self.num_workers,
            generator=torch.Generator().manual_seed(self.seed + epoch),
        )

    def val_dataloader(self) -> DataLoader:
        assert self.features is not None
        rows = self.eval_rows("val", self.max_val_images)
        return DataLoader(
            _Rows(rows, self._names(), self.features), batch_size=self.eval_batch_size, collate_fn=_collate
        )

    def test_dataloader(self) -> DataLoader:
        assert self.features is not None
        rows = self.eval_rows("test", self.max_test_images)
        return DataLoader(
            _Rows(rows, self._names(), self.features), batch_size=self.eval_batch_size, collate_fn=_collate
        )

    def predict_dataloader(self) -> DataLoader:
        if not self.predict:
            raise ValueError("nothing to predict: pass image paths with --data.init_args.predict='[a.jpg, b.jpg]'")
        processor = self._model().vision.processor
        return DataLoader(
            _Images(self.predict, processor, self.eval_prompt),
            batch_size=self.eval_batch_size,
            collate_fn=_collate,
            num_workers=self.num_workers,
        )

    def describe(self) -> dict[str, Any]:
        """Split sizes and training row count (for logs and the results table)."""
        rows = len(self.instruction_pairs()) if self.task == "instruct" else len(self._train_names())
        return {"images": {k: len(v) for k, v in self.splits.items()}, "task": self.task, "train_rows": rows}
