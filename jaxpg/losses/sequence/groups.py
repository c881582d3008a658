"""Statistics over groups of responses (one group per prompt), jittable at any group sizes.

Group ids are integers in ``[0, B)``, so ``segment_sum`` with ``B`` segments covers every layout
(contiguous or interleaved groups, unequal sizes) with static shapes: no recipe needs the number
of groups as a constant. Every function returns per-response values (``[B]``), broadcast back from
the group of each response.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

Array = chex.Array


def _sum(x: Array, ids: Array) -> Array:
    return jax.ops.segment_sum(x, ids, num_segments=ids.shape[0])


def group_count(ids: Array, weights: Array | None = None) -> Array:
    """``n_g`` (or the sum of ``weights`` in the group) for each response's group: ``[B]``."""
    w = jnp.ones(ids.shape, jnp.float32) if weights is None else weights.astype(jnp.float32)
    return _sum(w, ids)[ids]


def group_mean(x: Array, ids: Array, weights: Array | None = None) -> Array:
    r"""Weighted group mean :math:`\mu_g = \sum_{i \in g} w_i x_i / \sum_{i \in g} w_i` per response."""
    w = jnp.ones(x.shape, x.dtype) if weights is None else weights.astype(x.dtype)
    total, count = _sum(w * x, ids), _sum(w, ids)
    return (total / jnp.where(count > 0, count, 1.0))[ids]


def group_std(x: Array, ids: Array, weights: Array | None = None, ddof: int = 0) -> Array:
    r"""Group standard deviation per response; ``ddof=1`` is torch's unbiased ``std`` (as verl's
    GRPO), ``ddof=0`` the population one. A group of one has std 0."""
    w = jnp.ones(x.shape, x.dtype) if weights is None else weights.astype(x.dtype)
    mean = group_mean(x, ids, w)
    count = _sum(w, ids)[ids]
    var = _sum(w * jnp.square(x - mean), ids)[ids] / jnp.maximum(count - ddof, 1.0)
    return jnp.sqrt(jnp.where(count > ddof, var, 0.0))


def relabel(*keys: Array) -> Array:
    """One id in ``[0, B)`` per distinct tuple of integer ``keys`` (e.g. group and stratum): the
    cells of a finer grouping, still usable with the functions above."""
    stacked = jnp.stack([k.astype(jnp.int32) for k in keys], axis=-1)
    b = stacked.shape[0]
    same = jnp.all(stacked[:, None, :] == stacked[None, :, :], axis=-1)  # [B, B]
    # The first response with the same key names the cell: argmax finds the first True.
    return jnp.argmax(same, axis=1).astype(jnp.int32) % b


def to_tokens(per_sequence: Array, mask: Array) -> Array:
    """``[B]`` -> ``[B, T]``: a sequence-level value on every valid token (0 on padding)."""
    if per_sequence.ndim == mask.ndim:
        return per_sequence * mask
    return per_sequence[:, None] * mask
