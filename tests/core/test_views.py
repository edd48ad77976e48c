"""polymodal.data.views: distinct values as two views, augmentations seeded by (seed, epoch, row)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from torch.utils.data import DataLoader

from polymodal.data import Collator, Source
from polymodal.data.views import AugmentedRows, Views, ViewSampler, ViewsDataModule


class Frame(Source):
    def __init__(self, df):
        self.df = df

    def read(self):
        return self.df


class Tag:
    """An augmentation: appends a random number drawn from rng."""

    def __call__(self, value, rng):
        return f"{value}#{int(rng.integers(1_000_000))}"


class Identity:
    def __call__(self, values):
        return {"text": list(values)}

    def validate(self, value):
        pass


TEXTS = pd.DataFrame({"a": ["x", " y ", None, "x"], "b": ["z", "", "y", "w"], "label": [1, 2, 3, 4]})


def test_views_are_distinct_nonempty_values():
    df = Views(source=Frame(TEXTS), columns=["a", "b"]).read()
    assert list(df.columns) == ["anchor", "positive"] and df["anchor"].tolist() == ["x", "y", "z", "w"]
    assert (df["anchor"] == df["positive"]).all()
    two = Views(["a"], source=Frame(TEXTS), names=["q", "d"], max_rows=1).read()
    assert two.to_dict("list") == {"q": ["x"], "d": ["x"]}


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"columns": ["nope"]}, KeyError, "nope"),
        ({"columns": []}, ValueError, "at least one column"),
        ({"columns": ["a"], "names": ["anchor", "anchor"]}, ValueError, "two distinct output columns"),
        ({"columns": ["label"]}, ValueError, "no non-empty values in columns"),
        ({"columns": ["a"], "path": "t.csv"}, ValueError, "exactly one of path"),
    ],
)
def test_views_bad_settings(kwargs, error, message):
    with pytest.raises(error, match=message):
        Views(source=Frame(TEXTS), **kwargs).read()


def module(seed=5, **kw) -> ViewsDataModule:
    dm = ViewsDataModule(
        sources={"train": Views(source=Frame(TEXTS), columns=["a", "b"]), **kw.pop("sources", {})},
        inputs=["anchor", "positive"],
        augment={"positive": Tag()},
        seed=seed,
        **kw,
    )
    dm.set_processors({"anchor": Identity(), "positive": Identity()})
    return dm


def epoch_batches(dm: ViewsDataModule, epoch: int, workers: int = 0) -> list[list[tuple[str, str]]]:
    ds = dm.load_split("train")
    sampler = dm.train_sampler(ds)
    sampler.set_epoch(epoch)
    loader = DataLoader(ds, batch_size=2, sampler=sampler, collate_fn=Collator(dm.processors()), num_workers=workers)
    return [list(zip(b.inputs["anchor"]["text"], b.inputs["positive"]["text"])) for b in loader]


def test_views_redrawn_per_epoch_and_replayed_on_resume():
    dm = module()
    first = epoch_batches(dm, 0)
    pairs = [p for b in first for p in b]
    assert sorted(a for a, _ in pairs) == ["w", "x", "y", "z"]  # every row once per epoch
    assert all(p.startswith(a + "#") for a, p in pairs)  # the positive is a view of its own anchor
    second = epoch_batches(dm, 1)
    assert {p for b in second for _, p in b}.isdisjoint({p for _, p in pairs})  # new views every epoch
    resumed = module()  # a fresh data module (a resumed run) at epoch 1: the same batches, the same views
    assert epoch_batches(resumed, 1) == second
    assert epoch_batches(resumed, 1, workers=2) == second  # workers draw the same views
    assert epoch_batches(module(seed=6), 1) != second


def test_only_training_values_are_augmented_and_statistics_see_raw_values():
    dm = module(sources={"val": Views(source=Frame(TEXTS), columns=["a"])})
    val = dm.load_split("val")
    assert not isinstance(val, AugmentedRows) and val[0][0] == {"anchor": "x", "positive": "x"}
    train = dm.load_split("train")
    assert isinstance(train, AugmentedRows) and train.columns["positive"] == ["x", "y", "z", "w"]
    assert isinstance(dm.train_sampler(train), ViewSampler) and dm.load_split("train") is train


def test_augment_must_name_an_input_column_and_be_callable():
    dm = ViewsDataModule(
        sources={"train": Views(source=Frame(TEXTS), columns=["a"])}, inputs=["anchor"], augment={"positive": Tag()}
    )
    with pytest.raises(ValueError, match=r"data.augment names \['positive'\]"):
        dm.load_split("train")
    with pytest.raises(TypeError, match="must be callable"):
        ViewsDataModule(sources={"train": Views(["a"], source=Frame(TEXTS))}, inputs=["anchor"], augment={"anchor": 3})


def test_perturber_is_an_augmentation():
    from polymodal.plugins.pixel import Perturber

    text = "The quick brown fox jumps over the lazy dog"
    p = Perturber()
    assert p(text, np.random.default_rng([0, 1, 2])) == p(text, np.random.default_rng([0, 1, 2])) != text
