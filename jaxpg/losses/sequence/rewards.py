r"""Reward slot: ``reward(batch) -> r [B]`` from ``batch.rewards`` (``[B]`` or ``[B, K]`` components)."""

from __future__ import annotations

import chex
import jax.numpy as jnp

from jaxpg.losses.sequence.batch import SequenceBatch

Array = chex.Array


def scalar_reward(batch: SequenceBatch) -> Array:
    """The reward as given; ``[B, K]`` components are summed (use :func:`weighted_reward` to weigh them)."""
    r = batch.rewards
    return r if r.ndim == 1 else jnp.sum(r, axis=-1)


def weighted_reward(batch: SequenceBatch, *, weights: tuple[float, ...] | None = None) -> Array:
    r"""Linear scalarization :math:`r = \sum_k w_k r_k` of ``[B, K]`` reward components (RL-Struct's
    hierarchical reward; dynamic reward weighting passes its current weights in
    ``batch.extras["reward_weights"]``, which win over ``weights``)."""
    r = batch.rewards
    if r.ndim == 1:
        return r
    w = batch.extras.get("reward_weights")
    if w is None:
        w = jnp.full((r.shape[-1],), 1.0 / r.shape[-1]) if weights is None else jnp.asarray(weights, r.dtype)
    if w.shape[-1] != r.shape[-1]:
        raise ValueError(f"{w.shape[-1]} reward weights for {r.shape[-1]} reward components")
    return r @ w
