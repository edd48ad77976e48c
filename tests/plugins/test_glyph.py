"""The glyph modality: codepoint treatment, tables and their cache, tokenizers, frozen LM embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polymodal.plugins.glyph import (
    CodepointTokenizer,
    GlyphCausalLM,
    GlyphEmbedding,
    GlyphEncoder,
    GlyphRasterizer,
    HFGlyphTokenizer,
    build_glyph_table,
    replace_input_embeddings,
    treatment,
)
from polymodal.plugins.glyph.table import byte_box
from polymodal.plugins.pixel.fonts import hex_box, resolve_font, resolve_hex_font

HAS_UNIFONT = resolve_font("unifont", required=False) is not None
FONT = "unifont" if HAS_UNIFONT else "dejavu"
TINY_LLAMA = {
    "model_type": "llama",
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYMODAL_CACHE", str(tmp_path / "cache"))


def byte_bpe(vocab_size: int = 320):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(["naïve café über straße", "the quick brown fox jumps"] * 20, trainer)
    return tok


def test_treatment_of_every_kind_of_codepoint():
    expected = {
        0x41: "font",
        0x4E2D: "font",
        0x1F600: "font",
        0x0A: "control_picture",
        0x7F: "control_picture",
        0x85: "hexbox",  # C1 control
        0x0301: "combining",
        0x20DD: "combining",  # enclosing mark (Me)
        0xE000: "hexbox",  # private use
        0x0378: "hexbox",  # unassigned
        0xD800: "hexbox",  # surrogate
        0x20: "space",
        0xA0: "hexbox",  # no-break space: other space separators are boxes
        0x3000: "hexbox",
    }
    assert {cp: treatment(cp) for cp in expected} == expected


def test_codepoint_cells_follow_the_rules():
    r = GlyphRasterizer(FONT)
    cps = [0x20, 0x0378, 0x0379, 0xE000, 0x85, 0x41, 0x0301]
    cells, widths = r.cells(cps)
    assert cells[0].max() == 0 and widths[0] == 8  # space: blank
    np.testing.assert_array_equal(cells[1], hex_box(0x0378))
    assert not np.array_equal(cells[1], cells[2])  # boxes are distinct per codepoint
    np.testing.assert_array_equal(cells[3], hex_box(0xE000))
    np.testing.assert_array_equal(cells[4], hex_box(0x85))
    assert cells[5].max() == 255
    dotted = r.cells([0x25CC])[0][0]
    if r._fonts[0][2][0x25CC] and r._fonts[0][2][0x0301]:  # the mark sits on a dotted circle
        assert (cells[6] >= dotted).all() and (cells[6] > dotted).any()
    assert not np.array_equal(byte_box(0x85), hex_box(0x85)) and byte_box(0x85).shape == (16, 16)


@pytest.mark.skipif(not HAS_UNIFONT, reason="fonts-unifont is not installed")
def test_unifont_cells_are_the_font_glyphs_and_batched_equals_single():
    from PIL import Image, ImageDraw, ImageFont

    r = GlyphRasterizer("unifont")
    font = ImageFont.truetype(str(resolve_font("unifont")), 16, layout_engine=ImageFont.Layout.BASIC)
    cps = [0x41, 0x67, 0x4E2D, 0xAC00, 0x0416, 0x20AC, 0x3042, 0x0A]
    cells, widths = r.cells(cps)
    assert widths.tolist() == [8, 8, 16, 16, 8, 8, 16, int(font.getlength("\u240a"))]
    for k, cp in enumerate(cps):
        ch = "\u240a" if cp == 0x0A else chr(cp)  # newline is drawn as its control picture
        img = Image.new("L", (16, 16), 0)
        ImageDraw.Draw(img).text((0, 0), ch, font=font, fill=255)
        np.testing.assert_array_equal(cells[k, :, : widths[k]], np.asarray(img)[:, : widths[k]], err_msg=hex(cp))


def test_table_is_deterministic_cached_and_keyed(tmp_path, monkeypatch):
    tok = CodepointTokenizer(max_codepoint=0x17F)
    t1 = build_glyph_table(tok, font=FONT, cache=tmp_path)
    assert t1.shape == (tok.vocab_size, 256) and t1.dtype == np.float32
    assert abs(float(np.sqrt(np.mean(t1.astype(np.float64) ** 2))) - 1.0) < 1e-5
    files = list(tmp_path.glob("glyph-*.npy"))
    assert len(files) == 1 and files[0].with_suffix(".json").is_file()

    def boom(*a, **k):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr("polymodal.plugins.glyph.table.token_bitmaps", boom)
    np.testing.assert_array_equal(build_glyph_table(tok, font=FONT, cache=tmp_path), t1)
    monkeypatch.undo()
    p1 = build_glyph_table(tok, 48, font=FONT, cache=tmp_path, seed=1)
    p2 = build_glyph_table(tok, 48, font=FONT, cache=False, seed=1)
    p3 = build_glyph_table(tok, 48, font=FONT, cache=False, seed=2)
    np.testing.assert_array_equal(p1, p2)
    assert p1.shape == (tok.vocab_size, 48) and not np.allclose(p1, p3)
    assert len(list(tmp_path.glob("glyph-*.npy"))) == 2
    # distinct rows for distinct visible codepoints (letters, boxes)
    rows = t1[[0x41, 0x42, 0x85, 0x86, 0x61, 0x0A]]
    assert len({r.tobytes() for r in rows}) == len(rows)
    assert not t1[0x20].any()  # a space-only token is the zero vector


def test_byte_level_bpe_units_and_table():
    tok = byte_bpe()
    g = HFGlyphTokenizer(tok)
    assert g._kind == "bytelevel"
    units = g.units()
    by_token = {tok.id_to_token(i): units[i] for i in range(g.vocab_size)}
    assert by_token["Ġ"] == [0x20]  # the byte-level space marker is a real space
    assert by_token["Ã"] == [-(0xC3 + 1)]  # a lone UTF-8 lead byte is a raw byte unit
    assert by_token["<|endoftext|>"] == [ord(c) for c in "<|endoftext|>"]
    merged = [u for u in units if 0xEF in u or 0xE9 in u]  # ï or é decoded from two bytes
    assert merged
    table = build_glyph_table(tok, 32, font=FONT)
    assert table.shape == (g.vocab_size, 32) and np.isfinite(table).all()
    assert g.encode("café") and g.decode(g.encode("café")) == "café"


def test_metaspace_tokens_render_a_space():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {"<unk>": 0, "▁the": 1, "the": 2, "▁": 3}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    units = HFGlyphTokenizer(tok).units()
    assert units[1] == [0x20, ord("t"), ord("h"), ord("e")] and units[2] == [ord("t"), ord("h"), ord("e")]


def test_codepoint_tokenizer_covers_unicode():
    tok = CodepointTokenizer()
    assert tok.vocab_size == 0x10000 + 4 and tok.encode("a中\U0001f600") == [0x61, 0x4E2D, tok.unk_id]
    full = CodepointTokenizer(0x10FFFF)
    assert full.encode("\U0001f600") == [0x1F600] and full.decode([0x1F600, full.pad_id]) == "\U0001f600"
    with pytest.raises(ValueError, match="max_codepoint"):
        CodepointTokenizer(0x110000)


def test_glyph_embedding_is_frozen_and_replaces_tied_lm_embeddings():
    from transformers import AutoConfig, AutoModelForCausalLM

    tok = byte_bpe()
    emb = GlyphEmbedding(tok, 32, num_embeddings=384, font=FONT)
    assert not emb.weight.requires_grad and emb.weight.shape == (384, 32)
    assert not emb.weight[HFGlyphTokenizer(tok).vocab_size :].any()
    cfg = {k: v for k, v in TINY_LLAMA.items() if k != "model_type"}
    model = AutoModelForCausalLM.from_config(
        AutoConfig.for_model("llama", vocab_size=384, tie_word_embeddings=True, **cfg)
    )
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    new = replace_input_embeddings(model, tok, font=FONT)
    assert model.get_input_embeddings() is new and not model.config.tie_word_embeddings
    head = model.get_output_embeddings().weight
    assert head.requires_grad and head is not new.weight
    before_in, before_head = new.weight.clone(), head.detach().clone()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    ids = torch.tensor([tok.encode("the quick brown fox").ids])
    model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    torch.testing.assert_close(new.weight, before_in)
    assert not torch.equal(head.detach(), before_head)


def test_glyph_causal_lm_variants_share_init_and_generate():
    glyph = GlyphCausalLM(dict(TINY_LLAMA), tokenizer="bytes", embeddings="glyph", font=FONT)
    plain = GlyphCausalLM(dict(TINY_LLAMA), tokenizer="bytes", embeddings="trainable", font=FONT)
    assert glyph.num_parameters(trainable_only=True) < plain.num_parameters(trainable_only=True)
    torch.testing.assert_close(
        glyph.model.model.layers[0].mlp.up_proj.weight, plain.model.model.layers[0].mlp.up_proj.weight
    )
    text = glyph.generate_text("ab", max_new_tokens=5, seed=1)
    assert text == glyph.generate_text("ab", max_new_tokens=5, seed=1) and text.startswith("ab")
    with pytest.raises(ValueError, match="embeddings must be"):
        GlyphCausalLM(dict(TINY_LLAMA), embeddings="learned")


def test_glyph_encoder_modality_roundtrip(tmp_path):
    import polymodal
    from polymodal.model import EmbeddingModel
    from polymodal.plugins_manager import get_modality

    assert GlyphEncoder in get_modality("glyph").encoders
    torch.manual_seed(0)
    enc = GlyphEncoder("codepoints:0x2FF", font=FONT, num_layers=1, num_heads=4, max_length=32, max_positions=32)
    feats = enc(enc.processor(["héllo", "x"]))
    assert feats.sequence.shape == (2, 5, 256) and feats.mask.sum().item() == 6
    model = EmbeddingModel(enc)
    ref = model.encode(["héllo wörld", "x"])
    model.save(tmp_path / "m")
    from safetensors.torch import load_file

    assert not any("table" in k for k in load_file(tmp_path / "m" / "model.safetensors"))  # rebuilt, not stored
    loaded = polymodal.load(tmp_path / "m")
    np.testing.assert_allclose(loaded.encode(["héllo wörld", "x"]), ref, atol=1e-6)
    bare = GlyphEncoder("bytes", dim=32, font=FONT, max_length=4)
    with pytest.warns(UserWarning, match="max_length=4"):
        out = bare.processor(["a longer text"])
    assert out["input_ids"].shape == (1, 4)


# --- GNU Unifont's bitmap file (unifont.hex) as the fast path -------------------------------------

HEX_GLYPH_A = "0041:0000000018242442427E424242420000"  # U+0041 as in unifont.hex (8 x 16)


def _write(path, text):
    path.write_bytes(text.encode())
    return str(path)


def test_hex_font_parses_narrow_wide_and_astral_glyphs(tmp_path):
    from polymodal.plugins.pixel.fonts import read_hex_font

    wide = "4E00:" + "0" * 28 + "FFFF" + "0" * 32  # row 7 (4 hex digits per row) fully inked, 16 px wide
    text = f"{HEX_GLYPH_A}\r\n\n{wide}\n01F600:{'F' * 64}"  # CRLF, a blank line, no final newline
    cps, cells, widths = read_hex_font.__wrapped__(_write(tmp_path / "u.hex", text))
    assert cps.tolist() == [0x41, 0x4E00, 0x1F600] and widths.tolist() == [8, 16, 16]
    assert cells.shape == (3, 16, 16) and set(np.unique(cells).tolist()) <= {0, 255}
    assert cells[0, 4].tolist() == [0, 0, 0, 255, 255, 0, 0, 0] + [0] * 8  # 0x18 = ...##...
    assert not cells[0, :, 8:].any()  # narrow glyphs are blank past their width
    assert cells[1, 7].all() and cells[1].sum() == 16 * 255 and cells[2].all()


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (f"{HEX_GLYPH_A}\n0042:00FF\n", 2),  # bitmap of the wrong length
        (f"{HEX_GLYPH_A}\n0042 {'0' * 32}\n", 2),  # no colon
        (f"{HEX_GLYPH_A}\n00G2:{'0' * 32}\n", 2),  # not hex in the codepoint
        (f"{HEX_GLYPH_A}\n0042:{'0' * 31}Z\n", 2),  # not hex in the bitmap
        (f"\n\n41:{'0' * 32}\n", 3),  # codepoint too short; blank lines still counted
        (f"0041:{'0' * 16}:{'0' * 15}\n", 1),  # two colons
    ],
)
def test_bad_hex_font_line_is_one_error_naming_file_and_line(tmp_path, text, line):
    from polymodal.plugins.pixel.fonts import read_hex_font

    path = _write(tmp_path / "bad.hex", text)
    with pytest.raises(ValueError) as err:
        read_hex_font.__wrapped__(path)
    assert str(err.value).startswith(f"{path}:{line}: expected 'CODEPOINT:BITMAP'") and "\n" not in str(err.value)


@pytest.mark.parametrize(("text", "line"), [("0300:-8\n0301\n", 2), ("0300:-8\n0301:x\n", 2), ("03:-8\n", 1)])
def test_bad_combining_offsets_line_is_one_error(tmp_path, text, line):
    from polymodal.plugins.pixel.fonts import read_combining_offsets

    path = _write(tmp_path / "plane00-combining.txt", text)
    with pytest.raises(ValueError, match=rf"^{path}:{line}: expected 'CODEPOINT:OFFSET'"):
        read_combining_offsets.__wrapped__(path)


HAS_HEX = HAS_UNIFONT and resolve_hex_font() is not None


@pytest.mark.skipif(not HAS_HEX, reason="needs fonts-unifont and unifont (apt-get install fonts-unifont unifont)")
def test_bitmap_file_gives_freetypes_pixels_for_every_bmp_codepoint():
    bmp = np.arange(0x10000)
    fast = GlyphRasterizer("unifont")
    cells, widths = fast.cells(bmp)
    assert fast.bitmap_path is not None and fast._bitmaps is not None  # the file passed its check and was used
    slow_cells, slow_widths = GlyphRasterizer("unifont", bitmaps=False).cells(bmp)
    differ = np.flatnonzero(~((cells == slow_cells).all(axis=(1, 2)) & (widths == slow_widths)))
    assert differ.size == 0, [hex(c) for c in differ[:10]]
    assert "bitmaps_sha256" in fast.identity() and "bitmaps_sha256" not in GlyphRasterizer(bitmaps=False).identity()


@pytest.mark.skipif(not HAS_HEX, reason="needs fonts-unifont and unifont (apt-get install fonts-unifont unifont)")
def test_bitmap_file_that_disagrees_with_the_font_is_not_used(tmp_path, monkeypatch):
    from polymodal.plugins.pixel.fonts import read_hex_font

    real = resolve_hex_font()
    cps, cells, widths = read_hex_font(str(real))
    lines = []
    for cp, cell, w in zip(cps.tolist(), cells, widths.tolist()):
        bits = np.packbits(255 - cell[:, :w] > 0, axis=1).reshape(-1)  # every glyph inverted
        lines.append(f"{cp:04X}:{bits.tobytes().hex().upper()}")
    (tmp_path / "unifont.hex").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("POLYMODAL_FONT_PATH", str(tmp_path))
    wrong = GlyphRasterizer("unifont")
    assert wrong.bitmap_path == tmp_path / "unifont.hex"
    sample = [0x41, 0x4E2D, 0x0301, 0xAC00]
    with pytest.warns(UserWarning, match="differs from"):
        got = wrong.cells(sample)
    expected = GlyphRasterizer("unifont", bitmaps=False).cells(sample)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


def test_raw_pixel_table_is_cached_as_bitmaps_and_loads_equal(tmp_path):
    tok = CodepointTokenizer(max_codepoint=0x2FF)
    built = build_glyph_table(tok, font=FONT, cache=tmp_path)
    (stored,) = tmp_path.glob("glyph-*.npy")
    assert np.load(stored).dtype == np.uint8  # a quarter of the float32 bytes
    np.testing.assert_array_equal(build_glyph_table(tok, font=FONT, cache=tmp_path), built)
    np.testing.assert_array_equal(build_glyph_table(tok, font=FONT, cache=False), built)
