"""Inference backends for ``EmbeddingModel.encode`` of text models on CPU: torch, ONNX Runtime, OpenVINO.

``polymodal.load(name, backend="auto")`` or ``model.set_backend(...)`` picks one; tokenisation, length-sorted
batching, pooling and normalisation stay polymodal's own, only the transformer's forward of a batch moves:

* ``"torch"``: the model itself (what ``encode`` runs without a backend).
* ``"onnx"``: ONNX Runtime on a graph whose attention, layer norms and GELUs are fused. The combination
  that fuses is the TorchScript exporter on the *eager*-attention model, then ONNX Runtime's transformer
  optimizer (``onnxruntime.transformers.optimizer``, ``model_type="bert"``, heads and width given): it
  rewrites the graph into ``Attention`` / ``EmbedLayerNormalization`` / ``SkipLayerNormalization`` /
  ``BiasGelu`` contrib ops (:func:`fused_operators` lists them; the tests check them). The dynamo
  exporter's graph is not matched by the optimizer and runs unfused (slower than torch here).
* ``"openvino"``: OpenVINO on the same exported graph, compiled with ``INFERENCE_PRECISION_HINT=f32``
  (its default picks bf16 on CPUs with AMX/avx512_bf16, a different output) and the throughput hint.
* ``"onnx-int8"`` (opt-in only, never chosen by ``"auto"``): the fused graph with dynamic int8
  quantisation of its weights (per channel). It changes outputs (see docs/results.md for its STS-B
  Spearman and cosine to fp32); load-time checks report its difference instead of enforcing one.
* ``"auto"``: every fp32 backend that is installed and passes the equality check (max abs difference of
  embeddings to torch <= ``tolerance`` on probe sentences) is timed through ``encode`` on the probe
  sentences in alternated rounds; the fastest wins (``backend.report`` holds the measurements).

Each backend runs in the CPU stream scheme: ``streams`` one-thread sessions / infer requests (default:
one per torch thread), so ``encode``'s ``streams`` batches in flight each get a core (ONNX Runtime and
OpenVINO release the GIL). Exported graphs are cached under ``cache_dir`` (``polymodal.load`` of a folder:
``<folder>/backends``; otherwise ``$POLYMODAL_CACHE`` or ``~/.cache/polymodal/backends``) in files named by
a fingerprint of the weights, configs and library versions, and are written atomically. A cached graph is
data (ONNX / OpenVINO never run Python from it) and is checked against torch at every load.

Needs ``pip install 'polymodal[onnx]'`` (onnxruntime, onnx) and/or ``openvino``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import queue
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from polymodal.features import Features
from polymodal.io import atomic_path, ensure_writable_dir

__all__ = [
    "AUTO_CANDIDATES",
    "BACKENDS",
    "PROBE_TEXTS",
    "TextBackend",
    "export_graph",
    "fingerprint",
    "fused_operators",
    "make_backend",
]

log = logging.getLogger(__name__)

BackendName = Literal["auto", "torch", "onnx", "openvino", "onnx-int8"]
BACKENDS: tuple[str, ...] = ("torch", "onnx", "openvino", "onnx-int8")
#: What ``"auto"`` measures: fp32 backends only (int8 changes outputs).
AUTO_CANDIDATES: tuple[str, ...] = ("torch", "onnx", "openvino")
#: Contrib ops the transformer optimizer must have produced for a graph to count as fused.
REQUIRED_FUSED = ("Attention", "SkipLayerNormalization")
_GRAPH_FORMAT = 1  # bump to invalidate cached graphs

#: Sentences ``"auto"`` times the backends on (varied lengths, like a real corpus), unless given ``probe``.
PROBE_TEXTS: tuple[str, ...] = (
    "A man is playing a guitar.",
    "The cat sat quietly on the warm windowsill, watching birds in the garden below.",
    "Stocks fell sharply on Monday after the central bank signalled further rate increases.",
    "Two dogs run across a snowy field.",
    "How do I reset my password if I no longer have access to the email address on my account?",
    "She said the meeting had been moved to Thursday afternoon.",
    "Researchers found that the new material conducts heat twice as well as copper at room temperature, "
    "which could make electronics cooler and more efficient.",
    "A woman slices an onion.",
    "The train to the airport leaves every fifteen minutes from platform four.",
    "Is it safe to eat raw cookie dough?",
    "Local volunteers planted more than three hundred trees along the river over the weekend.",
    "The committee will publish its final report, including all recommendations and dissenting opinions, "
    "before the end of the year.",
    "Children are playing in the park.",
    "What is the difference between a virus and a bacterium?",
    "The restaurant on the corner serves the best noodles in town, according to almost everyone I know.",
    "He fixed the bicycle.",
)


class _LastHidden(nn.Module):
    """``(input_ids, attention_mask) -> last_hidden_state`` for export."""

    def __init__(self, hf: nn.Module) -> None:
        super().__init__()
        self.hf = hf

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return self.hf(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, D)


def _text_encoder(model: Any) -> Any:
    """The model's plain :class:`TextEncoder`, or a one-line error saying why backends do not apply."""
    from polymodal.plugins.text.encoder import TextEncoder

    encoder = model.encoder
    if type(encoder) is not TextEncoder:
        raise ValueError(f"inference backends support plain text encoders (TextEncoder), got {type(encoder).__name__}")
    if encoder.hidden_states:
        raise ValueError("inference backends return the last layer only; this encoder has hidden_states=True")
    if getattr(encoder.model.config, "is_decoder", False):
        raise ValueError("inference backends support encoder (bidirectional) models only")
    device = next(model.parameters()).device
    if device.type != "cpu":
        raise ValueError(f"inference backends run on CPU; the model is on {device}")
    return encoder


def fingerprint(model: Any) -> str:
    """SHA-256 over the graph format, library versions, configs and every weight of ``model``."""
    encoder = _text_encoder(model)
    h = hashlib.sha256()
    versions = {"format": _GRAPH_FORMAT, "torch": torch.__version__}
    for lib in ("onnx", "onnxruntime", "openvino"):
        try:
            versions[lib] = __import__(lib).__version__
        except ImportError:
            versions[lib] = None
    h.update(json.dumps(versions, sort_keys=True).encode())
    h.update(encoder.model.config.to_json_string(use_diff=False).encode())
    h.update(json.dumps(encoder.get_config(), sort_keys=True).encode())
    for name, tensor in sorted(encoder.model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def _eager_copy(hf: nn.Module) -> nn.Module:
    """The same weights with eager attention (the optimizer's fusion patterns match eager attention)."""
    from transformers import AutoModel

    eager = AutoModel.from_config(hf.config, attn_implementation="eager")
    missing, unexpected = eager.load_state_dict(hf.state_dict(), strict=False)
    missing = [k for k in missing if not k.startswith("pooler.")]  # we drop BERT's unused pooler head
    if missing or unexpected:
        raise ValueError(f"eager copy does not match the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return eager.eval()


def export_graph(model: Any, path: str | os.PathLike[str], opset: int = 17) -> Path:
    """TorchScript-export the transformer (eager attention, dynamic batch and sequence axes) to ``path``."""
    encoder = _text_encoder(model)
    sample = encoder.processor(["a first example sentence", "a second, somewhat longer example sentence"])
    wrapper = _LastHidden(_eager_copy(encoder.model))
    axes = {0: "batch", 1: "sequence"}
    with atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings and the exporter's deprecation notice
        torch.onnx.export(
            wrapper,
            (sample["input_ids"], sample["attention_mask"]),
            str(tmp),
            dynamo=False,
            opset_version=opset,
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "last_hidden_state": axes},
        )
    return Path(path)


def _fuse(model: Any, raw: Path, path: Path) -> Path:
    """Run ONNX Runtime's transformer optimizer over the exported graph ``raw``; write ``path``."""
    from onnxruntime.transformers import optimizer

    config = model.encoder.model.config
    handler = logging.getLogger("onnxruntime.transformers")
    level = handler.level
    handler.setLevel(logging.ERROR)
    try:
        optimized = optimizer.optimize_model(
            str(raw),
            model_type="bert",
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
            opt_level=0,  # graph rewrites only; the session applies its own optimisations at load
        )
    finally:
        handler.setLevel(level)
    with atomic_path(path) as tmp:
        optimized.save_model_to_file(str(tmp))
    return path


def _quantize(fused: Path, path: Path) -> Path:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with atomic_path(path) as tmp:  # contrib ops defeat shape inference: name the float type
        options = {"DefaultTensorType": onnx.TensorProto.FLOAT}
        quantize_dynamic(str(fused), str(tmp), weight_type=QuantType.QInt8, per_channel=True, extra_options=options)
    return path


def fused_operators(path: str | os.PathLike[str]) -> dict[str, int]:
    """Counts of the fused contrib ops (``Attention``, ``SkipLayerNormalization``, ...) in an ONNX file."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    fused = {"Attention", "MultiHeadAttention", "EmbedLayerNormalization", "SkipLayerNormalization"}
    fused |= {"BiasGelu", "FastGelu", "Gelu", "QAttention", "DynamicQuantizeMatMul", "MatMulInteger"}
    counts: dict[str, int] = {}
    for node in graph.node:
        if node.op_type in fused:
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def _cache_root(cache_dir: str | os.PathLike[str] | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    base = os.environ.get("POLYMODAL_CACHE")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "polymodal") / "backends"


def _graph_files(model: Any, name: str, cache_dir: str | os.PathLike[str] | None) -> Path:
    """The cached graph for backend ``name`` (``onnx`` fused / ``openvino`` raw / ``onnx-int8``), exported
    on first use. ``cache_dir`` falls back to the user cache when it cannot be written."""
    fp = fingerprint(model)[:20]
    root = _cache_root(cache_dir)
    try:
        root = ensure_writable_dir(root, what="backend cache directory")
    except OSError as exc:
        if cache_dir is None:
            raise
        log.info("%s; caching exported graphs in the user cache instead", exc)
        root = ensure_writable_dir(_cache_root(None), what="backend cache directory")
    raw, fused, int8 = root / f"text-{fp}.onnx", root / f"text-{fp}.fused.onnx", root / f"text-{fp}.int8.onnx"
    if not raw.is_file():
        export_graph(model, raw)
    if name == "openvino":
        return raw
    if not fused.is_file():
        _fuse(model, raw, fused)
    if name == "onnx":
        return fused
    if not int8.is_file():
        _quantize(fused, int8)
    return int8


# ---------------------------------------------------------------------------------------------- runners
Runner = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (ids (B, T), mask (B, T)) -> hidden (B, T, D)


def _ort_runners(path: Path, streams: int, threads: int) -> list[Runner]:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ImportError("the 'onnx' backend needs onnxruntime: pip install 'polymodal[onnx]'") from None
    runners = []
    for _ in range(streams):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        def run(ids: np.ndarray, mask: np.ndarray, session: Any = session) -> np.ndarray:
            return session.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask})[0]

        runners.append(run)
    return runners


def _openvino_runners(path: Path, streams: int, threads: int) -> tuple[list[Runner], dict[str, str]]:
    try:
        import openvino as ov
    except ImportError:
        raise ImportError("the 'openvino' backend needs OpenVINO: pip install openvino") from None
    core = ov.Core()
    config = {
        "PERFORMANCE_HINT": "THROUGHPUT",
        "NUM_STREAMS": str(streams),
        "INFERENCE_NUM_THREADS": str(streams * threads),
        "INFERENCE_PRECISION_HINT": "f32",  # the default may be bf16 on AMX / avx512_bf16 CPUs
    }
    compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
    precision = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
    if "32" not in precision:
        raise RuntimeError(f"OpenVINO compiled with inference precision {precision}, not f32")
    runners = []
    for _ in range(streams):
        request = compiled.create_infer_request()
        # first numpy view on the calling thread, not concurrently in the stream threads (pybind11's lazy numpy
        # API init under std::call_once deadlocks with the GIL when two threads race; see plugins/image/backends.py)
        _ = request.get_input_tensor(0).data

        def run(ids: np.ndarray, mask: np.ndarray, request: Any = request) -> np.ndarray:
            request.infer({"input_ids": ids, "attention_mask": mask})
            return np.array(request.get_output_tensor(0).data, copy=True)  # the request reuses its buffer

        runners.append(run)
    return runners, {"precision": precision, "streams": str(compiled.get_property("NUM_STREAMS"))}


def _torch_runners(model: Any, streams: int) -> list[Runner]:
    hf = model.encoder.model

    def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return hf(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state.numpy()

    return [run] * streams


# ---------------------------------------------------------------------------------------------- backend
class TextBackend:
    """The transformer forward of ``encode`` batches in one backend, ``streams`` batches at once.

    Called with a processor batch, returns :class:`~polymodal.features.Features` (last layer + mask) for
    the model's pooler. Thread-safe: each call takes a free session / infer request.

    Attributes:
        name: ``"torch"``, ``"onnx"``, ``"openvino"`` or ``"onnx-int8"``.
        streams: sessions / infer requests, one batch each at a time (``encode`` runs this many at once).
        threads: threads per stream.
        path: the graph file (``None`` for torch).
        details: backend facts (fused op counts, OpenVINO precision, the load-time difference to torch).
        report: with ``"auto"``, one row per candidate: name, sent/s or why it was skipped, difference.
    """

    def __init__(
        self,
        name: str,
        runners: list[Runner],
        threads: int,
        path: Path | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.streams = len(runners)
        self.threads = threads
        self.path = path
        self.details = dict(details or {})
        self.report: list[dict[str, Any]] = []
        self._free: queue.SimpleQueue[Runner] = queue.SimpleQueue()
        for runner in runners:
            self._free.put(runner)

    def __call__(self, inputs: dict[str, Tensor]) -> Features:
        mask = inputs["attention_mask"]
        runner = self._free.get()
        try:
            hidden = runner(inputs["input_ids"].numpy(), mask.numpy())  # (B, T, D)
        finally:
            self._free.put(runner)
        return Features(sequence=torch.from_numpy(hidden), mask=mask.bool())

    def __repr__(self) -> str:
        return f"TextBackend({self.name!r}, streams={self.streams}, threads={self.threads})"


def _require(module: str, backend: str, package: str) -> None:
    """Fail before exporting anything when the backend's library is missing."""
    try:
        __import__(module)
    except ImportError:
        raise ImportError(f"the {backend!r} backend needs {module}: pip install {package}") from None


@contextlib.contextmanager
def _probing(model: Any) -> Iterator[None]:
    """Run probe encodes without touching the processor's truncation count or its one-time warning."""
    processor, previous = model.encoder.processor, model.backend
    counted, warned = processor.truncated, processor._warned
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        processor.truncated, processor._warned = counted, warned
        model.backend = previous


def _build(model: Any, name: str, streams: int, threads: int, cache_dir: Any) -> TextBackend:
    if name == "torch":
        return TextBackend("torch", _torch_runners(model, streams), threads)
    if name in ("onnx", "onnx-int8"):
        _require("onnxruntime", name, "'polymodal[onnx]'")
        path = _graph_files(model, name, cache_dir)
        ops = fused_operators(path)
        return TextBackend(name, _ort_runners(path, streams, threads), threads, path, {"fused_ops": ops})
    if name == "openvino":
        _require("openvino", name, "openvino")
        path = _graph_files(model, name, cache_dir)
        runners, facts = _openvino_runners(path, streams, threads)
        return TextBackend(name, runners, threads, path, facts)
    raise ValueError(f"unknown backend {name!r}; choose from auto, {', '.join(BACKENDS)}")


def _difference(model: Any, backend: TextBackend, texts: Sequence[str]) -> tuple[float, float]:
    """(max abs difference, min cosine) of ``backend``'s embeddings to the torch model's on ``texts``."""
    with _probing(model):
        model.backend = None
        ref = model.encode(list(texts), batch_size=8, streams=1)
        model.backend = backend
        got = model.encode(list(texts), batch_size=8, streams=1)
    cos = np.sum(ref * got, -1) / (np.linalg.norm(ref, axis=-1) * np.linalg.norm(got, axis=-1) + 1e-12)
    return float(np.abs(ref - got).max()), float(cos.min())


def make_backend(
    model: Any,
    name: BackendName = "auto",
    *,
    streams: int | None = None,
    threads: int = 1,
    cache_dir: str | os.PathLike[str] | None = None,
    tolerance: float = 1e-4,
    probe: Sequence[str] | None = None,
    rounds: int = 2,
    batch_size: int = 64,
) -> TextBackend:
    """Build backend ``name`` for a text :class:`~polymodal.model.EmbeddingModel` (see the module doc).

    Args:
        model: the torch model (its processor, pooler and normalisation are reused).
        name: a backend, or ``"auto"`` for the measured fastest fp32 backend that passes the check.
        streams: one-thread sessions (default: ``torch.get_num_threads()``).
        threads: threads per stream.
        cache_dir: where exported graphs are cached (default: the user cache).
        tolerance: largest max-abs difference of embeddings to torch accepted at load (fp32 backends).
        probe: sentences for the check and for ``"auto"``'s timing (default :data:`PROBE_TEXTS` x 4).
        rounds: alternated timing rounds per candidate for ``"auto"`` (the best counts).
        batch_size: batch size of the timing runs.
    """
    _text_encoder(model)
    streams = int(streams or torch.get_num_threads())
    if streams < 1 or threads < 1:
        raise ValueError(f"streams and threads must be >= 1, got {streams}, {threads}")
    texts = list(probe) if probe else list(PROBE_TEXTS) * 4
    if name != "auto":
        backend = _build(model, name, streams, threads, cache_dir)
        diff, cosine = _difference(model, backend, texts[:16])
        backend.details.update(max_diff=diff, min_cosine=cosine)
        if name != "onnx-int8" and not diff <= tolerance:
            raise ValueError(f"backend {name!r} differs from torch by {diff:.2e} > tolerance {tolerance:.0e}")
        return backend
    candidates: list[TextBackend] = []
    report: list[dict[str, Any]] = []
    for candidate in AUTO_CANDIDATES:
        try:
            backend = _build(model, candidate, streams, threads, cache_dir)
            diff, cosine = _difference(model, backend, texts[:16])
        except (ImportError, RuntimeError, ValueError, OSError) as exc:
            report.append({"backend": candidate, "skipped": f"{type(exc).__name__}: {exc}".splitlines()[0]})
            continue
        backend.details.update(max_diff=diff, min_cosine=cosine)
        if not diff <= tolerance:
            report.append({"backend": candidate, "skipped": f"differs from torch by {diff:.2e}", "max_diff": diff})
            continue
        candidates.append(backend)
        report.append({"backend": candidate, "max_diff": diff, "seconds": float("inf")})
    rows = {row["backend"]: row for row in report}
    with _probing(model):
        for _ in range(max(1, rounds)):  # alternated, so load drifts hit every candidate
            for backend in candidates:
                model.backend = backend
                start = time.perf_counter()
                model.encode(texts, batch_size=batch_size)
                rows[backend.name]["seconds"] = min(rows[backend.name]["seconds"], time.perf_counter() - start)
    for backend in candidates:
        rows[backend.name]["sent_per_s"] = len(texts) / rows[backend.name]["seconds"]
    best = min(candidates, key=lambda b: rows[b.name]["seconds"])  # torch always qualifies
    best.report = report
    log.info("backend auto: %s", ", ".join(f"{r['backend']}={r.get('sent_per_s', r.get('skipped'))}" for r in report))
    return best
