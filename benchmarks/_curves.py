"""Learning-curve statistics shared by the algorithm benchmarks (pmoe.py, gorl.py, beyond_*.py)."""

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


def moving_mean(curves: np.ndarray, window: int) -> np.ndarray:
    """Mean over the last ``window`` iterations, along the last axis ("valid": ``window - 1``
    shorter; entry i covers iterations i .. i + window - 1)."""
    kernel = np.ones(window) / window
    return np.apply_along_axis(lambda c: np.convolve(c, kernel, "valid"), -1, curves)


def first_at_least(curve: np.ndarray, threshold: float) -> int | None:
    """The first index where ``curve`` reaches ``threshold``, or None."""
    hits = np.nonzero(np.asarray(curve) >= threshold)[0]
    return int(hits[0]) if hits.size else None


def learning_rate_sweep(algo: str, optimizer: str, total_steps: int, learning_rates, seeds: int, key):
    """``algo`` on CartPole-v1 with ``optimizer``, every (learning rate, seed) in one compiled sweep:
    ``(returns [lr, seed, iteration], env_steps [iteration], wall seconds, all metrics)``."""
    import time


    import jaxpg

    train = jaxpg.make_train(algo, env="CartPole-v1", total_steps=total_steps, optimizer=optimizer)
    hparams = jaxpg.sweep.grid(train.default_hparams, learning_rate=list(learning_rates))
    t0 = time.perf_counter()
    result = jaxpg.sweep.run(train, seeds=seeds, hparams=hparams, key=key)
    returns = np.asarray(result.metrics["episode_return"], np.float64)
    return returns, np.asarray(result.metrics["env_steps"])[0, 0], time.perf_counter() - t0, result.metrics
