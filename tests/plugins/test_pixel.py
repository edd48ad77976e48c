"""The pixel modality: renderer (exactness, fallback, layout), perturbations, processor, ViT encoder."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch

from polymodal.plugins.pixel import Perturber, PixelEncoder, PixelProcessor, TextRenderer
from polymodal.plugins.pixel.fonts import coverage, hex_box, resolve_font

HAS_UNIFONT = resolve_font("unifont", required=False) is not None


@pytest.fixture(scope="module")
def renderer() -> TextRenderer:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a missing Unifont is reported, DejaVu takes over
        return TextRenderer(max_patches=64)


def test_coverage_reads_the_cmap():
    dejavu = coverage(str(resolve_font("dejavu")))
    assert dejavu[ord("A")] and dejavu[ord("é")] and dejavu[ord("Ж")]
    assert not dejavu[0x4E2D]  # no CJK in DejaVu Sans
    assert dejavu.shape == (0x110000,)


@pytest.mark.skipif(not HAS_UNIFONT, reason="fonts-unifont is not installed")
def test_unifont_matches_imagedraw_pixel_for_pixel():
    from PIL import Image, ImageDraw, ImageFont

    r = TextRenderer(fonts=("unifont",), max_patches=128)
    font = ImageFont.truetype(str(resolve_font("unifont")), 16, layout_engine=ImageFont.Layout.BASIC)
    assert coverage(str(resolve_font("unifont")))[:0x10000].sum() == 57086
    for text in [
        "A man is playing a flute.",
        "Grüße aus Köln — naïve café, 1½ €",
        "中文字符 and 한국어 mixed with ｆｕｌｌｗｉｄｔｈ",
        "e\u0301 a\u0300 o\u0308 combining marks overlap the previous glyph",
        "Ωμέγα Привет ∀x∈ℝ: x²≥0",
    ]:
        ours = r.render(text)
        n_text = ours.shape[1] - 16
        img = Image.new("L", (ours.shape[1] + 64, 16), 255)
        ImageDraw.Draw(img).text((0, 0), text, font=font, fill=0)
        ref = np.asarray(img)
        np.testing.assert_array_equal(ours[:, :n_text], ref[:, :n_text], err_msg=text)
        assert (ref[:, n_text:] == 255).all()  # nothing of the text falls beyond our strip
        assert (ours[:, n_text:] == 0).all()  # the black end-of-sequence patch


def test_layout_end_patch_mask_and_padding(renderer):
    texts = ["short", "a somewhat longer sentence", ""]
    batch = renderer.render_batch(texts)
    P = renderer.config.patch_size
    B, H, W = batch.pixels.shape
    assert (B, H) == (3, 16) and W % P == 0 and W // P == batch.num_patches.max()
    assert batch.num_patches[2] == 1  # empty text: only the end patch
    for b in range(B):
        n = int(batch.num_patches[b])
        assert (batch.pixels[b, :, (n - 1) * P : n * P] == 0).all()  # black end patch
        assert (batch.pixels[b, :, n * P :] == 255).all()  # white padding
        if texts[b]:
            assert (batch.pixels[b, :, : (n - 1) * P] < 255).any()  # some ink
    mask = batch.mask()
    assert mask.shape == (3, W // P) and mask.sum(1).tolist() == batch.num_patches.tolist()
    patches = batch.patches()
    assert patches.shape == (3, W // P, H * P)
    np.testing.assert_array_equal(patches[0, 0].reshape(H, P), batch.pixels[0, :, :P])


def test_batch_equals_single_and_is_deterministic(renderer):
    texts = ["Hello world", "naïve café", "x" * 40, "tab\tand\nnewline"]
    batch = renderer.render_batch(texts)
    for b, t in enumerate(texts):
        single = renderer.render(t)
        np.testing.assert_array_equal(batch.pixels[b, :, : single.shape[1]], single)
    fresh = TextRenderer(fonts=renderer.config.fonts, max_patches=64)
    np.testing.assert_array_equal(fresh.render_batch(texts[::-1]).pixels[::-1], batch.pixels)
    # tab and newline render as spaces
    np.testing.assert_array_equal(renderer.render("a\tb"), renderer.render("a b"))


def test_missing_glyphs_become_visible_boxes_never_errors(renderer):
    weird = ["\x01", "\ue000", "\U0010fffd", "\ud800", "\U000e0001", "\u0378"]  # control, PUA, plane 16, surrogate...
    for ch in weird:
        strip = renderer.render("a" + ch + "b")
        assert strip.shape[1] > 16 and (strip[:, :-16] < 255).any()
    box = hex_box(0x0378)
    assert box.shape == (16, 16) and box[1].all() and not np.array_equal(box, hex_box(0x0379))
    assert hex_box(0x10FFFD).shape == (16, 16)
    # glyphs missing from every font are boxes (not .notdef), distinct per codepoint
    a, b = renderer.render("\u0378"), renderer.render("\u0379")
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_dejavu_only_renderer_and_fallback_order():
    r = TextRenderer(fonts=("dejavu",), max_patches=32)
    strip = r.render("Hello 中")  # CJK is not in DejaVu: drawn as a hex box
    assert strip.shape[0] == 16 and (strip < 255).any()
    assert r.font_for(ord("A")) == 0 and r.font_for(0x4E2D) is None
    if HAS_UNIFONT:
        both = TextRenderer(fonts=("unifont", "dejavu"), max_patches=32)
        assert both.font_for(0x4E2D) == 0


def test_truncation_is_flagged_and_warned():
    r = TextRenderer(fonts=("dejavu",), max_patches=4)
    batch = r.render_batch(["a very long sentence that cannot fit", "ok"])
    assert batch.truncated.tolist() == [True, False]
    assert batch.num_patches[0] <= 4 and batch.pixels.shape[2] <= 4 * 16
    proc = PixelProcessor(r)
    with pytest.warns(UserWarning, match="max_patches=4"):
        out = proc(["a very long sentence that cannot fit"])
    assert out["pixel_values"].shape[1] <= 4 and proc.truncated == 1
    assert r.num_patches(["a very long sentence that cannot fit", ""]) == [4, 1]


def test_processor_output_and_pickle(renderer):
    proc = PixelProcessor(renderer)
    out = proc(["one", "two words"])
    assert out["pixel_values"].dtype == torch.uint8 and out["pixel_values"].shape[2] == 256
    assert out["attention_mask"].dtype == torch.int64
    assert out["attention_mask"].sum(1).tolist() == renderer.num_patches(["one", "two words"])
    clone = pickle.loads(pickle.dumps(proc))
    torch.testing.assert_close(clone(["two words"])["pixel_values"], proc(["two words"])["pixel_values"])
    with pytest.raises(ValueError, match="expected a string"):
        proc.validate(3.0)
    with pytest.raises(TypeError, match="item 1"):
        proc(["fine", None])


def test_perturber_is_seedable_and_each_op_acts():
    text = "The quick brown fox jumps over the lazy dog near a river"
    p1, p2 = Perturber(seed=3), Perturber(seed=3)
    assert [p1(text) for _ in range(5)] == [p2(text) for _ in range(5)]
    assert Perturber(seed=0).pair(text, 11) == Perturber(seed=99).pair(text, 11)
    for op in ["swap", "drop", "insert", "keyboard", "homoglyph", "case", "space", "word_shuffle"]:
        p = Perturber(ops=[op], char_rate=0.2, shuffle_prob=1.0, seed=0)
        outs = {p(text) for _ in range(10)}
        assert any(o != text for o in outs), op
        if op == "word_shuffle":
            assert all(sorted(o.split()) == sorted(text.split()) for o in outs)
        if op == "homoglyph":
            assert any(any(ord(c) > 0x7F for c in o) for o in outs)
    assert Perturber(ops=["drop"], seed=0)("...") == "..."  # nothing to edit, no crash
    with pytest.raises(ValueError, match="unknown perturbation"):
        Perturber(ops=["blur"])


def tiny_encoder(**kwargs) -> PixelEncoder:
    torch.manual_seed(0)
    args = dict(fonts=("dejavu",), max_patches=48, hidden_size=32, num_layers=2, num_heads=2, mlp_ratio=2.0)
    args.update(kwargs)
    return PixelEncoder(**args)


def test_encoder_features_hidden_states_and_padding_invariance():
    enc = tiny_encoder(hidden_states=True).eval()
    texts = ["hi", "a considerably longer sentence than the first one"]
    feats = enc(enc.processor(texts))
    T = enc.processor(texts)["pixel_values"].shape[1]
    assert feats.sequence.shape == (2, T, 32) and feats.num_layers == 2
    torch.testing.assert_close(feats.hidden_states[-1], feats.sequence)
    alone = enc(enc.processor(["hi"]))
    n = int(alone.mask.sum())
    torch.testing.assert_close(feats.sequence[0, :n], alone.sequence[0, :n], atol=1e-5, rtol=1e-5)
    cls = tiny_encoder(cls_token=True).eval()
    f = cls(cls.processor(texts))
    assert f.sequence.shape[1] == T + 1 and f.mask[:, 0].all()
    with pytest.raises(ValueError, match="divisible"):
        tiny_encoder(hidden_size=30, num_heads=4)


def test_encoder_save_load_roundtrip_keeps_renderer_config(tmp_path):
    import polymodal
    from polymodal.model import EmbeddingModel
    from polymodal.poolers import MeanPooler

    enc = tiny_encoder(max_patches=40, font_size=14)
    model = EmbeddingModel(enc, MeanPooler(), normalize=True)
    texts = ["a test sentence", "another one, longer than the first", "ß"]
    ref = model.encode(texts)
    model.save(tmp_path / "m")
    loaded = polymodal.load(tmp_path / "m")
    assert loaded.modality == "pixel"
    assert loaded.encoder.renderer.config == enc.renderer.config
    assert loaded.encoder.renderer.get_config()["font_files"][0]["sha256"]
    np.testing.assert_allclose(loaded.encode(texts), ref, atol=1e-6)


def test_plugin_registers_pixel_modality():
    from polymodal.plugins_manager import get_modality

    modality = get_modality("pixel")
    assert PixelEncoder in modality.encoders
