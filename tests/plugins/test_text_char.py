"""The character-level text encoder of the text plugin (CharProcessor, VectorialAttentionPooling, CharGRUEncoder)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import polymodal
from polymodal.model import EmbeddingModel
from polymodal.plugins.text.char import CharGRUEncoder, CharProcessor, VectorialAttentionPooling
from polymodal.poolers import ClsPooler


def _tiny_encoder(**kw) -> CharGRUEncoder:
    torch.manual_seed(0)
    return CharGRUEncoder(embedding_dim=8, hidden_dim=12, attention_dim=6, **kw).eval()


# ----------------------------------------------------------------------------------- caption tower
def test_char_processor_ids_padding_and_unknowns():
    proc = CharProcessor(max_length=5)
    batch = proc(["ab", "abcdefgh", "é"])
    ids, mask = batch["char_ids"], batch["attention_mask"]
    assert ids.shape == (3, 5)  # truncated to max_length
    assert ids[0, :2].tolist() == [proc.ids("a")[0], proc.ids("b")[0]] and ids[0, 2:].tolist() == [0, 0, 0]
    assert mask.sum(1).tolist() == [2, 5, 1]
    assert ids[2, 0].item() == 1  # outside the alphabet -> unknown
    assert proc.lengths(["ab", "abcdefgh"]) == [2, 5]
    with pytest.raises(ValueError, match="empty string"):
        proc.validate("   ")
    with pytest.raises(ValueError, match="expected a string"):
        proc.validate(3)


def test_attention_pooling_output_unchanged_by_extra_padding():
    enc = _tiny_encoder(heads=2)
    batch = enc.processor(["a dog runs", "two children play in the water ."])
    padded = {
        "char_ids": torch.cat([batch["char_ids"], torch.zeros(2, 9, dtype=torch.long)], dim=1),
        "attention_mask": torch.cat([batch["attention_mask"], torch.zeros(2, 9, dtype=torch.bool)], dim=1),
    }
    with torch.no_grad():
        a = enc(batch)
        b = enc(padded)
        alone = enc(enc.processor(["a dog runs"]))
    assert b.sequence.shape[1] == a.sequence.shape[1] + 9
    torch.testing.assert_close(a.pooled, b.pooled, atol=1e-6, rtol=0)
    # a short caption batched with a long one embeds exactly as it does alone
    torch.testing.assert_close(a.pooled[:1], alone.pooled, atol=1e-6, rtol=0)
    assert a.pooled.shape == (2, enc.output_dim) == (2, 2 * 2 * 12)


def test_vectorial_attention_gives_padding_zero_weight():
    torch.manual_seed(0)
    pool = VectorialAttentionPooling(dim=4, hidden_dim=3, heads=1)
    x = torch.randn(1, 5, 4)
    mask = torch.tensor([[True, True, True, False, False]])
    garbage = x.clone()
    garbage[:, 3:] = 1e6  # values at padded positions must not leak into the result
    torch.testing.assert_close(pool(x, mask), pool(garbage, mask))
    # one valid step: the pooled vector is that step itself
    one = torch.tensor([[True, False, False, False, False]])
    torch.testing.assert_close(pool(x, one), x[:, 0])


def test_char_encoder_save_load_round_trip(tmp_path):
    enc = _tiny_encoder(heads=1, lowercase=True, max_length=40)
    with torch.no_grad():  # make sure non-default weights travel
        enc.embed.weight.add_(0.5)
    model = EmbeddingModel(enc, ClsPooler(use_pooled=True), normalize=True)
    texts = ["A man rides a bike .", "A DOG", "Kids on a slide at the park"]
    before = model.encode(texts)
    model.save(tmp_path / "m")
    loaded = polymodal.load(tmp_path / "m")
    assert isinstance(loaded.encoder, CharGRUEncoder)
    assert loaded.encoder.get_config() == enc.get_config()
    np.testing.assert_array_equal(loaded.encode(texts), before)
    np.testing.assert_allclose(np.linalg.norm(before, axis=1), 1.0, atol=1e-5)
    # lowercase travelled with the config: case does not change the embedding
    np.testing.assert_allclose(loaded.encode(["a dog"]), loaded.encode(["A DOG"]), atol=1e-6)


def test_char_encoder_is_registered_in_the_text_modality():
    from polymodal.registry import registered_classes

    assert "polymodal.plugins.text.char.CharGRUEncoder" in registered_classes("encoder")


def test_a_folder_naming_the_class_before_it_moved_still_loads(tmp_path):
    """Folders exported while the encoder lived in recipes/grounded_sentence name its old path."""
    import json

    model = EmbeddingModel(_tiny_encoder(), ClsPooler(use_pooled=True), normalize=True)
    folder = model.save(tmp_path / "m")
    config = json.loads((folder / "polymodal.json").read_text())
    config["encoder"]["class"] = "polymodal.recipes.grounded_sentence.encoders.CharGRUEncoder"
    (folder / "polymodal.json").write_text(json.dumps(config))
    loaded = polymodal.load(folder)
    assert isinstance(loaded.encoder, CharGRUEncoder)
    np.testing.assert_array_equal(loaded.encode(["a dog"]), model.encode(["a dog"]))
