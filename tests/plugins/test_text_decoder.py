"""Decoder-LM embedders: bidirectional switch, Token Prepending, prompts, save/load."""

from __future__ import annotations

import pytest
import torch

from polymodal.model import EmbeddingModel
from polymodal.plugins.text.bidirectional import is_bidirectional, set_bidirectional
from polymodal.plugins.text.decoder import DecoderTextEncoder
from polymodal.plugins.text.token_prepending import TokenPrepender
from polymodal.poolers import LastTokenPooler, MeanPooler

TINY_LLAMA = {
    "model_type": "llama",
    "vocab_size": 261,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 128,
}


def _encoder(**kwargs) -> DecoderTextEncoder:
    torch.manual_seed(0)
    return DecoderTextEncoder(model=TINY_LLAMA, tokenizer="bytes", max_length=64, **kwargs).eval()


def _first_token_state(enc: DecoderTextEncoder, texts: list[str], position: int) -> torch.Tensor:
    with torch.no_grad():
        feats = enc(enc.processor(texts))
    return feats.sequence[:, position]


def test_bidirectional_switch_lets_early_tokens_see_later_ones():
    enc = _encoder()
    a, b = "hello world", "hello there"  # same first bytes, different ending
    causal = _first_token_state(enc, [a, b], 1)
    torch.testing.assert_close(causal[0], causal[1])  # causal: position 1 cannot see the ending
    set_bidirectional(enc.model, True)
    assert is_bidirectional(enc.model)
    bi = _first_token_state(enc, [a, b], 1)
    assert not torch.allclose(bi[0], bi[1])
    set_bidirectional(enc.model, False)
    torch.testing.assert_close(_first_token_state(enc, [a, b], 1), causal)
    # padding stays masked in bidirectional mode: a padded row equals the same row alone
    enc2 = _encoder(bidirectional=True)
    both = _first_token_state(enc2, ["hi", "a much longer sentence"], 1)[0]
    alone = _first_token_state(enc2, ["hi"], 1)[0]
    torch.testing.assert_close(both, alone, atol=1e-5, rtol=1e-5)


def test_bidirectional_rejects_encoders_without_causal_attention():
    with pytest.raises(ValueError, match="no causal self-attention"):
        set_bidirectional(torch.nn.Linear(2, 2))


def test_token_prepending_inserts_placeholder_and_shares_the_sentence():
    plain = _encoder()
    tp = _encoder(token_prepending=True, tp_layers=(0, 1))
    tp.load_state_dict(plain.state_dict())
    batch = tp.processor(["hello world", "hi"])
    base = plain.processor(["hello world", "hi"])
    assert batch["input_ids"].shape[1] == base["input_ids"].shape[1] + 1
    assert (batch["pst_position"] == 0).all()  # the byte tokenizer adds [CLS], not a model BOS
    torch.testing.assert_close(batch["input_ids"][:, 1:], base["input_ids"])
    assert batch["attention_mask"].sum() == base["attention_mask"].sum() + 2
    # with TP the first real token (position 1) sees the whole sentence through the placeholder
    a, b = "hello world", "hello there"
    states = _first_token_state(tp, [a, b], 1)
    assert not torch.allclose(states[0], states[1])
    # the placeholder is excluded from the returned mask; the last token is the same real token
    feats = tp(tp.processor([a]))
    assert not feats.mask[0, 0] and feats.mask[0, 1:].all()
    # hooks without positions are inert: the raw model is unchanged
    ids = base["input_ids"][:1]
    with torch.no_grad():
        torch.testing.assert_close(
            tp.model(input_ids=ids).last_hidden_state, plain.model(input_ids=ids).last_hidden_state
        )


def test_token_prepending_layer_range_is_checked():
    enc = _encoder()
    with pytest.raises(ValueError, match="out of range"):
        TokenPrepender(enc.model, (3, 5))
    assert TokenPrepender(enc.model, (1, 9)).layers == (1, 2)
    hook = TokenPrepender(enc.model, (0, -1))
    assert hook.layers == (0, 2)
    hook.remove()


def test_prompt_is_applied_and_saved(tmp_path):
    enc = _encoder(prompt="prompteol", token_prepending=True)
    model = EmbeddingModel(enc, LastTokenPooler())
    ids = enc.processor(["x"])["input_ids"][0]
    text = enc.text_processor.tokenizer.decode(ids.tolist(), skip_special_tokens=True)
    assert text.endswith('This sentence : "x" means in one word:"')
    texts = ["a cat", "the dog runs", "x"]
    before = model.encode(texts, batch_size=2)
    model.save(tmp_path / "m")
    loaded = EmbeddingModel.from_folder(tmp_path / "m")
    assert isinstance(loaded.encoder, DecoderTextEncoder)
    assert loaded.encoder.prompt == enc.prompt and loaded.encoder.token_prepending
    torch.testing.assert_close(torch.from_numpy(loaded.encode(texts, batch_size=2)), torch.from_numpy(before))


def test_encode_batches_agree_with_single_items():
    model = EmbeddingModel(_encoder(token_prepending=True), MeanPooler())
    texts = ["short", "a somewhat longer input", "mid length"]
    together = model.encode(texts, batch_size=3)
    single = [model.encode([t], batch_size=1)[0] for t in texts]
    torch.testing.assert_close(
        torch.from_numpy(together), torch.from_numpy(__import__("numpy").stack(single)), atol=1e-5, rtol=1e-5
    )


@pytest.mark.slow
def test_smollm2_gguf_loads_and_embeds():
    pytest.importorskip("gguf")
    from polymodal.plugins.text.decoder import smollm2_folder

    try:
        smollm2_folder()
    except (ImportError, FileNotFoundError) as exc:
        pytest.skip(str(exc))
    torch.set_num_threads(2)
    enc = DecoderTextEncoder("smollm2-135m", prompt="prompteol", token_prepending=True)
    assert enc.num_layers == 30 and enc.output_dim == 576
    emb = EmbeddingModel(enc, LastTokenPooler()).encode(["A man plays a guitar.", "A man is playing guitar."])
    assert emb.shape == (2, 576)
    cos = float((emb[0] @ emb[1]) / ((emb[0] ** 2).sum() * (emb[1] ** 2).sum()) ** 0.5)
    assert cos > 0.5
