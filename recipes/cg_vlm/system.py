"""The CG-VLM LightningModule: stage-1 alignment (generative + contrastive) and stage-2
instruction tuning, evaluation (retrieval, perplexity, BLEU-4, CIDEr-D) and caption prediction."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.cli import OptimizerCallable
from torch import Tensor

from polymodal.evaluation.captioning import caption_scores
from polymodal.losses import InfoNCELoss
from polymodal.recipes.cg_vlm.model import CGVLM
from polymodal.schedules import with_warmup_cosine

__all__ = ["CGVLMSystem", "image_text_recall"]

log = logging.getLogger(__name__)


def _adamw(params):
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)


def image_text_recall(
    image_emb: np.ndarray, text_emb: np.ndarray, text_image: np.ndarray, ks: tuple[int, ...] = (1, 5, 10)
) -> dict[str, float]:
    """Image<->caption Recall@k by cosine similarity (the usual Flickr/COCO definitions).

    Image->caption: an image counts as found at k when *any* of its captions ranks in its top k.
    Caption->image: a caption counts when its image ranks in its top k. Ties keep corpus order.

    Args:
        image_emb: ``(I, D)`` image embeddings.
        text_emb: ``(C, D)`` caption embeddings.
        text_image: ``(C,)`` index of each caption's image.
    """
    img = image_emb / np.maximum(np.linalg.norm(image_emb, axis=1, keepdims=True), 1e-12)
    txt = text_emb / np.maximum(np.linalg.norm(text_emb, axis=1, keepdims=True), 1e-12)
    sims = img.astype(np.float64) @ txt.astype(np.float64).T  # (I, C)
    out: dict[str, float] = {}
    order_i2t = np.argsort(-sims, axis=1, kind="stable")  # (I, C)
    owner = text_image[order_i2t]  # (I, C) image of each ranked caption
    first_hit = np.argmax(owner == np.arange(sims.shape[0])[:, None], axis=1)  # (I,)
    order_t2i = np.argsort(-sims.T, axis=1, kind="stable")  # (C, I)
    rank_t2i = np.argmax(order_t2i == text_image[:, None], axis=1)  # (C,)
    for k in ks:
        out[f"i2t_r{k}"] = float((first_hit < k).mean())
        out[f"t2i_r{k}"] = float((rank_t2i < k).mean())
    return out


class CGVLMSystem(pl.LightningModule):
    """Trains and evaluates a :class:`CGVLM`.

    Stage 1 (alignment, as in the paper): only the adapter trains (``lm_trainable_layers=0``:
    the LM and the vision encoder are frozen); the loss is
    ``generative_weight * LM loss on the caption + contrastive_weight * InfoNCE(patch mean,
    caption-embedding mean)``. Either weight may be 0 (that term is then not computed).

    Stage 2 (instruction tuning): start from a stage-1 checkpoint (``init_from``) and train the
    adapter plus, optionally, the last ``lm_trainable_layers`` LM blocks (``-1``: the whole LM)
    on the answer tokens only.

    Validation logs ``val/loss``, ``val/gen_loss`` and ``val/ppl``; ``polymodal test`` reports on
    the test images: image<->caption Recall@1/5/10 in the aligned space (mean adapted patch
    token vs mean caption embedding), caption perplexity given the image (and prompt), and
    BLEU-1..4 / CIDEr-D of greedy captions against every reference; the figures are also
    written as JSON to ``metrics_file`` (default ``<default_root_dir>/test_metrics.json``).

    Checkpoints hold only what trains (adapter and unfrozen LM blocks); the frozen parts are
    rebuilt from their sources when a checkpoint is loaded.

    Args:
        model: the :class:`CGVLM`.
        generative_weight: weight of the captioning/answer LM loss (0 switches it off).
        contrastive_weight: weight of the contrastive patch--token loss (0 switches it off).
        temperature: InfoNCE temperature on cosine similarities.
        lm_trainable_layers: LM blocks to train (0: frozen LM; -1: all of it).
        init_from: checkpoint (e.g. stage 1's ``last.ckpt``) whose weights initialise the model.
        optimizer: optimizer factory.
        warmup_ratio: linear warm-up fraction, then cosine decay to ``min_lr_ratio``.
        min_lr_ratio: final learning-rate fraction.
        max_new_tokens: generation length cap at test/predict time.
        generation_batch_size: images per ``generate`` call.
        metrics_file: where ``test`` writes its JSON (relative to ``default_root_dir``).
    """

    def __init__(
        self,
        model: CGVLM,
        generative_weight: float = 1.0,
        contrastive_weight: float = 1.0,
        temperature: float = 0.07,
        lm_trainable_layers: int = 0,
        init_from: str | None = None,
        optimizer: OptimizerCallable = _adamw,
        warmup_ratio: float = 0.05,
        min_lr_ratio: float = 0.1,
        max_new_tokens: int = 24,
        generation_batch_size: int = 25,
        metrics_file: str = "test_metrics.json",
    ) -> None:
        super().__init__()
        if generative_weight < 0 or contrastive_weight < 0:
            raise ValueError("loss weights must be >= 0")
        if generative_weight == 0 and contrastive_weight == 0:
            raise ValueError("generative_weight and contrastive_weight are both 0: nothing to train")
        self.model = model
        self.generative_weight = float(generative_weight)
        self.contrastive_weight = float(contrastive_weight)
        self.contrastive = InfoNCELoss(temperature=temperature, symmetric=True)
        self.lm_trainable_layers = int(lm_trainable_layers)
        self.unfrozen = model.set_lm_trainable(self.lm_trainable_layers)
        self.optimizer_factory = optimizer
        self.warmup_ratio = warmup_ratio
        self.min_lr_ratio = min_lr_ratio
        self.max_new_tokens = max_new_tokens
        self.generation_batch_size = generation_batch_size
        self.metrics_file = metrics_file
        self.strict_loading = False  # checkpoints hold the trained parts only
        self.init_from = init_from
        if init_from:
            self.load_trained(init_from)
        self._eval: dict[str, list[Any]] = {}
        self.test_results: dict[str, Any] = {}

    # ----------------------------------------------------------- checkpoints
    def trained_keys(self) -> set[str]:
        """State-dict keys that train (and are saved): the adapter and unfrozen LM blocks."""
        names = {f"model.adapter.{n}" for n, _ in self.model.adapter.named_parameters()}
        return names | {f"model.{n}" for n in self.unfrozen}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        keep = self.trained_keys()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}
        checkpoint["cg_vlm"] = {"config": self.model.config, "trained": sorted(keep)}

    def load_trained(self, path: str) -> list[str]:
        """Load the trained parts saved in a CG-VLM checkpoint (adapter is required)."""
        file = Path(path).expanduser()
        if not file.is_file():
            raise FileNotFoundError(f"init_from checkpoint not found: {file}")
        state = torch.load(file, map_location="cpu", weights_only=False)["state_dict"]
        own = self.state_dict()
        adapter = [k for k in own if k.startswith("model.adapter.")]
        missing = [k for k in adapter if k not in state]
        if missing:
            raise ValueError(f"{file}: no adapter weights ({missing[0]} missing); is it a CG-VLM checkpoint?")
        unknown = [k for k in state if k not in own]
        if unknown:
            raise ValueError(f"{file}: {len(unknown)} keys do not fit this model, e.g. {unknown[0]}")
        for k, v in state.items():
            if own[k].shape != v.shape:
                raise ValueError(f"{file}: {k} has shape {tuple(v.shape)}, model {tuple(own[k].shape)}")
        self.load_state_dict(state, strict=False)
        log.info("cg_vlm: initialised %d tensors from %s", len(state), file)
        return list(state)

    # ----------------------------------------------------------------- losses
    def _features(self, batch: dict[str, Any]) -> Tensor:
        if "image_features" in batch:
            return batch["image_features"].to(self.device)
        return self.model.vision_features(batch["pixel_values"].to(self.device))

    def losses(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """``loss`` (weighted sum) and its parts; ``nll``/``tokens`` per example for perplexity."""
        tokens = self.model.image_tokens(self._features(batch))  # (B, N, D)
        layout = self.model.layout(tokens.shape[1], batch["prompt"], batch["answer"])
        out: dict[str, Tensor] = {}
        loss = tokens.new_zeros(())
        text_ids = layout.text_ids.to(self.device)
        if self.generative_weight > 0 or not self.training:
            embeds = self.model.embed(tokens, text_ids)  # (B, N + L, D)
            nll, count = self.model.token_nll(embeds, layout.attention_mask.to(self.device), layout.labels)
            gen = nll.sum() / count.sum().clamp(min=1)
            out.update(gen_loss=gen, nll=nll.detach(), tokens=count.detach())
            if self.generative_weight > 0:
                loss = loss + self.generative_weight * gen
        if self.contrastive_weight > 0 or not self.training:
            img = self.model.image_embedding(tokens)  # (B, D)
            txt = self.model.text_embedding(text_ids, layout.answer_mask.to(self.device))  # (B, D)
            out.update(image_emb=img.detach(), text_emb=txt.detach())
            if self.contrastive_weight > 0 and tokens.shape[0] > 1:
                con = self.contrastive([img.float(), txt.float()])
                out["con_loss"] = con
                loss = loss + self.contrastive_weight * con
        out["loss"] = loss
        return out

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        out = self.losses(batch)
        B = len(batch["answer"])
        self.log("train/loss", out["loss"], prog_bar=True, batch_size=B)
        if "gen_loss" in out:
            self.log("train/gen_loss", out["gen_loss"], batch_size=B)
        if "con_loss" in out:
            self.log("train/con_loss", out["con_loss"], batch_size=B)
        return out["loss"]

    # ------------------------------------------------------------- evaluation
    def _start(self) -> None:
        self._eval = {"nll": [], "tokens": [], "img": [], "txt": [], "image": [], "answer": [], "feat": {}, "loss": []}

    on_validation_epoch_start = _start
    on_test_epoch_start = _start

    def _collect(self, batch: dict[str, Any]) -> None:
        out = self.losses(batch)
        e = self._eval
        e["nll"].append(out["nll"].double().cpu())
        e["tokens"].append(out["tokens"].double().cpu())
        e["img"].append(out["image_emb"].float().cpu())
        e["txt"].append(out["text_emb"].float().cpu())
        e["image"].extend(batch["image"])
        e["answer"].extend(batch["answer"])
        e["loss"].append(float(out["loss"]) * len(batch["answer"]))
        if "image_features" in batch:
            for name, f in zip(batch["image"], batch["image_features"]):
                e["feat"].setdefault(name, f)
        e["prompt"] = batch["prompt"][0]

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._collect(batch)

    test_step = validation_step

    def _perplexity(self) -> tuple[float, float]:
        nll = torch.cat(self._eval["nll"]).sum()
        n = torch.cat(self._eval["tokens"]).sum()
        mean = float(nll / n.clamp(min=1))
        return mean, math.exp(min(mean, 50.0))

    def on_validation_epoch_end(self) -> None:
        if not self._eval.get("nll"):
            return
        mean, ppl = self._perplexity()
        n = len(self._eval["answer"])
        self.log("val/loss", sum(self._eval["loss"]) / max(n, 1), prog_bar=True)
        self.log("val/gen_loss", mean)
        self.log("val/ppl", ppl)

    def on_test_epoch_end(self) -> None:
        e = self._eval
        if not e.get("nll"):
            return
        mean, ppl = self._perplexity()
        names = list(dict.fromkeys(e["image"]))
        pos = {n: i for i, n in enumerate(names)}
        img_all = torch.cat(e["img"]).numpy()
        first = {}
        for row, n in enumerate(e["image"]):
            first.setdefault(n, row)
        image_emb = img_all[[first[n] for n in names]]
        text_image = np.asarray([pos[n] for n in e["image"]])
        metrics: dict[str, Any] = image_text_recall(image_emb, torch.cat(e["txt"]).numpy(), text_image)
        metrics.update(caption_nll=mean, caption_ppl=ppl)
        refs: dict[str, list[str]] = {}
        for n, a in zip(e["image"], e["answer"]):
            refs.setdefault(n, []).append(a)
        generated: dict[str, str] = {}
        if e["feat"]:
            prompt = e.get("prompt", "")
            for start in range(0, len(names), self.generation_batch_size):
                chunk = names[start : start + self.generation_batch_size]
                feats = torch.stack([e["feat"][n] for n in chunk]).to(self.device)
                for n, text in zip(chunk, self.model.generate(feats, prompt, self.max_new_tokens)):
                    generated[n] = text
            scores = caption_scores(generated, refs)
            metrics.update(scores.as_dict())
        for k, v in metrics.items():
            self.log(f"test/{k}", float(v))
        self.test_results = {
            "metrics": {k: float(v) for k, v in metrics.items()},
            "images": len(names),
            "captions": len(e["answer"]),
            "prompt": e.get("prompt", ""),
            "samples": [{"image": n, "generated": generated.get(n, ""), "reference": refs[n][0]} for n in names[:10]],
        }
        if self.trainer is not None and self.trainer.is_global_zero and self.metrics_file:
            target = Path(self.trainer.default_root_dir) / self.metrics_file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(self.test_results, indent=2) + "\n")
            print(f"cg_vlm: test metrics written to {target}")
        self._eval = {}

    # ---------------------------------------------------------------- predict
    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> list[dict[str, str]]:
        """Greedy caption/answer per image: ``[{"image", "prompt", "text"}, ...]``."""
        feats = self._features(batch)
        prompt = batch["prompt"][0] if batch.get("prompt") else ""
        texts = self.model.generate(feats, prompt, self.max_new_tokens)
        return [{"image": str(n), "prompt": prompt, "text": t} for n, t in zip(batch["image"], texts)]

    # -------------------------------------------------------------- optimizer
    def configure_optimizers(self) -> Any:
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            raise ValueError("CG-VLM has no trainable parameters")
        optimizer = self.optimizer_factory(params)
        return with_warmup_cosine(
            optimizer, self.trainer.estimated_stepping_batches, self.warmup_ratio, self.min_lr_ratio
        )
