r"""From per-token losses to a scalar (slot ``aggregate``): ``aggregate(loss [B, T], mask) -> scalar``.

The choice changes which responses weigh most (Liu et al. 2025, Dr. GRPO: the per-sequence mean
favours short wrong answers and long right ones); verl names them by ``loss_agg_mode``.
"""

from __future__ import annotations

import chex
import jax.numpy as jnp

Array = chex.Array


def _masked(loss: Array, mask: Array) -> Array:
    return jnp.where(mask != 0, loss * mask, 0.0)


def token_mean(loss: Array, mask: Array) -> Array:
    r"""``token-mean``: :math:`\sum_{b,t} m\ell / \sum_{b,t} m` (every token weighs the same; DAPO)."""
    return jnp.sum(_masked(loss, mask)) / jnp.maximum(jnp.sum(mask), 1.0)


def sequence_mean_token_mean(loss: Array, mask: Array) -> Array:
    r"""``seq-mean-token-mean``: :math:`\frac1B\sum_b \frac{\sum_t m\ell}{\sum_t m}` (GRPO's paper form)."""
    per_sequence = jnp.sum(_masked(loss, mask), axis=1) / jnp.maximum(jnp.sum(mask, axis=1), 1.0)
    return jnp.mean(per_sequence)


def sequence_mean_token_sum(loss: Array, mask: Array) -> Array:
    r"""``seq-mean-token-sum``: :math:`\frac1B\sum_b\sum_t m\ell` (BNPO)."""
    return jnp.mean(jnp.sum(_masked(loss, mask), axis=1))


def constant_length_mean(loss: Array, mask: Array, *, max_length: int | None = None) -> Array:
    r"""Dr. GRPO's and HPT's sum over tokens divided by a constant, the maximum response length
    :math:`L` (default: the padded length T): :math:`\frac{1}{B L}\sum_{b,t} m\ell`."""
    length = loss.shape[1] if max_length is None else max_length
    return jnp.sum(_masked(loss, mask)) / (loss.shape[0] * length)
