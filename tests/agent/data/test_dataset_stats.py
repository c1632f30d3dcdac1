"""Statistics: histogram image stats equal np.quantile's, and aggregation equals the stats of the whole."""
from __future__ import annotations

import numpy as np

from vla.agent.data import stats


def test_image_stats_equal_numpy_on_sampled_pixels():
    rng = np.random.default_rng(0)
    for n in (1, 2, 9, 130):
        frames = rng.integers(0, 256, size=(n, 7, 5, 3), dtype=np.uint8)
        frames[..., 2] = rng.integers(40, 60, size=(n, 7, 5))
        got = stats.image_stats(frames)
        picks = np.unique(np.round(np.linspace(0, n - 1, min(n, stats.MAX_IMAGE_SAMPLES))).astype(int))
        pixels = frames[picks].reshape(-1, 3) / 255.0
        assert got["count"].tolist() == [len(picks)]
        for key, q in stats.QUANTILES.items():
            assert np.allclose(got[key].reshape(-1), np.quantile(pixels, q, axis=0)), (n, key)
        assert np.allclose(got["std"].reshape(-1), pixels.std(axis=0))
        assert got["min"].shape == (3, 1, 1)


def test_aggregate_equals_stats_of_the_concatenation():
    rng = np.random.default_rng(1)
    parts = [rng.normal(loc=i, size=(rng.integers(3, 40), 4)) for i in range(5)]
    whole = stats.vector_stats(np.concatenate(parts))
    combined = stats.aggregate([stats.vector_stats(p) for p in parts])
    for key in ("min", "max", "mean", "std", "count"):
        assert np.allclose(combined[key], whole[key]), key


def test_flatten_round_trips_episode_columns():
    s = {"action": stats.vector_stats(np.arange(12.0).reshape(6, 2))}
    flat = stats.flatten(s)
    assert "stats/action/q50" in flat and flat["stats/action/count"] == [6]
    back = stats.unflatten(flat)
    assert np.allclose(back["action"]["q50"], np.quantile(np.arange(12.0).reshape(6, 2), 0.5, axis=0))
