"""polymodal.PrefixLM: the (prompt, answer) layout, the selective NLL, freezing through the System, generation
from image grids and from vectors, the model folder (save / polymodal.load / bad folders), caption metrics."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import polymodal
from polymodal.contracts import Batch
from polymodal.prefix_lm import PrefixLM, PrefixLMSystem, PrefixTextProcessor
from polymodal.system import Step
from tests.helpers import TINY_LLAMA

IMAGE = "recipes/cg_vlm/data/tiny_00_red_circle.png"


def _image_encoder():
    from polymodal.plugins.image import ImageEncoder

    return ImageEncoder("test_efficientnet", pretrained=False, image_size=64)


def _model(**kwargs) -> PrefixLM:
    torch.manual_seed(0)
    lm = {**TINY_LLAMA, "max_position_embeddings": 128}
    return PrefixLM(_image_encoder(), lm=lm, tokenizer="bytes", grid=2, init_seed=0, **kwargs)


def _batch(model: PrefixLM, n: int = 4, prompt: str = "") -> Batch:
    answers = ["a red circle .", "a blue square on white", "green", "a yellow triangle ."][:n]
    feats = torch.randn(n, 4, model.prefix.dim)
    text = model.text_processor([(prompt, a) for a in answers])
    return Batch(
        inputs={"image": {"features": feats}, "prompt+caption": text},
        targets={"image_id": torch.arange(n, dtype=torch.float32)},
        meta={"caption": answers, "prompt": [prompt] * n},
    )


# ------------------------------------------------------------------ layout
def test_text_layout_targets_answer_and_eos_only():
    from polymodal.plugins.text.processor import byte_tokenizer

    tok = byte_tokenizer()
    p = PrefixTextProcessor(tok, max_answer_tokens=3, eos_id=9, pad_id=0)
    out = p([("ab", "xyzw"), ("", "q"), "r"])
    ids = [tok.encode(t, add_special_tokens=False).ids for t in ("ab", "xyz", "q", "r")]
    assert out["text_ids"].tolist() == [
        ids[0] + ids[1] + [9],  # the answer is cut to 3 tokens, then eos
        ids[2] + [9, 0, 0, 0, 0],
        ids[3] + [9, 0, 0, 0, 0],
    ]
    assert out["answer_mask"].tolist()[0] == [False, False, True, True, True, False]  # eos not pooled
    assert out["target_mask"].tolist()[0] == [False, False, True, True, True, True]  # prompt never a target
    assert out["text_mask"].tolist()[1] == [True, True, False, False, False, False]


@pytest.mark.parametrize("value", [3, ("only one",), ("a", 2), None])
def test_text_processor_rejects_what_is_not_a_pair_of_strings(value):
    from polymodal.plugins.text.processor import byte_tokenizer

    with pytest.raises(ValueError, match="expected an answer string or a \\(prompt, answer\\) pair"):
        PrefixTextProcessor(byte_tokenizer(), 8, 1, 0).validate(value)


def test_selective_nll_equals_hugging_face_loss_on_the_same_labels():
    model = _model()
    batch = _batch(model, prompt="Describe.\n")
    tokens = model.prefix_tokens(batch.inputs["image"])  # (B, N, D)
    text = batch.inputs["prompt+caption"]
    nll, count = model.token_nll(tokens, text)
    N = tokens.shape[1]
    embeds = torch.cat([tokens, model.text_embeddings(text["text_ids"])], dim=1)
    mask = torch.cat([torch.ones(tokens.shape[:2], dtype=torch.long), text["text_mask"].long()], dim=1)
    labels = torch.full(embeds.shape[:2], -100, dtype=torch.long)
    labels[:, N:] = torch.where(text["target_mask"], text["text_ids"], torch.full_like(text["text_ids"], -100))
    ref = model.lm(inputs_embeds=embeds, attention_mask=mask, labels=labels).loss
    assert float((nll.sum() / count.sum()).detach()) == pytest.approx(float(ref.detach()), rel=1e-5)
    lengths = [len(ids) + 1 for ids in model.text_processor.tokenize(batch.meta["caption"])]
    assert count.tolist() == lengths  # every answer token + eos is predicted, nothing else


# ----------------------------------------------------------------- system
def test_loss_weights_switch_objectives_and_metrics_on_and_off():
    model = _model()
    both = PrefixLMSystem(model, generative_weight=1.0, contrastive_weight=0.5)
    step = Step(both, _batch(model), "train")
    total, parts = both._loss(step)
    assert set(parts) == {"caption", "contrastive"}
    assert float(total) == pytest.approx(float(parts["caption"] + 0.5 * parts["contrastive"]), rel=1e-6)
    assert step.records["caption/nll"][1].item() == sum(len(a) + 1 for a in step.batch.meta["caption"])
    gen = PrefixLMSystem(model, contrastive_weight=0.0)
    assert set(gen.objectives) == {"caption"}
    con = PrefixLMSystem(model, generative_weight=0.0)
    assert con.objectives["caption"].stages == ("val", "test")  # kept for perplexity only
    assert set(con._loss(Step(con, _batch(model), "train"))[1]) == {"contrastive"}
    assert {"ppl", "retrieval", "captions"} <= set(both.metrics)
    with pytest.raises(ValueError, match="both 0"):
        PrefixLMSystem(model, generative_weight=0.0, contrastive_weight=0.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"alignment": "patch"}, "alignment must be 'token' or 'mean'"),
        ({"generative_weight": -1.0}, "loss weights must be >= 0"),
    ],
)
def test_bad_system_arguments_are_one_line(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PrefixLMSystem(_model(), **kwargs)


def test_alignment_switch_sets_pooler_loss_and_retrieval_score():
    token, mean = PrefixLMSystem(_model()), PrefixLMSystem(_model(), alignment="mean")
    assert token.pooler.normalize_tokens and not mean.pooler.normalize_tokens
    assert token.objectives["contrastive"].loss.similarity == "dot" and token.metrics["retrieval"].similarity == "dot"
    assert mean.objectives["contrastive"].loss.similarity == "cosine"
    assert mean.metrics["retrieval"].similarity == "cosine"


def test_stage1_trains_only_the_adapter_and_stage2_the_last_blocks():
    model = _model()
    system = PrefixLMSystem(model, lm_trainable_layers=0).train()
    total, _ = system._loss(Step(system, _batch(model), "train"))
    total.backward()
    assert all(p.grad is not None for p in model.adapter.parameters())
    assert all(not p.requires_grad and p.grad is None for p in model.lm.parameters())
    assert not model.prefix.encoder.training and not model.lm.training  # fully frozen parts stay in eval mode
    frozen, trainable = model.lm_parameter_globs(1, prefix="towers.vlm.")
    assert trainable == ["towers.vlm.lm.model.layers.1.*", "towers.vlm.lm.model.norm.*"]
    stage2 = PrefixLMSystem(_model(), lm_trainable_layers=1)
    names = [n for n, p in stage2.named_parameters() if p.requires_grad]
    assert any(".layers.1." in n for n in names) and not any(".layers.0." in n for n in names)
    assert all(not p.requires_grad for p in stage2.towers["vlm"].prefix.parameters())
    with pytest.raises(ValueError, match="has 2 layers"):
        model.lm_parameter_globs(3)


# ------------------------------------------------------------- generation
def test_generate_is_greedy_deterministic_from_paths_and_features():
    model = _model()
    feats = torch.randn(3, 4, model.prefix.dim)
    a = model.generate(feats, "Describe.\n", max_new_tokens=6)
    assert len(a) == 3 and a == model.generate(feats, "Describe.\n", max_new_tokens=6)
    pixels = model.prefix.processor([IMAGE])
    from_path = model.generate([IMAGE], max_new_tokens=6)
    assert from_path == model.generate(model.prefix(pixels), max_new_tokens=6)
    with pytest.raises(TypeError, match="list of inputs"):
        model.generate(IMAGE)


def test_a_vector_prefix_is_one_token():
    """Any (B, C) feature works as the prefix: here a sentence embedding of a tiny text encoder."""
    from tests.helpers import tiny_text_encoder

    lm = {**TINY_LLAMA, "max_position_embeddings": 128}
    model = PrefixLM(tiny_text_encoder(), lm=lm, tokenizer="bytes", prefix_output="pooled", init_seed=0)
    inputs = model.prefix.processor(["a sentence to talk about", "another one"])
    assert model.prefix_tokens(inputs).shape == (2, 1, 32)
    texts = model.generate(["a sentence to talk about"], max_new_tokens=4)
    assert len(texts) == 1 and isinstance(texts[0], str)


# ------------------------------------------------------------ model folder
def test_save_and_polymodal_load_round_trip(tmp_path):
    model = _model()
    model.save(tmp_path / "vlm")
    assert sorted(p.name for p in (tmp_path / "vlm").iterdir()) == [
        "model.safetensors",
        "prefix",
        "prefix_lm.json",
        "tokenizer.json",
    ]
    loaded = polymodal.load(tmp_path / "vlm")
    assert isinstance(loaded, PrefixLM) and not loaded.training
    torch.testing.assert_close(loaded.state_dict(), model.state_dict())
    assert loaded.generate([IMAGE], "Describe.\n", 6) == model.generate([IMAGE], "Describe.\n", 6)
    batch = _batch(model)
    a = model.token_nll(model.prefix_tokens(batch.inputs["image"]), batch.inputs["prompt+caption"])[0]
    b = loaded.token_nll(loaded.prefix_tokens(batch.inputs["image"]), batch.inputs["prompt+caption"])[0]
    torch.testing.assert_close(a, b)


def _break_class(config):
    config["prefix"]["class"] = "os.system"


def _break_model_class(config):
    config["model_class"] = "builtins.eval"


def _break_version(config):
    config["format_version"] = 99


@pytest.mark.parametrize(
    "edit, match",
    [
        (_break_class, "field 'prefix.class' names 'os.system', which is not a registered encoder class"),
        (_break_model_class, "field 'model_class' names 'builtins.eval', which is not a registered model class"),
        (_break_version, "format_version 99 not supported"),
    ],
)
def test_a_folder_cannot_choose_code(tmp_path, edit, match):
    folder = _model().save(tmp_path / "vlm")
    config = json.loads((folder / "prefix_lm.json").read_text())
    edit(config)
    (folder / "prefix_lm.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=match):
        polymodal.load(folder)


@pytest.mark.parametrize(
    "damage, error, match",
    [
        ("weights", FileNotFoundError, "weights file missing"),
        ("truncate", ValueError, "corrupt or truncated weights file"),
        ("json", ValueError, "invalid JSON"),
    ],
)
def test_damaged_folders_fail_in_one_line(tmp_path, damage, error, match):
    folder = _model().save(tmp_path / "vlm")
    if damage == "weights":
        (folder / "model.safetensors").unlink()
    elif damage == "truncate":
        data = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    else:
        (folder / "prefix_lm.json").write_text("{not json")
    with pytest.raises(error, match=match) as info:
        polymodal.load(folder)
    assert "\n" not in str(info.value)


def test_export_from_the_system_is_the_prefix_lm(tmp_path):
    model = _model()
    system = PrefixLMSystem(model)
    assert system.inference_model(tower="vlm") is model
    with pytest.raises(ValueError, match="its own inference model"):
        system.inference_model(tower="vlm", head="score")
    shutil.rmtree(tmp_path, ignore_errors=True)


# ---------------------------------------------------------------- metrics
def test_caption_metrics_caption_each_image_once_and_score_all_references():
    from polymodal.evaluation.captioning import caption_scores
    from polymodal.metrics.captioning import CaptionMetrics, texts_from_bytes, texts_to_bytes

    texts = ["a dog .", "été ☀", "x" * 600]
    assert texts_from_bytes(texts_to_bytes(texts, 512)) == [texts[0], texts[1], "x" * 512]
    model = _model()
    system = PrefixLMSystem(model, max_new_tokens=4)
    metric = system.metrics["captions"]
    assert isinstance(metric, CaptionMetrics) and metric.stages == ("test",)
    batch = _batch(model, n=4, prompt="Describe.\n")
    batch.targets["image_id"] = torch.tensor([0.0, 0.0, 1.0, 1.0])  # two images, two references each
    step = Step(system, batch, "test")
    metric.update(step)
    metric.update(step)  # the same images again: not captioned twice
    assert sum(len(h) for h in metric.hyp) == 2
    hyps = model.generate_from_prefix(step.features("image").sequence[[0, 2]], "Describe.\n", 4)
    refs = {0: batch.meta["caption"][:2] * 2, 1: batch.meta["caption"][2:] * 2}
    assert metric.compute() == pytest.approx(caption_scores({0: hyps[0], 1: hyps[1]}, refs).as_dict())
