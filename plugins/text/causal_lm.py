"""A causal language model tower for instruction tuning: prompt/answer batches, answer-only loss, greedy decoding.

* :class:`PromptAnswerProcessor` turns ``(prompt, answer)`` pairs into a chat-formatted sequence whose ``labels``
  are ``-100`` on the prompt and the padding, so :class:`~polymodal.objectives.CausalLMLoss` is the loss of the
  answer only (prefix-LM style supervised fine-tuning). A bare prompt (no answer) gives the generation input.
* :class:`CausalLM` wraps a Hugging Face ``*ForCausalLM`` (the bundled ``"smollm2-135m"`` GGUF, a local folder, or a
  registered tiny architecture such as ``"test-llama"``), offers its processor to the System, optional NEFTune
  noise on the input embeddings while training (Jain et al. 2023, "NEFTune: Noisy Embeddings Improve Instruction
  Finetuning", arXiv:2310.05914: uniform noise of scale ``alpha / sqrt(L * d)``), and batched greedy
  :meth:`CausalLM.generate`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from polymodal.modality import Processor

__all__ = ["CausalLM", "PromptAnswerProcessor", "lm_tokenizer"]

IGNORE = -100
Template = Literal["chatml", "plain"]

#: Text around the turns: (before the prompt, between prompt and answer, after the answer).
TEMPLATES: dict[str, tuple[str, str, str]] = {
    "chatml": ("<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n", "<|im_end|>"),
    "plain": ("", "\n### Answer:\n", "\n###"),
}


@functools.lru_cache(maxsize=4)
def _load_tokenizer(spec: str) -> Any:
    from polymodal.plugins.text.processor import load_backend_tokenizer

    if spec == "smollm2-135m":
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        from polymodal.plugins.text.decoder import SMOLLM2_GGUF, smollm2_folder

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            hf = AutoTokenizer.from_pretrained(
                str(smollm2_folder()), gguf_file=SMOLLM2_GGUF, local_files_only=True, trust_remote_code=False
            )
        finally:
            hf_logging.set_verbosity(verbosity)
        return hf.backend_tokenizer
    return load_backend_tokenizer(spec)


def lm_tokenizer(spec: str) -> Any:
    """A fresh ``tokenizers.Tokenizer`` (no truncation, no padding) for ``"smollm2-135m"``, ``"bytes"``, a
    ``tokenizer.json`` or a model folder; the file is parsed once per process."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(_load_tokenizer(str(spec)).to_str())
    tok.no_truncation()
    tok.no_padding()
    return tok


class PromptAnswerProcessor(Processor):
    """``(prompt, answer)`` pairs -> ``input_ids`` / ``attention_mask`` / ``labels`` (answer tokens only).

    Args:
        tokenizer: a ``tokenizers.Tokenizer`` or its spec (see :func:`lm_tokenizer`).
        max_length: longest sequence; a longer prompt loses its *beginning* (the end holds the question).
        template: ``"chatml"`` (SmolLM2 / Qwen chat turns) or ``"plain"`` (``### Answer:`` markers, any tokenizer).
        pad_id: padding id (default: the tokenizer's end-of-turn / end-of-text token, else 0).

    Values: a ``(prompt, answer)`` pair (training) or a bare prompt string (generation; no labels).
    """

    def __init__(self, tokenizer: Any = "smollm2-135m", max_length: int = 512, template: Template = "chatml",
                 pad_id: int | None = None) -> None:  # fmt: skip
        if template not in TEMPLATES:
            raise ValueError(f"template must be one of {sorted(TEMPLATES)}, got {template!r}")
        if max_length < 8:
            raise ValueError(f"max_length must be >= 8, got {max_length}")
        self.tokenizer = lm_tokenizer(tokenizer) if isinstance(tokenizer, (str, Path)) else tokenizer
        self.max_length, self.template = int(max_length), template
        self.before, self.between, self.after = TEMPLATES[template]
        end = self.tokenizer.token_to_id(self.after) if template == "chatml" else None
        self.end_id = end
        if pad_id is None:
            pad_id = next(
                (self.tokenizer.token_to_id(t) for t in ("<|im_end|>", "<|endoftext|>", "[PAD]", "</s>")
                 if self.tokenizer.token_to_id(t) is not None),
                0,
            )  # fmt: skip
        self.pad_id = int(pad_id)
        self.truncated = 0

    def validate(self, value: Any) -> None:
        if isinstance(value, str):
            return
        if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, str) for v in value):
            return
        raise ValueError(f"expected a (prompt, answer) pair of strings or a prompt string, got {value!r:.60}")

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def prompt_ids(self, prompt: str, room: int = 0) -> list[int]:
        """Token ids of a formatted prompt (ending where the answer starts), cut from the left to leave ``room``."""
        ids = self._ids(self.before + prompt + self.between)
        limit = self.max_length - room
        if len(ids) > limit:
            self.truncated += 1
            ids = ids[len(ids) - limit :]
        return ids

    def __call__(self, values: Sequence[Any]) -> dict[str, Tensor]:
        rows: list[tuple[list[int], list[int]]] = []
        for v in values:
            self.validate(v)
            if isinstance(v, str):
                rows.append((self.prompt_ids(v), []))
                continue
            prompt, answer = v
            a = self._ids(answer + self.after)[: self.max_length // 2]
            rows.append((self.prompt_ids(prompt, room=len(a)), a))
        T = max(len(p) + len(a) for p, a in rows)
        ids = np.full((len(rows), T), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), T), dtype=np.int64)
        labels = np.full((len(rows), T), IGNORE, dtype=np.int64)
        for i, (p, a) in enumerate(rows):
            n = len(p) + len(a)
            ids[i, :n] = p + a
            mask[i, :n] = 1
            labels[i, len(p) : n] = a
        out = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
        if any(a for _, a in rows):
            out["labels"] = torch.from_numpy(labels)
        return out

    def answer_text(self, ids: Sequence[int]) -> str:
        """Decode generated ids, cut at the end-of-answer marker."""
        text = self.tokenizer.decode(list(ids), skip_special_tokens=False)
        for stop in (self.after, "<|im_end|>", "<|endoftext|>"):
            if stop and stop in text:
                text = text[: text.index(stop)]
        return text.strip()

    def get_config(self) -> dict[str, Any]:
        return {"max_length": self.max_length, "template": self.template, "pad_id": self.pad_id}


def _load_causal_lm(model: str | Mapping[str, Any], dtype: torch.dtype, seed: int) -> nn.Module:
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from polymodal.plugins.text.pretrained import ARCHITECTURES, PRETRAINED_PATHS

    if isinstance(model, str) and model in ARCHITECTURES:
        model = ARCHITECTURES[model]()
    if isinstance(model, Mapping):
        cfg = dict(model)
        model_type = cfg.pop("model_type", None)
        if model_type is None:
            raise ValueError("an LM config needs 'model_type' (e.g. 'llama')")
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **cfg)).to(dtype)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        path = PRETRAINED_PATHS[model]() if model in PRETRAINED_PATHS else Path(model).expanduser()
        if path.suffix == ".gguf":
            return AutoModelForCausalLM.from_pretrained(
                str(path.parent), gguf_file=path.name, local_files_only=True, trust_remote_code=False, dtype=dtype
            )
        if not path.is_dir():
            raise FileNotFoundError(
                f"causal LM {model!r} is neither a registered name nor a local folder (polymodal never downloads)"
            )
        from polymodal.plugins.text.encoder import check_hf_folder

        check_hf_folder(path)
        return AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, trust_remote_code=False,
                                                    dtype=dtype)  # fmt: skip
    finally:
        hf_logging.set_verbosity(verbosity)


class CausalLM(nn.Module):
    """A Hugging Face causal LM as a System tower (``CausalLMLoss`` calls it with ``input_ids``, ``labels``).

    Args:
        model: ``"smollm2-135m"`` (the bundled GGUF, dequantised), a local model folder, a registered architecture
            (``"test-llama"``) or a config dict with ``model_type``.
        tokenizer: tokenizer spec (default: ``model`` for named/folder models; required for architectures).
        template: prompt template of the processor (``"chatml"`` or ``"plain"``).
        max_length: longest training / prompt sequence in tokens.
        neftune_alpha: NEFTune noise scale on the input embeddings while training (0: off; the paper uses 5).
        dtype: ``"float32"`` or ``"bfloat16"`` weights.
        init_seed: seed of random weights (architectures).
    """

    def __init__(
        self,
        model: str | dict[str, Any] = "smollm2-135m",
        tokenizer: str | None = None,
        template: Template = "chatml",
        max_length: int = 512,
        neftune_alpha: float = 0.0,
        dtype: str = "float32",
        init_seed: int = 0,
    ) -> None:
        super().__init__()
        if dtype not in ("float32", "bfloat16"):
            raise ValueError(f"dtype must be 'float32' or 'bfloat16', got {dtype!r}")
        if neftune_alpha < 0:
            raise ValueError(f"neftune_alpha must be >= 0, got {neftune_alpha}")
        spec = tokenizer if tokenizer is not None else model
        if not isinstance(spec, str) or spec.startswith("test-"):
            raise ValueError("give tokenizer= for an LM built from an architecture or config (e.g. 'bytes')")
        self.model = _load_causal_lm(model, getattr(torch, dtype), init_seed)
        self._processor = PromptAnswerProcessor(spec, max_length, template)
        self.neftune_alpha = float(neftune_alpha)
        self.model.get_input_embeddings().register_forward_hook(self._neftune)

    @property
    def processor(self) -> PromptAnswerProcessor:
        """The prompt/answer processor the System hands to the data module for this tower's columns."""
        return self._processor

    def _neftune(self, module: nn.Module, args: Any, output: Tensor) -> Tensor | None:
        if not (self.training and self.neftune_alpha > 0):
            return None
        scale = self.neftune_alpha / math.sqrt(output.shape[1] * output.shape[2])
        return output + torch.empty_like(output).uniform_(-scale, scale)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, labels: Tensor | None = None) -> Any:
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, use_cache=False)

    @torch.inference_mode()
    def generate(self, prompts: Sequence[str], max_new_tokens: int = 64, batch_size: int = 8) -> list[str]:
        """Greedy answers to bare prompts (batched, left-padded), cut at the end-of-answer marker."""
        proc = self._processor
        device = next(self.model.parameters()).device
        was_training = self.training
        self.eval()
        out: list[str] = [""] * len(prompts)
        order = np.argsort([-len(p) for p in prompts], kind="stable")
        eos = [i for i in (proc.end_id, self.model.config.eos_token_id) if isinstance(i, int)]
        try:
            for start in range(0, len(order), batch_size):
                idx = [int(i) for i in order[start : start + batch_size]]
                rows = [proc.prompt_ids(prompts[i], room=max_new_tokens) for i in idx]
                T = max(len(r) for r in rows)
                ids = torch.full((len(rows), T), proc.pad_id, dtype=torch.long)
                mask = torch.zeros((len(rows), T), dtype=torch.long)
                for j, r in enumerate(rows):
                    ids[j, T - len(r) :] = torch.tensor(r, dtype=torch.long)
                    mask[j, T - len(r) :] = 1
                gen = self.model.generate(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    eos_token_id=eos or None,
                    pad_token_id=proc.pad_id,
                )
                for j, i in enumerate(idx):
                    out[i] = proc.answer_text(gen[j, T:].tolist())
        finally:
            self.train(was_training)
        return out
