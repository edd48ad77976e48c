"""Inference-ready embedding models: encoder + pooler (+ normalisation), saved without pickle.

On disk a model is a folder::

    polymodal.json       format version, modality, encoder class + config, pooler, normalize
    model.safetensors    every weight
    encoder/             the encoder's assets (tokenizer, model config, ...)
"""

from __future__ import annotations

import contextlib
import copy
import errno
import json
import os
import re
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polymodal.io import atomic_dir, resolve_path
from polymodal.modality import Encoder, encoder_class
from polymodal.poolers import MeanPooler, Pooler, pooler_config, pooler_from_config

__all__ = ["FOLDER_FORMATS", "FORMAT_VERSION", "EmbeddingModel", "detect_format", "load", "read_config"]

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

    #: Inference backend running ``encode``'s forward of a batch (``None``: this torch module); see set_backend.
    backend: Any = None

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
        #: the folder format :func:`load` recognised (``"polymodal"``, ``"sentence-transformers"``, ...).
        self.source_format: str | None = None
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

    def _device(self) -> torch.device:
        """Where the weights live (CPU for an encoder without parameters or buffers)."""
        for param in self.parameters():
            return param.device
        for buffer in self.buffers():
            return buffer.device
        return torch.device("cpu")

    def set_backend(self, backend: str | None = "auto", **options: Any) -> EmbeddingModel:
        """Run ``encode``'s forward in an inference backend the encoder offers (text: ``"auto"``, ``"torch"``,
        ``"onnx"``, ``"openvino"``, ``"onnx-int8"``; see :mod:`polymodal.plugins.text.backends`); ``None``:
        this torch module. Returns ``self``."""
        if backend is None:
            self.backend = None
            return self
        make = getattr(self.encoder, "inference_backend", None)
        if make is None:
            raise ValueError(f"{type(self.encoder).__name__} offers no inference backends")
        self.backend = make(self, backend, **options)
        return self

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
        progress: Callable[[int], None] | None = None,
        prompt: str | None = None,
        prompt_name: str | None = None,
        truncate_dim: int | None = None,
    ) -> Iterator[tuple[int, Tensor]]:
        """Yield ``(start, embeddings)`` for consecutive chunks of ``values``, in input order.

        ``progress``: called with the number of items embedded so far after every batch (progress
        reporting in logs: ``polymodal encode`` uses it).

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
        device = self._device()
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
        backend = self.backend
        if streams is None and backend is not None:
            streams = backend.streams
        streams = cpu_streams(streams, device, concurrent, threads, n, batch_size)

        def embed(batch: list[Any]) -> Tensor:
            with torch.inference_mode():
                inputs = {k: v.to(device) for k, v in processor(batch).items()}
                emb = (self(inputs) if backend is None else self.pooler(backend(inputs))).float()  # (B, D)
                if truncate_dim is not None:
                    emb = emb[:, :truncate_dim]  # normalised after truncation, as Matryoshka models expect
                return (F.normalize(emb, dim=-1) if normalize else emb).cpu()

        pool = None
        done = 0
        mode = eval_for_call(self)
        mode.__enter__()
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
                    done += len(idx)
                    if bar is not None:
                        bar.update(len(idx))
                    if progress is not None:
                        progress(done)
                if out is not None:
                    yield chunk_start, out
                del out
                _release_free_memory()  # return the chunk's freed buffers to the OS
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
                torch.set_num_threads(threads)
            mode.__exit__(None, None, None)
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
        from polymodal.data.cache import model_fingerprint
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
        """Write the model folder; returns its path.

        The folder is replaced as a whole (:func:`polymodal.io.atomic_dir`): a kill or a full disk
        at any moment leaves the previous model or this one, never a mix. An existing folder that
        is not a model folder (no ``polymodal.json``) and is not empty is refused, not deleted.
        """
        from safetensors import SafetensorError
        from safetensors.torch import save_file

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
        target = Path(path).expanduser()
        with atomic_dir(target, what="model folder", replaceable=(CONFIG_NAME,)) as tmp:
            assets = tmp / "encoder"
            assets.mkdir()
            self.encoder.save_assets(assets)
            try:
                save_file(
                    _untie(state), str(tmp / WEIGHTS_NAME), metadata={"format": "pt", "polymodal": str(FORMAT_VERSION)}
                )
            except SafetensorError as exc:  # e.g. "I/O error: No space left on device (os error 28)"
                code = re.search(r"os error (\d+)", str(exc))
                number = int(code.group(1)) if code else errno.EIO
                raise OSError(number, os.strerror(number)) from None
            (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2))  # written last
        return target

    def model_args(self) -> dict[str, Any]:
        """Extra constructor arguments a subclass saves in its config (JSON values)."""
        return {}

    @classmethod
    def from_folder(cls, path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> EmbeddingModel:
        """Load a folder written by :meth:`save`, in eval mode. Never unpickles or imports anything
        a file names: class names resolve only against :mod:`polymodal.registry`; the architecture is
        first built on the ``meta`` device and checked against the weights file's header, so a
        folder whose config declares a huge model fails in one line before anything is allocated.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        directory = resolve_path(path, what="model directory")
        config_path = directory / CONFIG_NAME
        if not config_path.is_file():
            raise FileNotFoundError(f"not a polymodal model folder (no {CONFIG_NAME}): {directory}")
        config = read_config(config_path)
        model_cls: type[EmbeddingModel] = cls
        if config.get("model_class") is not None:
            model_cls = _model_class(config["model_class"], str(config_path))
            if not issubclass(model_cls, cls):
                raise TypeError(f"{config_path}: holds a {config['model_class']}, not a {cls.__qualname__}")
        enc_cls = encoder_class(config["encoder"]["class"], where=str(config_path))
        weights = directory / WEIGHTS_NAME
        header = _weights_header(weights)
        encoder_dir = directory / "encoder"

        def build() -> EmbeddingModel:
            try:
                encoder = enc_cls.from_config(config["encoder"]["config"], encoder_dir)
                return model_cls(
                    encoder,
                    pooler_from_config(config["pooler"], where=str(config_path)),
                    config.get("normalize", False),
                    **config.get("model_args", {}),
                )
            except (TypeError, KeyError) as exc:
                raise ValueError(f"{config_path}: {_first_line(exc)}") from None

        _check_against_header(build, header, weights)
        model = build()
        model.prompts = dict(config.get("prompts") or {})
        model.default_prompt_name = config.get("default_prompt_name")
        if config.get("truncate_dim") is not None:
            _check_dim(config["truncate_dim"], model.encoder.output_dim, what=f"{config_path}: truncate_dim")
            model.truncate_dim = int(config["truncate_dim"])
        weights = directory / WEIGHTS_NAME
        try:
            state = load_file(str(weights), device=str(map_location))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ValueError(f"{weights}: corrupt or truncated weights file ({_first_line(exc)})") from None
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # a shape the meta check could not see
            raise ValueError(
                f"{weights}: weights do not match the architecture in {CONFIG_NAME}: {_first_line(exc)}"
            ) from None
        missing = [k for k in missing if not _is_tied(model, k)]
        if missing or unexpected:
            raise ValueError(
                f"{weights}: weights do not match the architecture in {CONFIG_NAME}: "
                f"missing {missing[:5]}, unexpected {unexpected[:5]}"
            )
        model.source_format = "polymodal"
        return model.to(map_location).eval()


def _model_class(name: Any, where: str) -> type[EmbeddingModel]:
    """The registered EmbeddingModel subclass ``model_class`` names (see :mod:`polymodal.registry`: the core's
    own classes and the ``models`` of loaded plugins, e.g. the text plugin's ``CrossEncoder``)."""
    from polymodal.registry import resolve_class

    return resolve_class(name, "model", field="model_class", base=EmbeddingModel, where=where)


def _first_line(exc: BaseException) -> str:
    text = str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_config(config_path: Path) -> dict[str, Any]:
    """Read and type-check ``polymodal.json``; every fault is one line naming the file and the field."""
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{config_path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{config_path}: invalid JSON: {exc}") from None
    where = str(config_path)

    def need(ok: bool, field: str, expected: str, value: Any) -> None:
        if not ok:
            raise ValueError(f"{where}: field {field!r} must be {expected}, got {json.dumps(value)[:80]}")

    need(isinstance(config, dict), "(top level)", "a JSON object", config)
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{where}: format_version {config.get('format_version')!r} not supported (expected 1)")
    for key in ("encoder", "pooler"):
        if key not in config:
            raise ValueError(f"{where}: missing field {key!r}")
    enc = config["encoder"]
    need(isinstance(enc, dict), "encoder", "an object with 'class' and 'config'", enc)
    for key in ("class", "config"):
        if key not in enc:
            raise ValueError(f"{where}: missing field 'encoder.{key}'")
    need(isinstance(enc["class"], str), "encoder.class", "a class name string", enc["class"])
    need(isinstance(enc["config"], dict), "encoder.config", "an object", enc["config"])
    pool = config["pooler"]
    need(isinstance(pool, dict) and ("name" in pool or "class" in pool), "pooler", "an object with 'name'", pool)
    need(isinstance(pool.get("args", {}), dict), "pooler.args", "an object", pool.get("args"))
    need(
        isinstance(config.get("normalize", False), bool),
        "normalize",
        "true or false (a JSON boolean)",
        config.get("normalize"),
    )
    prompts = config.get("prompts") or {}
    need(
        isinstance(prompts, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in prompts.items()),
        "prompts",
        "an object of strings",
        prompts,
    )
    default = config.get("default_prompt_name")
    need(
        default is None or (isinstance(default, str) and default in prompts),
        "default_prompt_name",
        f"null or one of {sorted(prompts)}",
        default,
    )
    need(
        config.get("model_class") is None or isinstance(config["model_class"], str),
        "model_class",
        "a class name string",
        config.get("model_class"),
    )
    need(isinstance(config.get("model_args") or {}, dict), "model_args", "an object", config.get("model_args"))
    config["model_args"] = dict(config.get("model_args") or {})
    return config


def _weights_header(weights: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from a safetensors header (reads a few KB, allocates no tensor)."""
    from safetensors import SafetensorError, safe_open

    if not weights.is_file():
        raise FileNotFoundError(f"weights file missing: {weights}")
    try:
        with safe_open(str(weights), framework="pt") as fh:
            return {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118 - not a dict
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{weights}: corrupt or truncated weights file ({_first_line(exc)})") from None


#: A weights file may omit tied or re-derivable tensors; the architecture may exceed what the file
#: holds by this factor (plus a fixed slack) before loading is refused as "declares a model it lacks".
_SIZE_SLACK = 1.5
_SIZE_SLACK_BYTES = 16 << 20


def _check_against_header(build: Any, header: dict[str, tuple[int, ...]], weights: Path) -> None:
    """Build the architecture on the meta device (no memory) and compare it with the weights header.

    Encoders that cannot be built on the meta device skip the check (the shape check after the
    real build still applies).
    """
    try:
        with torch.device("meta"):
            meta = build()
    except ValueError:
        raise
    except Exception:  # noqa: BLE001 - an encoder that needs real tensors while building
        return
    shapes = {k: tuple(v.shape) for k, v in meta.state_dict().items()}
    for name, shape in header.items():
        if name in shapes and shapes[name] != shape:
            raise ValueError(
                f"{weights}: tensor {name!r} has shape {list(shape)} but the architecture in {CONFIG_NAME} "
                f"expects {list(shapes[name])}"
            )
    declared = sum(p.numel() for p in meta.parameters())
    held = sum(int(np.prod(s, dtype=np.int64)) for s in header.values())
    if declared > _SIZE_SLACK * held + _SIZE_SLACK_BYTES // 4:
        raise ValueError(
            f"{weights}: the architecture in {CONFIG_NAME} declares {declared:,} parameters but the weights file "
            f"holds {held:,}; refusing to allocate a model its weights cannot fill"
        )


_MODE_LOCK = threading.Lock()
_IN_CALL: weakref.WeakKeyDictionary[nn.Module, list[Any]] = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def eval_for_call(model: nn.Module) -> Iterator[None]:
    """Run inference on ``model`` in eval mode without racing other threads.

    A model in eval mode (what :func:`load` returns) is never touched: no module state changes,
    so any number of threads encode at once and get the sequential result exactly. A model still
    in training mode (built in code, never ``eval()``-ed) is switched to eval when the first
    concurrent call enters and every submodule's own mode is restored when the last one leaves.
    """
    with _MODE_LOCK:
        entry = _IN_CALL.get(model)
        if entry is None:
            saved = {m: m.training for m in model.modules()} if any(m.training for m in model.modules()) else None
            if saved is not None:
                model.eval()
            entry = [0, saved]
            _IN_CALL[model] = entry
        entry[0] += 1
    try:
        yield
    finally:
        with _MODE_LOCK:
            entry[0] -= 1
            if entry[0] == 0:
                _IN_CALL.pop(model, None)
                for module, training in (entry[1] or {}).items():
                    module.training = training


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
    seen: dict[tuple[int, int, tuple[int, ...]], str] = {}  # (storage, offset, shape) -> first name
    out = {}
    for name, tensor in state.items():
        key = (tensor.untyped_storage().data_ptr(), int(tensor.storage_offset()), tuple(int(d) for d in tensor.shape))
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


def cpu_streams(
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


#: Model folder formats :func:`load` recognises: name -> (file that marks it, importer in our own package).
FOLDER_FORMATS: dict[str, tuple[str, str]] = {
    "prefix-lm": ("prefix_lm.json", "polymodal.prefix_lm:PrefixLM.from_folder"),  # PrefixLM: .generate(inputs, prompt)
    "polymodal": (CONFIG_NAME, "polymodal.model:EmbeddingModel.from_folder"),
    "sentence-transformers": ("modules.json", "polymodal.plugins.text.pretrained:from_sentence_transformers"),
    "huggingface": ("config.json", "polymodal.plugins.text.pretrained:from_huggingface"),
}


def detect_format(directory: str | os.PathLike[str]) -> str:
    """The format of a model folder: ``"polymodal"``, ``"sentence-transformers"`` or ``"huggingface"``.

    Raises:
        FileNotFoundError: one line listing what was looked for.
    """
    folder = Path(directory)
    for name, (marker, _) in FOLDER_FORMATS.items():
        if (folder / marker).is_file():
            return name
    looked = "; ".join(f"{marker} ({name} folder)" for name, (marker, _) in FOLDER_FORMATS.items())
    raise FileNotFoundError(f"cannot load {folder}: not a model folder this version reads; looked for {looked}")


def load(
    name_or_path: str | os.PathLike[str], device: str | torch.device = "cpu", backend: str | None = None
) -> EmbeddingModel:
    """Load a model, in eval mode, by registered name (e.g. ``"minilm-l6"``) or from a folder.

    Folders may be polymodal folders (``polymodal.json``), sentence-transformers folders
    (``modules.json``: Transformer, Pooling, Normalize, prompts from
    ``config_sentence_transformers.json``) or plain Hugging Face model folders (``config.json`` and
    safetensors weights: mean pooling, with a one-line notice). The recognised format is logged
    and kept in ``model.source_format``. Names come from :mod:`polymodal.registry`
    (``polymodal models`` lists them); pretrained names use weights shipped in installed
    packages, never the network. Nothing a folder holds is executed.
    ``backend`` (e.g. ``"auto"``): see :meth:`EmbeddingModel.set_backend`; a folder's exported graphs are
    cached in ``<folder>/backends``.
    """
    import importlib
    import logging

    from polymodal.registry import list_models, model_card

    text = os.fspath(name_or_path)
    folder = Path(text).expanduser()
    if folder.is_dir():
        fmt = detect_format(folder)
        module, _, attr = FOLDER_FORMATS[fmt][1].partition(":")
        try:
            target: Any = importlib.import_module(module)
        except ImportError:
            raise ImportError(
                f"{folder} is a {fmt} folder; reading it needs the text plugin: pip install 'polymodal[text]'"
            ) from None
        for part in attr.split("."):
            target = getattr(target, part)
        model = target(folder) if fmt != "polymodal" else target(folder, map_location=device)
        model.source_format = fmt
        logging.getLogger(__name__).info("loaded %s as a %s folder", folder, fmt)
        model = model.to(device).eval()
        return model if backend is None else model.set_backend(backend, cache_dir=folder / "backends")
    names = list_models(kind="pretrained")
    if text in names:
        model = model_card(text).factory().to(device).eval()
        model.source_format = "registered"
        return model if backend is None else model.set_backend(backend)
    raise ValueError(
        f"cannot load {text!r}: not a model folder, and not a known model name "
        f"(known: {', '.join(names) or 'none; is the text plugin installed?'})"
    )
