"""Faulty model folders: each fault is one line naming the file and the field (table-driven)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import polymodal
from polymodal.model import EmbeddingModel
from polymodal.poolers import MeanPooler
from tests.helpers import TINY_BERT, tiny_text_encoder


@pytest.fixture()
def folder(tmp_path) -> Path:
    return EmbeddingModel(tiny_text_encoder(), MeanPooler()).save(tmp_path / "m")


def _set(key_path: str, value):
    def change(cfg):
        *parents, last = key_path.split(".")
        node = cfg
        for k in parents:
            node = node[k]
        node[last] = value

    return change


def _drop(key_path: str):
    def change(cfg):
        *parents, last = key_path.split(".")
        node = cfg
        for k in parents:
            node = node[k]
        del node[last]

    return change


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: [c], "'(top level)' must be a JSON object"),
        (_set("normalize", "false"), "'normalize' must be true or false"),
        (_set("normalize", 1), "'normalize' must be true or false"),
        (_drop("encoder"), "missing field 'encoder'"),
        (_drop("encoder.class"), "missing field 'encoder.class'"),
        (_set("encoder", ["TextEncoder"]), "'encoder' must be an object"),
        (_set("encoder.config", [1, 2]), "'encoder.config' must be an object"),
        (_set("encoder.class", 7), "'encoder.class' must be a class name string"),
        (_set("encoder.class", "NoSuchEncoder"), "'encoder.class' names 'NoSuchEncoder'"),
        (_set("pooler", {"name": "median"}), "'pooler.name': unknown pooler 'median'"),
        (_set("pooler", {"name": ["mean"]}), "'pooler.name': unknown pooler"),
        (_set("pooler", {"name": "mean", "args": [1]}), "'pooler.args' must be an object"),
        (_set("pooler", {"name": "mean", "args": {"width": 3}}), "'pooler.args' do not fit MeanPooler"),
        (_set("prompts", {"query": 3}), "'prompts' must be an object of strings"),
        (_set("default_prompt_name", "query"), "'default_prompt_name' must be null or one of []"),
        (_set("format_version", 2), "format_version 2 not supported"),
        (_set("model_class", ["x"]), "'model_class' must be a class name string"),
        (_set("model_args", "x"), "'model_args' must be an object"),
        (_set("encoder.config.max_length", "long"), "polymodal.json"),
    ],
)
def test_bad_polymodal_json_is_one_line(folder, change, expected):
    path = folder / "polymodal.json"
    cfg = json.loads(path.read_text())
    new = change(cfg)
    path.write_text(json.dumps(cfg if new is None else new))
    with pytest.raises((ValueError, TypeError)) as err:
        polymodal.load(folder)
    msg = str(err.value)
    assert "\n" not in msg and expected in msg, msg
    assert str(path) in msg or "polymodal.json" in msg


def _other_weights(folder: Path, tmp: Path) -> None:
    other = EmbeddingModel(tiny_text_encoder({**TINY_BERT, "hidden_size": 16, "intermediate_size": 32}), MeanPooler())
    other.save(tmp / "other")
    (folder / "model.safetensors").write_bytes((tmp / "other" / "model.safetensors").read_bytes())


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (lambda f, t: (f / "polymodal.json").write_text("{not json"), "polymodal.json: invalid JSON"),
        (lambda f, t: (f / "polymodal.json").write_bytes(b"\xff\xfe{}"), "polymodal.json: not UTF-8"),
        (lambda f, t: (f / "model.safetensors").unlink(), "weights file missing"),
        (
            lambda f, t: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:5000]),
            "model.safetensors: corrupt or truncated",
        ),
        (lambda f, t: (f / "model.safetensors").write_bytes(b"garbage"), "model.safetensors: corrupt or truncated"),
        (_other_weights, "has shape"),
        (lambda f, t: (f / "encoder" / "tokenizer.json").write_text('{"model": 3}'), "tokenizer.json: not a valid"),
        (lambda f, t: (f / "encoder" / "tokenizer.json").write_text("{trunc"), "tokenizer.json: not a valid"),
        (lambda f, t: (f / "encoder" / "config.json").write_text("[1]"), "config.json: expected a JSON object"),
        (lambda f, t: (f / "encoder" / "config.json").write_text("{"), "config.json: invalid JSON"),
        (
            lambda f, t: (f / "encoder" / "config.json").write_text('{"model_type": "no-such-arch"}'),
            "config.json",
        ),
    ],
)
def test_bad_model_files_are_one_line(folder, tmp_path, fault, expected):
    fault(folder, tmp_path)
    with pytest.raises((ValueError, FileNotFoundError)) as err:
        polymodal.load(folder)
    msg = str(err.value)
    assert "\n" not in msg and expected in msg, msg


def _st(tmp: Path) -> Path:
    from polymodal.plugins.text.st_export import to_sentence_transformers

    return to_sentence_transformers(EmbeddingModel(tiny_text_encoder(), MeanPooler()), tmp / "st")


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (lambda f: (f / "modules.json").write_text("{}"), "modules.json: expected a JSON list"),
        (lambda f: (f / "modules.json").write_text("[1, 2]"), "modules.json: module 0 must be an object"),
        (lambda f: (f / "modules.json").write_text("[{"), "modules.json: invalid JSON"),
        (
            lambda f: (f / "modules.json").write_text(json.dumps([{"type": "x.Dense", "path": "d"}])),
            "modules ['Dense'] are not supported",
        ),
        (lambda f: (f / "1_Pooling" / "config.json").unlink(), "Pooling config not found"),
        (lambda f: (f / "1_Pooling" / "config.json").write_text("[]"), "1_Pooling/config.json: expected a JSON object"),
        (
            lambda f: (f / "config_sentence_transformers.json").write_text(json.dumps({"prompts": ["q"]})),
            "'prompts' must be an object of strings",
        ),
        (
            lambda f: (f / "config_sentence_transformers.json").write_text(
                json.dumps({"prompts": {"query": "q: "}, "default_prompt_name": "doc"})
            ),
            "'default_prompt_name' 'doc' is not one of the prompts",
        ),
    ],
)
def test_bad_sentence_transformers_folders_are_one_line(tmp_path, fault, expected):
    folder = _st(tmp_path)
    fault(folder)
    with pytest.raises((ValueError, FileNotFoundError)) as err:
        polymodal.load(folder)
    msg = str(err.value)
    assert "\n" not in msg and expected in msg, msg


def test_unrecognised_folder_lists_what_was_looked_for(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError) as err:
        polymodal.load(tmp_path / "empty")
    msg = str(err.value)
    assert "\n" not in msg
    for looked in ("polymodal.json", "modules.json", "config.json"):
        assert looked in msg
