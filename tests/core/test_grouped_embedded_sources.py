"""GroupedPairs (train pairs / eval queries within a group) and Embedded (frozen-model vectors, cached)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from polymodal.data.embedded import Embedded, text_features
from polymodal.data.groups import GroupedPairs
from polymodal.data.sources import Source


class Frame(Source):
    def __init__(self, df: pd.DataFrame) -> None:
        self.df = df

    def read(self) -> pd.DataFrame:
        return self.df


ROWS = pd.DataFrame({"image": ["b", "a", "a", "b", "a", "c"], "caption": ["b0", "a0", "a1", "b1", "a2", "c0"]})


def test_train_pairs_cycle_within_each_group():
    df = GroupedPairs(Frame(ROWS), "image", "caption", "train").read()
    assert list(zip(df["a"], df["b"], df["group_id"])) == [
        ("a0", "a1", 0),
        ("a1", "a2", 0),
        ("a2", "a0", 0),
        ("b0", "b1", 1),
        ("b1", "b0", 1),
    ]  # "c" has one caption: dropped
    assert df["others"].iloc[0] == "a1 | a2"


def test_eval_queries_retrieve_the_first_value_of_their_group():
    df = GroupedPairs(Frame(ROWS), "image", "caption", "eval").read()
    assert list(zip(df["a"], df["b"], df["group"])) == [("a1", "a0", "a"), ("a2", "a0", "a"), ("b1", "b0", "b")]
    with pytest.raises(ValueError, match="no group with 2\\+ values"):
        GroupedPairs(Frame(ROWS.iloc[[5]]), "image", "caption").read()
    with pytest.raises(KeyError, match=r"missing column\(s\) .img."):
        GroupedPairs(Frame(ROWS), "img", "caption").read()


def test_embedded_adds_cached_vectors(tmp_path):
    src = Embedded(Frame(ROWS), {"caption": "vec"}, model="test-bert", cache_dir=str(tmp_path))
    df = src.read()
    assert df["vec"].iloc[0].shape == (32,) and list(df["caption"]) == list(ROWS["caption"])
    again = text_features(ROWS["caption"].tolist(), "test-bert", str(tmp_path))  # from the cache file
    assert np.allclose(np.stack(df["vec"].tolist()), again) and list(tmp_path.glob("*.npz"))
    with pytest.raises(ValueError, match="unknown text model 'nope'"):
        text_features(["x"], "nope")
