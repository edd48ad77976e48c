"""The real mteb package (v2): polymodal's local STS task run through ``mteb.evaluate`` offline scores the
same as ``polymodal bench`` (1e-6); MTEBModel satisfies mteb's EncoderProtocol."""

from __future__ import annotations

import pytest
import torch

from polymodal.bench import TASKS, get_tasks, load_models, run, sample_data_root
from polymodal.model import EmbeddingModel
from polymodal.plugins.text import TextEncoder
from polymodal.poolers import MeanPooler
from tests.helpers import TINY_BERT

mteb = pytest.importorskip("mteb", reason="needs the mteb extra: pip install 'polymodal[mteb]'")


@pytest.fixture(scope="module")
def tiny_model() -> EmbeddingModel:
    torch.manual_seed(0)
    model = EmbeddingModel(
        TextEncoder(model=dict(TINY_BERT, max_position_embeddings=256), tokenizer="bytes", max_length=256),
        MeanPooler(),
        True,
    )
    return model.eval()


def test_mteb_model_meets_the_v2_encoder_protocol(tiny_model):
    from mteb.models.models_protocols import EncoderProtocol

    from polymodal.evaluation import MTEBModel

    wrapped = MTEBModel(tiny_model, name="tiny")
    assert isinstance(wrapped, EncoderProtocol)
    meta = wrapped.mteb_model_meta
    assert meta.name == "polymodal/tiny" and meta.embed_dim == tiny_model.dim and meta.modalities == ["text"]


def test_local_sts_task_through_mteb_evaluate_equals_polymodal_bench(tiny_model, tmp_path, monkeypatch):
    from polymodal.evaluation.mteb import MTEBModel, mteb_sts_task

    monkeypatch.setenv("MTEB_CACHE", str(tmp_path / "mteb_cache"))
    task = TASKS["stsb"]
    data = task.load(task.folder(sample_data_root()))
    mteb_task = mteb_sts_task("polymodal-stsb-sample", data["s1"], data["s2"], data["score"])
    result = mteb.evaluate(MTEBModel(tiny_model, name="tiny"), mteb_task, cache=None, show_progress_bar=False)
    (task_result,) = result.task_results
    mteb_score = task_result.get_score()

    folder = tiny_model.save(tmp_path / "model")
    (record,) = run(load_models([str(folder)]), get_tasks(["stsb"]), sample_data_root(), progress=lambda _: None)
    assert record["scores"]["n"] == 200  # the shipped 200-pair sample
    assert abs(mteb_score - record["main_score"]) < 1e-6
