"""CPU batch streams in ``EmbeddingModel.encode``: same embeddings, thread count restored, and
encoders that keep per-call state never run two batches at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from polymodal.features import Features
from polymodal.modality import Encoder
from polymodal.model import EmbeddingModel
from polymodal.vector import VectorProcessor
from tests.helpers import TINY_LLAMA, tiny_text_encoder

TEXTS = [f"sentence number {i} " + "x" * (i % 17) for i in range(150)]


class _Probe(Encoder):
    """A vector encoder that records how many forwards run at the same time."""

    modality = "vector"

    def __init__(self, concurrent: bool) -> None:
        super().__init__()
        self.concurrent_forward = concurrent
        self.lin = nn.Linear(3, 3)
        self._proc = VectorProcessor(3)
        self._lock = threading.Lock()
        self.active = self.peak = 0
        self.threads: set[int] = set()

    @property
    def processor(self) -> VectorProcessor:
        return self._proc

    @property
    def output_dim(self) -> int:
        return 3

    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.threads.add(threading.get_ident())
        time.sleep(0.01)  # long enough for a second stream to enter if it may
        h = self.lin(inputs["x"])
        with self._lock:
            self.active -= 1
        return Features(sequence=h.unsqueeze(1), mask=torch.ones(h.shape[0], 1, dtype=torch.bool), pooled=h)

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config, directory):
        return cls(True)


def test_streams_give_the_same_embeddings_and_restore_threads():
    model = EmbeddingModel(tiny_text_encoder(), normalize=True)
    before = torch.get_num_threads()
    one = model.encode(TEXTS, batch_size=8, streams=1)
    two = model.encode(TEXTS, batch_size=8, streams=2)
    chunks = np.concatenate([e.numpy() for _, e in model.iter_encode(TEXTS, batch_size=8, chunk_size=40, streams=3)])
    np.testing.assert_allclose(two, one, atol=1e-6)
    np.testing.assert_allclose(chunks, one, atol=1e-6)
    assert torch.get_num_threads() == before


def test_threads_restored_when_a_batch_fails():
    model = EmbeddingModel(tiny_text_encoder())
    before = torch.get_num_threads()
    with pytest.raises(TypeError):
        model.encode([*TEXTS[:20], None, *TEXTS[20:40]], batch_size=4, streams=2)
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("concurrent", [True, False])
def test_only_concurrent_encoders_overlap(concurrent):
    probe = _Probe(concurrent)
    rows = list(np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32))
    EmbeddingModel(probe).encode(rows, batch_size=4, streams=2)
    if concurrent:
        assert probe.peak == 2 and len(probe.threads) == 2
    else:
        assert probe.peak == 1 and probe.threads == {threading.get_ident()}


def test_token_prepending_is_not_run_concurrently():
    from polymodal.plugins.text.decoder import DecoderTextEncoder

    plain = DecoderTextEncoder(model=dict(TINY_LLAMA), tokenizer="bytes")
    assert plain.concurrent_forward
    assert not plain.configure(prompt="prompteol", token_prepending=True, tp_layers=(0, 1)).concurrent_forward


def test_bad_stream_count():
    with pytest.raises(ValueError, match="streams must be >= 1"):
        EmbeddingModel(tiny_text_encoder()).encode(TEXTS[:3], streams=0)
