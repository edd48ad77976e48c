"""Inference-ready embedding models: encoder + pooler (+ normalisation), saved without pickle.

On disk a model is a folder::

    polymodal.json       format version, modality, encoder class + config, pooler, normalize
    model.safetensors    every weight
    encoder/             the encoder's assets (tokenizer, model config, ...)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polymodal.io import atomic_path, ensure_writable_dir, resolve_path
from polymodal.modality import Encoder, encoder_class
from polymodal.poolers import MeanPooler, Pooler, pooler_config, pooler_from_config

__all__ = ["FORMAT_VERSION", "EmbeddingModel", "load"]

FORMAT_VERSION = 1
CONFIG_NAME = "polymodal.json"
WEIGHTS_NAME = "model.safetensors"


class EmbeddingModel(nn.Module):
    """An encoder, a pooler and optional L2 normalisation, with a fast ``encode``.

    Args:
        encoder: any modality's encoder.
        pooler: reduces :class:`~polymodal.features.Features` to ``(B, D)``; mean by default.
        normalize: L2-normalise embeddings by default in :meth:`encode`.
        prompts: named prompts (e.g. ``{"query": "query: ", "document": ""}``), prepended to text
            inputs by ``encode(prompt_name=...)``; saved with the model.
        default_prompt_name: the prompt ``encode`` uses when none is named (``None``: no prompt).
    """

    def __init__(
        self,
        encoder: Encoder,
        pooler: Pooler | None = None,
        normalize: bool = False,
        prompts: dict[str, str] | None = None,
        default_prompt_name: str | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.pooler = pooler if pooler is not None else MeanPooler()
        self.normalize = normalize
        self.prompts = dict(prompts or {})
        if default_prompt_name is not None and default_prompt_name not in self.prompts:
            raise ValueError(
                f"default_prompt_name {default_prompt_name!r} is not one of the prompts {sorted(self.prompts)}"
            )
        self.default_prompt_name = default_prompt_name

    @property
    def modality(self) -> str:
        return self.encoder.modality

    @property
    def dim(self) -> int:
        return self.encoder.output_dim

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        return self.pooler(self.encoder(inputs))

    # ------------------------------------------------------------------ encode
    def _lengths(self, values: Sequence[Any]) -> list[int]:
        return list(self.encoder.processor.lengths(values))

    def iter_encode(
        self,
        values: Sequence[Any],
        batch_size: int = 64,
        normalize: bool | None = None,
        chunk_size: int = 8192,
        show_progress_bar: bool = False,
        streams: int | None = None,
    ) -> Iterator[tuple[int, Tensor]]:
        """Yield ``(start, embeddings)`` for consecutive chunks of ``values``, in input order.

        Memory stays bounded by ``chunk_size`` whatever ``len(values)``: within a chunk items
        are sorted by length (little padding) and the chunk's rows are returned in input order.

        ``streams``: on CPU, how many batches run at once, each on one thread (default: torch's
        intra-op thread count). Small models such as MiniLM use N cores better as N one-thread
        streams than as one batch split N ways (+11-13 % at 2 threads, benchmarks/encode.py);
        the thread count is set to 1 for the call and restored after. ``1`` runs one batch at a
        time on all threads. Results are the same either way (the batches are independent). Only
        encoders that declare ``concurrent_forward`` (``TextEncoder`` does) run in streams.
        """
        if isinstance(values, str):
            raise TypeError("encode() takes a list of inputs; wrap a single string in a list")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        normalize = self.normalize if normalize is None else normalize
        device = next(self.parameters()).device
        processor = self.encoder.processor
        n = len(values)
        bar = None
        if show_progress_bar:
            try:
                from tqdm.auto import tqdm

                bar = tqdm(total=n, desc="encode", unit="item")
            except ImportError:  # pragma: no cover
                pass
        threads = torch.get_num_threads()
        concurrent = bool(getattr(self.encoder, "concurrent_forward", False))
        streams = _cpu_streams(streams, device, concurrent, threads, n, batch_size)

        def embed(batch: list[Any]) -> Tensor:
            with torch.inference_mode():
                inputs = {k: v.to(device) for k, v in processor(batch).items()}
                emb = self(inputs).float()
                return (F.normalize(emb, dim=-1) if normalize else emb).cpu()

        pool = None
        was_training = self.training
        self.eval()
        try:
            if streams > 1:
                from concurrent.futures import ThreadPoolExecutor

                torch.set_num_threads(1)
                pool = ThreadPoolExecutor(streams, thread_name_prefix="polymodal-encode")
            for chunk_start in range(0, n, chunk_size):
                chunk = [values[i] for i in range(chunk_start, min(n, chunk_start + chunk_size))]
                order = np.argsort([-k for k in self._lengths(chunk)], kind="stable")
                batches = [order[start : start + batch_size] for start in range(0, len(chunk), batch_size)]
                jobs = ([chunk[i] for i in idx] for idx in batches)
                results = pool.map(embed, jobs) if pool is not None else map(embed, jobs)
                out: Tensor | None = None
                for idx, emb in zip(batches, results):
                    if out is None:
                        out = torch.empty(len(chunk), emb.shape[-1])
                    out[torch.as_tensor(idx)] = emb
                    if bar is not None:
                        bar.update(len(idx))
                if out is not None:
                    yield chunk_start, out
                del out
                _release_free_memory()  # return the chunk's freed buffers to the OS
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
                torch.set_num_threads(threads)
            self.train(was_training)
            if bar is not None:
                bar.close()

    def encode(
        self,
        values: Sequence[Any],
        batch_size: int = 64,
        normalize: bool | None = None,
        convert_to: Literal["numpy", "tensor"] = "numpy",
        show_progress_bar: bool = False,
        streams: int | None = None,
        **_: Any,
    ) -> np.ndarray | Tensor:
        """Embed ``values`` (raw inputs of this model's modality) -> ``(N, D)``.

        Items are sorted by length so batches carry little padding, then returned in input
        order. Runs under ``torch.inference_mode``. Extra keyword arguments are accepted and
        ignored so MTEB-style callers work. For outputs larger than memory, write the chunks of
        :meth:`iter_encode` to disk (``polymodal encode`` streams them into a ``.npy``).

        Args:
            values: raw values (e.g. strings for text).
            batch_size: items per forward pass.
            normalize: L2-normalise; defaults to the model's ``normalize``.
            convert_to: ``"numpy"`` (float32 array) or ``"tensor"``.
            show_progress_bar: show a tqdm bar (if tqdm is installed).
            streams: CPU batches in flight at once (see :meth:`iter_encode`).
        """
        if isinstance(values, str):
            raise TypeError("encode() takes a list of inputs; wrap a single string in a list")
        values = list(values)
        out = torch.empty(len(values), self.dim)
        batches = self.iter_encode(values, batch_size, normalize, show_progress_bar=show_progress_bar, streams=streams)
        for start, emb in batches:
            out[start : start + emb.shape[0]] = emb
        return out.numpy() if convert_to == "numpy" else out

    # ------------------------------------------------------------- save / load
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model folder (atomically per file); returns its path."""
        from safetensors.torch import save_file

        directory = ensure_writable_dir(path, what="model directory")
        assets = directory / "encoder"
        assets.mkdir(exist_ok=True)
        self.encoder.save_assets(assets)
        config = {
            "format_version": FORMAT_VERSION,
            "modality": self.modality,
            "encoder": {
                "class": f"{type(self.encoder).__module__}.{type(self.encoder).__qualname__}",
                "config": self.encoder.get_config(),
            },
            "pooler": pooler_config(self.pooler),
            "normalize": self.normalize,
        }
        if self.prompts:
            config["prompts"] = dict(self.prompts)
            config["default_prompt_name"] = self.default_prompt_name
        if type(self) is not EmbeddingModel:  # a subclass (e.g. a cross-encoder) and its extra arguments
            config["model_class"] = f"{type(self).__module__}.{type(self).__qualname__}"
            config["model_args"] = self.model_args()
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        with atomic_path(directory / WEIGHTS_NAME) as tmp:
            save_file(_untie(state), str(tmp), metadata={"format": "pt", "polymodal": str(FORMAT_VERSION)})
        with atomic_path(directory / CONFIG_NAME) as tmp:
            tmp.write_text(json.dumps(config, indent=2))
        return directory

    def model_args(self) -> dict[str, Any]:
        """Extra constructor arguments a subclass saves in its config (JSON values)."""
        return {}

    @classmethod
    def from_folder(cls, path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> EmbeddingModel:
        """Load a folder written by :meth:`save`. Never unpickles anything."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        directory = resolve_path(path, what="model directory")
        config_path = directory / CONFIG_NAME
        if not config_path.exists():
            raise FileNotFoundError(f"not a polymodal model folder (no {CONFIG_NAME}): {directory}")
        try:
            config = json.loads(config_path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{config_path}: invalid JSON: {exc}") from None
        if config.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{config_path}: format_version {config.get('format_version')} not supported")
        model_cls = cls
        if config.get("model_class"):
            model_cls = _model_class(config["model_class"], config_path)
            if not issubclass(model_cls, cls):
                raise TypeError(f"{config_path}: holds a {config['model_class']}, not a {cls.__qualname__}")
        enc_cls = encoder_class(config["encoder"]["class"])
        encoder = enc_cls.from_config(config["encoder"]["config"], directory / "encoder")
        model = model_cls(
            encoder,
            pooler_from_config(config["pooler"]),
            bool(config.get("normalize", False)),
            **dict(config.get("model_args") or {}),
        )
        model.prompts = dict(config.get("prompts") or {})
        model.default_prompt_name = config.get("default_prompt_name")
        weights = directory / WEIGHTS_NAME
        try:
            state = load_file(str(weights), device=str(map_location))
        except FileNotFoundError:
            raise FileNotFoundError(f"weights file missing: {weights}") from None
        except (SafetensorError, OSError, ValueError) as exc:
            raise ValueError(f"{weights}: corrupt or truncated weights file ({exc})") from None
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not _is_tied(model, k)]
        if missing or unexpected:
            raise ValueError(
                f"{weights}: weights do not match the architecture in {CONFIG_NAME}: "
                f"missing {missing[:5]}, unexpected {unexpected[:5]}"
            )
        return model.to(map_location)


def _untie(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """safetensors refuses shared storage; keep the first name of each tied tensor."""
    seen: dict[tuple[int, int, tuple[int, ...]], str] = {}
    out = {}
    for name, tensor in state.items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if tensor.numel() and key in seen:
            continue
        seen[key] = name
        out[name] = tensor
    return out


def _is_tied(model: nn.Module, name: str) -> bool:
    """True when ``name`` shares storage with another parameter that was loaded."""
    params = dict(model.named_parameters(remove_duplicate=False))
    if name not in params:
        return False
    ptr = params[name].data_ptr()
    return any(p.data_ptr() == ptr for n, p in params.items() if n != name)


_LIBC: Any = None


def _cpu_streams(
    streams: int | None, device: torch.device, concurrent: bool, threads: int, n: int, batch_size: int
) -> int:
    """How many one-thread batch streams ``iter_encode`` runs: 1 off the CPU, for one batch, or when
    the encoder keeps per-call state (``concurrent_forward`` False, e.g. Token Prepending hooks)."""
    if streams is not None and streams < 1:
        raise ValueError(f"streams must be >= 1, got {streams}")
    if device.type != "cpu" or not concurrent:
        return 1
    wanted = threads if streams is None else streams
    return max(1, min(wanted, -(-n // batch_size)))


def _release_free_memory() -> None:
    """Give freed heap memory back to the OS (glibc ``malloc_trim``; a no-op elsewhere).

    Encoding allocates activations of many different shapes; without trimming, glibc keeps the
    freed pages and RSS creeps up chunk after chunk, although nothing is retained.
    """
    global _LIBC
    if _LIBC is None:
        try:
            import ctypes

            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


def _model_class(path: str, config_path: Path) -> type[EmbeddingModel]:
    """Import the saved model class (an :class:`EmbeddingModel` subclass, nothing else)."""
    import importlib

    module, _, name = path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"{config_path}: model_class {path!r} cannot be imported ({exc})") from None
    if not (isinstance(found, type) and issubclass(found, EmbeddingModel)):
        raise TypeError(f"{config_path}: model_class {path!r} is not a polymodal EmbeddingModel")
    return found


def load(name_or_path: str | os.PathLike[str], device: str | torch.device = "cpu") -> EmbeddingModel:
    """Load a model by registered name (e.g. ``"minilm-l6"``) or from a saved folder (an embedding model, or a
    :class:`~polymodal.PrefixLM` folder with ``prefix_lm.json``, which gives ``generate(inputs, prompt)``).

    Names come from :mod:`polymodal.registry` (``polymodal models`` lists them); pretrained names use
    weights shipped in installed packages, never the network.
    """
    from polymodal.registry import list_models, model_card

    text = os.fspath(name_or_path)
    if Path(text).expanduser().is_dir():
        if (Path(text).expanduser() / "prefix_lm.json").is_file():  # a prefix LM (CG-VLM): .generate(inputs, prompt)
            from polymodal.prefix_lm import PrefixLM

            return PrefixLM.from_folder(text, map_location=device)  # type: ignore[return-value]
        return EmbeddingModel.from_folder(text, map_location=device)
    names = list_models(kind="pretrained")
    if text in names:
        return model_card(text).factory().to(device)
    raise ValueError(
        f"cannot load {text!r}: not a model folder, and not a known model name "
        f"(known: {', '.join(names) or 'none; is the text plugin installed?'})"
    )
