"""The training system: :class:`~polymodal.systems.ContrastiveSystem` with a caption tower and an
image tower, validated by caption<->image Recall@k over the whole held-out split."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from pytorch_lightning.cli import OptimizerCallable
from torch import Tensor, nn

from polymodal.distributed import gather_concat
from polymodal.modality import Encoder
from polymodal.poolers import ClsPooler, Pooler
from polymodal.recipes.grounded_sentence.losses import GroundingLoss
from polymodal.systems import ContrastiveSystem

__all__ = ["GroundedSystem", "recall_at_k"]


def recall_at_k(
    captions: np.ndarray, images: np.ndarray, caption_image: np.ndarray, ks: Sequence[int] = (1, 5, 10)
) -> dict[str, float]:
    """Caption->image and image->caption Recall@k (the Flickr8k / Karpathy convention).

    Args:
        captions: ``(N, D)`` caption embeddings.
        images: ``(M, D)`` embeddings of the distinct images.
        caption_image: ``(N,)`` index into ``images`` of each caption's image.
        ks: cut-offs.

    Returns:
        ``c2i_r{k}``: share of captions whose image ranks in the top k of all M images;
        ``i2c_r{k}``: share of images with at least one of their captions in the top k of all N
        captions; ``rsum``: the sum of all of them (in %, as papers report it); ``c2i_medr``,
        ``i2c_medr``: median rank (1 = first).
    """
    captions = np.asarray(captions, dtype=np.float64)
    images = np.asarray(images, dtype=np.float64)
    caption_image = np.asarray(caption_image, dtype=np.int64)
    scores = captions @ images.T  # (N, M)
    N, M = scores.shape
    correct = scores[np.arange(N), caption_image]  # (N,)
    c2i_rank = (scores > correct[:, None]).sum(axis=1)  # 0 = first (ties in the caption's favour)
    # image -> caption: rank of the image's best-scored own caption among all N captions
    best_own = np.full(M, -np.inf)
    np.maximum.at(best_own, caption_image, correct)
    i2c_rank = (scores.T > best_own[:, None]).sum(axis=1)  # (M,); images without captions rank N
    out: dict[str, float] = {}
    for k in ks:
        out[f"c2i_r{k}"] = float((c2i_rank < k).mean())
    for k in ks:
        out[f"i2c_r{k}"] = float((i2c_rank[np.unique(caption_image)] < k).mean())
    out["rsum"] = 100.0 * sum(v for k, v in out.items() if "_r" in k)
    out["c2i_medr"] = float(np.median(c2i_rank) + 1)
    out["i2c_medr"] = float(np.median(i2c_rank[np.unique(caption_image)]) + 1)
    return out


def _distinct(images: Tensor, ids: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """One embedding per image id, and each row's index into them."""
    ids_np = ids.cpu().numpy().round().astype(np.int64)
    unique, first, inverse = np.unique(ids_np, return_index=True, return_inverse=True)
    return images.cpu().numpy()[first], inverse


class GroundedSystem(ContrastiveSystem):
    """Caption tower + image tower trained into one space (Merkx & Frank 2019).

    Input columns are ``[caption, image]``, the target is the image id (the
    :class:`~polymodal.recipes.grounded_sentence.data.CaptionsDataModule` provides it): the loss
    uses it to skip pairs of the same image, validation to group captions by image. Validation
    and test log ``{stage}/c2i_r1`` ... ``{stage}/i2c_r10``, ``{stage}/rsum`` and medians over
    the whole split (every rank gathers all of it).

    Args:
        encoders: ``{"caption": ..., "image": ...}``.
        routes: input column -> encoder key; default ``{"caption": "caption", "image": "image"}``.
        pooler: default ``ClsPooler(use_pooled=True)`` (both towers produce a pooled vector).
        loss: default :class:`GroundingLoss` (sum-of-violations hinge, margin 0.2).
        normalize: L2-normalise both towers' embeddings (default True, as the paper).
        optimizer: optimizer factory; default AdamW lr 2e-5 (set it in YAML).
        warmup_ratio: linear warm-up share, then linear decay.
        ks: Recall cut-offs.
    """

    def __init__(
        self,
        encoders: dict[str, Encoder],
        routes: dict[str, str] | None = None,
        pooler: Pooler | None = None,
        loss: nn.Module | None = None,
        normalize: bool = True,
        optimizer: OptimizerCallable | None = None,
        warmup_ratio: float = 0.1,
        ks: Sequence[int] = (1, 5, 10),
    ) -> None:
        super().__init__(
            encoders=encoders,
            routes=routes if routes is not None else {"caption": "caption", "image": "image"},
            pooler=pooler if pooler is not None else ClsPooler(use_pooled=True),
            loss=loss if loss is not None else GroundingLoss(),
            normalize=normalize,
            optimizer=optimizer,
            warmup_ratio=warmup_ratio,
        )
        dims = {k: e.output_dim for k, e in self.encoders.items()}
        if len(set(dims.values())) != 1:
            raise ValueError(f"the towers must share an output width, got {dims}")
        self.ks = tuple(int(k) for k in ks)
        self._held: list[tuple[Tensor, Tensor, Tensor]] = []

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def _eval_step(self, batch: dict[str, Any], stage: str) -> None:
        embeddings = self._embeddings(batch)
        if len(embeddings) != 2 or batch["target"] is None:
            raise ValueError("GroundedSystem needs inputs [caption, image] and the image id as target")
        loss = self.loss_fn(embeddings, batch["target"])
        self.log(f"{stage}/loss", loss, sync_dist=True, batch_size=embeddings[0].shape[0])
        self._held.append((embeddings[0].detach().float(), embeddings[1].detach().float(), batch["target"].detach()))

    def on_validation_epoch_start(self) -> None:
        self._held = []

    on_test_epoch_start = on_validation_epoch_start

    def _log_recall(self, stage: str) -> None:
        if not self._held:
            return
        captions = gather_concat(torch.cat([c for c, _, _ in self._held]))
        images = gather_concat(torch.cat([i for _, i, _ in self._held]))
        ids = gather_concat(torch.cat([t for _, _, t in self._held]))
        self._held = []
        distinct, index = _distinct(images, ids)
        metrics = recall_at_k(captions.cpu().numpy(), distinct, index, self.ks)
        for name, value in metrics.items():
            self.log(f"{stage}/{name}", value, prog_bar=name == "rsum")

    def on_validation_epoch_end(self) -> None:
        self._log_recall("val")

    def on_test_epoch_end(self) -> None:
        self._log_recall("test")
