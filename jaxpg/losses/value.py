"""Critic (value-function) regression losses."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from .normalize import masked_mean

Array = chex.Array
Numeric = chex.Numeric


def value_loss(
    values: Array,
    targets: Array,
    *,
    old_values: Array | None = None,
    clip_eps: Numeric | None = None,
    mask: Array | None = None,
    stop_target_gradients: bool = True,
) -> tuple[Array, dict[str, Array]]:
    r"""Squared-error value loss, optionally with PPO-style value clipping.

    Plain:

    .. math:: \mathcal{L} = \tfrac12 \operatorname{mean}_m\big((V - G)^2\big)

    Clipped (when both ``old_values`` and ``clip_eps`` are given):

    .. math::

       V^\text{clip} &= V_\text{old} + \operatorname{clip}(V - V_\text{old}, -\epsilon, \epsilon) \\
       \mathcal{L} &= \tfrac12 \operatorname{mean}_m\big(\max((V - G)^2, (V^\text{clip} - G)^2)\big)

    The ``max`` is pessimistic in the same way as PPO's policy clip: a value prediction that has
    moved more than ``eps`` from ``old_values`` stops being pulled further towards the target.
    ``targets`` and ``old_values`` are constants (``stop_gradient``, unless
    ``stop_target_gradients=False``: then they must already be constants of what you
    differentiate, and a meta-gradient through the update flows through them).

    Reference: value clipping appears in the PPO reference implementation (OpenAI baselines
    ppo2) accompanying Schulman et al. (2017), "Proximal Policy Optimization Algorithms",
    arXiv:1707.06347.

    Args:
      values: ``[...]`` predicted values.
      targets: ``[...]`` regression targets (e.g. the λ-returns of :func:`gae`).
      old_values: ``None`` or ``[...]`` values predicted when the data was collected.
      clip_eps: ``None`` or the clip range, a Python or traced scalar.
      mask: ``None`` or a bool/float validity mask of the same shape.
      stop_target_gradients: see above (as in rlax).

    Returns:
      ``(loss, aux)``: the scalar loss and ``{"clip_fraction": ...}``, the fraction of valid entries
      where the clipped term was the larger one (0 for the plain loss).

    Raises:
      ValueError: if exactly one of ``old_values`` and ``clip_eps`` is given.
    """
    if (old_values is None) != (clip_eps is None):
        raise ValueError(
            "value_loss: old_values and clip_eps must be given together (both for the clipped "
            "loss, neither for the plain one); got "
            f"old_values={'None' if old_values is None else 'an array'}, clip_eps={clip_eps!r}.")
    chex.assert_equal_shape([values, targets])
    if stop_target_gradients:
        targets = jax.lax.stop_gradient(targets)
    squared_error = jnp.square(values - targets)
    clip_fraction = jnp.zeros((), squared_error.dtype)
    if old_values is not None:
        chex.assert_equal_shape([values, old_values])
        if stop_target_gradients:
            old_values = jax.lax.stop_gradient(old_values)
        clipped_values = old_values + jnp.clip(values - old_values, -clip_eps, clip_eps)
        clipped_error = jnp.square(clipped_values - targets)
        clip_fraction = jax.lax.stop_gradient(masked_mean(clipped_error > squared_error, mask))
        squared_error = jnp.maximum(squared_error, clipped_error)
    return 0.5 * masked_mean(squared_error, mask), {"clip_fraction": clip_fraction}
