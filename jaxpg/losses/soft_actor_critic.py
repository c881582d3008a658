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


def pmoe_actor_loss(q: Array, log_prob: Array, gate_probs: Array, *, alpha: Numeric) -> tuple[Array, dict[str, Array]]:
    r"""PMOE's actor loss (Ren et al. 2021, official SAC code): back-propagation through the best
    expert plus the frequency loss that trains the gate.

    With a reparameterized action :math:`a_k` from every expert k, :math:`Q_k = \min_i Q_i(s, a_k)`
    and :math:`k^* = \arg\max_k Q_k`:

    .. math::
       \mathcal{L} = \operatorname{mean}_B\big(\alpha \log\pi_{k^*}(a_{k^*}|s) - Q_{k^*}\big)
                   + \operatorname{mean}_B \operatorname{mean}_k \big(w_k(s) - 1[k = k^*]\big)^2

    ``q``, ``log_prob``, ``gate_probs``: ``[B, K]`` (per expert; ``log_prob`` is each expert's own
    tanh-corrected density, not the mixture's). Only expert :math:`k^*` receives the first term's
    gradient; the gate receives only the second (the argmax is a constant). Returns ``(loss,
    aux)`` with the selected experts' log-probs (for the temperature) and per-expert selection
    frequencies and gate probabilities (expert collapse shows there).
    """
    best = jax.lax.stop_gradient(jnp.argmax(q, axis=-1))
    one_hot = jax.nn.one_hot(best, q.shape[-1], dtype=q.dtype)
    pick = lambda x: jnp.sum(x * one_hot, axis=-1)  # noqa: E731
    alpha = jax.lax.stop_gradient(alpha)
    actor = jnp.mean(alpha * pick(log_prob) - pick(q))
    frequency = jnp.mean(jnp.square(gate_probs - one_hot))
    return actor + frequency, {
        "actor_loss": actor,
        "frequency_loss": frequency,
        "selected_log_prob": pick(log_prob),
        "selection_frequency": one_hot.mean(0),
        "gate_probability": jax.lax.stop_gradient(gate_probs).mean(0),
    }
