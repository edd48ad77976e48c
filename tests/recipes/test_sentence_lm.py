"""sentence_lm part (a): the semantic autoencoder is a composition of the core PrefixLM with a sentence-vector
prefix (one prefix token); fit, test (reconstruction BLEU) and the exported model's generate()."""

from __future__ import annotations

import math

import pytest
import torch

from polymodal.cli import main


def test_tiny_semantic_autoencoder_fits_tests_and_decodes_from_a_sentence_vector(tmp_path):
    cli = main(["fit", "--config", "recipes/sentence_lm/tiny.yaml", f"--trainer.default_root_dir={tmp_path}"])
    assert cli.trainer.state.finished and cli.trainer.global_step == 12  # 48 rows / 8 x 2 epochs
    assert math.isfinite(float(cli.trainer.callback_metrics["val/ppl"]))
    (results,) = cli.trainer.test(cli.model, datamodule=cli.datamodule)
    assert {"test/bleu1", "test/bleu4"} <= set(results)
    assert all(0.0 <= results[k] <= 1.0 for k in ("test/bleu1", "test/bleu4"))
    import polymodal

    model = polymodal.load(tmp_path / "model")
    assert type(model).__name__ == "PrefixLM"
    sentences = ["Before we proceed any further, hear me speak.", "a sentence it never saw"]
    batch = model.prefix.processor(sentences)
    with torch.no_grad():
        tokens = model.prefix_tokens(batch)
    assert tokens.shape == (2, 1, model.hidden_size)  # the sentence vector is ONE prefix token
    out = model.generate(sentences, max_new_tokens=8)
    assert len(out) == 2 and all(isinstance(t, str) for t in out)
    with pytest.raises(TypeError, match="list of inputs"):
        model.generate("a bare string")
