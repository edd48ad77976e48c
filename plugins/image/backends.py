"""Inference backends for CNN image encoders on CPU: torch (NCHW / channels_last), ONNX Runtime, OpenVINO.

The same choice as for text (:mod:`polymodal.plugins.text.backends`): ``model.set_backend(name)`` with
``"torch"`` (eager NCHW, what the encoder runs without a backend), ``"channels_last"`` (the same module in
NHWC memory layout, which oneDNN convolutions prefer), ``"onnx"`` (ONNX Runtime on a TorchScript export of the
trunk), ``"openvino"`` (OpenVINO on that graph with ``INFERENCE_PRECISION_HINT=f32``) or ``"auto"`` (every
candidate that is installed and equals torch within ``tolerance`` on a seeded random batch, timed on that
batch in alternated rounds; the fastest wins, ``backend.report`` has the figures).

A batch is split into ``streams`` parts run at once, one thread each (ONNX Runtime / OpenVINO release the GIL,
torch runs its ops with one intra-op thread inside the call): under contention one-thread streams do not stall
at OpenMP barriers. Results equal the torch encoder's features (BatchNorm in eval mode, images independent).
Exported graphs are cached by a fingerprint of weights, config and versions, as for text. CNN trunks only
(timm non-ViT models and torchvision trunks), ``hidden_states=False``.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from polymodal.features import Features
from polymodal.io import atomic_path, ensure_writable_dir

__all__ = ["AUTO_CANDIDATES", "BACKENDS", "ImageBackend", "make_image_backend"]

BACKENDS: tuple[str, ...] = ("torch", "channels_last", "onnx", "openvino")
AUTO_CANDIDATES = BACKENDS
_GRAPH_FORMAT = 1

Runner = Callable[[np.ndarray], np.ndarray]  # pixels (B, 3, S, S) float32 -> feature map (B, C, h, w)


class _Trunk(nn.Module):
    def __init__(self, encoder: Any) -> None:
        super().__init__()
        self.net, self.timm = encoder.net, encoder.backend == "timm"

    def forward(self, pixel_values: Tensor) -> Tensor:
        return self.net.forward_features(pixel_values) if self.timm else self.net(pixel_values)  # (B, C, h, w)


def _image_encoder(model: Any) -> Any:
    from polymodal.plugins.image.encoder import ImageEncoder

    encoder = model.encoder
    if not isinstance(encoder, ImageEncoder) or encoder._is_vit:
        raise ValueError(f"image backends support CNN ImageEncoders, got {type(encoder).__name__}")
    if encoder.hidden_states:
        raise ValueError("image backends return the last feature map only; this encoder has hidden_states=True")
    if next(model.parameters()).device.type != "cpu":
        raise ValueError("image backends run on CPU")
    return encoder


def _fingerprint(encoder: Any) -> str:
    h = hashlib.sha256()
    versions = {"format": _GRAPH_FORMAT, "torch": torch.__version__}
    for lib in ("onnxruntime", "openvino"):
        try:
            versions[lib] = __import__(lib).__version__
        except ImportError:
            versions[lib] = None
    h.update(json.dumps([versions, encoder.get_config()], sort_keys=True, default=str).encode())
    for name, tensor in sorted(encoder.net.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:20]


def _graph(encoder: Any, cache_dir: Any) -> Path:
    from polymodal.plugins.text.backends import _cache_root

    root = ensure_writable_dir(_cache_root(cache_dir), what="backend cache directory")
    path = root / f"image-{_fingerprint(encoder)}.onnx"
    if path.is_file():
        return path
    S = encoder.processor.image_size
    trunk = _Trunk(encoder).eval()
    with atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            trunk,
            (torch.zeros(2, 3, S, S),),
            str(tmp),
            dynamo=False,
            opset_version=17,
            input_names=["pixel_values"],
            output_names=["features"],
            dynamic_axes={"pixel_values": {0: "batch"}, "features": {0: "batch"}},
        )
    return path


def _runners(encoder: Any, name: str, streams: int, cache_dir: Any) -> tuple[list[Runner], dict[str, Any]]:
    if name in ("torch", "channels_last"):
        trunk = _Trunk(encoder).eval()
        if name == "channels_last":
            trunk = copy.deepcopy(trunk).to(memory_format=torch.channels_last)

        def run(x: np.ndarray) -> np.ndarray:
            t = torch.from_numpy(x)
            if name == "channels_last":
                t = t.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                return trunk(t).contiguous().numpy()

        return [run] * streams, {}
    if name == "onnx":
        try:
            import onnxruntime as ort
        except ImportError:
            raise ImportError("the 'onnx' backend needs onnxruntime: pip install 'polymodal[onnx]'") from None
        path = _graph(encoder, cache_dir)
        out = []
        for _ in range(streams):
            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            out.append(lambda x, s=session: s.run(["features"], {"pixel_values": x})[0])
        return out, {"path": str(path)}
    if name == "openvino":
        try:
            import openvino as ov
        except ImportError:
            raise ImportError("the 'openvino' backend needs OpenVINO: pip install openvino") from None
        path = _graph(encoder, cache_dir)
        core = ov.Core()
        config = {
            "PERFORMANCE_HINT": "THROUGHPUT",
            "NUM_STREAMS": str(streams),
            "INFERENCE_NUM_THREADS": str(streams),
            "INFERENCE_PRECISION_HINT": "f32",
        }
        compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        precision = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
        if "32" not in precision:
            raise RuntimeError(f"OpenVINO compiled with inference precision {precision}, not f32")
        out = []
        for _ in range(streams):
            request = compiled.create_infer_request()
            # Touch a numpy view once here, on the calling thread: pybind11 initialises its numpy API lazily
            # under std::call_once, and two stream threads doing that first at once deadlock with the GIL
            # (seen as a hung test: both threads parked in data_dispatcher's `tensor.data[:] = ...`).
            _ = request.get_input_tensor(0).data

            def run(x: np.ndarray, request: Any = request) -> np.ndarray:
                request.infer({"pixel_values": x})
                return np.array(request.get_output_tensor(0).data, copy=True)

            out.append(run)
        return out, {"path": str(path), "precision": precision}
    raise ValueError(f"unknown image backend {name!r}; choose from auto, {', '.join(BACKENDS)}")


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class ImageBackend:
    """The trunk forward of image batches in one backend; a batch runs as ``streams`` one-thread parts.

    Attributes:
        name: the backend; streams: parts run at once; details: facts (graph path, OpenVINO precision,
        load-time difference to torch); report: with ``"auto"``, one row per candidate.
    """

    def __init__(self, name: str, runners: list[Runner], details: dict[str, Any] | None = None) -> None:
        self.name, self.streams, self.details = name, len(runners), dict(details or {})
        self.report: list[dict[str, Any]] = []
        self._runners = runners
        many = len(runners) > 1
        self._pool = ThreadPoolExecutor(len(runners), thread_name_prefix="polymodal-image") if many else None

    def features(self, pixels: np.ndarray) -> np.ndarray:
        """``(B, 3, S, S)`` float32 -> ``(B, C, h, w)`` feature map."""
        parts = [p for p in np.array_split(pixels, min(self.streams, max(1, len(pixels)))) if len(p)]
        if self._pool is None or len(parts) == 1:
            with _torch_threads(1) if self._pool is not None else contextlib.nullcontext():
                return self._runners[0](np.ascontiguousarray(pixels))
        with _torch_threads(1):
            maps = list(self._pool.map(lambda k: self._runners[k](np.ascontiguousarray(parts[k])), range(len(parts))))
        return np.concatenate(maps)

    def __call__(self, inputs: dict[str, Tensor]) -> Features:
        fmap = torch.from_numpy(self.features(inputs["pixel_values"].float().numpy()))  # (B, C, h, w)
        seq = fmap.flatten(2).transpose(1, 2)  # (B, h*w, C)
        mask = torch.ones(seq.shape[:2], dtype=torch.bool)
        return Features(sequence=seq, mask=mask, pooled=seq.mean(dim=1))

    def __repr__(self) -> str:
        return f"ImageBackend({self.name!r}, streams={self.streams})"


def _probe(encoder: Any, n: int = 16) -> np.ndarray:
    S = encoder.processor.image_size
    return np.random.default_rng(0).standard_normal((n, 3, S, S), dtype=np.float32)


def _difference(encoder: Any, backend: ImageBackend, pixels: np.ndarray) -> float:
    with torch.inference_mode():
        ref = _Trunk(encoder).eval()(torch.from_numpy(pixels)).numpy()
    return float(np.abs(backend.features(pixels) - ref).max())


def make_image_backend(
    model: Any,
    name: Literal["auto", "torch", "channels_last", "onnx", "openvino"] = "auto",
    *,
    streams: int | None = None,
    cache_dir: Any = None,
    tolerance: float = 1e-4,
    rounds: int = 2,
    probe_size: int = 16,
) -> ImageBackend:
    """Build image backend ``name`` (see the module doc) for a CNN image ``EmbeddingModel``."""
    encoder = _image_encoder(model)
    was_training = encoder.training
    encoder.eval()
    try:
        streams = int(streams or torch.get_num_threads())
        pixels = _probe(encoder, probe_size)
        names = AUTO_CANDIDATES if name == "auto" else (name,)
        built: list[ImageBackend] = []
        report: list[dict[str, Any]] = []
        for candidate in names:
            try:
                runners, details = _runners(encoder, candidate, streams, cache_dir)
                backend = ImageBackend(candidate, runners, details)
                diff = _difference(encoder, backend, pixels)
            except (ImportError, RuntimeError, OSError) as exc:
                if name != "auto":
                    raise
                report.append({"backend": candidate, "skipped": f"{type(exc).__name__}: {exc}".splitlines()[0]})
                continue
            backend.details["max_diff"] = diff
            if not diff <= tolerance:
                if name != "auto":
                    raise ValueError(f"image backend {candidate!r} differs from torch by {diff:.2e} > {tolerance:.0e}")
                report.append({"backend": candidate, "skipped": f"differs from torch by {diff:.2e}"})
                continue
            built.append(backend)
            report.append({"backend": candidate, "max_diff": diff, "seconds": float("inf")})
        if name != "auto":
            return built[0]
        rows = {r["backend"]: r for r in report}
        for _ in range(max(1, rounds)):
            for backend in built:
                start = time.perf_counter()
                backend.features(pixels)
                rows[backend.name]["seconds"] = min(rows[backend.name]["seconds"], time.perf_counter() - start)
        for backend in built:
            rows[backend.name]["images_per_s"] = len(pixels) / rows[backend.name]["seconds"]
        best = min(built, key=lambda b: rows[b.name]["seconds"])
        best.report = report
        return best
    finally:
        encoder.train(was_training)
