"""Text inference backends (torch / fused ONNX Runtime / OpenVINO fp32 / int8 opt-in) equal torch; auto."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

import polymodal
from polymodal.model import EmbeddingModel
from polymodal.plugins.text import TextEncoder
from polymodal.plugins.text.backends import AUTO_CANDIDATES, fingerprint, fused_operators, make_backend
from polymodal.poolers import ClsPooler, MeanPooler
from tests.helpers import TINY_BERT as BASE_TINY_BERT

TINY_BERT = dict(BASE_TINY_BERT, max_position_embeddings=128)
TEXTS = ["hello", "a much longer sentence than the first one, with commas", "mid size text", "x", "ünï ☃"] * 3
NEEDS = {"onnx": "onnxruntime", "onnx-int8": "onnxruntime", "openvino": "openvino", "torch": "torch"}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One graph cache for the module (files are keyed by fingerprint, so tests can share it)."""
    return tmp_path_factory.mktemp("backend-cache")


def tiny_model(pooler=None, normalize=True, seed=0) -> EmbeddingModel:
    torch.manual_seed(seed)
    encoder = TextEncoder(model=TINY_BERT, tokenizer="bytes", max_length=64)
    return EmbeddingModel(encoder, pooler or MeanPooler(), normalize).eval()


@pytest.mark.parametrize("name", ["torch", "onnx", "openvino"])
@pytest.mark.parametrize("pooler,normalize", [(MeanPooler(), True), (ClsPooler(), False)])
def test_backend_equals_torch(cache, name, pooler, normalize):
    pytest.importorskip(NEEDS[name])
    model = tiny_model(pooler, normalize)
    ref = model.encode(TEXTS, batch_size=4, streams=1)
    model.set_backend(name, cache_dir=cache, streams=2)
    assert model.backend.name == name and model.backend.streams == 2
    for streams in (None, 1):
        got = model.encode(TEXTS, batch_size=4, streams=streams)
        np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)
    assert model.encode([], batch_size=4).shape == (0, 32)
    assert model.backend.details["max_diff"] <= 1e-5


def test_onnx_graph_is_fused(cache):
    pytest.importorskip("onnxruntime")
    backend = make_backend(tiny_model(), "onnx", cache_dir=cache)
    ops = fused_operators(backend.path)
    layers = TINY_BERT["num_hidden_layers"]
    assert ops.get("Attention") == layers  # one fused attention per layer
    assert ops.get("SkipLayerNormalization") == 2 * layers
    assert ops.get("BiasGelu", 0) + ops.get("FastGelu", 0) + ops.get("Gelu", 0) == layers
    assert backend.details["fused_ops"] == ops


def test_openvino_runs_fp32(cache):
    pytest.importorskip("openvino")
    backend = make_backend(tiny_model(), "openvino", cache_dir=cache)
    assert "32" in backend.details["precision"]  # an explicit f32 hint, never the bf16 default


def test_graphs_cached_by_fingerprint(tmp_path):
    pytest.importorskip("onnxruntime")
    model = tiny_model()
    first = make_backend(model, "onnx", cache_dir=tmp_path)
    assert fingerprint(model)[:20] in first.path.name
    stamp = first.path.stat().st_mtime_ns
    again = make_backend(model, "onnx", cache_dir=tmp_path)
    assert again.path == first.path and again.path.stat().st_mtime_ns == stamp  # reused, not re-exported
    other = tiny_model(seed=1)
    assert fingerprint(other) != fingerprint(model)
    assert make_backend(other, "onnx", cache_dir=tmp_path).path != first.path


def test_swapped_cached_graph_is_refused(tmp_path):
    """A cached file is data: one that does not compute this model fails the load-time check."""
    pytest.importorskip("onnxruntime")
    model, other = tiny_model(), tiny_model(seed=1)
    mine = make_backend(model, "onnx", cache_dir=tmp_path).path
    theirs = make_backend(other, "onnx", cache_dir=tmp_path).path
    mine.write_bytes(theirs.read_bytes())
    with pytest.raises(ValueError, match="differs from torch"):
        make_backend(model, "onnx", cache_dir=tmp_path)


def test_int8_is_opt_in(cache):
    pytest.importorskip("onnxruntime")
    assert "onnx-int8" not in AUTO_CANDIDATES
    model = tiny_model()
    backend = make_backend(model, "onnx-int8", cache_dir=cache)
    assert {"QAttention", "MatMulInteger"} & set(backend.details["fused_ops"])
    assert 0 < backend.details["max_diff"] and backend.details["min_cosine"] > 0.9  # reported, not enforced
    auto = make_backend(model, "auto", cache_dir=cache, rounds=1)
    assert auto.name in AUTO_CANDIDATES and {r["backend"] for r in auto.report} == set(AUTO_CANDIDATES)


def test_auto_falls_back_when_backends_are_missing(tmp_path, monkeypatch):
    for module in ("onnxruntime", "openvino"):
        monkeypatch.setitem(sys.modules, module, None)  # import -> ImportError
    model = tiny_model()
    ref = model.encode(TEXTS, batch_size=4)
    model.set_backend("auto", cache_dir=tmp_path)
    assert model.backend.name == "torch"
    skipped = {r["backend"]: r["skipped"] for r in model.backend.report if "skipped" in r}
    assert set(skipped) == {"onnx", "openvino"} and all("ImportError" in s for s in skipped.values())
    np.testing.assert_allclose(model.encode(TEXTS, batch_size=4), ref, atol=1e-6)
    with pytest.raises(ImportError, match="pip install"):
        model.set_backend("openvino", cache_dir=tmp_path)


def test_auto_measures_every_available_candidate(cache):
    model = tiny_model()
    backend = make_backend(model, "auto", cache_dir=cache, rounds=1)
    timed = [r for r in backend.report if "sent_per_s" in r]
    assert any(r["backend"] == "torch" for r in timed)
    best = max(timed, key=lambda r: r["sent_per_s"])
    assert backend.name == best["backend"]


def test_load_folder_with_backend_caches_next_to_model(tmp_path):
    pytest.importorskip("onnxruntime")
    folder = tiny_model().save(tmp_path / "m")
    model = polymodal.load(folder, backend="onnx")
    assert model.backend.path.parent == folder / "backends"
    plain = polymodal.load(folder)
    assert plain.backend is None
    np.testing.assert_allclose(model.encode(TEXTS), plain.encode(TEXTS), atol=1e-5)


@pytest.mark.parametrize(
    "change,name,message",
    [
        (None, "tensorrt", "unknown backend 'tensorrt'"),
        ("hidden_states", "onnx", "hidden_states=True"),
        ("subclass", "onnx", "plain text encoders"),
        ("no-backends", "onnx", "offers no inference backends"),
    ],
)
def test_backend_bad_requests(tmp_path, change, name, message):
    model = tiny_model()
    if change == "hidden_states":
        model.encoder.hidden_states = True
    if change == "subclass":  # e.g. a decoder or cross-encoder variant with its own forward
        model.encoder.__class__ = type("CustomEncoder", (TextEncoder,), {})
    if change == "no-backends":  # an encoder of a modality without backends
        model.encoder.inference_backend = None
    with pytest.raises(ValueError, match=message):
        model.set_backend(name, cache_dir=tmp_path)


def test_processor_lengths_are_token_counts():
    processor = tiny_model().encoder.processor
    texts = ["ab", "hello world", "ünï", "x" * 500]
    expected = [len(processor.tokenizer.encode(t).ids) for t in texts]
    assert processor.lengths(texts) == expected
    assert expected[2] == 2 + len("ünï".encode())  # byte tokens + [CLS]/[SEP], not characters
    assert expected[3] == processor.max_length  # capped like the batches themselves
    assert processor.lengths([3, "ab"]) == [0, expected[0]]
