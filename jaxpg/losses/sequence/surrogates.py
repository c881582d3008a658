r"""Per-token surrogates (slot ``surrogate``) and clip ranges (slot ``clip``).

``clip(batch, adv, log_ratio) -> (eps_low, eps_high)`` (scalars or ``[B, T]``) and
``surrogate(log_ratio, adv, eps_low, eps_high) -> (loss [B, T], clipped [B, T] bool)``. Losses are
to be minimized; ``adv`` is ``[B, T]`` and already a constant.
"""

from __future__ import annotations

import chex
import jax.numpy as jnp

from jaxpg.losses.sequence.batch import SequenceBatch

Array = chex.Array


def constant_clip(batch: SequenceBatch, adv: Array, log_ratio: Array, *, low: float = 0.2,
                  high: float | None = None) -> tuple[Array, Array]:
    """The same clip range for every token: ``(low, high)`` (``high=None``: symmetric). DAPO's
    clip-higher is ``high > low``."""
    return jnp.asarray(low), jnp.asarray(low if high is None else high)


def ppo_surrogate(log_ratio: Array, adv: Array, eps_low: Array, eps_high: Array, *,
                  dual_clip: float | None = None) -> tuple[Array, Array]:
    r"""PPO's clipped surrogate (Schulman et al. 2017, arXiv:1707.06347), optionally dual-clipped
    (Ye et al. 2020, arXiv:1912.09729; verl's ``compute_policy_loss``):

    .. math::

       \ell_t = \max\big(-A\rho_t,\; -A\,\operatorname{clip}(\rho_t, 1-\epsilon_l, 1+\epsilon_h)\big),
       \qquad \ell_t \leftarrow \min(\ell_t, -A c) \text{ where } A < 0

    At :math:`\rho = 1` its gradient is REINFORCE's, :math:`-A\nabla\log\pi` (a test checks it).
    ``clipped`` marks the tokens whose gradient the clip removed.
    """
    ratio = jnp.exp(log_ratio)
    unclipped = -adv * ratio
    clipped_ratio = jnp.clip(ratio, 1.0 - eps_low, 1.0 + eps_high)
    clipped_loss = -adv * clipped_ratio
    loss = jnp.maximum(unclipped, clipped_loss)
    clipped = clipped_loss > unclipped
    if dual_clip is not None:
        lower = -adv * dual_clip
        dual = (adv < 0) & (loss > lower)
        loss = jnp.where(dual, lower, loss)
        clipped = clipped | dual
    return loss, clipped


def reinforce_ratio_surrogate(log_ratio: Array, adv: Array, eps_low: Array, eps_high: Array) -> tuple[Array, Array]:
    r"""The unclipped importance-weighted policy gradient :math:`\ell_t = -A\rho_t` (KL-Cov's and
    HPT's "no clip" loss); on-policy (:math:`\rho = 1`) it is REINFORCE."""
    return -adv * jnp.exp(log_ratio), jnp.zeros(adv.shape, bool)
