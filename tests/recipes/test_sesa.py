"""sesa: named concept dimensions, concept supervision, explanations, and the tiny composition end to end."""

from __future__ import annotations

import pytest
import torch

from polymodal.cli import main
from polymodal.recipes.sesa import SESAEncoder, concept_words, derive_concepts, explain, read_concepts


def test_concepts_are_frequent_content_words():
    texts = ["Two dogs run on the grass .", "A dog is running .", "A black dog on grass", "The man smiles"]
    assert concept_words("Two dogs run on the grass .") == ["dog", "run", "grass"]
    assert derive_concepts(texts, 3) == ["dog", "grass", "black"]  # by document frequency, ties alphabetical


def test_explain_splits_the_cosine_over_concepts():
    concepts = ["dog", "grass", "ball"]
    a, b = torch.tensor([0.9, 0.1, 0.5]), torch.tensor([0.8, 0.0, 0.6])
    top = explain(concepts, a, b, k=3)
    norm = float(a.norm() * b.norm())
    assert [c for c, _ in top] == ["dog", "ball", "grass"]
    assert top[0][1] == pytest.approx(0.72 / norm) and top[1][1] == pytest.approx(0.30 / norm)
    assert sum(s for _, s in top) == pytest.approx(float(torch.nn.functional.cosine_similarity(a, b, dim=0)))
    with pytest.raises(ValueError, match="3 concept activations"):
        explain(concepts, a[:2], b[:2])


def test_encoder_targets_name_the_mentioned_concepts(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("# header\ndog\ngrass\nball\n")
    enc = SESAEncoder(input_dim=4, concepts=str(path))
    assert enc.targets(["Dogs on the grass", "nothing here"]).tolist() == [[1, 1, 0], [0, 0, 0]]
    out = enc({"x": torch.randn(2, 4)})
    assert out.pooled.shape == (2, 3) and bool(((out.pooled > 0) & (out.pooled < 1)).all())


@pytest.mark.parametrize(
    "text, message",
    [("dog\ngrass\ndog\n", "line 3: concept 'dog' already on line 1"), ("# only\ndog\n", "line 1: need at least 2")],
)
def test_bad_concept_lists(tmp_path, text, message):
    path = tmp_path / "c.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_concepts(str(path))


def test_tiny_fits_tests_and_explains(tmp_path):
    cli = main(["fit", "--config", "recipes/sesa/tiny.yaml", f"--trainer.default_root_dir={tmp_path}"])
    cli.trainer.test(cli.model, datamodule=cli.datamodule)
    test = cli.model.results["test"]
    assert {"q2d_r1", "q2d_mrr", "concept_p@1", "concept_p@5"} <= set(test)
    assert 0 <= test["concept_p@5"] <= 1 and 0 <= test["q2d_r1"] <= 1
    text = (tmp_path / "explanations.md").read_text()
    assert text.count("\n- **") == 4 and "cosine" in text
