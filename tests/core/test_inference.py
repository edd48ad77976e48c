"""Inference API of issue 14: prompts, strict keyword arguments, elastic truncation, quantised
search, FAISS/usearch indexes from the CLI, cross-encoder ranking, zero-shot image classification,
``python -m polymodal`` and ``lightning.pytorch`` class paths."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

import polymodal
from polymodal.cli import main
from polymodal.evaluation.elastic import encode_layers
from polymodal.index import VectorIndex
from polymodal.model import EmbeddingModel
from tests.conftest import REPO, has_module
from tests.helpers import TINY_BERT, tiny_text_encoder

DOCS = [
    "a cat sleeps on the sofa",
    "dogs run in the park",
    "the stock market fell today",
    "a kitten plays with wool",
    "football match ends in a draw",
    "new phone released this week",
    "heavy rain floods the city",
    "a puppy chases a ball",
]


@pytest.fixture(scope="module")
def model() -> EmbeddingModel:
    torch.manual_seed(0)
    return EmbeddingModel(tiny_text_encoder(dict(TINY_BERT, num_hidden_layers=4)))


def _random_unit(n: int, d: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ------------------------------------------------------------------ prompts and keyword arguments
def test_prompt_and_prompt_name_prepend_text(model):
    model.prompts, model.default_prompt_name = {"query": "query: ", "document": "passage: "}, None
    try:
        expected = model.encode(["query: " + d for d in DOCS])
        np.testing.assert_allclose(model.encode(DOCS, prompt="query: "), expected, atol=1e-6)
        np.testing.assert_allclose(model.encode(DOCS, prompt_name="query"), expected, atol=1e-6)
        np.testing.assert_allclose(model.encode_query(DOCS), expected, atol=1e-6)
        np.testing.assert_allclose(
            model.encode_document(DOCS), model.encode(["passage: " + d for d in DOCS]), atol=1e-6
        )
        assert not np.allclose(model.encode(DOCS), expected)
        model.default_prompt_name = "document"
        np.testing.assert_allclose(model.encode(DOCS), model.encode_document(DOCS), atol=1e-6)
    finally:
        model.prompts, model.default_prompt_name = {}, None


def test_encode_query_without_prompts_is_plain_encode(model):
    np.testing.assert_allclose(model.encode_query(DOCS), model.encode(DOCS), atol=1e-6)


def test_mteb_wrapper_still_works(model):
    from polymodal.evaluation.mteb import MTEBModel

    out = MTEBModel(model).encode(DOCS, task_name="STSBenchmark", prompt_type="query", batch_size=4)
    assert out.shape == (len(DOCS), model.dim)


# ------------------------------------------------------------------ truncation
def test_truncate_drops_layers_and_matches_layer_embeddings(model):
    full_params = sum(p.numel() for p in model.parameters())
    small = model.truncate(layers=2, dim=16)
    assert small.encoder.num_layers == 2 and len(small.encoder.model.encoder.layer) == 2
    assert model.encoder.num_layers == 4  # a copy by default
    assert sum(p.numel() for p in small.parameters()) < full_params
    ref = encode_layers(model, DOCS, [2])[2][:, :16]
    np.testing.assert_allclose(small.encode(DOCS), ref, atol=1e-5)
    assert small.dim == 16
    norm = small.encode(DOCS, normalize=True)
    np.testing.assert_allclose(np.linalg.norm(norm, axis=1), 1.0, atol=1e-5)


def test_encode_truncate_dim_normalises_after_truncation(model):
    full = model.encode(DOCS)
    out = model.encode(DOCS, truncate_dim=8, normalize=True)
    cut = full[:, :8] / np.linalg.norm(full[:, :8], axis=1, keepdims=True)
    np.testing.assert_allclose(out, cut, atol=1e-5)


def test_truncated_model_saves_and_reloads_truncated(model, tmp_path):
    small = model.truncate(layers=3, dim=24)
    small.save(tmp_path / "m")
    back = polymodal.load(tmp_path / "m")
    assert back.encoder.num_layers == 3 and back.dim == 24
    np.testing.assert_allclose(back.encode(DOCS), small.encode(DOCS), atol=1e-6)


def test_pixel_encoder_truncates_blocks():
    pytest.importorskip("timm")
    from polymodal.plugins.pixel import PixelEncoder

    torch.manual_seed(0)
    enc = PixelEncoder(hidden_size=32, num_layers=3, num_heads=2, max_patches=64)
    model = EmbeddingModel(enc)
    ref = encode_layers(model, DOCS[:3], [1])[1]
    small = model.truncate(layers=1)
    assert len(small.encoder.blocks) == 1 and small.encoder.get_config()["num_layers"] == 1
    np.testing.assert_allclose(small.encode(DOCS[:3]), ref, atol=1e-5)


def test_encoder_without_layers_cannot_truncate(model):
    from polymodal.modality import Encoder

    with pytest.raises(NotImplementedError, match="does not expose layers"):
        Encoder.truncate_layers(model.encoder, 1)


# ------------------------------------------------------------------ quantisation and search
@pytest.mark.parametrize("precision", ["int8", "binary", "ubinary"])
def test_quantize_equals_sentence_transformers(precision):
    from sentence_transformers.util.quantization import quantize_embeddings

    emb = _random_unit(300, 70)
    ours = polymodal.quantize(emb, precision)
    theirs = quantize_embeddings(emb, precision)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)


def test_int8_calibration_ranges_are_reused():
    emb = _random_unit(200, 16)
    ranges = polymodal.int8_ranges(emb)
    assert ranges.shape == (2, 16)
    np.testing.assert_array_equal(
        polymodal.quantize(emb[:5], "int8", ranges=ranges), polymodal.quantize(emb, "int8")[:5]
    )


def test_float_search_is_exact_top_k():
    corpus, queries = _random_unit(2000, 32, 0), _random_unit(20, 32, 1)
    scores, ids = polymodal.semantic_search(queries, corpus, top_k=5)
    full = queries @ corpus.T
    np.testing.assert_array_equal(ids, np.argsort(-full, axis=1)[:, :5])
    np.testing.assert_allclose(scores, np.sort(full, axis=1)[:, ::-1][:, :5], atol=1e-5)


@pytest.mark.parametrize("precision", ["ubinary", "int8"])
def test_quantised_search_equals_sentence_transformers(precision):
    pytest.importorskip("faiss")
    pytest.importorskip("usearch")
    from sentence_transformers.util.quantization import semantic_search_faiss, semantic_search_usearch

    corpus = _random_unit(3000, 64, 0)
    queries = corpus[:40] + 0.2 * _random_unit(40, 64, 2)
    ranges = polymodal.int8_ranges(corpus)
    codes = polymodal.quantize(corpus, precision, ranges=ranges)
    scores, ids = polymodal.semantic_search(
        queries, codes, 10, rescore_multiplier=4, precision=precision, ranges=ranges
    )
    if precision == "ubinary":
        res, _ = semantic_search_faiss(
            queries, corpus_embeddings=codes, corpus_precision="ubinary", top_k=10, rescore_multiplier=4, exact=True
        )
    else:
        res, _ = semantic_search_usearch(
            queries,
            corpus_embeddings=codes,
            corpus_precision="int8",
            top_k=10,
            rescore_multiplier=4,
            exact=True,
            ranges=ranges,
        )
    np.testing.assert_array_equal(ids, [[h["corpus_id"] for h in r] for r in res])
    np.testing.assert_allclose(scores, [[h["score"] for h in r] for r in res], rtol=1e-5, atol=1e-4)


def test_binary_search_without_faiss_gives_the_same_candidates(monkeypatch):
    import builtins

    corpus, queries = _random_unit(500, 48, 0), _random_unit(10, 48, 3)
    codes = polymodal.quantize(corpus, "binary")
    with_faiss = polymodal.semantic_search(queries, codes, 5, precision="binary", rescore=False)
    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("no faiss")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    without = polymodal.semantic_search(queries, codes, 5, precision="binary", rescore=False)
    np.testing.assert_array_equal(with_faiss[0], without[0])  # Hamming distances (ties may reorder ids)


def test_rescoring_recovers_recall():
    corpus = _random_unit(4000, 128, 0)
    queries = corpus[:50] + 0.5 * _random_unit(50, 128, 4)
    exact = polymodal.semantic_search(queries, corpus, 10)[1]
    codes = polymodal.quantize(corpus, "ubinary")

    def recall(ids):
        return np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, ids)])

    plain = polymodal.semantic_search(queries, codes, 10, precision="ubinary", rescore=False)[1]
    rescored = polymodal.semantic_search(queries, codes, 10, precision="ubinary", rescore_multiplier=8)[1]
    assert recall(rescored) > recall(plain) + 0.05


# ------------------------------------------------------------------ indexes
@pytest.mark.parametrize(
    "backend,precision",
    [("faiss", "float32"), ("faiss", "ubinary"), ("usearch", "float32"), ("usearch", "int8"), ("usearch", "binary")],
)
def test_index_roundtrip_matches_semantic_search(backend, precision, tmp_path):
    pytest.importorskip("faiss" if backend == "faiss" else "usearch")
    corpus = _random_unit(600, 40, 0)
    queries = corpus[:15] + 0.1 * _random_unit(15, 40, 5)
    index = VectorIndex.build(corpus, backend, precision, fingerprint="f" * 64, documents=[f"d{i}" for i in range(600)])
    index.save(tmp_path / "idx")
    back = VectorIndex.load(tmp_path / "idx")
    assert back.documents[7] == "d7" and back.count == 600 and back.dim == 40
    # Hamming ties at the candidate cut are broken differently by usearch and FAISS: rescore all rows there.
    mult = 120 if backend == "usearch" and precision == "binary" else 4
    s1, i1 = back.search(queries, 5, rescore_multiplier=mult, exact=True)
    ranges = back.ranges if precision == "int8" else None
    s2, i2 = polymodal.semantic_search(queries, corpus, 5, mult, precision=precision, ranges=ranges)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(s1, s2, atol=1e-4)


@pytest.fixture
def tiny_model_dir(tmp_path, model):
    folder = tmp_path / "tiny-model"
    model.save(folder)
    return folder


@pytest.fixture
def docs_table(tmp_path):
    path = tmp_path / "docs.csv"
    pd.DataFrame({"text": DOCS}).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("backend,precision", [("faiss", "float32"), ("usearch", "float32"), ("usearch", "int8")])
def test_cli_index_and_search(backend, precision, tiny_model_dir, docs_table, tmp_path, capsys):
    pytest.importorskip("faiss" if backend == "faiss" else "usearch")
    out = tmp_path / "idx"
    assert (
        main(
            [
                "index",
                "--model",
                str(tiny_model_dir),
                "--input",
                str(docs_table),
                "--column",
                "text",
                "--output",
                str(out),
                "--backend",
                backend,
                "--precision",
                precision,
            ]
        )
        == 0
    )
    assert f"indexed {len(DOCS)} x 32" in capsys.readouterr().out
    assert json.loads((out / "index.json").read_text())["fingerprint"]
    assert (
        main(
            ["search", "--index", str(out), "--query", DOCS[3], "--query", DOCS[5], "--top-k", "3", "--exact", "--json"]
        )
        == 0
    )
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["query"] for x in lines] == [DOCS[3], DOCS[5]]
    assert lines[0]["hits"][0]["text"] == DOCS[3] and lines[1]["hits"][0]["id"] == 5
    assert len(lines[0]["hits"]) == 3


def test_cli_search_refuses_another_model(tiny_model_dir, docs_table, tmp_path, capsys):
    pytest.importorskip("faiss")
    out = tmp_path / "idx"
    main(
        ["index", "--model", str(tiny_model_dir), "--input", str(docs_table), "--column", "text", "--output", str(out)]
    )
    other = polymodal.load(tiny_model_dir)
    with torch.no_grad():
        next(other.parameters()).add_(0.01)  # a fine-tuned copy: same architecture, other weights
    other.save(tmp_path / "other")
    capsys.readouterr()
    with pytest.raises(ValueError, match="built with another model") as err:
        main(["search", "--index", str(out), "--query", "cat", "--model", str(tmp_path / "other")])
    assert "\n" not in str(err.value)
    assert "built with another model" in capsys.readouterr().err


def test_index_folder_is_not_code(tmp_path):
    """A tampered index.json cannot make loading import or run anything: only known backends load."""
    pytest.importorskip("faiss")
    VectorIndex.build(_random_unit(10, 8), "faiss").save(tmp_path / "idx")
    cfg = json.loads((tmp_path / "idx" / "index.json").read_text())
    cfg["backend"] = "os.system"
    (tmp_path / "idx" / "index.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="unknown index backend 'os.system'"):
        VectorIndex.load(tmp_path / "idx")


# ------------------------------------------------------------------ cross-encoder ranking
@pytest.fixture(scope="module")
def cross_encoder():
    from polymodal.plugins.text.cross_encoder import CrossEncoder

    torch.manual_seed(0)
    return CrossEncoder(tiny_text_encoder())


def test_rank_sorts_documents_by_predict(cross_encoder):
    hits = cross_encoder.rank("a cat", DOCS, top_k=3, return_documents=True)
    scores = cross_encoder.predict([("a cat", d) for d in DOCS])
    assert [h["corpus_id"] for h in hits] == list(np.argsort(-scores, kind="stable")[:3])
    assert hits[0]["text"] == DOCS[hits[0]["corpus_id"]]
    assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]
    assert len(cross_encoder.rank("a cat", DOCS)) == len(DOCS)


def test_predict_in_streams_equals_one_batch_at_a_time(cross_encoder):
    pairs = [("a cat", d) for d in DOCS] * 3
    threads = torch.get_num_threads()
    one = cross_encoder.predict(pairs, batch_size=2, streams=1)
    np.testing.assert_allclose(cross_encoder.predict(pairs, batch_size=2, streams=3), one, atol=1e-6)
    assert torch.get_num_threads() == threads  # the streams give the threads back
    with pytest.raises(ValueError, match="streams must be >= 1"):
        cross_encoder.predict(pairs, streams=0)


def test_retrieve_rerank_reorders_retrieved_candidates(model, cross_encoder):
    hits = polymodal.retrieve_rerank("a kitten", DOCS, model, cross_encoder, top_k=2, candidates=5)
    assert len(hits) == 2 and hits[0].score >= hits[1].score
    _, retrieved = polymodal.semantic_search(
        model.encode(["a kitten"], normalize=True), model.encode(DOCS, normalize=True), 5
    )
    assert {h.corpus_id for h in hits} <= set(retrieved[0].tolist())
    expected = cross_encoder.rank("a kitten", [DOCS[i] for i in retrieved[0]], top_k=2)
    assert [h.corpus_id for h in hits] == [int(retrieved[0][e["corpus_id"]]) for e in expected]


# ------------------------------------------------------------------ zero-shot
class _Towers:
    """Aligned toy towers: a text embeds to the one-hot of the first colour word it names; an
    'image' is a colour name whose embedding is a noisy one-hot."""

    COLOURS = ["red", "green", "blue"]
    dim = 3

    def encode(self, values, batch_size=64, **_):
        out = np.zeros((len(values), 3), dtype=np.float32)
        for i, v in enumerate(values):
            out[i, next(k for k, c in enumerate(self.COLOURS) if c in v)] = 1.0
        return out + 0.01


def test_zero_shot_classifier_predicts_aligned_labels():
    clf = polymodal.ZeroShotClassifier(_Towers(), _Towers(), ["a photo of a {} thing."], labels=_Towers.COLOURS)
    assert clf.class_embeddings.shape == (3, 3)
    assert clf.predict(["blue", "red", "green"]) == ["blue", "red", "green"]
    res = clf.evaluate(["blue", "red", "green", "red"], ["blue", "red", "blue", "red"])
    assert res["accuracy"] == 0.75 and res["majority_baseline"] == 0.5
    proba = clf.predict_proba(["green"])
    assert proba.shape == (1, 3) and proba[0].argmax() == 1 and abs(proba.sum() - 1) < 1e-6


def test_labels_from_captions_needs_a_clear_majority():
    from polymodal.zero_shot import labels_from_captions

    caps = {
        "a.jpg": ["A dog runs .", "Two dogs play .", "A puppy on grass .", "A man walks .", "Grass ."],
        "b.jpg": ["A dog on a bike .", "A dog rides a bicycle .", "A dog and a biker .", "x", "y"],  # two classes
        "c.jpg": ["A hotdog stand .", "A man .", "A man .", "A man .", "A man ."],  # 'hotdog' is not 'dog'
        "d.jpg": ["A skier in the snow .", "Skiing .", "Snowy hill .", "A man .", "A man ."],
    }
    assert labels_from_captions(caps) == {"a.jpg": "dog", "d.jpg": "snow"}


def test_image_text_search_through_semantic_search():
    pytest.importorskip("timm")
    from PIL import Image

    from polymodal.plugins.image import ImageEncoder

    torch.manual_seed(0)
    image_model = EmbeddingModel(ImageEncoder("resnet18", image_size=32))
    images = [Image.new("RGB", (40, 40), c) for c in ("red", "green", "blue")]
    emb = image_model.encode(images, normalize=True)
    _, ids = polymodal.semantic_search(emb, emb, top_k=1)
    assert ids[:, 0].tolist() == [0, 1, 2]


# ------------------------------------------------------------------ entry points and config aliases
def test_python_dash_m_polymodal():
    out = subprocess.run([sys.executable, "-m", "polymodal", "plugins"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "text" in out.stdout, out.stderr
    out = subprocess.run([sys.executable, "-m", "polymodal", "search", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "usage: polymodal search" in out.stdout and "--index" in out.stdout


def test_lightning_pytorch_class_paths_are_aliased(tmp_path):
    import pytorch_lightning as pl
    import yaml

    cfg = yaml.safe_load((REPO / "recipes" / "matryoshka_2d" / "tiny.yaml").read_text())
    cfg["trainer"]["default_root_dir"] = str(tmp_path)
    cfg["trainer"]["callbacks"] = [
        {"class_path": "lightning.pytorch.callbacks.LearningRateMonitor"},
        {"class_path": "ExportModel"},
    ]
    cfg["trainer"]["logger"] = {
        "class_path": "lightning.pytorch.loggers.CSVLogger",
        "init_args": {"save_dir": str(tmp_path)},
    }
    path = tmp_path / "unified.yaml"
    path.write_text(yaml.safe_dump(cfg))
    before = path.read_text()
    cli = main(
        [
            "fit",
            "--config",
            str(path),
            "--trainer.max_epochs=1",
            "--trainer.callbacks+=lightning.pytorch.callbacks.LambdaCallback",
        ]
    )
    kinds = {type(c).__name__: type(c) for c in cli.trainer.callbacks}
    assert kinds["LearningRateMonitor"] is pl.callbacks.LearningRateMonitor
    assert kinds["LambdaCallback"] is pl.callbacks.LambdaCallback
    assert isinstance(cli.trainer.logger, pl.loggers.CSVLogger)
    assert path.read_text() == before  # the user's file is never rewritten
    assert (tmp_path / "model" / "polymodal.json").exists()
    if not has_module("lightning"):  # the alias never needs the unified package
        assert "lightning" not in sys.modules


# ------------------------------------------------------------------ bad inputs, one line each
def _bad_cases():
    corpus = _random_unit(20, 8)
    return [
        (
            "empty corpus",
            lambda m: polymodal.semantic_search(corpus[:2], np.zeros((0, 8), np.float32)),
            ValueError,
            "non-empty",
        ),
        ("wrong precision", lambda m: polymodal.quantize(corpus, "int4"), ValueError, "unknown precision 'int4'"),
        (
            "wrong search precision",
            lambda m: polymodal.semantic_search(corpus, corpus, precision="fp16"),
            ValueError,
            "unknown precision",
        ),
        (
            "int codes quantised again",
            lambda m: polymodal.quantize(polymodal.quantize(corpus, "int8"), "binary"),
            ValueError,
            "float embeddings",
        ),
        ("int8 one row", lambda m: polymodal.quantize(corpus[:1], "int8"), ValueError, "at least 2"),
        ("bad ranges", lambda m: polymodal.quantize(corpus, "int8", ranges=np.zeros((2, 3))), ValueError, "shape"),
        ("query width", lambda m: polymodal.semantic_search(corpus[:, :4], corpus), ValueError, "dimensions"),
        ("top_k zero", lambda m: polymodal.semantic_search(corpus, corpus, top_k=0), ValueError, "top_k"),
        (
            "rescore zero",
            lambda m: polymodal.semantic_search(corpus, corpus, precision="binary", rescore_multiplier=0),
            ValueError,
            "rescore_multiplier",
        ),
        (
            "int8 codes without ranges",
            lambda m: polymodal.semantic_search(corpus, polymodal.quantize(corpus, "int8"), precision="int8"),
            ValueError,
            "ranges",
        ),
        ("dim larger than the model", lambda m: m.truncate(dim=33), ValueError, "between 1 and the model's width 32"),
        ("truncate_dim larger", lambda m: m.encode(["a"], truncate_dim=64), ValueError, "truncate_dim"),
        ("layers too many", lambda m: m.truncate(layers=9), ValueError, "between 1 and the encoder's 4 layers"),
        ("layers zero", lambda m: m.truncate(layers=0), ValueError, "layers"),
        ("unknown kwarg", lambda m: m.encode(["a"], task_name="sts"), TypeError, "valid: batch_size"),
        ("unknown prompt", lambda m: m.encode(["a"], prompt_name="query"), ValueError, "unknown prompt_name"),
        ("both prompts", lambda m: m.encode(["a"], prompt="q", prompt_name="q"), ValueError, "not both"),
        ("prompt on non-text", lambda m: m.encode([3], prompt="q: "), TypeError, "input 0: prompts apply to text"),
        ("empty index corpus", lambda m: m.build_index([]), ValueError, "empty corpus"),
        ("unknown backend", lambda m: m.build_index(["a"], backend="annoy"), ValueError, "unknown index backend"),
        (
            "precision not stored by backend",
            lambda m: m.build_index(["a"], backend="faiss", precision="int8"),
            ValueError,
            "faiss backend stores",
        ),
        (
            "index from another model",
            lambda m: VectorIndex.build(corpus, "faiss", fingerprint="0" * 64).check_model(m),
            ValueError,
            "built with another model",
        ),
        (
            "zero-shot one label",
            lambda m: polymodal.ZeroShotClassifier(_Towers(), _Towers(), labels=["red"]),
            ValueError,
            "at least 2 labels",
        ),
        (
            "zero-shot bad template",
            lambda m: polymodal.ZeroShotClassifier(_Towers(), _Towers(), ["no slot"]),
            ValueError,
            "exactly one",
        ),
        (
            "rerank candidates",
            lambda m: polymodal.retrieve_rerank("q", ["a"], m, None, top_k=5, candidates=2),
            ValueError,
            "candidates",
        ),
        ("rerank empty corpus", lambda m: polymodal.retrieve_rerank("q", [], m, None), ValueError, "corpus is empty"),
    ]


@pytest.mark.parametrize("name,call,exc,match", _bad_cases(), ids=[c[0] for c in _bad_cases()])
def test_bad_inputs_give_one_line_errors(name, call, exc, match, model):
    if "index" in name or "backend" in name:
        pytest.importorskip("faiss")
    with pytest.raises(exc, match=match) as err:
        call(model)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda c: c.update(format_version=9), "format_version 9"),
        (lambda c: c.update(precision="fp16"), "stores precisions"),
        (lambda c: c.update(count=0), "'count' must be a positive integer"),
        (lambda c: c.update(count=11), "holds 10 vectors"),
        (lambda c: c.update(dim=9), "width"),
    ],
    ids=["version", "precision", "count", "count mismatch", "dim mismatch"],
)
def test_bad_index_folders_give_one_line_errors(mutate, match, tmp_path):
    pytest.importorskip("faiss")
    VectorIndex.build(_random_unit(10, 8), "faiss").save(tmp_path / "idx")
    cfg = json.loads((tmp_path / "idx" / "index.json").read_text())
    mutate(cfg)
    (tmp_path / "idx" / "index.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=match) as err:
        VectorIndex.load(tmp_path / "idx")
    assert "\n" not in str(err.value)


def test_corrupt_index_file_is_one_line(tmp_path):
    pytest.importorskip("usearch")
    VectorIndex.build(_random_unit(10, 8), "usearch").save(tmp_path / "idx")
    (tmp_path / "idx" / "vectors.usearch").write_bytes(b"not an index")
    with pytest.raises(ValueError) as err:
        VectorIndex.load(tmp_path / "idx")
    assert "\n" not in str(err.value) and "vectors.usearch" in str(err.value)


def test_zero_shot_command_on_a_captioned_folder(tmp_path, model, capsys):
    pytest.importorskip("timm")
    from PIL import Image

    from polymodal.plugins.image import ImageEncoder
    from polymodal.zero_shot import main as zero_shot_main

    rows = []
    for i, (colour, label) in enumerate([("white", "snow"), ("brown", "dog"), ("white", "snow"), ("brown", "dog")]):
        Image.new("RGB", (40, 40), colour).save(tmp_path / f"{i}.jpg")
        rows += [{"image": f"{i}.jpg", "caption_idx": j, "caption": f"A {label} picture ."} for j in range(5)]
    pd.DataFrame(rows).to_csv(tmp_path / "captions.tsv", sep="\t", index=False)
    model.save(tmp_path / "text")
    torch.manual_seed(0)
    vit = {"embed_dim": 32, "depth": 1, "num_heads": 2, "img_size": 32}
    EmbeddingModel(ImageEncoder("vit_tiny_patch16_224", image_size=32, model_kwargs=vit)).save(tmp_path / "image")
    record = zero_shot_main(
        ["--text-model", str(tmp_path / "text"), "--image-model", str(tmp_path / "image"),
         "--captions", str(tmp_path / "captions.tsv"), "--images", str(tmp_path), "--first-image", "1"]
    )  # fmt: skip
    assert record["n"] == 3 and record["per_class"] == {"dog": 2, "bicycle": 0, "beach": 0, "snow": 1}
    assert 0 <= record["accuracy"] <= 1 and record["majority_baseline"] == pytest.approx(2 / 3)
    assert json.loads(capsys.readouterr().out.strip())["n"] == 3
