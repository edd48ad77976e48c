"""A model folder is replaced whole or not at all; encode is safe from several threads.

* kill -9 fuzz: a child process re-saves two different models over one folder in a loop and is
  killed with SIGKILL at random moments; every outcome must load as one of the two, exactly.
* disk full (a real tiny tmpfs when the test runs as root, and a patched write everywhere): the
  old model stays loadable and the error is one line.
* two threads encoding one model give the sequential result exactly.
"""

from __future__ import annotations

import errno
import multiprocessing as mp
import os
import random
import shutil
import signal
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import polymodal
from polymodal.features import Features
from polymodal.modality import Encoder
from polymodal.model import EmbeddingModel
from polymodal.poolers import LastTokenPooler, MeanPooler
from polymodal.vector import VectorProcessor
from tests.helpers import TINY_BERT, tiny_text_encoder

TEXTS = ["a short one", "a somewhat longer sentence with more words in it", "x", "über naïve café"]


def _model(kind: str) -> EmbeddingModel:
    if kind == "old":
        torch.manual_seed(0)
        return EmbeddingModel(tiny_text_encoder(), MeanPooler(), normalize=False)
    torch.manual_seed(1)
    enc = tiny_text_encoder({**TINY_BERT, "hidden_size": 48, "num_attention_heads": 3}, max_length=24)
    torch.manual_seed(2)
    for p in enc.parameters():
        p.data.normal_()
    return EmbeddingModel(enc, LastTokenPooler(), normalize=True)


def _resave_forever(models: list[EmbeddingModel], target: str, ready) -> None:  # runs in the child
    torch.set_num_threads(1)
    ready.set()
    i = 0
    while True:
        models[i % 2].save(target)
        i += 1


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("pair")
    refs = {}
    for kind in ("old", "new"):
        _model(kind).save(root / kind)
        refs[kind] = polymodal.load(root / kind).encode(TEXTS)
    return root, refs


def _which(folder: Path, refs: dict[str, np.ndarray]) -> str:
    model = polymodal.load(folder)  # must load: never neither
    emb = model.encode(TEXTS)
    for kind, ref in refs.items():
        if emb.shape == ref.shape and np.array_equal(emb, ref):
            return kind
    raise AssertionError(f"{folder} loads as a hybrid of the two models")  # never a mix


def test_kill_9_during_resave_leaves_old_or_new(pair, tmp_path):
    root, refs = pair
    target = tmp_path / "model"
    shutil.copytree(root / "old", target)
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "polymodal.model", "polymodal.plugins.text", __name__])
    rng = random.Random(1234)
    outcomes = []
    models = [polymodal.load(root / "old"), polymodal.load(root / "new")]
    for _ in range(24):
        ready = ctx.Event()
        child = ctx.Process(target=_resave_forever, args=(models, str(target), ready))
        child.start()
        assert ready.wait(60), "the re-saving child did not start"
        threading.Event().wait(rng.uniform(0.0, 0.25))
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        assert child.exitcode == -signal.SIGKILL
        outcomes.append(_which(target, refs))
    assert len(outcomes) == 24 and set(outcomes) <= {"old", "new"}
    print(f"kill -9 outcomes: {outcomes.count('old')} old, {outcomes.count('new')} new, 0 unloadable, 0 hybrid")
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "model"]
    # the killed writers' temp folders are swept by the next save
    _model("old").save(target)
    assert not [p.name for p in tmp_path.iterdir() if p.name != "model"], leftovers


def _fail_with_enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _half_then_enospc(tensors, filename, metadata=None):
    Path(filename).write_bytes(b"\0" * 1000)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize(
    "where",
    [
        ("safetensors.torch.save_file", _half_then_enospc),
        ("polymodal.io._fsync_tree", _fail_with_enospc),
        ("polymodal.plugins.text.encoder.TextEncoder.save_assets", _fail_with_enospc),
        ("pathlib.Path.write_text", _fail_with_enospc),
    ],
)
def test_disk_full_during_resave_keeps_the_old_model(pair, tmp_path, monkeypatch, where):
    root, refs = pair
    target = tmp_path / "model"
    shutil.copytree(root / "old", target)
    new = _model("new")
    monkeypatch.setattr(*where)
    with pytest.raises(OSError) as err:
        new.save(target)
    monkeypatch.undo()
    msg = str(err.value)
    assert "\n" not in msg and "No space left on device" in msg and "previous one is unchanged" in msg, msg
    assert _which(target, refs) == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temp folder left behind


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="mounting a tmpfs needs root")
def test_disk_full_on_a_real_tiny_tmpfs(pair, tmp_path):
    root, refs = pair
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    used = sum(p.stat().st_size for p in (root / "old").rglob("*") if p.is_file())
    size_k = used // 1024 + 64  # room for the old model, not for a second one
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_k}k", "tmpfs", str(mnt)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        shutil.copytree(root / "old", mnt / "model")
        with pytest.raises(OSError) as err:
            _model("new").save(mnt / "model")
        assert "No space left on device" in str(err.value) and "\n" not in str(err.value)
        assert _which(mnt / "model", refs) == "old"
        assert [p.name for p in mnt.iterdir()] == ["model"]
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


@pytest.mark.parametrize("mode", ["loaded", "built_in_train_mode"])
def test_two_threads_encode_the_sequential_result_exactly(pair, mode):
    root, _ = pair
    model = polymodal.load(root / "old") if mode == "loaded" else _model("old")
    if mode == "loaded":
        assert not model.training and not any(m.training for m in model.modules())
    texts = [f"sentence number {i} " + "word " * (i % 13) for i in range(300)]
    expected = model.encode(texts, batch_size=16)
    modes_before = [m.training for m in model.modules()]
    results: dict[int, list[np.ndarray]] = {0: [], 1: []}
    start = threading.Barrier(2)

    def work(k: int) -> None:
        start.wait()
        for _ in range(4):
            results[k].append(model.encode(texts, batch_size=16))

    threads = [threading.Thread(target=work, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in (0, 1):
        for got in results[k]:
            np.testing.assert_array_equal(got, expected)
    assert [m.training for m in model.modules()] == modes_before  # encode changed no module state


def test_encode_changes_no_module_state_of_a_loaded_model(pair, monkeypatch):
    root, _ = pair
    model = polymodal.load(root / "old")
    calls = []
    for m in model.modules():
        monkeypatch.setattr(m, "train", lambda *a, _m=m, **k: calls.append(_m) or _m)
    model.encode(TEXTS)
    assert calls == []


class _Scale(Encoder):
    """An encoder with no parameters and no buffers (doubles the input vector)."""

    modality = "vector"

    def __init__(self) -> None:
        super().__init__()
        self._proc = VectorProcessor(3)

    @property
    def processor(self) -> VectorProcessor:
        return self._proc

    @property
    def output_dim(self) -> int:
        return 3

    def forward(self, inputs):
        h = 2 * inputs["x"]
        return Features(sequence=h.unsqueeze(1), mask=torch.ones(h.shape[0], 1, dtype=torch.bool), pooled=h)

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config, directory):
        return cls()


def test_encoder_without_parameters_encodes():
    model = EmbeddingModel(_Scale(), MeanPooler()).eval()
    np.testing.assert_array_equal(model.encode([[1.0, 2.0, 3.0]]), [[2.0, 4.0, 6.0]])
