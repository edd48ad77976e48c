"""The contextual sentence predictor of "Let's Predict Sentence by Sentence" (issue 19, part (b)).

A pretrained causal LM reads a problem's question as ordinary tokens and then its reasoning sentences as *one
input embedding each* (a frozen sentence encoder's vector -> the core :class:`~polymodal.PrefixLM` adapter), and a
regression head on the last hidden state of each position predicts the sentence encoder's vector of the next
sentence::

    [question tokens][v(s1)][v(s2)] ... [v(s_{n-1})] --(LM)--> h --(head)--> v^(s1), v^(s2), ..., v^(s_n)

It is a :class:`~polymodal.PrefixLM` subclass, so the LM loading, the vector adapter, the frozen encoder, the
trainable-layer globs and the model folder (``prefix_lm.json`` + safetensors, registry-resolved class) are the
core's; only the head, the chain processor and the loss are this recipe's. Loss
(:func:`sentence_prediction_loss`): ``1 - cos(v^, v)`` averaged over the predicted sentences, plus
``contrastive_weight`` x in-batch InfoNCE (every other sentence of the batch is a negative).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pytorch_lightning.cli import OptimizerCallable
from torch import Tensor, nn

from polymodal.features import Features
from polymodal.modality import Encoder, Processor
from polymodal.prefix_lm import PrefixLM, PrefixTextProcessor, _seeded
from polymodal.registry import register_class
from polymodal.system import System

__all__ = ["SentenceChainProcessor", "SentencePredictor", "SentencePredictorSystem", "sentence_prediction_loss"]


def sentence_prediction_loss(
    predicted: Tensor, target: Tensor, mask: Tensor, temperature: float = 0.05, contrastive_weight: float = 1.0
) -> Tensor:
    """Cosine regression + in-batch InfoNCE between predicted and true next-sentence vectors.

    Args:
        predicted: ``(B, S, C)`` predicted vectors.
        target: ``(B, S, C)`` the sentence encoder's vectors of the true sentences.
        mask: ``(B, S)`` which positions are real sentences.
        temperature: InfoNCE temperature (on cosine similarities).
        contrastive_weight: weight of the InfoNCE term (0: cosine only).

    Returns:
        ``mean(1 - cos(p_i, t_i)) + contrastive_weight * mean_i(-log softmax_j(cos(p_i, t_j) / T)[i])`` over the
        ``K`` real positions ``i`` (the ``K`` true vectors of the batch are the candidates ``j``).
    """
    keep = mask.bool()
    if not keep.any():
        raise ValueError("sentence_prediction_loss: the batch has no sentence to predict (every mask is False)")
    p = F.normalize(predicted[keep].float(), dim=-1)  # (K, C)
    t = F.normalize(target[keep].float(), dim=-1)  # (K, C)
    loss = (1.0 - (p * t).sum(dim=-1)).mean()
    if contrastive_weight > 0:
        logits = p @ t.T / temperature  # (K, K)
        loss = loss + contrastive_weight * F.cross_entropy(logits, torch.arange(len(p), device=p.device))
    return loss


class SentenceChainProcessor(Processor):
    """``(question, solution)`` pairs -> question token ids (left-padded) and the solution's sentence vectors.

    The solution is one sentence per line. Returns ``question_ids`` / ``question_mask`` ``(B, Lq)`` (the question's
    last ``max_question_tokens`` tokens, padded on the left so every chain starts right after its question),
    ``steps`` ``(B, S, C)`` (the frozen encoder's vectors, memoised per sentence) and ``step_mask`` ``(B, S)``.

    Args:
        model: the :class:`SentencePredictor` (its tokenizer and frozen sentence encoder).
        max_question_tokens: longer questions keep their last tokens.
        max_steps: longer solutions keep their first sentences.
    """

    def __init__(self, model: SentencePredictor, max_question_tokens: int = 256, max_steps: int = 16) -> None:
        if max_question_tokens < 1 or max_steps < 1:
            raise ValueError(f"max_question_tokens and max_steps must be >= 1, got {max_question_tokens}, {max_steps}")
        self.model, self.max_question_tokens, self.max_steps = model, int(max_question_tokens), int(max_steps)
        self._vectors: dict[str, Tensor] = {}

    @staticmethod
    def sentences(solution: str) -> list[str]:
        return [s.strip() for s in solution.split("\n") if s.strip()]

    def validate(self, value: Any) -> None:
        question, solution = PrefixTextProcessor._pair(value)
        if not question.strip():
            raise ValueError("expected a non-empty question")
        if not self.sentences(solution):
            raise ValueError("expected a solution of at least one sentence (one per line), got none")

    def lengths(self, values: Sequence[Any]) -> list[int]:
        return [len(PrefixTextProcessor._pair(v)[0]) for v in values]

    def vectors(self, sentences: Sequence[str]) -> Tensor:
        """``(N, C)`` frozen-encoder vectors of ``sentences`` (each distinct sentence encoded once)."""
        todo = sorted({s for s in sentences if s not in self._vectors})
        if todo:
            out = self.model.sentence_vectors(todo)
            self._vectors.update(zip(todo, out))
        return torch.stack([self._vectors[s] for s in sentences]) if sentences else torch.zeros(0, self.model.dim)

    def __call__(self, values: Sequence[Any]) -> dict[str, Tensor]:
        for v in values:
            self.validate(v)
        pairs = [PrefixTextProcessor._pair(v) for v in values]
        questions = [
            ids[-self.max_question_tokens :] for ids in self.model.text_processor.tokenize([q for q, _ in pairs])
        ]
        chains = [self.sentences(a)[: self.max_steps] for _, a in pairs]
        B, Lq, S = len(pairs), max(len(q) for q in questions), max(len(c) for c in chains)
        ids = torch.full((B, Lq), self.model.pad_id, dtype=torch.long)
        qmask = torch.zeros((B, Lq), dtype=torch.bool)
        for i, q in enumerate(questions):
            ids[i, Lq - len(q) :] = torch.tensor(q, dtype=torch.long)
            qmask[i, Lq - len(q) :] = True
        flat = self.vectors([s for c in chains for s in c])  # (sum S_i, C)
        steps = torch.zeros((B, S, flat.shape[-1]), dtype=flat.dtype)
        smask = torch.zeros((B, S), dtype=torch.bool)
        start = 0
        for i, c in enumerate(chains):
            steps[i, : len(c)] = flat[start : start + len(c)]
            smask[i, : len(c)] = True
            start += len(c)
        return {"question_ids": ids, "question_mask": qmask, "steps": steps, "step_mask": smask}


class SentencePredictor(PrefixLM):
    """A :class:`~polymodal.PrefixLM` whose prefix vectors are a chain of sentences and whose output is the next
    sentence's vector (see the module docstring). Same arguments as :class:`~polymodal.PrefixLM` (``prefix`` is
    the frozen sentence encoder; ``prefix_output`` is ``"pooled"``: one input embedding per sentence).

    Attributes:
        head: ``Linear(D, C)`` regression head from the LM's last hidden state to the sentence-vector space.
        target_norm: running mean norm of the true sentence vectors (buffer, saved): predicted unit vectors are
            rescaled to it before they are fed back or decoded, so they sit where the encoder's vectors sit.
        temperature, contrastive_weight: the loss's (set by :func:`SentencePredictorSystem`).
    """

    loss_reads_features = True  # TowerLoss hands the Step's features (the predictions) to loss()
    target_norm: Tensor

    def __init__(
        self,
        prefix: Encoder,
        lm: str | dict[str, Any] = "smollm2-135m",
        tokenizer: str | None = None,
        prefix_output: Literal["sequence", "pooled"] = "pooled",
        grid: int | None = None,
        adapter: Literal["mlp", "linear"] = "mlp",
        max_answer_tokens: int = 32,
        dtype: Literal["float32", "bfloat16"] = "float32",
        init_seed: int | None = None,
        feature_cache: str | None = None,
        cache_features: bool = False,
    ) -> None:
        if prefix_output != "pooled":
            raise ValueError(f"a SentencePredictor reads one vector per sentence: prefix_output must be 'pooled', "
                             f"got {prefix_output!r}")  # fmt: skip
        super().__init__(
            prefix, lm, tokenizer, "pooled", None, adapter, max_answer_tokens, dtype, init_seed, feature_cache, False
        )
        with _seeded(init_seed):
            self.head = nn.Linear(self.hidden_size, self.prefix.dim).to(self._adapter_weight.dtype)
        self.register_buffer("target_norm", torch.ones(()))
        self.temperature, self.contrastive_weight = 0.05, 1.0

    @property
    def dim(self) -> int:
        return int(self.prefix.dim)

    # ----------------------------------------------------------- vectors in / out
    @torch.no_grad()
    def sentence_vectors(self, sentences: Sequence[str], batch_size: int = 64) -> Tensor:
        """``(N, C)`` float32 vectors of the frozen sentence encoder (on CPU)."""
        device = self._adapter_weight.device
        out = []
        for start in range(0, len(sentences), batch_size):
            batch = self.prefix.processor(list(sentences[start : start + batch_size]))
            out.append(self.prefix({k: v.to(device) for k, v in batch.items()}).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, self.dim)

    def to_vector(self, hidden: Tensor) -> Tensor:
        """Hidden states ``(..., D)`` -> predicted sentence vectors ``(..., C)`` (head output, unnormalised)."""
        return self.head(hidden.to(self._adapter_weight.dtype))

    def rescale(self, predicted: Tensor) -> Tensor:
        """Unit-normalise predictions and give them the encoder vectors' mean norm (what is fed back / decoded)."""
        return F.normalize(predicted.float(), dim=-1) * self.target_norm.float()

    # ------------------------------------------------------------------ forward
    def _chain_inputs(
        self, question_ids: Tensor, question_mask: Tensor, vectors: Tensor, vector_mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``inputs_embeds`` ``(B, Lq + S, D)``, attention mask and position ids (counted over real positions)."""
        q = self.text_embeddings(question_ids)  # (B, Lq, D)
        v = self.adapter(vectors.to(self._adapter_weight.dtype))  # (B, S, D)
        embeds = torch.cat([q, v.to(q.dtype)], dim=1)
        mask = torch.cat([question_mask, vector_mask], dim=1).long()  # (B, Lq + S)
        positions = (mask.cumsum(dim=1) - 1).clamp_min(0)
        return embeds, mask, positions

    def hidden_chain(self, inputs: Mapping[str, Tensor], all_layers: bool = False) -> tuple[Tensor, ...]:
        """Hidden states at the positions that predict each step ``(B, S, D)``: the last layer (normed, what the
        head reads) or, with ``all_layers``, the embedding output and every layer (SentenceLens)."""
        steps, smask = inputs["steps"], inputs["step_mask"]
        embeds, mask, positions = self._chain_inputs(
            inputs["question_ids"], inputs["question_mask"], steps[:, :-1], smask[:, :-1]
        )
        out = self.lm.get_decoder()(
            inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=False,
            output_hidden_states=all_layers,
        )  # fmt: skip
        Lq, S = inputs["question_ids"].shape[1], steps.shape[1]
        states = tuple(out.hidden_states) if all_layers else (out.last_hidden_state,)
        return tuple(h[:, Lq - 1 : Lq - 1 + S] for h in states)  # each (B, S, D)

    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        """Predicted next-sentence vectors ``(B, S, C)`` of a processed chain (teacher forcing), masked."""
        (hidden,) = self.hidden_chain(inputs)
        return Features(sequence=self.to_vector(hidden), mask=inputs["step_mask"].bool())

    def loss(self, inputs: Mapping[str, Tensor], features: Features | None = None) -> Tensor:
        """:func:`sentence_prediction_loss` of the predictions against the true vectors; in training also
        updates :attr:`target_norm`."""
        features = features if features is not None else self(inputs)
        target, mask = inputs["steps"], inputs["step_mask"].bool()
        if self.training:
            with torch.no_grad():
                norm = target[mask].float().norm(dim=-1).mean()
                first = bool(self.target_norm == 1.0)
                self.target_norm.copy_(norm if first else 0.9 * self.target_norm + 0.1 * norm)
        return sentence_prediction_loss(features.sequence, target, mask, self.temperature, self.contrastive_weight)

    # ---------------------------------------------------------------- inference
    @torch.no_grad()
    def rollout(self, question: str, steps: int, feed: Any = None) -> list[Tensor]:
        """Predict ``steps`` sentence vectors of one problem autoregressively (KV cache: one LM position per step).

        Args:
            question: the problem statement (fed as tokens).
            steps: how many sentences to predict.
            feed: ``None`` (continuous: each rescaled prediction is fed back) or a callable ``vector (C,) ->
                vector (C,)`` applied before feeding back (discretised: decode to text, re-encode).

        Returns:
            the ``steps`` predicted vectors, rescaled (:meth:`rescale`), each ``(C,)``.
        """
        self.eval()
        device = self._adapter_weight.device
        ids = self.text_processor.tokenize([question])[0][-256:]
        q = torch.tensor([ids], dtype=torch.long, device=device)
        decoder = self.lm.get_decoder()
        mask = torch.ones_like(q)
        import inspect

        key = "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"  # HF 5.x
        out = decoder(inputs_embeds=self.text_embeddings(q), attention_mask=mask, use_cache=True)
        past, hidden, pos, predicted = getattr(out, key), out.last_hidden_state[:, -1], q.shape[1], []
        for i in range(steps):
            v = self.rescale(self.to_vector(hidden))[0]  # (C,)
            predicted.append(v)
            if i == steps - 1:
                break
            x = feed(v) if feed is not None else v
            emb = self.adapter(x.to(device=device, dtype=self._adapter_weight.dtype))[None, None]  # (1, 1, D)
            mask = torch.cat([mask, mask.new_ones((1, 1))], dim=1)
            position = torch.tensor([[pos]], device=device)
            out = decoder(inputs_embeds=emb, attention_mask=mask, position_ids=position, use_cache=True, **{key: past})
            past, hidden, pos = getattr(out, key), out.last_hidden_state[:, -1], pos + 1
        return predicted


register_class(SentencePredictor, "model")  # its model folders load as a SentencePredictor (polymodal.load)


def _adamw(params: Any) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)


def SentencePredictorSystem(  # noqa: N802 - a preset reads like the class it builds
    model: SentencePredictor,
    column: str = "question+solution",
    temperature: float = 0.05,
    contrastive_weight: float = 1.0,
    lm_trainable_layers: int = 0,
    max_question_tokens: int = 256,
    max_steps: int = 16,
    optimizer: OptimizerCallable | None = None,
    warmup_ratio: float = 0.05,
    min_lr_ratio: float = 0.1,
    lr_groups: dict[str, float] | None = None,
) -> System:
    """A :class:`~polymodal.System` training a :class:`SentencePredictor` (tower ``predictor``) on one paired
    ``(question, solution)`` column with :class:`~polymodal.objectives.TowerLoss` (the model's
    :func:`sentence_prediction_loss`, logged as ``next`` in train/val/test). The sentence encoder is frozen;
    adapter and head train, and the LM's last ``lm_trainable_layers`` blocks (0: frozen, -1: all); ``lr_groups``
    (parameter glob -> learning rate) gives e.g. the LM a lower rate than the fresh adapter and head."""
    from polymodal.objectives import TowerLoss
    from polymodal.poolers import MeanPooler

    if temperature <= 0 or contrastive_weight < 0:
        raise ValueError(f"need temperature > 0 and contrastive_weight >= 0, got {temperature}, {contrastive_weight}")
    model.temperature, model.contrastive_weight = float(temperature), float(contrastive_weight)
    frozen, trainable = model.lm_parameter_globs(lm_trainable_layers, prefix="towers.predictor.")
    return System(
        towers={"predictor": model},
        routes={column: "predictor"},
        processors={column: SentenceChainProcessor(model, max_question_tokens, max_steps)},
        pooler=MeanPooler(),
        objectives={"next": TowerLoss("predictor", column)},
        frozen=frozen,
        trainable=trainable,
        save_frozen=False,
        optimizer=optimizer if optimizer is not None else _adamw,
        lr_groups=lr_groups,
        schedule="cosine",
        warmup_ratio=warmup_ratio,
        min_lr_ratio=min_lr_ratio,
    )
