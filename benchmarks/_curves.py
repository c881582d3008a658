"""Learning-curve statistics shared by the algorithm benchmarks (pmoe.py, gorl.py)."""

from __future__ import annotations

import numpy as np


def binned(curve: np.ndarray, steps: np.ndarray, bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """``[seeds, iterations]`` -> ``[seeds, bins]`` bin means (NaN before the first episode ends
    are skipped), and the bins' mean env steps. The AUC of a run is the mean over its bins."""
    edges = np.linspace(0, curve.shape[1], bins + 1).astype(int)
    values = np.stack([np.nanmean(curve[:, a:b], axis=1) for a, b in zip(edges[:-1], edges[1:])], 1)
    return values, np.array([steps[a:b].mean() for a, b in zip(edges[:-1], edges[1:])])


def summary(values) -> dict:
    """Mean, standard deviation and the per-seed values, as JSON-ready floats."""
    values = np.asarray(values, np.float64)
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "per_seed": values.tolist()}
