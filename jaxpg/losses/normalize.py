"""Masked reductions and advantage normalisation.

:func:`masked_mean` is the single place where a validity mask turns into an average; every loss in
this package routes its masked reductions through it so that "what counts as a valid step" has one
definition.
"""

from __future__ import annotations

import chex
import jax.numpy as jnp

Array = chex.Array


def _as_float(x: Array) -> Array:
    # Bool inputs (e.g. clip indicators) must average as 0/1, and integer inputs must not truncate.
    x = jnp.asarray(x)
    return x.astype(jnp.result_type(float, x))


def masked_mean(x: Array, mask: Array | None = None) -> Array:
    r"""Mean of ``x`` over the entries selected by ``mask``.

    .. math::

       \operatorname{mean}_m(x) = \frac{\sum_i m_i x_i}{\max(\sum_i m_i, 1)}

    The ``max(., 1)`` keeps an all-invalid batch at 0 instead of NaN. Entries where ``m_i == 0`` are
    excluded with ``jnp.where`` rather than by multiplication, so padding may hold non-finite values
    (e.g. ``-inf`` log-probabilities) without poisoning the value or its gradient.

    Args:
      x: array of any shape.
      mask: ``None`` (every entry valid: the plain mean) or a bool/float array of ``x``'s shape;
        float masks act as weights.

    Returns:
      A scalar.
    """
    x = _as_float(x)
    if mask is None:
        return jnp.mean(x)
    chex.assert_equal_shape([x, mask])
    m = jnp.asarray(mask).astype(x.dtype)
    total = jnp.sum(jnp.where(m != 0, m * x, 0.0))
    return total / jnp.maximum(jnp.sum(m), 1.0)


def normalize_advantages(
    advantages: Array, mask: Array | None = None, eps: float = 1e-8
) -> Array:
    r"""Standardises advantages over the valid entries.

    .. math::

       \hat A_i = \frac{A_i - \mu}{\sigma + \epsilon},\qquad
       \mu = \operatorname{mean}_m(A),\quad \sigma = \sqrt{\operatorname{mean}_m((A-\mu)^2)}

    (population standard deviation). The statistics are taken over the whole array, i.e. across time
    and batch, as in the PPO reference implementation (Schulman et al. 2017, "Proximal Policy
    Optimization Algorithms", arXiv:1707.06347). Invalid entries are returned as 0 so that they are
    inert in any downstream sum.

    Args:
      advantages: array of any shape.
      mask: ``None`` or a bool/float array of the same shape.
      eps: added to the standard deviation to guard constant inputs.

    Returns:
      An array of ``advantages``' shape.
    """
    advantages = _as_float(advantages)
    mean = masked_mean(advantages, mask)
    centred = advantages - mean
    std = jnp.sqrt(masked_mean(jnp.square(centred), mask))
    normalized = centred / (std + eps)
    if mask is None:
        return normalized
    return jnp.where(jnp.asarray(mask) != 0, normalized, 0.0)
