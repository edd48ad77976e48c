"""2D Matryoshka sentence embeddings (2DMSE): elastic in depth (layers) and width (dims).

References:
    Li et al., "2D Matryoshka Sentence Embeddings" (2024), https://arxiv.org/abs/2402.14776
    (v1; v2 is titled "ESE: Espresso Sentence Embeddings"); Zhuang et al., "Starbucks:
    Improved Training for 2D Matryoshka Embeddings" (2024), https://arxiv.org/abs/2410.13230 ;
    sentence-transformers' ``Matryoshka2dLoss`` = ``AdaptiveLayerLoss(MatryoshkaLoss(...))``.

Each training step:

1. the last layer is trained at every dim in ``dims`` (a :func:`matryoshka_loss`), weight
   ``last_layer_weight``;
2. ``layers_per_step`` earlier layers ``l`` are sampled uniformly from ``layers``; each is
   pooled with the same pooler and trained at every dim, weight
   ``prior_layers_weight * w(l) / layers_per_step``;
3. each sampled layer is pulled towards the last layer's (detached) embedding with a
   KL divergence between temperature softmaxes, weight ``kl_weight * kl_temperature``.

**Layer weighting** ``w(l)``: chosen explicitly with ``layer_weighting`` (there is no
silent default in the literature; the papers differ):

* ``"uniform"`` (default here): ``w(l) = 1``; the 2DMSE v1 objective and what Starbucks
  found to work best.
* ``"log"``: ``w(l) = 1 / (1 + ln(1 + l))``; the ESE / 2DMSE-v2 weighting.
* ``"linear"``: ``w(l) = 1 / (1 + l)``; earlier sentence-transformers' AdaptiveLayerLoss.

``l`` is the 1-based layer index (``Features.hidden_states[l]``). Sampling uses
:mod:`torch`'s RNG, so ``seed_everything`` makes runs repeatable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polymodal.losses.matryoshka import matryoshka_loss
from polymodal.objectives.base import STAGES, Objective

if TYPE_CHECKING:  # pragma: no cover
    from polymodal.system import Step

__all__ = ["Matryoshka2DLoss", "layer_weight", "layer_kl_loss"]

LayerWeighting = Literal["uniform", "log", "linear"]


def layer_weight(layer: int, scheme: LayerWeighting) -> float:
    """Weight of sampled layer ``layer`` (1-based) under ``scheme`` (see the module docstring)."""
    if scheme == "uniform":
        return 1.0
    if scheme == "log":
        return 1.0 / (1.0 + math.log(1 + layer))
    if scheme == "linear":
        return 1.0 / (1 + layer)
    raise ValueError(f"unknown layer_weighting {scheme!r}; choose 'uniform', 'log' or 'linear'")


def layer_kl_loss(layer_emb: Tensor, final_emb: Tensor, temperature: float) -> Tensor:
    """``KL(softmax(final / t) || softmax(layer / t)) * t`` (batchmean); ``final`` is detached."""
    target = F.softmax(final_emb.detach() / temperature, dim=-1)
    return F.kl_div(F.log_softmax(layer_emb / temperature, dim=-1), target, reduction="batchmean") * temperature


class Matryoshka2DLoss(Objective):
    """2DMSE around any polymodal loss: an objective of :class:`polymodal.System` that reads every
    layer's features from the step; the encoder must return ``hidden_states``
    (e.g. ``TextEncoder(hidden_states=True)``).

    Args:
        loss: inner loss (CoSENT, InfoNCE, ...).
        dims: embedding prefix lengths trained at every layer, e.g. ``[384, 192, 96, 48]``.
        layers: candidate earlier layers (1-based); default every layer but the last.
        layers_per_step: layers sampled per step.
        layer_weighting: ``"uniform"`` | ``"log"`` | ``"linear"`` (module docstring).
        last_layer_weight: weight of the last-layer term.
        prior_layers_weight: weight of the sampled-layer terms.
        kl_weight: weight of the layer-to-last KL term (0 disables it).
        kl_temperature: softmax temperature of the KL term.
        dim_weights: per-dim weights of the inner Matryoshka sum.
        weight: weight in the System's total loss.
        stages: where it runs.

    In validation it is the Matryoshka loss over ``dims`` on the last-layer embeddings.
    """

    def __init__(
        self,
        loss: nn.Module,
        dims: Sequence[int],
        layers: Sequence[int] | None = None,
        layers_per_step: int = 1,
        layer_weighting: LayerWeighting = "uniform",
        last_layer_weight: float = 1.0,
        prior_layers_weight: float = 1.0,
        kl_weight: float = 1.0,
        kl_temperature: float = 0.3,
        dim_weights: Sequence[float] | None = None,
        weight: float = 1.0,
        stages: Sequence[str] = STAGES,
    ) -> None:
        super().__init__(weight, stages)
        layer_weight(1, layer_weighting)  # validates the name
        if not dims:
            raise ValueError("Matryoshka2DLoss needs at least one dim")
        if layers_per_step < 1:
            raise ValueError(f"layers_per_step must be >= 1, got {layers_per_step}")
        if kl_temperature <= 0:
            raise ValueError(f"kl_temperature must be > 0, got {kl_temperature}")
        self.loss = loss
        self.dims = [int(d) for d in dims]
        self.layers = None if layers is None else [int(x) for x in layers]
        self.layers_per_step = layers_per_step
        self.layer_weighting = layer_weighting
        self.last_layer_weight = last_layer_weight
        self.prior_layers_weight = prior_layers_weight
        self.kl_weight = kl_weight
        self.kl_temperature = kl_temperature
        self.dim_weights = None if dim_weights is None else [float(w) for w in dim_weights]

    def forward(self, step: Step) -> Tensor:
        if not step.training:
            return matryoshka_loss(
                self.loss, step.embeddings(), step.target(required=False), self.dims, self.dim_weights
            )
        return self.loss_from_context(step)

    def candidate_layers(self, num_layers: int) -> list[int]:
        layers = self.layers if self.layers is not None else list(range(1, num_layers))
        bad = [x for x in layers if not 1 <= x < num_layers]
        if bad:
            raise ValueError(
                f"Matryoshka2DLoss layers {bad} outside 1..{num_layers - 1} for a {num_layers}-layer encoder"
            )
        if not layers:
            raise ValueError("Matryoshka2DLoss: the encoder has a single layer; nothing to sample")
        return layers

    def sample_layers(self, num_layers: int) -> list[int]:
        layers = self.candidate_layers(num_layers)
        k = min(self.layers_per_step, len(layers))
        picks = torch.randperm(len(layers))[:k].tolist()
        return sorted(layers[i] for i in picks)

    def loss_from_context(self, context: Step) -> Tensor:
        features = [context.features(j) for j in range(context.num_columns)]
        if features[0].hidden_states is None:
            raise ValueError("Matryoshka2DLoss needs hidden states: build the encoder with hidden_states=True")
        target = context.target(required=False)
        final = [context.pool(f, j) for j, f in enumerate(features)]
        total = self.last_layer_weight * matryoshka_loss(self.loss, final, target, self.dims, self.dim_weights)
        sampled = self.sample_layers(features[0].num_layers)
        for layer in sampled:
            emb = [context.pool(f.at_layer(layer), j) for j, f in enumerate(features)]
            w = self.prior_layers_weight * layer_weight(layer, self.layer_weighting) / len(sampled)
            total = total + w * matryoshka_loss(self.loss, emb, target, self.dims, self.dim_weights)
            if self.kl_weight > 0:
                kl = sum(layer_kl_loss(e, f, self.kl_temperature) for e, f in zip(emb, final)) / len(emb)
                total = total + self.kl_weight * kl
        return total
