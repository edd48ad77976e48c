"""Untrusted files are data, never code (docs/security.md).

Every payload here only writes a marker file under the test's temp dir; each test asserts the
marker is absent and that loading failed with one line naming the file and the field.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

import polymodal
from polymodal.model import EmbeddingModel
from polymodal.plugins.text.pretrained import from_sentence_transformers
from polymodal.poolers import MeanPooler
from tests.helpers import tiny_text_encoder


def _payload(folder: Path, marker: Path, module: str = "payload") -> None:
    """A Python module inside ``folder`` that writes ``marker`` when imported or instantiated."""
    code = (
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "class Evil:\n"
        f"    def __init__(self, *a, **k):\n        open({str(marker)!r}, 'w').write('ran')\n"
    )
    path = folder.joinpath(*module.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    for parent in path.relative_to(folder).parents:
        if str(parent) != ".":
            (folder / parent / "__init__.py").touch()
    path.write_text(code)


@pytest.fixture()
def saved(tmp_path) -> Path:
    EmbeddingModel(tiny_text_encoder(), MeanPooler()).save(tmp_path / "dl" / "model")
    return tmp_path / "dl" / "model"


def _edit(folder: Path, change) -> None:
    path = folder / "polymodal.json"
    cfg = json.loads(path.read_text())
    change(cfg)
    path.write_text(json.dumps(cfg))


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text, text
    return text


@pytest.mark.parametrize(
    ("module", "change", "field"),
    [
        ("payload", lambda c: c["encoder"].__setitem__("class", "payload.Evil"), "encoder.class"),
        ("payload", lambda c: c["encoder"].__setitem__("class", "payload:Evil"), "encoder.class"),
        ("payload", lambda c: c.__setitem__("pooler", {"class": "payload.Evil", "args": {}}), "pooler.class"),
        ("payload", lambda c: c.__setitem__("model_class", "payload.Evil"), "model_class"),
        ("pkg.payload", lambda c: c.__setitem__("model_class", "pkg.payload.Evil"), "model_class"),
        ("model.payload", lambda c: c["encoder"].__setitem__("class", "model.payload.Evil"), "encoder.class"),
        ("payload", lambda c: c.__setitem__("model_class", "os.system"), "model_class"),
        ("payload", lambda c: c["encoder"].__setitem__("class", "subprocess.Popen"), "encoder.class"),
    ],
)
def test_saved_class_names_never_import_folder_code(saved, tmp_path, monkeypatch, module, change, field):
    marker = tmp_path / "marker"
    _payload(saved, marker, module)
    _payload(saved.parent, marker, module)  # also beside the folder (its parent is the cwd / on sys.path)
    _edit(saved, change)
    monkeypatch.syspath_prepend(str(saved))
    monkeypatch.syspath_prepend(str(saved.parent))
    monkeypatch.chdir(saved.parent)
    before = set(sys.modules)
    with pytest.raises(ValueError) as err:
        polymodal.load(saved)
    msg = _one_line(err.value)
    assert field in msg and "polymodal.json" in msg and "not a registered" in msg
    assert not marker.exists()
    assert not {m for m in set(sys.modules) - before if m.split(".")[0] in {"payload", "pkg", "model"}}


def _hf_folder(folder: Path) -> Path:
    enc = tiny_text_encoder()
    folder.mkdir(parents=True, exist_ok=True)
    enc.model.save_pretrained(str(folder), safe_serialization=True)
    enc.processor.tokenizer.save(str(folder / "tokenizer.json"))
    return folder


def _st_folder(folder: Path) -> Path:
    from polymodal.plugins.text.st_export import to_sentence_transformers

    return to_sentence_transformers(EmbeddingModel(tiny_text_encoder(), MeanPooler()), folder)


def _auto_map(folder: Path, file: str, marker: Path) -> None:
    (folder / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    path = folder / file
    data = json.loads(path.read_text()) if path.is_file() else {}
    data["auto_map"] = {"AutoModel": "modeling_evil.EvilModel", "AutoConfig": "modeling_evil.EvilConfig"}
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("kind", "file"),
    [
        ("huggingface", "config.json"),
        ("huggingface", "tokenizer_config.json"),
        ("sentence-transformers", "config.json"),
        ("polymodal", "encoder/config.json"),
    ],
)
def test_auto_map_folders_are_refused_without_asking(tmp_path, monkeypatch, kind, file):
    marker = tmp_path / "marker"
    folder = tmp_path / "dl"
    if kind == "huggingface":
        _hf_folder(folder)
    elif kind == "sentence-transformers":
        _st_folder(folder)
    else:
        EmbeddingModel(tiny_text_encoder(), MeanPooler()).save(folder)
    _auto_map(folder, file, marker)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setattr("builtins.input", lambda *a: pytest.fail("asked on the terminal"))
    with pytest.raises(ValueError) as err:
        polymodal.load(folder)
    msg = _one_line(err.value)
    assert "auto_map" in msg and file.split("/")[-1] in msg and "trust_remote_code=False" in msg
    assert not marker.exists()


@pytest.mark.parametrize(
    ("module", "path"),
    [
        (1, "../outside"),
        (1, "../../etc"),
        (1, "/etc"),
        (0, ".."),
        (0, "sub/../../outside"),
    ],
)
def test_sentence_transformers_module_paths_stay_inside(tmp_path, module, path):
    folder = _st_folder(tmp_path / "st")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    modules = json.loads((folder / "modules.json").read_text())
    modules[module]["path"] = path
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ValueError) as err:
        from_sentence_transformers(folder)
    msg = _one_line(err.value)
    assert "modules.json" in msg and "outside the folder" in msg


@pytest.mark.parametrize(
    "victim", ["encoder/tokenizer.json", "encoder/config.json", "model.safetensors", "polymodal.json"]
)
def test_save_never_writes_through_symlinks(saved, tmp_path, victim):
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    link = saved / victim
    link.unlink()
    link.symlink_to(outside)
    EmbeddingModel(tiny_text_encoder(), MeanPooler()).save(saved)
    assert outside.read_text() == "keep me"
    assert not (saved / victim).is_symlink()
    assert polymodal.load(saved).dim == 32


def test_save_replaces_a_symlinked_folder_not_its_target(tmp_path):
    real = tmp_path / "elsewhere"
    EmbeddingModel(tiny_text_encoder(), MeanPooler()).save(real)
    before = {p.name: p.read_bytes() for p in real.rglob("*") if p.is_file()}
    link = tmp_path / "model"
    link.symlink_to(real, target_is_directory=True)
    EmbeddingModel(tiny_text_encoder(), MeanPooler(), normalize=True).save(link)
    assert not link.is_symlink() and polymodal.load(link).normalize is True
    assert {p.name: p.read_bytes() for p in real.rglob("*") if p.is_file()} == before


def test_save_refuses_to_replace_a_folder_that_is_not_a_model(tmp_path):
    folder = tmp_path / "home"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    with pytest.raises(FileExistsError, match="refusing to replace it"):
        EmbeddingModel(tiny_text_encoder(), MeanPooler()).save(folder)
    assert (folder / "thesis.tex").read_text() == "years of work"


def test_sentence_transformers_export_never_writes_through_symlinks(tmp_path):
    folder = _st_folder(tmp_path / "st")
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    for name in ("tokenizer.json", "config.json", "modules.json"):
        (folder / name).unlink()
        (folder / name).symlink_to(outside)
    _st_folder(folder)
    assert outside.read_text() == "keep me"
    assert from_sentence_transformers(folder).dim == 32


@pytest.mark.parametrize(
    ("hidden", "layers"),
    [(32768, 2), (4096, 48), (65536, 1)],
)
def test_huge_declared_architecture_fails_before_allocating(tmp_path, hidden, layers):
    """A tiny folder whose config declares a huge model: refused from the headers, nothing allocated."""
    import resource

    for kind in ("polymodal", "huggingface"):
        folder = tmp_path / kind
        if kind == "polymodal":
            EmbeddingModel(tiny_text_encoder(), MeanPooler()).save(folder)
            cfg_path = folder / "encoder" / "config.json"
        else:
            cfg_path = _hf_folder(folder) / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg.update(hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers, num_attention_heads=2)
        cfg_path.write_text(json.dumps(cfg))
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with pytest.raises(ValueError) as err:
            polymodal.load(folder)
        msg = _one_line(err.value)
        assert ("config.json" in msg or "polymodal.json" in msg) and ("shape" in msg or "parameters" in msg)
        grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
        assert grown_mib < 500, f"{kind}: peak RSS grew by {grown_mib:.0f} MiB"


def test_hf_folder_with_only_pickle_weights_is_refused(tmp_path, monkeypatch):
    folder = _hf_folder(tmp_path / "hf")
    marker = tmp_path / "marker"
    (folder / "model.safetensors").unlink()

    class Boom:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"x": Boom()}, folder / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError) as err:
        polymodal.load(folder)
    msg = _one_line(err.value)
    assert "pytorch_model.bin" in msg and "pickle" in msg
    assert not marker.exists()
