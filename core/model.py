"""Inference-ready embedding models: encoder + pooler (+ normalisation), saved without pickle.

On disk a model is a folder::

    polymodal.json       format version, modality, encoder class + config, pooler, normalize
    model.safetensors    every weight
    encoder/             the encoder's assets (tokenizer, model config, ...)
"""

from __future__ import annotations

import copy
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
        #: Output width kept by :meth:`truncate` (``None``: the encoder's full width).
        self.truncate_dim: int | None = None

    @property
    def modality(self) -> str:
        return self.encoder.modality

    @property
    def dim(self) -> int:
        return self.encoder.output_dim if self.truncate_dim is None else self.truncate_dim

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        emb = self.pooler(self.encoder(inputs))  # (B, D)
        return emb if self.truncate_dim is None else emb[..., : self.truncate_dim]

    # ---------------------------------------------------------------- truncate
    def truncate(self, layers: int | None = None, dim: int | None = None, inplace: bool = False) -> EmbeddingModel:
        """A model that runs only the first ``layers`` encoder layers and keeps ``dim`` output dimensions.

        The dropped layers are removed from the module (they are not computed, and a saved
        truncated model no longer holds them), so a 4-of-6-layer model encodes in about 2/3 of the
        time. This is how a 2D Matryoshka (2DMSE) model is meant to be used; any model can be
        truncated, but only one trained for it keeps most of its quality. The embedding at
        ``(layers, dim)`` equals the first ``dim`` values of the full model's embedding pooled after
        layer ``layers`` (:func:`polymodal.evaluation.elastic.encode_layers`).

        Args:
            layers: encoder layers to keep (``1 <= layers <= encoder.num_layers``); ``None`` keeps all.
                The encoder must implement :meth:`~polymodal.modality.Encoder.truncate_layers`.
            dim: leading embedding dimensions to keep (``1 <= dim <= self.dim``); ``None`` keeps all.
            inplace: truncate this model instead of a copy (saves the copy's memory).

        Returns:
            The truncated model (``self`` when ``inplace``).

        Example:
            >>> small = polymodal.load("minilm-l6").truncate(layers=4, dim=192)
            >>> small.encode(["a sentence"]).shape
            (1, 192)
        """
        if dim is not None:
            _check_dim(dim, self.dim)
        if layers is not None:
            depth = getattr(self.encoder, "num_layers", None)
            if depth is not None and not 1 <= int(layers) <= int(depth):
                raise ValueError(f"layers must be between 1 and the encoder's {depth} layers, got {layers}")
        model = self if inplace else copy.deepcopy(self)
        if layers is not None:
            model.encoder.truncate_layers(int(layers))
        if dim is not None:
            model.truncate_dim = None if int(dim) == model.encoder.output_dim else int(dim)
        return model

    # ------------------------------------------------------------------ encode
    def _lengths(self, values: Sequence[Any]) -> list[int]:
        sizer = getattr(self.encoder.processor, "lengths", None)
        if sizer is not None:
            return list(sizer(values))
        return [len(v) if hasattr(v, "__len__") else 0 for v in values]

    def iter_encode(
        self,
        values: Sequence[Any],
        batch_size: int = 64,
        normalize: bool | None = None,
        chunk_size: int = 8192,
        show_progress_bar: bool = False,
        streams: int | None = None,
        prompt: str | None = None,
        prompt_name: str | None = None,
        truncate_dim: int | None = None,
    ) -> Iterator[tuple[int, Tensor]]:
        """Yield ``(start, embeddings)`` for consecutive chunks of ``values``, in input order.

        ``prompt`` / ``prompt_name`` / ``truncate_dim``: as in :meth:`encode`.

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
        if truncate_dim is not None:
            _check_dim(truncate_dim, self.dim, what="truncate_dim")
        prefix = self._prompt(prompt, prompt_name)
        if prefix:
            values = _with_prompt(values, prefix)
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
                emb = self(inputs).float()  # (B, D)
                if truncate_dim is not None:
                    emb = emb[:, :truncate_dim]  # normalised after truncation, as Matryoshka models expect
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

    def _prompt(self, prompt: str | None, prompt_name: str | None) -> str:
        """The text prepended to inputs: ``prompt``, else ``prompts[prompt_name]``, else the default prompt."""
        if prompt is not None and prompt_name is not None:
            raise ValueError("give prompt or prompt_name, not both")
        if prompt is not None:
            if not isinstance(prompt, str):
                raise TypeError(f"prompt must be a string, got {type(prompt).__name__}")
            return prompt
        name = self.default_prompt_name if prompt_name is None else prompt_name
        if name is None:
            return ""
        if name not in self.prompts:
            known = ", ".join(sorted(self.prompts)) or "none; pass prompts= to EmbeddingModel or prompt='...'"
            raise ValueError(f"unknown prompt_name {name!r} (this model's prompts: {known})")
        return self.prompts[name]

    def encode(
        self,
        values: Sequence[Any],
        batch_size: int = 64,
        normalize: bool | None = None,
        convert_to: Literal["numpy", "tensor"] = "numpy",
        show_progress_bar: bool = False,
        streams: int | None = None,
        prompt: str | None = None,
        prompt_name: str | None = None,
        truncate_dim: int | None = None,
        **unknown: Any,
    ) -> np.ndarray | Tensor:
        """Embed ``values`` (raw inputs of this model's modality) -> ``(N, D)``.

        Items are sorted by length so batches carry little padding, then returned in input
        order. Runs under ``torch.inference_mode``. For outputs larger than memory, write the
        chunks of :meth:`iter_encode` to disk (``polymodal encode`` streams them into a ``.npy``).

        Args:
            values: raw values (e.g. strings for text).
            batch_size: items per forward pass.
            normalize: L2-normalise; defaults to the model's ``normalize``. With ``truncate_dim``
                the truncated vector is normalised.
            convert_to: ``"numpy"`` (float32 array) or ``"tensor"``.
            show_progress_bar: show a tqdm bar (if tqdm is installed).
            streams: CPU batches in flight at once (see :meth:`iter_encode`).
            prompt: text prepended to every (text) input, e.g. ``"query: "``.
            prompt_name: key of :attr:`prompts` to prepend; default :attr:`default_prompt_name`.
            truncate_dim: keep the first ``truncate_dim`` dimensions (Matryoshka models). Layers are
                not dropped: use :meth:`truncate` for that.

        Raises:
            TypeError: for an unknown keyword argument (the message lists the valid ones).
        """
        if unknown:
            raise TypeError(_unknown_kwargs("encode", unknown))
        if isinstance(values, str):
            raise TypeError("encode() takes a list of inputs; wrap a single string in a list")
        values = list(values)
        if truncate_dim is not None:
            _check_dim(truncate_dim, self.dim, what="truncate_dim")
        out = torch.empty(len(values), self.dim if truncate_dim is None else truncate_dim)
        batches = self.iter_encode(
            values,
            batch_size,
            normalize,
            show_progress_bar=show_progress_bar,
            streams=streams,
            prompt=prompt,
            prompt_name=prompt_name,
            truncate_dim=truncate_dim,
        )
        for start, emb in batches:
            out[start : start + emb.shape[0]] = emb
        return out.numpy() if convert_to == "numpy" else out

    def encode_query(self, values: Sequence[Any], **kwargs: Any) -> np.ndarray | Tensor:
        """:meth:`encode` with the ``"query"`` prompt when the model has one (as sentence-transformers does)."""
        if "prompt" not in kwargs and "prompt_name" not in kwargs and "query" in self.prompts:
            kwargs["prompt_name"] = "query"
        return self.encode(values, **kwargs)

    def encode_document(self, values: Sequence[Any], **kwargs: Any) -> np.ndarray | Tensor:
        """:meth:`encode` with the ``"document"`` prompt (or ``"passage"``/``"corpus"``) when the model has one."""
        if "prompt" not in kwargs and "prompt_name" not in kwargs:
            name = next((k for k in ("document", "passage", "corpus") if k in self.prompts), None)
            if name is not None:
                kwargs["prompt_name"] = name
        return self.encode(values, **kwargs)

    def build_index(
        self,
        documents: Sequence[Any],
        path: str | os.PathLike[str] | None = None,
        backend: Literal["faiss", "usearch"] = "faiss",
        precision: str = "float32",
        batch_size: int = 64,
        model_ref: str = "",
        store_documents: bool = True,
    ) -> Any:
        """Embed ``documents`` (normalised, with the document prompt) into a FAISS or usearch index.

        The index records this model's fingerprint and refuses queries from any other model.

        Args:
            documents: raw inputs (texts for a text model, image paths for an image tower, ...).
            path: also save the index folder there (:meth:`polymodal.index.VectorIndex.save`).
            backend: ``"faiss"`` or ``"usearch"`` (``pip install 'polymodal[index]'``).
            precision: ``"float32"``, ``"int8"``, ``"binary"`` or ``"ubinary"`` (see :mod:`polymodal.index`).
            batch_size: encoding batch size.
            model_ref: how ``polymodal search`` reloads the model (registered name or folder).
            store_documents: keep string documents in the index folder (shown by ``polymodal search``).

        Returns:
            The :class:`~polymodal.index.VectorIndex`.

        Example:
            >>> index = model.build_index(["a cat", "a car"], "idx", backend="usearch", model_ref="minilm-l6")
            >>> index.query(model, ["kitten"], top_k=1)
        """
        from polymodal.evaluation.cache import model_fingerprint
        from polymodal.index import VectorIndex, _check_choice

        if isinstance(documents, str):
            raise TypeError("build_index() takes a list of documents; wrap a single string in a list")
        documents = list(documents)
        _check_choice(backend, precision)
        if not documents:
            raise ValueError("cannot build an index from an empty corpus (0 documents)")
        emb = self.encode_document(documents, batch_size=batch_size, normalize=True)
        texts = documents if store_documents and all(isinstance(d, str) for d in documents) else None
        index = VectorIndex.build(
            emb, backend, precision, fingerprint=model_fingerprint(self), model=model_ref, documents=texts
        )
        if path is not None:
            index.save(path)
        return index

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
        if self.truncate_dim is not None:
            config["truncate_dim"] = self.truncate_dim
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
        if config.get("truncate_dim") is not None:
            _check_dim(config["truncate_dim"], model.encoder.output_dim, what=f"{config_path}: truncate_dim")
            model.truncate_dim = int(config["truncate_dim"])
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


_ENCODE_ARGS = (
    "batch_size",
    "normalize",
    "convert_to",
    "show_progress_bar",
    "streams",
    "prompt",
    "prompt_name",
    "truncate_dim",
)


def _unknown_kwargs(method: str, unknown: dict[str, Any]) -> str:
    names = ", ".join(sorted(unknown))
    hint = ""
    if {"task_name", "prompt_type", "task_metadata", "hf_split", "hf_subset"} & set(unknown):
        hint = "; MTEB callers: wrap the model in polymodal.evaluation.mteb.MTEBModel"
    return f"{method}() got unexpected keyword argument(s) {names} (valid: {', '.join(_ENCODE_ARGS)}){hint}"


def _check_dim(dim: Any, width: int, what: str = "dim") -> None:
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or not 1 <= int(dim) <= width:
        raise ValueError(f"{what} must be an integer between 1 and the model's width {width}, got {dim!r}")


def _with_prompt(values: Sequence[Any], prefix: str) -> list[Any]:
    out = []
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise TypeError(f"input {i}: prompts apply to text inputs, got {type(v).__name__}")
        out.append(prefix + v)
    return out


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
    """Load a model by registered name (e.g. ``"minilm-l6"``) or from a saved folder.

    Names come from :mod:`polymodal.registry` (``polymodal models`` lists them); pretrained names use
    weights shipped in installed packages, never the network.
    """
    from polymodal.registry import list_models, model_card

    text = os.fspath(name_or_path)
    if Path(text).expanduser().is_dir():
        return EmbeddingModel.from_folder(text, map_location=device)
    names = list_models(kind="pretrained")
    if text in names:
        return model_card(text).factory().to(device)
    raise ValueError(
        f"cannot load {text!r}: not a model folder, and not a known model name "
        f"(known: {', '.join(names) or 'none; is the text plugin installed?'})"
    )
