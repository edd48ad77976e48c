"""The cg_vlm recipe as compositions of polymodal.PrefixLMSystem: tiny stage 1 and stage 2 through the CLI,
export + polymodal caption, the recipe's Instructions source, the shipped configs and sweeps."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

import polymodal
from polymodal.cli import main
from polymodal.data import Captions
from polymodal.prefix_lm import PrefixLM
from polymodal.recipes import recipe_root
from polymodal.recipes.cg_vlm import DEFAULT_INSTRUCTIONS, Instructions

TINY, TINY2 = "recipes/cg_vlm/tiny.yaml", "recipes/cg_vlm/tiny_stage2.yaml"
TINY_VIT = "recipes/cg_vlm/tiny_vit.yaml"
DATA = recipe_root() / "cg_vlm" / "data"
IMAGE = str(DATA / "tiny_00_red_circle.png")


def _captions(part: str = "train") -> Captions:
    return Captions(str(DATA / "tiny_captions.tsv"), images=str(DATA), sizes=[8, 2, 2], part=part)


def test_tiny_stage1_fit_test_export_and_caption(tmp_path, capsys):
    cli = main(["fit", "--config", TINY, f"--trainer.default_root_dir={tmp_path}"])
    assert cli.trainer.state.finished and cli.trainer.global_step == 20  # 2 epochs x 40 captions / batch 4
    logged = cli.trainer.callback_metrics
    for key in ("train/caption", "train/contrastive", "val/ppl", "val/c2i_r1", "val/i2c_r1", "val/rsum"):
        assert key in logged and math.isfinite(float(logged[key]))
    assert float(logged["val/ppl"]) == pytest.approx(math.exp(float(logged["val/token_loss"])), rel=1e-5)
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    assert saved and all(k.startswith("towers.vlm.adapter.") for k in saved)  # only what trains is saved
    results = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)[0]
    for key in ("test/c2i_r10", "test/i2c_r10", "test/ppl", "test/bleu4", "test/cider"):
        assert key in results and math.isfinite(results[key])
    assert results["test/i2c_r10"] == 1.0  # 2 test images only
    vlm = polymodal.load(tmp_path / "model")
    assert isinstance(vlm, PrefixLM)
    expected = cli.model.towers["vlm"].generate([IMAGE], max_new_tokens=5)
    assert vlm.generate([IMAGE], max_new_tokens=5) == expected
    capsys.readouterr()
    assert main(["caption", "--model", str(tmp_path / "model"), IMAGE, "--max-new-tokens", "5"]) == 0
    assert capsys.readouterr().out == f"{IMAGE}\t{expected[0]}\n"


def test_tiny_stage2_starts_from_the_stage1_checkpoint(tmp_path):
    main(["fit", "--config", TINY, f"--trainer.default_root_dir={tmp_path / 's1'}", "--trainer.max_epochs=1"])
    ckpt = tmp_path / "s1" / "checkpoints" / "last.ckpt"
    stage1 = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    root = f"--trainer.default_root_dir={tmp_path / 's2'}"
    frozen_step = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=0",
                   "--model.init_args.optimizer.init_args.lr=0.0"]  # fmt: skip
    cli = main(["fit", "--config", TINY2, root, f"--model.init_args.init_from={ckpt}", *frozen_step])
    state = cli.model.state_dict()
    for k, v in stage1.items():  # one step at lr 0: what stage 2 holds is what it loaded
        torch.testing.assert_close(state[k], v)
    trained = [n for n, p in cli.model.named_parameters() if p.requires_grad]
    assert any(".layers.1." in n for n in trained) and not any(".layers.0." in n for n in trained)
    saved = torch.load(tmp_path / "s2" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert set(saved["state_dict"]) == {n for n in trained}  # adapter + last block + final norm, nothing frozen
    assert len(cli.datamodule.load_split("train")) == 20  # 8 images x 5 captions x 0.5
    with pytest.raises((FileNotFoundError, ValueError), match="init_from checkpoint not found"):
        main(["fit", "--config", TINY2, f"--trainer.default_root_dir={tmp_path / 's3'}"] + [
            f"--model.init_args.init_from={tmp_path / 'nope.ckpt'}"])  # fmt: skip


def test_instructions_are_deterministic_nested_and_templated():
    full = Instructions(_captions(), fraction=1.0).frame()
    tenth = Instructions(_captions(), fraction=0.1).frame()
    assert len(full) == 40 and len(tenth) == 4  # ceil(0.1 x 8 images x 5 captions)
    assert tenth.equals(full.iloc[:4])  # the 10 % subset is the start of the same hash order
    assert set(full["prompt"]) <= {f"{i}\n" for i in DEFAULT_INSTRUCTIONS}
    assert full["prompt"].nunique() > 1 and set(full["image_name"]) == set(_captions().frame()["image_name"])
    one = Instructions(_captions(), pairs_per_image=1).frame()
    assert len(one) == 8 and (one["caption_idx"] == 0).all()
    assert Instructions(_captions(), fraction=0.5).frame().equals(Instructions(_captions(), fraction=0.5).frame())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"fraction": 0.0}, "fraction must be in"),
        ({"pairs_per_image": 6}, "pairs_per_image must be in"),
        ({"template": "no placeholder"}, "instruction"),
        ({"instructions": []}, "instruction"),
    ],
)
def test_bad_instruction_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Instructions(_captions(), **kwargs)


def test_tiny_vit_trains_on_the_averaged_patch_token_score(tmp_path):
    """alignment: token: the contrastive objective is InfoNCE on mean_{cell, token} cos(cell, token) of the
    adapted ViT patch cells and the caption-token embeddings; retrieval ranks by the same score."""
    from polymodal.losses.grounding import averaged_token_similarity, grounding_loss
    from polymodal.system import Step

    cli = main(["fit", "--config", TINY_VIT, f"--trainer.default_root_dir={tmp_path}", "--trainer.max_epochs=1"])
    assert cli.trainer.state.finished and cli.trainer.global_step == 10
    for key in ("train/contrastive", "val/ppl", "val/c2i_r1", "val/rsum"):
        assert math.isfinite(float(cli.trainer.callback_metrics[key]))
    system = cli.model.eval()
    assert system.metrics["retrieval"].similarity == "dot"
    batch = next(iter(cli.datamodule.train_dataloader()))
    step = Step(system, batch, "train")
    cells, text = step.features("image"), step.features("prompt+caption")
    assert cells.sequence.shape[1] == 4  # the 4x4 patch grid of test_vit pooled to 2x2 cells, class token left out
    with torch.no_grad():
        got = system.objectives["contrastive"](step)
        scores = averaged_token_similarity(cells.sequence, cells.mask, text.sequence, text.mask)  # (B, B) image x text
        ids = step.target("image_id").round().long()
        expected = grounding_loss(scores.T, torch.eye(len(ids)), ids, kind="infonce", temperature=0.07,
                                  similarity="dot")  # fmt: skip  # captions x images logits = scores.T
    torch.testing.assert_close(got, expected)
    with torch.no_grad():
        mean_form = grounding_loss(*step.embeddings(["prompt+caption", "image"]), ids, kind="infonce", temperature=0.07)
    assert not torch.allclose(got, mean_form)  # cosine of the unit-token means is another score
    vlm = polymodal.load(tmp_path / "model")
    assert vlm.prefix.encoder.patch_tokens_only and vlm.generate([IMAGE], max_new_tokens=3) == system.towers[
        "vlm"].generate([IMAGE], max_new_tokens=3)  # fmt: skip


@pytest.mark.parametrize(
    "config",
    ["stage1_cg", "stage1_gen", "stage2_cg", "stage1_cg_vit", "tiny", "tiny_stage2", "tiny_vit"]
    + ["stage1_gen+vit", "stage2_cg+vit"],
)
def test_shipped_configs_parse(config, capsys):
    """Every shipped config (and the ViT overlay on the gen / stage-2 configs) validates against the signatures
    (nothing is built, no weights loaded)."""
    base, _, overlay = config.partition("+")
    extra = ["--config", f"recipes/cg_vlm/overlays/{overlay}.yaml"] if overlay else []
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", f"recipes/cg_vlm/{base}.yaml", *extra, "--print_config"])
    assert exit_info.value.code in (0, None)
    init = yaml.safe_load(capsys.readouterr().out)["model"]["init_args"]
    stage1 = base in ("stage1_cg", "stage1_gen", "stage1_cg_vit", "tiny", "tiny_vit")
    assert (init["init_from"] is None) == stage1 and (init["lm_trainable_layers"] == 0) == stage1
    assert (init["contrastive_weight"] > 0) == (base in ("stage1_cg", "stage1_cg_vit", "tiny", "tiny_vit"))
    vit = "vit" in config
    # the paper's averaged patch-token score with the ViT, the issue-4 mean-vs-mean form with the CNN
    assert init["alignment"] == ("token" if vit else "mean")
    prefix = init["model"]["init_args"]["prefix"]["init_args"]
    assert prefix["patch_tokens_only"] == vit
    if not base.startswith("tiny"):
        assert prefix["model"] == ("vit-s14-focus" if vit else "efficientnet-lite0")


@pytest.mark.parametrize("name", ["sweep.yaml", "sweep_cpu.yaml", "sweep_vit_cpu.yaml"])
def test_sweeps_chain_stage2_to_its_stage1_run(name):
    from polymodal.experiments import load_sweep, run_command

    sweep = load_sweep(f"recipes/cg_vlm/{name}", root="R")
    assert sorted(r.name for r in sweep.runs) == [
        "stage1_cg", "stage1_gen", "stage2_cg_10", "stage2_cg_100", "stage2_gen_10", "stage2_gen_100"
    ]  # fmt: skip
    assert [r.name for r in sweep.runs[:2]] == ["stage1_cg", "stage1_gen"]  # stage 1 before what starts from it
    assert all(r.test for r in sweep.runs)
    for run in sweep.runs[2:]:
        argv = run_command(run, 0, "R")
        start = run.name.split("_")[1]
        assert f"--model.init_args.init_from=R/stage1_{start}/seed0/checkpoints/last.ckpt" in argv
        fraction = "0.1" if run.name.endswith("_10") else "1.0"
        assert f"--data.init_args.sources.train.init_args.fraction={fraction}" in argv
    if "vit" in name:  # every run of the ViT sweep has the ViT tower and the averaged patch-token score
        assert sweep.runs[0].configs == ["recipes/cg_vlm/stage1_cg_vit.yaml"] and sweep.seeds == [0, 1]
        assert all(r.configs[-1] == "recipes/cg_vlm/overlays/vit.yaml" for r in sweep.runs[1:])


@pytest.mark.slow
def test_shared_captions_split_is_the_old_cg_vlm_split(shared_data: Path):
    """The hash split of polymodal.data.Captions holds out the images the old recipe's sha1 split did."""
    import hashlib

    table = str(shared_data / "captions" / "captions.tsv")
    parts = [set(Captions(table, sizes=[800, 100, 100], part=p).frame()["image_name"]) for p in (0, 1, 2)]
    assert [len(p) for p in parts] == [800, 100, 100]
    order = sorted(set().union(*parts), key=lambda n: hashlib.sha1(n.encode()).hexdigest())
    assert parts[2] == set(order[900:]) and parts[1] == set(order[800:900])
