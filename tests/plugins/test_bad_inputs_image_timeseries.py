"""Availability and silent-wrong bounds: extreme images, constant features, non-positive prices."""

from __future__ import annotations

import io
import resource
import time

import numpy as np
import pytest
import torch

from tests.conftest import has_module

pytestmark = pytest.mark.skipif(not has_module("PIL"), reason="needs Pillow")


def _png(w: int, h: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (w, h), 128).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


@pytest.mark.parametrize(("w", "h"), [(1, 100_000), (100_000, 1), (2, 60_000), (40_000, 3)])
def test_extreme_aspect_ratio_is_refused_before_the_resize(tmp_path, w, h):
    from polymodal.plugins.image.processor import ImageProcessor

    path = tmp_path / "thin.png"
    path.write_bytes(_png(w, h))
    assert path.stat().st_size < 20_000  # a tiny file ...
    proc = ImageProcessor(image_size=224)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with pytest.raises(ValueError) as err:
        proc([str(path)])
    msg = str(err.value)
    assert "\n" not in msg and "too large after resizing" in msg and "thin.png" in msg and f"{w}x{h}" in msg
    assert time.perf_counter() - start < 5  # ... that used to resize to ~20 GB
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024 < 300


@pytest.mark.parametrize(("w", "h"), [(640, 480), (100, 1000), (32, 32)])
def test_ordinary_images_still_pass(tmp_path, w, h):
    from polymodal.plugins.image.processor import ImageProcessor

    path = tmp_path / "ok.png"
    path.write_bytes(_png(w, h))
    assert ImageProcessor(image_size=64)([str(path)])["pixel_values"].shape == (1, 3, 64, 64)


@pytest.mark.parametrize(
    ("train", "later", "expected_max"),
    [
        (np.full((50, 1), 3.0), 4.0, 1.0),  # constant feature: centred only, a change of 1 stays 1
        (np.full((50, 1), 1e6), 1e6 + 5, 5.0),
        (np.zeros((20, 1)), -2.0, 2.0),
    ],
)
def test_constant_training_feature_does_not_explode_at_inference(train, later, expected_max):
    from polymodal.plugins.timeseries.windows import Normalizer

    norm = Normalizer(1)
    with pytest.warns(UserWarning, match=r"feature\(s\) \[0\] are constant"):
        norm.fit(train)
    out = norm(torch.tensor([[[later]]], dtype=torch.float32))
    assert abs(float(out)) == pytest.approx(expected_max, rel=1e-3)


def test_varying_features_are_standardised_as_before():
    from polymodal.plugins.timeseries.windows import Normalizer

    rows = np.random.default_rng(0).normal(5, 2, size=(500, 3))
    norm = Normalizer(3).fit(rows)
    np.testing.assert_allclose(norm.std.numpy(), rows.std(axis=0), rtol=1e-6)


@pytest.mark.parametrize(
    ("prices", "index"),
    [([1.0, 2.0, 0.0, 3.0], 2), ([-1.0, 2.0], 0), ([5.0, 4.0, 3.0, -0.5], 3)],
)
def test_non_positive_prices_are_refused_by_log_returns(prices, index):
    from polymodal.plugins.timeseries.indicators import compute_indicators, log_returns, realized_volatility

    for fn in (log_returns, lambda c: realized_volatility(c, window=2)):
        with pytest.raises(ValueError) as err:
            fn(np.array(prices))
        assert f"close[{index}]" in str(err.value) and "positive prices" in str(err.value)
    import pandas as pd

    with pytest.raises(ValueError, match="positive prices"):
        compute_indicators(pd.DataFrame({"close": prices}), ["log_returns"])


def test_missing_bars_stay_nan_in_log_returns():
    from polymodal.plugins.timeseries.indicators import log_returns

    out = log_returns(np.array([1.0, np.nan, 2.0, 4.0]))
    assert np.isnan(out[:3]).all() and out[3] == pytest.approx(np.log(2.0))
