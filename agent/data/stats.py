"""Per-feature statistics as LeRobot stores them: min, max, mean, std, count and the q01..q99 quantiles.

Vector features reduce over frames (shape (D,)); camera features reduce over frames and pixels per channel,
scaled to [0, 1], with shape (3, 1, 1). Numeric features get exact quantiles over all their frames; camera
statistics combine per-episode figures with LeRobot's `aggregate_feature_stats` rules (counts weight the
means, variances combine by the parallel formula, quantiles average by count).
"""
from __future__ import annotations

from typing import Any

import numpy as np

QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
STAT_KEYS = ("min", "max", "mean", "std", "count", *QUANTILES)
MAX_IMAGE_SAMPLES = 100  # frames sampled per episode for camera statistics, as LeRobot's sample_indices


def vector_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """Statistics of (N, D) or (N,) values over N; each entry has shape (D,) or (1,)."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]  # (N, 1)
    qs = np.quantile(x, list(QUANTILES.values()), axis=0)  # (5, D)
    out = {
        "min": x.min(axis=0),
        "max": x.max(axis=0),
        "mean": x.mean(axis=0),
        "std": x.std(axis=0),
        "count": np.array([x.shape[0]]),
    }
    out.update({k: qs[i] for i, k in enumerate(QUANTILES)})
    return out


def image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel statistics of uint8 frames (T, H, W, 3), sampled like LeRobot; values in [0, 1], shape (3, 1, 1).

    Computed exactly from 256-bin histograms per channel (quantiles interpolate linearly between order
    statistics, as np.quantile does), which is ~100x faster than sorting the pixels.
    """
    n = len(frames)
    picks = np.unique(np.round(np.linspace(0, n - 1, min(n, MAX_IMAGE_SAMPLES))).astype(int))
    sample = frames[picks]  # (S, H, W, 3) uint8
    levels = np.arange(256) / 255.0
    per_channel = []
    for c in range(sample.shape[-1]):
        hist = np.bincount(sample[..., c].ravel(), minlength=256).astype(np.float64)  # (256,)
        total = hist.sum()
        mean = (hist * levels).sum() / total
        nz = np.flatnonzero(hist)
        stats = {"min": levels[nz[0]], "max": levels[nz[-1]], "mean": mean,
                 "std": np.sqrt((hist * (levels - mean) ** 2).sum() / total)}
        stats.update({k: _hist_quantile(hist, q) for k, q in QUANTILES.items()})
        per_channel.append(stats)
    out = {k: np.array([s[k] for s in per_channel]).reshape(-1, 1, 1) for k in per_channel[0]}
    out["count"] = np.array([len(picks)])
    return out


def _hist_quantile(hist: np.ndarray, q: float) -> float:
    """np.quantile's linear interpolation, from a 256-bin histogram of uint8 values."""
    cum = np.cumsum(hist)
    pos = q * (cum[-1] - 1)
    lo, frac = int(np.floor(pos)), pos - np.floor(pos)
    v_lo = int(np.searchsorted(cum, lo, side="right"))
    v_hi = int(np.searchsorted(cum, lo + 1, side="right")) if frac > 0 else v_lo
    return (v_lo + frac * (v_hi - v_lo)) / 255.0


def aggregate(stats_list: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Combine statistics of disjoint parts into statistics of the whole (LeRobot's aggregate_feature_stats)."""
    counts = np.stack([np.asarray(s["count"], dtype=np.float64) for s in stats_list])  # (P, 1)
    means = np.stack([np.asarray(s["mean"]) for s in stats_list])  # (P, *shape)
    variances = np.stack([np.asarray(s["std"]) ** 2 for s in stats_list])
    total = counts.sum(axis=0)
    w = counts.reshape(counts.shape[0], *([1] * (means.ndim - 1)))  # (P, 1, ...)
    mean = (means * w).sum(axis=0) / total.reshape(-1)[0]
    var = ((variances + (means - mean) ** 2) * w).sum(axis=0) / total.reshape(-1)[0]
    out = {
        "min": np.min(np.stack([s["min"] for s in stats_list]), axis=0),
        "max": np.max(np.stack([s["max"] for s in stats_list]), axis=0),
        "mean": mean,
        "std": np.sqrt(var),
        "count": total.astype(np.int64),
    }
    for q in QUANTILES:
        out[q] = (np.stack([s[q] for s in stats_list]) * w).sum(axis=0) / total.reshape(-1)[0]
    return out


def to_json(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, Any]]:
    return {key: {k: np.asarray(v).tolist() for k, v in ft.items()} for key, ft in stats.items()}


def from_json(obj: dict[str, dict[str, Any]]) -> dict[str, dict[str, np.ndarray]]:
    return {key: {k: np.asarray(v) for k, v in ft.items()} for key, ft in obj.items()}


def flatten(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]:
    """Episode-row columns `stats/<feature>/<stat>` with nested-list values, as LeRobot's flatten_dict writes."""
    return {f"stats/{key}/{k}": np.asarray(v).tolist() for key, ft in stats.items() for k, v in ft.items()}


def unflatten(row: dict[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    out: dict[str, dict[str, np.ndarray]] = {}
    for col, value in row.items():
        if col.startswith("stats/"):
            key, stat = col[len("stats/"):].rsplit("/", 1)
            out.setdefault(key, {})[stat] = np.asarray(value)
    return out
