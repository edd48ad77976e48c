"""DefSent+'s own parts: a frozen table of entry embeddings, its quasi-isotropic projection, the definition ->
entry cross-entropy, and the Lightning callback that rebuilds the table from the encoder during training.

DefSent (Tsukagoshi et al., 2021) classifies a definition's sentence embedding against the frozen word-embedding
matrix of the language model (its tied MLM prediction layer), so entries are single vocabulary tokens and the
(anisotropic) target space cannot be pre-processed. DefSent+ (Liu, 2024) instead embeds every entry -- multi-word
included -- as the mean of the encoder's embeddings of the entry's definitions, and builds these entry embeddings
progressively ("progressive separate training"): they are frozen while the encoder trains and rebuilt from the
updated encoder. Here:

* :class:`EntryTable` -- the projection. ``"center"`` (default): subtract the table mean, L2-normalise every row
  (quasi-isotropic: removes the common direction that makes all cosines high, cheap, well defined for any
  number of entries). ``"whiten"``: also map the centred table's covariance to the identity (isotropic;
  needs many more entries than dimensions, else regularised by ``eps``). ``"none"``: L2 normalisation only (the
  ablation). The same affine map is applied to the definition embeddings, so both live in one space.
* :class:`DefinitionEntryLoss` -- an objective: ``CE(cos(P(q_i), T) / temperature, entry_i)`` over the whole
  table ``T`` (E, D), as DefSent's softmax over the whole vocabulary. With ``leave_one_out`` (our addition,
  see docs/results.md) the target column of row ``i`` is its entry's mean *without* row ``i``'s own
  definition: with 1-2 definitions per entry (GCIDE averages 1.6) the plain target is mostly the definition's
  own earlier embedding, which the model recognises at once (training loss ~0.01 after 16 steps at our scale).
* :class:`RefreshEntryTable` -- the callback: builds the table at the start of fitting and rebuilds it every
  ``every_n_steps`` optimiser steps (0: never again, the "no refresh" ablation) from the training split's
  definitions, with ``pl_module.embedding_model(column)`` in eval mode (no dropout, no gradient).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Literal

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polymodal.objectives.base import Objective

if TYPE_CHECKING:  # pragma: no cover
    from polymodal.system import Step

__all__ = ["DefinitionEntryLoss", "EntryTable", "RefreshEntryTable", "entry_means"]

log = logging.getLogger(__name__)

Projection = Literal["center", "whiten", "none"]


def entry_means(embeddings: Tensor, ids: Tensor, num_entries: int | None = None) -> Tensor:
    """Mean embedding per entry id: ``(N, D)``, ``(N,)`` -> ``(E, D)``; an id without rows is an error."""
    ids = ids.long()
    count = int(ids.max()) + 1 if num_entries is None else int(num_entries)
    sums = torch.zeros(count, embeddings.shape[1], dtype=embeddings.dtype, device=embeddings.device)
    sums.index_add_(0, ids, embeddings)  # (E, D)
    n = torch.bincount(ids, minlength=count).to(embeddings.dtype)  # (E,)
    if bool((n == 0).any()):
        missing = int((n == 0).nonzero()[0, 0])
        raise ValueError(f"entry id {missing} has no definition row (ids must be dense 0..{count - 1})")
    return sums / n[:, None]


class EntryTable(nn.Module):
    """A frozen, projected table of entry embeddings (non-persistent buffers: rebuilt, never checkpointed).

    Args:
        projection: ``"center"``, ``"whiten"`` or ``"none"`` (see the module doc).
        eps: whitening regulariser, relative to the largest covariance eigenvalue.
    """

    def __init__(self, projection: Projection = "center", eps: float = 1e-4) -> None:
        super().__init__()
        if projection not in ("center", "whiten", "none"):
            raise ValueError(f"projection must be center, whiten or none, got {projection!r}")
        self.projection, self.eps = projection, float(eps)
        self.register_buffer("table", torch.empty(0), persistent=False)  # (E, D)
        self.register_buffer("mean", torch.empty(0), persistent=False)  # (D,)
        self.register_buffer("transform", torch.empty(0), persistent=False)  # (D, D) when whitening
        self.register_buffer("sums", torch.empty(0), persistent=False)  # (E, D) raw, for leave-one-out
        self.register_buffer("counts", torch.empty(0), persistent=False)  # (E,)
        self.register_buffer("rows", torch.empty(0), persistent=False)  # (N, D) raw definition embeddings
        self.positions: dict[int, int] = {}  # batch row number -> row of ``rows``
        self.version = 0

    @property
    def built(self) -> bool:
        return self.table.numel() > 0

    def set(self, entries: Tensor) -> None:
        """Fit the projection on raw entry embeddings ``(E, D)`` and store the projected, normalised table."""
        entries = entries.detach().float()
        if entries.ndim != 2 or entries.shape[0] < 2:
            raise ValueError(f"an entry table needs at least 2 entries of shape (E, D), got {tuple(entries.shape)}")
        self.mean = entries.mean(0) if self.projection != "none" else torch.zeros_like(entries[0])
        self.transform = torch.empty(0, device=entries.device)
        if self.projection == "whiten":
            centred = entries - self.mean
            cov = centred.T @ centred / max(entries.shape[0] - 1, 1)  # (D, D)
            values, vectors = torch.linalg.eigh(cov)
            values = values.clamp_min(0) + self.eps * float(values.max().clamp_min(1e-12))
            self.transform = vectors * values.rsqrt()  # (D, D): x -> x @ U diag(1/sqrt(l))
        self.table = self.project(entries)
        self.version += 1

    def set_rows(self, embeddings: Tensor, ids: Tensor, rows: list[int], keep_rows: bool = False) -> None:
        """Build from definition embeddings ``(N, D)`` and their entry ids ``(N,)`` (entry = mean of its rows);
        ``keep_rows`` keeps them (with the batch row numbers ``rows``) for :meth:`leave_one_out`."""
        embeddings = embeddings.detach().float()
        ids = ids.long()
        self.set(entry_means(embeddings, ids))
        if keep_rows:
            self.counts = torch.bincount(ids, minlength=self.table.shape[0]).float()  # (E,)
            if bool((self.counts < 2).any()):
                e = int((self.counts < 2).nonzero()[0, 0])
                raise ValueError(
                    f"leave_one_out needs >= 2 definitions per entry, entry id {e} has 1 (set min_definitions: 2)"
                )
            self.sums = embeddings.new_zeros(self.counts.shape[0], embeddings.shape[1])  # (E, D)
            self.sums.index_add_(0, ids, embeddings)
            self.rows, self.positions = embeddings, {int(r): i for i, r in enumerate(rows)}

    def leave_one_out(self, ids: Tensor, rows: list[int]) -> Tensor:
        """Projected mean of each row's entry without that row's own definition: ``(B,)`` -> ``(B, D')``."""
        if not self.positions:
            raise RuntimeError("the entry table keeps no definition rows: build it with keep_rows=True")
        try:
            pos = torch.as_tensor([self.positions[int(r)] for r in rows], device=self.rows.device)
        except KeyError as e:
            raise ValueError(f"batch row {e.args[0]} is not a row the entry table was built from") from None
        ids = ids.long().to(self.sums.device)
        means = (self.sums[ids] - self.rows[pos]) / (self.counts[ids] - 1)[:, None]  # (B, D)
        return self.project(means)

    def project(self, x: Tensor) -> Tensor:
        """The table's affine map, then L2 normalisation: ``(B, D)`` -> ``(B, D')``."""
        x = x - self.mean.to(x.dtype)
        if self.transform.numel():
            x = x @ self.transform.to(x.dtype)
        return F.normalize(x, dim=-1)

    def logits(self, queries: Tensor, temperature: float) -> Tensor:
        """Cosine of each projected query with every entry, over ``temperature``: ``(B, D)`` -> ``(B, E)``."""
        if not self.built:
            raise RuntimeError("the entry table is empty: add the RefreshEntryTable callback to trainer.callbacks")
        return self.project(queries) @ self.table.to(queries.dtype).T / temperature


class DefinitionEntryLoss(Objective):
    """Cross-entropy of a definition's embedding against the whole entry table (DefSent / DefSent+).

    Args:
        column: the definition input column.
        target: the entry-id target (``DictionaryDefinitions``' ``entry_id``).
        temperature: softmax temperature of the cosine logits.
        projection: the table's projection (:class:`EntryTable`).
        weight: weight in the total loss.
        leave_one_out: the true entry's column uses the mean of the entry's other definitions (needs >= 2
            definitions per entry); the other columns stay the full means.
        stages: where it runs (default training only: validation is STS).
    """

    def __init__(
        self,
        column: str = "definition",
        target: str = "entry_id",
        temperature: float = 0.05,
        projection: Projection = "center",
        leave_one_out: bool = False,
        weight: float = 1.0,
        stages: tuple[str, ...] | list[str] = ("train",),
    ) -> None:
        super().__init__(weight, stages)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        self.column, self.target, self.temperature = column, target, float(temperature)
        self.leave_one_out = bool(leave_one_out)
        self.entries = EntryTable(projection)

    def requires(self) -> tuple[list[str], list[str]]:
        return [self.column], [self.target]

    def loss(self, queries: Tensor, ids: Tensor, rows: list[int] | None = None) -> Tensor:
        """``(B, D)`` definition embeddings, ``(B,)`` entry ids (and with ``leave_one_out`` the batch row numbers)
        -> scalar mean cross-entropy."""
        logits = self.entries.logits(queries, self.temperature)  # (B, E)
        ids = ids.long()
        bad = (ids < 0) | (ids >= logits.shape[1])
        if bool(bad.any()):
            raise ValueError(
                f"{self.target}: entry id {int(ids[bad][0])} outside the table of {logits.shape[1]} entries"
            )
        if self.leave_one_out:
            if rows is None:
                raise ValueError("leave_one_out needs the batch row numbers")
            own = (self.entries.project(queries) * self.entries.leave_one_out(ids, rows)).sum(-1)  # (B,)
            logits = logits.scatter(1, ids[:, None], (own / self.temperature)[:, None])
        return F.cross_entropy(logits, ids)

    def forward(self, step: Step) -> Tensor:
        rows = list(step.batch.rows) if self.leave_one_out else None
        return self.loss(step.embed(self.column), step.target(self.target), rows)


class RefreshEntryTable(pl.Callback):
    """Builds every :class:`DefinitionEntryLoss` table when fitting starts and rebuilds it every
    ``every_n_steps`` optimiser steps from the training split (entry = mean of its definitions' embeddings).

    Args:
        every_n_steps: rebuild period in optimiser steps; 0 = build once and keep it frozen.
        batch_size: encoding batch size.

    Attributes:
        history: ``(global_step, seconds)`` of every build.
    """

    def __init__(self, every_n_steps: int = 50, batch_size: int = 128) -> None:
        if isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int) or every_n_steps < 0:
            raise ValueError(f"every_n_steps must be an integer >= 0, got {every_n_steps!r}")
        self.every_n_steps, self.batch_size = every_n_steps, int(batch_size)
        self.history: list[tuple[int, float]] = []

    @staticmethod
    def objectives(pl_module: pl.LightningModule) -> list[DefinitionEntryLoss]:
        found = [o for o in getattr(pl_module, "objectives", {}).values() if isinstance(o, DefinitionEntryLoss)]
        if not found:
            raise ValueError("RefreshEntryTable: the model has no DefinitionEntryLoss objective")
        return found

    def refresh(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Re-encode the training definitions with the current encoder and rebuild the tables."""
        data: Any = trainer.datamodule  # type: ignore[attr-defined]
        rows = data.load_split("train")
        for objective in self.objectives(pl_module):
            start = time.perf_counter()
            if objective.column not in rows.columns or objective.target not in rows.targets:
                raise ValueError(
                    f"RefreshEntryTable: the training split needs input {objective.column!r} and target "
                    f"{objective.target!r} (data.inputs / data.target)"
                )
            model = pl_module.embedding_model(objective.column)  # type: ignore[operator]
            emb = model.encode(list(rows.columns[objective.column]), batch_size=self.batch_size, convert_to="tensor")
            emb = emb.clone().to(pl_module.device)  # (N, D); out of inference mode
            ids = torch.as_tensor(rows.targets[objective.target], device=emb.device)  # (N,)
            objective.entries.set_rows(emb, ids, list(rows.rows), keep_rows=objective.leave_one_out)
            seconds = time.perf_counter() - start
            self.history.append((trainer.global_step, seconds))
            log.info(
                "entry table %s: %d entries from %d definitions at step %d in %.1f s",
                objective.name,
                objective.entries.table.shape[0],
                emb.shape[0],
                trainer.global_step,
                seconds,
            )

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.refresh(trainer, pl_module)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        last = trainer.max_steps is not None and 0 < trainer.max_steps <= step  # no rebuild nobody trains on
        due = self.every_n_steps and step > 0 and step % self.every_n_steps == 0
        if due and self.history[-1][0] != step and not last:
            self.refresh(trainer, pl_module)
            pl_module.log("train/table_refresh_s", self.history[-1][1])

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.history:
            total = sum(s for _, s in self.history)
            log.info(
                "entry table: %d builds, %.1f s in all (steps %s)",
                len(self.history),
                total,
                [s for s, _ in self.history],
            )
