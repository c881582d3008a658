"""Gradient estimators for a mixture-of-experts policy's gate and experts (Ren et al. 2021,
"Probabilistic Mixture-of-Experts for Efficient Deep Reinforcement Learning", PMOE; reference
notes: shared/reference/algorithms.md, section 3).

Sampling the expert index k ~ Cat(w(s)) is not differentiable. PMOE replaces the gate's gradient
by a supervised "frequency" target and back-propagates the actor loss through the best-scoring
expert alone; the paper compares it with two other ways to train the gate, both here too:
a straight-through Gumbel-softmax relaxation and the score-function (REINFORCE) gradient.

Per-expert arrays are ``[B, K]`` (batch, experts): ``q[b, k]`` scores expert k's reparameterized
action at state b (the minimum over twin critics for SAC), ``log_prob[b, k]`` is expert k's own
tanh-corrected log-density of its action (not the mixture's: PMOE's entropy term is per expert).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from chex import Array, Numeric


def frequency_loss(q: Array, gate_probs: Array) -> tuple[Array, Array]:
    r"""PMOE's frequency loss: the gate is regressed onto the one-hot of the best expert,

    .. math:: k^* = \arg\max_k Q_k, \qquad
              \mathcal{L}_{freq} = \operatorname{mean}_B \operatorname{mean}_k \big(w_k(s) - 1[k = k^*]\big)^2

    so that :math:`w_k(s)` estimates how frequently expert k is the best at s. The mean squared
    error keeps the loss bounded while the argmax is noisy early on (a cross-entropy would not).
    ``q`` is a constant (the argmax has no gradient). Returns ``(loss, one_hot [B, K])``.
    """
    best = jnp.argmax(jax.lax.stop_gradient(q), axis=-1)
    one_hot = jax.nn.one_hot(best, q.shape[-1], dtype=gate_probs.dtype)
    return jnp.mean(jnp.square(gate_probs - one_hot)), one_hot


def _expert_statistics(selected_one_hot: Array, log_prob: Array, gate_probs: Array) -> dict[str, Array]:
    """What every estimator reports: the selected experts' log-densities (the temperature's input),
    how often each expert was selected, and the mean gate probability (collapse shows there)."""
    return {
        "selected_log_prob": jnp.sum(log_prob * selected_one_hot, axis=-1),
        "selection_frequency": jax.lax.stop_gradient(selected_one_hot).mean(0),
        "gate_probability": jax.lax.stop_gradient(gate_probs).mean(0),
    }


def pmoe_actor_loss(q: Array, log_prob: Array, gate_probs: Array, *, alpha: Numeric) -> tuple[Array, dict[str, Array]]:
    r"""PMOE's actor loss (official SAC code): back-propagation through the best expert plus the
    frequency loss that trains the gate. With :math:`Q_k = \min_i Q_i(s, a_k)`, :math:`a_k` expert
    k's reparameterized action and :math:`k^* = \arg\max_k Q_k`:

    .. math::
       \mathcal{L} = \operatorname{mean}_B\big(\alpha \log\pi_{k^*}(a_{k^*}|s) - Q_{k^*}\big)
                   + \mathcal{L}_{freq}(Q, w)

    Only expert :math:`k^*` receives the first term's gradient; the gate receives only the second
    (:func:`frequency_loss`). Returns ``(loss, aux)``: the two terms, the selected experts'
    log-probs (for the temperature), per-expert selection frequencies and gate probabilities.
    """
    frequency, one_hot = frequency_loss(q, gate_probs)
    pick = lambda x: jnp.sum(x * one_hot, axis=-1)  # noqa: E731
    alpha = jax.lax.stop_gradient(alpha)
    actor = jnp.mean(alpha * pick(log_prob) - pick(q))
    return actor + frequency, {"actor_loss": actor, "frequency_loss": frequency,
                               **_expert_statistics(one_hot, log_prob, gate_probs)}


def gumbel_softmax_gate(key: Array, logits: Array, *, temperature: Numeric = 1.0) -> Array:
    r"""A straight-through Gumbel-softmax sample of the expert index (Jang et al. 2017, Maddison
    et al. 2017): the forward value is the one-hot of :math:`\arg\max_k (\ell_k + g_k)`, an exact
    sample of Cat(softmax(l)) with Gumbel noise g; the gradient is that of the relaxation
    :math:`y = \mathrm{softmax}((\ell + g)/\tau)`,

    .. math:: y_{ST} = \mathrm{onehot}(\arg\max_k (\ell_k + g_k)) - \mathrm{sg}(y) + y.

    Mixing the experts' actions with it, :math:`a = \sum_k y_{ST,k} a_k`, executes one expert's
    action while the actor loss reaches the gate: PMOE's "Gumbel-softmax" comparison point.
    """
    noisy = logits + jax.random.gumbel(key, logits.shape, logits.dtype)
    soft = jax.nn.softmax(noisy / temperature, axis=-1)
    hard = jax.nn.one_hot(jnp.argmax(noisy, axis=-1), logits.shape[-1], dtype=soft.dtype)
    return hard - jax.lax.stop_gradient(soft) + soft


def gumbel_softmax_actor_loss(q_mixed: Array, log_prob: Array, gate_sample: Array, gate_probs: Array, *,
                              alpha: Numeric) -> tuple[Array, dict[str, Array]]:
    r"""The actor loss of a mixture whose gate is trained through a straight-through Gumbel-softmax
    sample :math:`y` (:func:`gumbel_softmax_gate`): with :math:`Q(s, \sum_k y_k a_k)` given as
    ``q_mixed [B]``,

    .. math:: \mathcal{L} = \operatorname{mean}_B\Big(\alpha \sum_k y_k \log\pi_k(a_k|s)
              - Q\big(s, \textstyle\sum_k y_k a_k\big)\Big)

    whose value is the selected expert's SAC loss and whose gradient reaches the selected expert
    and, through the relaxation, the gate.
    """
    alpha = jax.lax.stop_gradient(alpha)
    mixed_log_prob = jnp.sum(gate_sample * log_prob, axis=-1)
    actor = jnp.mean(alpha * mixed_log_prob - q_mixed)
    hard = jax.lax.stop_gradient(gate_sample)  # the forward value is exactly one-hot
    return actor, {"actor_loss": actor, **_expert_statistics(hard, log_prob, gate_probs)}


def score_function_gate_actor_loss(q: Array, log_prob: Array, gate_logits: Array, selected: Array, *,
                                   alpha: Numeric) -> tuple[Array, dict[str, Array]]:
    r"""The actor loss of a mixture whose gate is trained by the score function (REINFORCE, PMOE's
    other comparison point). The executed expert :math:`k \sim \mathrm{Cat}(w(s))` (``selected
    [B]``) receives the SAC loss through its reparameterized action; the gate ascends

    .. math:: \nabla \log w_k(s)\, \big(v_k - b(s)\big), \quad v_j = Q_j - \alpha \log\pi_j(a_j|s),
              \quad b(s) = \sum_j w_j(s) v_j,

    the soft value of the selected expert against the gate-weighted mean over all experts (a
    baseline: it leaves the gradient's expectation unchanged and lowers its variance; every
    expert's action is scored anyway). Loss:

    .. math:: \mathcal{L} = \operatorname{mean}_B\big(\alpha\log\pi_k(a_k|s) - Q_k\big)
              - \operatorname{mean}_B\, \log w_k(s)\, \mathrm{sg}(v_k - b(s))
    """
    alpha = jax.lax.stop_gradient(alpha)
    one_hot = jax.nn.one_hot(selected, q.shape[-1], dtype=q.dtype)
    pick = lambda x: jnp.sum(x * one_hot, axis=-1)  # noqa: E731
    actor = jnp.mean(alpha * pick(log_prob) - pick(q))
    log_w = jax.nn.log_softmax(gate_logits, axis=-1)
    soft_value = jax.lax.stop_gradient(q - alpha * log_prob)
    baseline = jnp.sum(jax.lax.stop_gradient(jnp.exp(log_w)) * soft_value, axis=-1)
    gate = -jnp.mean(pick(log_w) * (pick(soft_value) - baseline))
    return actor + gate, {"actor_loss": actor, "gate_loss": gate,
                          **_expert_statistics(one_hot, log_prob, jnp.exp(log_w))}
