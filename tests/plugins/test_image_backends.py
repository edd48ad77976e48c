"""Image inference backends (torch NCHW / channels_last / ONNX Runtime / OpenVINO fp32) equal torch; auto."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from polymodal.model import EmbeddingModel
from polymodal.plugins.image import ImageEncoder
from polymodal.plugins.image.backends import AUTO_CANDIDATES, make_image_backend
from polymodal.poolers import MeanPooler

NEEDS = {"torch": "torch", "channels_last": "torch", "onnx": "onnxruntime", "openvino": "openvino"}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("image-backend-cache")


def tiny_model(arch="test_efficientnet", **kwargs) -> EmbeddingModel:
    torch.manual_seed(0)
    return EmbeddingModel(ImageEncoder(arch, pretrained=False, image_size=64, **kwargs), MeanPooler()).eval()


def pixels(n=5):
    return {"pixel_values": torch.from_numpy(np.random.default_rng(1).standard_normal((n, 3, 64, 64), np.float32))}


@pytest.mark.parametrize("name", ["torch", "channels_last", "onnx", "openvino"])
@pytest.mark.parametrize("arch,kwargs", [("test_efficientnet", {}), ("mobilenet_v3_small", {"backend": "torchvision"})])
def test_image_backend_equals_torch(cache, name, arch, kwargs):
    pytest.importorskip(NEEDS[name])
    model = tiny_model(arch, **kwargs)
    batch = pixels()
    with torch.inference_mode():
        ref = model(batch)
    model.set_backend(name, cache_dir=cache, streams=2)
    assert model.backend.name == name and model.backend.streams == 2
    with torch.inference_mode():
        got = model.pooler(model.backend(batch))  # the hook encode uses; 5 images in 2 one-thread parts
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)
    assert model.backend.details["max_diff"] <= 1e-4  # the load-time check, on the unpooled feature map


def test_image_auto_falls_back_and_measures(cache, monkeypatch):
    for module in ("onnxruntime", "openvino"):
        monkeypatch.setitem(sys.modules, module, None)
    backend = make_image_backend(tiny_model(), "auto", cache_dir=cache, rounds=1)
    assert backend.name in ("torch", "channels_last")
    skipped = {r["backend"] for r in backend.report if "skipped" in r}
    assert skipped == {"onnx", "openvino"}
    assert {r["backend"] for r in backend.report} == set(AUTO_CANDIDATES)


@pytest.mark.parametrize(
    "change,message",
    [("vit", "CNN ImageEncoders"), ("hidden_states", "hidden_states=True"), ("name", "unknown image backend")],
)
def test_image_backend_bad_requests(cache, change, message):
    if change == "vit":
        model = EmbeddingModel(ImageEncoder("test_vit", pretrained=False, image_size=64))
    else:
        model = tiny_model(hidden_states=change == "hidden_states")
    with pytest.raises(ValueError, match=message):
        model.set_backend("tensorrt" if change == "name" else "onnx", cache_dir=cache)
