"""ner_tagger recipe: the real-data configs and every sweep run parse; on the shared data they train and test.

The tiny config is fitted by tests/recipes/test_tiny_configs.py and tests/core/test_bad_inputs_token_tasks.py.
"""

from __future__ import annotations

import contextlib
import io
import math

import pytest
import yaml

from polymodal.cli import main
from polymodal.experiments import load_sweep, run_command

DOMAINS = ["politics", "science", "music", "literature", "ai"]


def _print_config(argv: list[str]) -> dict:
    """The config ``argv`` resolves to (``--print_config``: parsed and validated, nothing instantiated)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        main([*argv, "--print_config"])
    assert exit_.value.code in (0, None), out.getvalue()[-2000:]
    return yaml.safe_load(out.getvalue())


def _init(cfg: dict, *path: str) -> dict:
    node = cfg
    for key in path:
        node = node[key]["init_args"] if isinstance(node[key], dict) and "init_args" in node[key] else node[key]
    return node


@pytest.mark.parametrize("config", ["conll.yaml", "fewshot.yaml"])
def test_real_data_configs_parse(config):
    cfg = _print_config(["fit", "--config", f"recipes/ner_tagger/{config}"])
    model = cfg["model"]["init_args"]
    assert model["heads"]["tags"]["class_path"] == "polymodal.heads.TokenHead"
    assert model["metrics"]["spans"]["class_path"] == "polymodal.metrics.step.SpanF1"
    test = _init(cfg["data"]["init_args"], "sources", "test")
    assert test["sample"] == 100 and test["seed"] == 0  # the fixed seeded test subset the table states
    if config == "conll.yaml":
        assert _init(cfg["data"]["init_args"], "sources", "train")["sample"] == 640
        assert model["metrics"]["spans"]["init_args"]["average"] == DOMAINS
        assert [p.split("/")[-2] for p in test["paths"]] == ["conll2003", *DOMAINS]


def test_every_sweep_run_parses_with_its_overrides():
    sweep = load_sweep("recipes/ner_tagger/sweep.yaml", root="R")
    assert [r.name for r in sweep.runs] == ["conll", *[f"fewshot_{d}" for d in DOMAINS]]
    assert all(r.command == "fit" and r.test for r in sweep.runs)
    for run in sweep.runs:
        cfg = _print_config(run_command(run, 0, "R"))
        assert cfg["trainer"]["default_root_dir"] == f"R/{run.name}/seed0"
        if run.name == "conll":
            continue
        domain = run.name.removeprefix("fewshot_")
        (callback,) = cfg["trainer"]["callbacks"]
        assert callback["init_args"]["path"] == "R/conll/seed0/model"  # the encoder the conll run exported
        for split, file in [("train", "train"), ("val", "dev"), ("test", "test")]:
            assert _init(cfg["data"]["init_args"], "sources", split)["paths"] == [f"data://ner/{domain}/{file}.txt.gz"]


@pytest.mark.slow
def test_fewshot_label_sets_are_the_domains_types(shared_data):
    """Each few-shot run's head covers exactly the entity types of its domain's train, dev and test files."""
    from polymodal.data import read_conll

    sweep = {r.name: r for r in load_sweep("recipes/ner_tagger/sweep.yaml", root="R").runs}
    for domain in DOMAINS:
        cfg = _print_config(run_command(sweep[f"fewshot_{domain}"], 0, "R"))
        head = cfg["model"]["init_args"]["heads"]["tags"]["init_args"]["types"]
        seen = set()
        for split in ("train", "dev", "test"):
            for sentence in read_conll(str(shared_data / "ner" / domain / f"{split}.txt.gz")):
                seen |= {t[2:] for t in sentence.tags if t != "O"}
        assert sorted(head) == sorted(seen), domain


@pytest.mark.slow
def test_conll_config_trains_and_tests_every_domain(shared_data, tmp_path):
    """conll.yaml on the real files, cut to a few steps: in-domain and zero-shot F1 per domain, avg over CrossNER."""
    cli = main(
        [
            "fit",
            "--config",
            "recipes/ner_tagger/conll.yaml",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.max_steps=3",
            "--data.init_args.sources.train.init_args.sample=48",
            "--data.init_args.sources.val.init_args.sample=16",
            "--data.init_args.sources.test.init_args.sample=8",
        ]
    )
    assert (tmp_path / "model").is_dir()  # ExportModel: the encoder fewshot.yaml starts from
    (result,) = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
    assert len(cli.datamodule.datasets["test"]) == 8 * 6
    for domain in ["conll2003", *DOMAINS]:
        assert 0.0 <= result[f"test/{domain}/f1"] <= 1.0
    mean = sum(result[f"test/{d}/f1"] for d in DOMAINS) / len(DOMAINS)
    assert math.isclose(result["test/avg_f1"], mean, abs_tol=1e-6)
