"""The sbert_two_stage recipe: NLI triplets, then STS starting from the stage-1 encoder."""

from __future__ import annotations

import math

import pytest
import torch
import yaml

import polymodal
from polymodal.cli import main


def test_tiny_two_stages_chain(tmp_path):
    nli = main(["fit", "--config", "recipes/sbert_two_stage/tiny.yaml", f"--trainer.default_root_dir={tmp_path / 'n'}"])
    assert nli.trainer.global_step == 3 and math.isfinite(float(nli.trainer.callback_metrics["train/loss"]))
    stage1 = polymodal.load(tmp_path / "n" / "model")

    cfg = yaml.safe_load(open("recipes/sbert_two_stage/tiny_sts.yaml"))
    cfg["trainer"]["callbacks"][0]["init_args"]["path"] = str(tmp_path / "n" / "model")
    path = tmp_path / "sts.yaml"
    path.write_text(yaml.safe_dump(cfg))
    seen = {}

    def spy(module, batch, batch_idx):  # weights at the first stage-2 step are stage 1's export
        seen.setdefault("state", {k: v.detach().clone() for k, v in module.towers["shared"].state_dict().items()})
        seen["n_inputs"] = len(batch.inputs)

    from polymodal.system import System

    original = System.on_train_batch_start
    System.on_train_batch_start = spy
    try:
        sts = main(["fit", "--config", str(path), f"--trainer.default_root_dir={tmp_path / 's'}"])
    finally:
        System.on_train_batch_start = original
    for name, value in stage1.encoder.state_dict().items():
        torch.testing.assert_close(seen["state"][name], value, msg=name)
    assert seen["n_inputs"] == 2  # sentence1, sentence2 (+ score as target)
    assert -1 <= float(sts.trainer.callback_metrics["val/spearman"]) <= 1
    final = polymodal.load(tmp_path / "s" / "model")
    assert final.encode(["a test"]).shape == (1, 32)


def test_nli_triplets_concatenate_tables(tmp_path):
    import pandas as pd

    from polymodal.data import NLITriplets

    a = pd.DataFrame(
        {
            "premise": ["p1", "p1", "p2", "p2", "p3"],
            "hypothesis": ["e1", "c1", "e2", "c2", "n3"],
            "label": ["entailment", "contradiction", "entailment", "contradiction", "neutral"],
        }
    )
    b = pd.DataFrame(
        {
            "premise": ["p4", "p4", "p4"],
            "hypothesis": ["e4", "f4", "c4"],
            "label": ["entailment"] * 2 + ["contradiction"],
        }
    )
    a.to_csv(tmp_path / "a.tsv", sep="\t", index=False)
    b.to_csv(tmp_path / "b.tsv", sep="\t", index=False)
    frame = NLITriplets([str(tmp_path / "a.tsv"), str(tmp_path / "b.tsv")]).frame()
    assert list(frame.columns) == ["anchor", "positive", "negative"]
    rows = sorted(map(tuple, frame.itertuples(index=False)))
    assert rows == [("p1", "e1", "c1"), ("p2", "e2", "c2"), ("p4", "e4", "c4"), ("p4", "f4", "c4")]
    b.rename(columns={"label": "gold"}).to_csv(tmp_path / "c.tsv", sep="\t", index=False)
    with pytest.raises(KeyError, match=r"c\.tsv: missing column\(s\) 'label'"):
        NLITriplets([str(tmp_path / "a.tsv"), str(tmp_path / "c.tsv")]).frame()


def test_load_encoder_weights_skipped_on_resume(tmp_path):
    """Resuming a stage-2 fit must keep the checkpoint's weights, not reload stage 1's export."""
    from types import SimpleNamespace

    from polymodal.callbacks import LoadEncoderWeights

    cb = LoadEncoderWeights(str(tmp_path / "does-not-exist"))
    cb.on_fit_start(SimpleNamespace(ckpt_path=str(tmp_path / "last.ckpt")), None)  # no error: nothing loaded
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        cb.on_fit_start(SimpleNamespace(ckpt_path=None), None)


PLAIN_DATA = [  # the real from-plain YAMLs on the embedded samples, 2 steps of 4 (seconds; random weights)
    "--trainer.limit_train_batches=2",
    "--trainer.limit_val_batches=1",
    "--trainer.enable_progress_bar=false",
    "--data.init_args.batch_size=4",
    "--data.init_args.eval_batch_size=16",
    "--data.init_args.val=package://sbert/data/stsb_dev_sample.tsv.gz",
]


def test_from_plain_configs_start_untuned_and_chain_through_init_from(tmp_path):
    """nli_from_plain.yaml builds the MiniLM architecture with fresh random weights (none of the bundled
    sentence-tuned ones), writes last.ckpt; sts_from_plain.yaml with init_from starts from exactly it, and
    without init_from (the STS-only baseline) from a fresh random initialisation."""
    from safetensors.torch import load_file

    from polymodal.plugins.text.pretrained import resolve_text_model
    from polymodal.system import System

    nli = main(
        [
            "fit",
            "--config",
            "recipes/sbert_two_stage/nli_from_plain.yaml",
            *PLAIN_DATA,
            "--data.init_args.sources.train.init_args.paths=[package://pixel_linguist/data/snli_dev_sample.tsv.gz]",
            f"--trainer.default_root_dir={tmp_path / 'n'}",
        ]
    )
    assert nli.trainer.global_step == 2
    tuned = load_file(str(resolve_text_model("minilm-l6") / "model.safetensors"))
    word = next(v for k, v in tuned.items() if k.endswith("word_embeddings.weight"))
    ours = nli.model.towers["shared"].model.embeddings.word_embeddings.weight.detach()
    assert ours.shape == word.shape and not torch.allclose(ours, word, atol=1e-2)  # same shape, not those weights
    ckpt = tmp_path / "n" / "checkpoints" / "last.ckpt"
    stage1 = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]

    seen: dict = {}
    original = System.on_train_batch_start

    def spy(module, batch, batch_idx):
        state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        seen.setdefault(module.trainer.default_root_dir, state)

    System.on_train_batch_start = spy
    try:
        for name, extra in (("s", [f"--model.init_args.init_from={ckpt}"]), ("o", [])):
            main(
                [
                    "fit",
                    "--config",
                    "recipes/sbert_two_stage/sts_from_plain.yaml",
                    *PLAIN_DATA,
                    *extra,
                    "--data.init_args.train=package://sbert/data/stsb_train_sample.tsv.gz",
                    f"--trainer.default_root_dir={tmp_path / name}",
                ]
            )
    finally:
        System.on_train_batch_start = original
    two_stage, sts_only = seen[str(tmp_path / "s")], seen[str(tmp_path / "o")]
    tower = [k for k in stage1 if k.startswith("towers.")]
    assert tower and all(torch.equal(two_stage[k], stage1[k]) for k in tower)
    assert not torch.equal(sts_only[tower[0]], stage1[tower[0]])
    assert polymodal.load(tmp_path / "s" / "model").encode(["a test"]).shape == (1, 384)


def test_plain_sweep_chains_stage_two_to_stage_one_per_seed():
    from polymodal.experiments import load_sweep, run_command

    sweep = load_sweep("recipes/sbert_two_stage/sweep_plain.yaml")
    runs = {r.name: r for r in sweep.runs}
    assert list(runs) == ["untrained", "nli", "nli_sts", "sts_only"] and sweep.seeds == [0, 1]
    cmd = run_command(runs["nli_sts"], 1, "R")
    assert "--model.init_args.init_from=R/nli/seed1/checkpoints/last.ckpt" in cmd
    assert not any("init_from" in a for a in run_command(runs["sts_only"], 1, "R"))
