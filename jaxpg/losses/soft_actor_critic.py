"""Soft actor-critic losses (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and
Applications", arXiv:1812.05905): the soft Bellman target, the actor's loss and the temperature's.

Batch-major arrays ``[B]``; ``alpha`` is the entropy temperature (a scalar).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from chex import Array, Numeric


def soft_q_targets(reward: Array, terminated: Array, next_q: Array, next_log_prob: Array, *, alpha: Numeric,
                   gamma: Numeric) -> Array:
    r"""The soft Bellman target, a constant of the critic loss (``stop_gradient``):

    .. math:: y = r + \gamma (1 - d) \big( \min_i \bar Q_i(s', a') - \alpha \log \pi(a'|s') \big),
              \quad a' \sim \pi(\cdot|s')

    ``next_q``: the minimum over the twin target critics at ``(s', a')``; ``terminated``: the
    transition entered an absorbing state (time-limit truncation is not termination: bootstrap).
    """
    not_done = 1.0 - jnp.asarray(terminated, jnp.float32)
    return jax.lax.stop_gradient(reward + gamma * not_done * (next_q - alpha * next_log_prob))


def soft_actor_loss(q: Array, log_prob: Array, *, alpha: Numeric) -> tuple[Array, dict[str, Array]]:
    r"""The actor's loss with reparameterized actions :math:`a = f_\theta(\epsilon; s)`:

    .. math:: \mathcal{L}_\pi = \operatorname{mean}_B\big(\alpha \log \pi(a|s) - \min_i Q_i(s, a)\big)

    ``alpha`` is held constant (``stop_gradient``); ``(loss, {"entropy": -mean log pi})``.
    """
    alpha = jax.lax.stop_gradient(alpha)
    loss = jnp.mean(alpha * log_prob - q)
    return loss, {"entropy": -jnp.mean(log_prob)}


def temperature_loss(log_alpha: Array, log_prob: Array, *, target_entropy: Numeric) -> tuple[Array, dict[str, Array]]:
    r"""Automatic entropy tuning: the temperature follows the policy's entropy towards a target,

    .. math:: \mathcal{L}_\alpha = -\operatorname{mean}_B\big(\log\alpha \,
              (\log \pi(a|s) + \bar{\mathcal H})\big)

    (gradient in ``log alpha``; ``log_prob`` constant): alpha grows while the entropy is below
    ``target_entropy`` (``-dim(A)`` by the paper's heuristic) and shrinks while above.
    """
    gap = jax.lax.stop_gradient(log_prob + target_entropy)
    loss = -jnp.mean(log_alpha * gap)
    return loss, {"alpha": jnp.exp(log_alpha)}
