"""On-device running mean / variance of observations (parallel Welford / Chan et al. 1979).

Merging a batch with mean m_b, variance v_b and count n_b into running (m, v, n):

    delta = m_b - m,   n' = n + n_b,   m' = m + delta * n_b / n'
    v' = (v * n + v_b * n_b + delta^2 * n * n_b / n') / n'

Observations are normalized as ``(x - m) / sqrt(v + eps)``; no clipping is applied.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class RunningStats:
    mean: jax.Array
    var: jax.Array
    count: jax.Array

    @classmethod
    def create(cls, shape) -> "RunningStats":
        return cls(jnp.zeros(shape, jnp.float32), jnp.ones(shape, jnp.float32), jnp.zeros((), jnp.float32))


def update(stats: RunningStats, batch: jax.Array, mask: jax.Array | None = None) -> RunningStats:
    """Merge ``batch`` (leading axes are samples; trailing axes match ``stats.mean``).

    ``mask`` (shaped like the leading axes) selects the samples to count, e.g. the real steps of
    padded episode batches. An all-zero mask leaves the statistics unchanged.
    """
    batch = batch.reshape((-1,) + stats.mean.shape)
    if mask is None:
        weights = jnp.ones(batch.shape[:1], jnp.float32)
    else:
        weights = mask.reshape(-1).astype(jnp.float32)
    weights = weights.reshape((-1,) + (1,) * len(stats.mean.shape))
    n_b = weights.sum()
    safe_n_b = jnp.maximum(n_b, 1.0)
    m_b = (weights * batch).sum(0) / safe_n_b
    v_b = (weights * (batch - m_b) ** 2).sum(0) / safe_n_b
    n = stats.count
    total = jnp.maximum(n + n_b, 1.0)
    delta = m_b - stats.mean
    # With n = 0 the prior var (ones) gets weight 0, so the first batch sets the variance exactly.
    mean = stats.mean + delta * n_b / total
    var = (stats.var * n + v_b * n_b + delta**2 * n * n_b / total) / total
    var = jnp.where(n + n_b > 0, var, stats.var)
    return RunningStats(mean, var, n + n_b)


def normalize(stats: RunningStats, x: jax.Array, eps: float = 1e-8) -> jax.Array:
    return (x - stats.mean) / jnp.sqrt(stats.var + eps)
