r"""Importance ratios (slot ``ratio``): ``ratio(batch) -> log rho [B, T]``.

Ratios are returned as logs, :math:`\log\rho = \log\pi_\theta - \log\pi_{old}`, so sequence-level
products never overflow; the surrogate exponentiates. Gradient flows through ``batch.logp``.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from jaxpg.losses.sequence.batch import SequenceBatch, require

Array = chex.Array


def token_log_ratio(batch: SequenceBatch) -> Array:
    r"""Per-token ratio :math:`\rho_t = \pi_\theta(y_t|\cdot)/\pi_{old}(y_t|\cdot)` (PPO, GRPO)."""
    return jnp.where(batch.mask != 0, batch.logp - batch.old_logp, 0.0)


def _segment_mean_log_ratio(log_ratio: Array, segments: Array, mask: Array) -> Array:
    """Mean of ``log_ratio`` over the valid tokens of each (response, segment), broadcast back."""
    t = log_ratio.shape[1]

    def one(lr, seg, m):
        total = jax.ops.segment_sum(lr * m, seg, num_segments=t)
        count = jax.ops.segment_sum(m, seg, num_segments=t)
        return (total / jnp.maximum(count, 1.0))[seg]

    return jax.vmap(one)(log_ratio, segments, mask.astype(log_ratio.dtype))


def segment_log_ratio(batch: SequenceBatch) -> Array:
    r"""Turn-level ratio (ST-PPO / Turn-PPO, arXiv:2511.20718): the geometric mean of the token
    ratios within a turn, :math:`\rho_k = \exp(\operatorname{mean}_{t \in k}(\log\pi_\theta - \log\pi_{old}))`,
    shared by every token of turn k. With one token per segment it is the token ratio; with one
    segment per response it is GSPO's sequence ratio (:func:`sequence_geometric_log_ratio`)."""
    require(batch, ("segment_ids",), "segment_log_ratio")
    log_ratio = token_log_ratio(batch)
    return jnp.where(batch.mask != 0, _segment_mean_log_ratio(log_ratio, batch.segment_ids, batch.mask), 0.0)


def sequence_geometric_log_ratio(batch: SequenceBatch) -> Array:
    r"""GSPO's length-normalized sequence ratio (Zheng et al. 2025, arXiv:2507.18071):
    :math:`\rho = (\pi_\theta(y)/\pi_{old}(y))^{1/|y|}` on every token of the response."""
    log_ratio = token_log_ratio(batch)
    segments = jnp.zeros(log_ratio.shape, jnp.int32)
    return jnp.where(batch.mask != 0, _segment_mean_log_ratio(log_ratio, segments, batch.mask), 0.0)


def sequence_log_ratio(batch: SequenceBatch) -> Array:
    r"""The whole-sequence ratio :math:`\rho = \pi_\theta(y)/\pi_{old}(y) = \prod_t \rho_t` on
    every token (P3O's trajectory-wise ratio)."""
    log_ratio = token_log_ratio(batch)
    total = jnp.sum(log_ratio, axis=1, keepdims=True)
    return jnp.where(batch.mask != 0, total, 0.0)
