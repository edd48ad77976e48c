"""polymodal.data.Captions (one image-caption source, hash split by image) and the frozen-feature cache path
(FrozenFeatures, CachedFeatureProcessor over the one FeatureCache)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from polymodal.data import Captions
from polymodal.data.frozen import CachedFeatureProcessor, FrozenFeatures, grid_pool
from polymodal.data.splits import split_keys
from polymodal.recipes import recipe_root

DATA = recipe_root() / "cg_vlm" / "data"
TABLE = DATA / "tiny_captions.tsv"


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    shutil.copytree(DATA, folder)
    return folder / "tiny_captions.tsv"


def test_rows_columns_and_image_ids():
    df = Captions(str(TABLE), images=str(DATA), prompt="Describe.\n").frame()
    assert list(df.columns) == ["image", "image_name", "caption", "caption_idx", "image_id", "prompt"]
    assert len(df) == 60 and df["image_name"].nunique() == 12
    assert all(Path(p).is_file() and Path(p).is_absolute() for p in df["image"])
    names = sorted(df["image_name"].unique())
    assert (df["image_id"] == [names.index(n) for n in df["image_name"]]).all()
    assert set(df["prompt"]) == {"Describe.\n"} and df["caption_idx"].tolist()[:5] == [0, 1, 2, 3, 4]


def test_hash_split_is_by_image_order_free_and_ids_are_shared_across_parts(tmp_path):
    parts = [Captions(str(TABLE), images=str(DATA), sizes=[8, 2, 2], part=p).frame() for p in ("train", "val", "test")]
    images = [set(p["image_name"]) for p in parts]
    assert [len(s) for s in images] == [8, 2, 2] and not (images[0] & images[1] or images[0] & images[2])
    assert all(len(p) == 5 * len(s) for p, s in zip(parts, images))  # every caption goes with its image
    names = sorted(set().union(*images))
    assert images[2] == set(split_keys(names, [8, 2, 2])[2])  # the one hash split helper decides
    ids = {n: i for p in parts for n, i in zip(p["image_name"], p["image_id"])}
    assert ids == {n: names.index(n) for n in names}  # one id space over all parts
    table = _copy(tmp_path)
    lines = table.read_text().splitlines()
    table.write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")  # row order does not matter
    again = Captions(str(table), images=str(table.parent), sizes=[8, 2, 2], part="test").frame()
    assert set(again["image_name"]) == images[2]


def _missing_image(table: Path) -> None:
    lines = table.read_text().splitlines()
    (table.parent / lines[6].split("\t")[0]).unlink()  # data row 6: first caption of the 2nd image


def _empty_image(table: Path) -> None:
    (table.parent / table.read_text().splitlines()[1].split("\t")[0]).write_bytes(b"")


def _empty_caption(table: Path) -> None:
    lines = table.read_text().splitlines()
    lines[3] = lines[3].rsplit("\t", 1)[0] + "\t "
    table.write_text("\n".join(lines) + "\n")


def _no_caption_column(table: Path) -> None:
    lines = table.read_text().splitlines()
    table.write_text("\n".join(["image\tcaption_idx\ttext", *lines[1:]]) + "\n")


@pytest.mark.parametrize(
    "damage, error, match",
    [
        (_missing_image, ValueError, r"tsv: row 6, column 'image': image not found: .*tiny_01_green_circle.png"),
        (_empty_image, ValueError, r"tiny_captions.tsv: row 1, column 'image': image is empty"),
        (_empty_caption, ValueError, r"tiny_captions.tsv: row 3, column 'caption': empty caption"),
        (_no_caption_column, KeyError, r"tiny_captions.tsv: missing column\(s\) 'caption'"),
    ],
)
def test_bad_tables_name_file_row_and_column(tmp_path, damage, error, match):
    table = _copy(tmp_path)
    damage(table)
    with pytest.raises(error, match=match) as info:
        Captions(str(table), images=str(table.parent)).frame()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kwargs, match", [({"part": "dev"}, "part must be"), ({"sizes": [8, 2], "part": 2}, "out of")])
def test_bad_split_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Captions(str(TABLE), **kwargs)


# ---------------------------------------------------------------- frozen features
def _encoder():
    from polymodal.plugins.image import ImageEncoder

    torch.manual_seed(0)
    return ImageEncoder("test_efficientnet", pretrained=False, image_size=64)


def test_grid_pool_averages_square_cells():
    seq = torch.arange(16.0).reshape(1, 16, 1)  # a 4x4 map, one channel
    assert grid_pool(seq, 2)[0, :, 0].tolist() == [2.5, 4.5, 10.5, 12.5]
    with pytest.raises(ValueError, match="square feature map"):
        grid_pool(torch.zeros(1, 6, 1), 2)


def test_cached_features_equal_the_pixel_path_and_are_keyed_on_file_bytes(tmp_path):
    frozen = FrozenFeatures(_encoder(), "sequence", grid=2)
    paths = sorted(str(p) for p in DATA.glob("*.png"))[:5]
    direct = frozen(frozen.processor(paths))  # (5, 4, C)
    cached = CachedFeatureProcessor(frozen, str(tmp_path / "cache"), batch_size=2)
    out = cached(paths)["features"]
    torch.testing.assert_close(out, direct, atol=1e-5, rtol=1e-5)
    assert cached.cache.misses == 5 and len(list((tmp_path / "cache").glob("*.npz"))) == 1
    copy = tmp_path / "renamed.png"
    shutil.copy(paths[0], copy)
    again = CachedFeatureProcessor(frozen, str(tmp_path / "cache"))  # a new process reads the file
    np.testing.assert_array_equal(again([str(copy)])["features"].numpy(), out[:1].numpy())
    assert again.cache.hits == 1 and again.cache.misses == 0  # same bytes under another name: a hit
    pooled = CachedFeatureProcessor(FrozenFeatures(frozen.encoder, "pooled"), str(tmp_path / "cache"))
    assert pooled([paths[0]])["features"].shape == (1, frozen.dim)  # other options: another cache file
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2
    with pytest.raises(ValueError, match="image file not found"):
        cached([str(tmp_path / "nope.png")])


def test_frozen_features_stay_frozen_and_in_eval_mode():
    frozen = FrozenFeatures(_encoder(), "pooled").train()
    assert not frozen.encoder.training and not any(p.requires_grad for p in frozen.parameters())
    with pytest.raises(ValueError, match="grid needs output='sequence'"):
        FrozenFeatures(_encoder(), "pooled", grid=2)
