"""Decoder-LM embedders: bidirectional switch, Token Prepending, prompts, save/load."""

from __future__ import annotations

import pytest
import torch

from polymodal.model import EmbeddingModel
from polymodal.plugins.text.bidirectional import is_bidirectional, set_bidirectional
from polymodal.plugins.text.decoder import DecoderTextEncoder
from polymodal.plugins.text.token_prepending import PLACEHOLDER, decoder_layers, placeholder_template
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


def test_placeholder_is_a_new_token_right_before_the_quoted_sentence():
    plain = _encoder(prompt="prompteol")
    old_rows = plain.model.get_input_embeddings().weight.detach().clone()
    torch.manual_seed(0)
    tp = DecoderTextEncoder(
        model=TINY_LLAMA, tokenizer="bytes", max_length=64, prompt="prompteol", token_prepending=True
    )
    tok = tp.text_processor.tokenizer
    pst = tok.token_to_id(PLACEHOLDER)
    assert pst == 261  # a new id after the byte vocabulary, not an existing token
    weight = tp.model.get_input_embeddings().weight
    assert weight.shape[0] == 262 and tp.model.config.vocab_size == 262
    torch.testing.assert_close(weight[:261], old_rows)  # the other rows are untouched
    torch.testing.assert_close(weight[pst], torch.randn(32, generator=torch.Generator().manual_seed(0)))
    batch = tp.processor(["a cat", "the dog runs"])
    for row, text in enumerate(["a cat", "the dog runs"]):
        ids = batch["input_ids"][row].tolist()
        p = int(batch["pst_position"][row])
        assert ids[p] == pst and ids.count(pst) == 1
        before = tok.decode(ids[:p], skip_special_tokens=True)
        after = tok.decode(ids[p + 1 :], skip_special_tokens=True)
        assert before.endswith("This sentence : ")
        assert after.startswith(f' "{text}" means in one word:"')  # immediately before the quoted sentence
    feats = tp(batch)
    assert not feats.mask[0, int(batch["pst_position"][0])]  # the placeholder is not part of the input
    assert int(feats.mask[0].sum()) == int(batch["attention_mask"][0].sum()) - 1


def _layer_inputs(enc: DecoderTextEncoder, batch: dict) -> list[torch.Tensor]:
    """The hidden states each decoder layer receives (after the TP hooks, which run first)."""
    seen: list[torch.Tensor] = []

    def grab(module, args, kwargs):
        seen.append((kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]).detach().clone())

    handles = [layer.register_forward_pre_hook(grab, with_kwargs=True) for layer in decoder_layers(enc.model)]
    try:
        with torch.no_grad():
            enc(batch)
    finally:
        for h in handles:
            h.remove()
    return seen


@pytest.mark.parametrize(("start", "stop"), [(1, None), (0, 2), (2, None)])
def test_placeholder_state_is_replaced_from_the_starting_layer_on(start, stop):
    enc = _encoder(prompt="prompteol", token_prepending=True, tp_starting_layer=start, tp_exiting_layer=stop)
    batch = enc.processor(["a cat sits", "hi"])
    inputs = _layer_inputs(enc, batch)
    rows = torch.arange(2)
    pst, last = batch["pst_position"], batch["attention_mask"].sum(1) - 1
    row = enc.model.get_input_embeddings().weight[enc.text_processor.tokenizer.token_to_id(PLACEHOLDER)]
    replaced = range(start, 3 if stop is None else stop)
    for i, hidden in enumerate(inputs):
        if i in replaced:  # the placeholder carries the sentence embedding: the last token's state here
            torch.testing.assert_close(hidden[rows, pst], hidden[rows, last])
        else:
            assert not torch.allclose(hidden[rows, pst], hidden[rows, last])
    if start > 0:  # below the starting layer the placeholder is its own (random-normal) embedding
        torch.testing.assert_close(inputs[0][rows, pst], row.detach().expand(2, -1))
    # the replacement changes what the sentence tokens see: the last state differs from plain PromptEOL + <PST>
    off = _encoder(prompt='This sentence : <PST> "{text}" means in one word:"')
    off.model.resize_token_embeddings(262, mean_resizing=False)
    off.model.load_state_dict(enc.model.state_dict())
    off.text_processor.tokenizer.add_special_tokens([__import__("tokenizers").AddedToken(PLACEHOLDER, special=True)])
    with torch.no_grad():
        plain_last = off(off.processor(["a cat sits"])).sequence[0, int(last[0])]
        tp_last = enc(enc.processor(["a cat sits"])).sequence[0, int(last[0])]
    assert not torch.allclose(plain_last, tp_last)


@pytest.mark.parametrize(
    ("template", "placement", "expected"),
    [
        ("prompteol", "slot", 'This sentence : <PST> "{text}" means in one word:"'),
        ("prompteol", "start", '<PST>This sentence : "{text}" means in one word:"'),
        (None, "slot", "<PST>{text}"),
        ("Summarise: {text} in one word:", "slot", "Summarise: <PST>{text} in one word:"),
        ("Q <PST>: {text}", "slot", "Q <PST>: {text}"),
    ],
)
def test_placeholder_template(template, placement, expected):
    from polymodal.poolers import PromptTemplate

    resolved = PromptTemplate(template).template if template is not None else None
    assert placeholder_template(resolved, placement) == expected


def test_output_layer_is_an_early_exit():
    enc = _encoder(output_layer=-2)
    batch = enc.processor(["a cat", "the dog"])
    with torch.no_grad():
        out = enc.model(**batch, output_hidden_states=True)
        torch.testing.assert_close(enc(batch).sequence, out.hidden_states[-2])
        enc.configure(output_layer=-1)
        torch.testing.assert_close(enc(batch).sequence, out.last_hidden_state)
        enc.configure(output_layer=1)
        torch.testing.assert_close(enc(batch).sequence, out.hidden_states[1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"token_prepending": True, "prompt": "This sentence means in one word:"}, "must contain '{text}'"),
        ({"prompt": "no slot at all"}, "must contain '{text}'"),
        ({"output_layer": 4}, "output_layer 4 out of range for a 3-layer model"),
        ({"output_layer": -5}, "output_layer -5 out of range"),
        ({"token_prepending": True, "tp_starting_layer": 3}, "tp_starting_layer 3 out of range"),
        ({"token_prepending": True, "tp_starting_layer": 2, "tp_exiting_layer": 2}, "must be greater"),
        ({"lora": {"target_modules": ["query", "v_proj"]}}, r"lora.target_modules: \['query'\] not found"),
        ({"lora": {"r": 0}}, "lora.r must be >= 1"),
        ({"token_prepending": True, "tp_placement": "middle"}, "tp_placement must be 'slot' or 'start'"),
    ],
)
def test_bad_decoder_settings_give_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        _encoder(**kwargs)
    assert "\n" not in str(info.value)


def test_lora_trains_only_adapters_and_round_trips(tmp_path):
    enc = _encoder(lora={"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}, prompt="prompteol")
    trainable = [n for n, p in enc.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert {n.split(".")[-4] for n in trainable} == {"q_proj", "v_proj"}
    for n, p in enc.named_parameters():  # move the adapters away from their zero start
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.5)
    model = EmbeddingModel(enc, MeanPooler())
    before = model.encode(["a cat", "a dog"], batch_size=2)
    model.save(tmp_path / "m")
    loaded = EmbeddingModel.from_folder(tmp_path / "m")
    assert loaded.encoder.lora == enc.lora
    torch.testing.assert_close(
        torch.from_numpy(loaded.encode(["a cat", "a dog"], batch_size=2)), torch.from_numpy(before)
    )


def test_earlier_tp_configs_load_as_the_start_placement():
    kwargs = DecoderTextEncoder._init_kwargs(
        {"max_length": 64, "token_prepending": True, "tp_layers": [0, 7], "prompt": "x {text}"}
    )
    assert (kwargs["tp_starting_layer"], kwargs["tp_exiting_layer"], kwargs["tp_placement"]) == (0, 8, "start")


def test_prompt_is_applied_and_saved(tmp_path):
    enc = _encoder(prompt="prompteol", token_prepending=True)
    model = EmbeddingModel(enc, LastTokenPooler())
    ids = enc.processor(["x"])["input_ids"][0]
    text = enc.text_processor.tokenizer.decode(ids.tolist(), skip_special_tokens=False)
    assert text.endswith('This sentence : <PST> "x" means in one word:"[SEP]')
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
