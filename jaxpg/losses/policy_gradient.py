"""Policy-gradient surrogate objectives (losses to minimise)."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from .normalize import masked_mean

Array = chex.Array
Numeric = chex.Numeric


def reinforce_surrogate(
    log_probs: Array,
    returns: Array,
    baseline: Array | None = None,
    mask: Array | None = None,
    stop_target_gradients: bool = True,
) -> tuple[Array, dict[str, Array]]:
    r"""REINFORCE / GPOMDP surrogate loss with an optional baseline.

    .. math::

       \mathcal{L} = -\frac{1}{B} \sum_{b=1}^{B} \sum_{t=0}^{T-1}
          m_{t,b}\, \log\pi(a_{t,b} \mid s_{t,b})\; \mathrm{sg}\big(G_{t,b} - b_{t,b}\big)

    Summing over time and averaging over trajectories makes :math:`-\nabla\mathcal{L}` the unbiased
    per-trajectory policy-gradient estimate. With ``returns`` the reward-to-go this is the GPOMDP
    estimator (Baxter & Bartlett 2001, "Infinite-Horizon Policy-Gradient Estimation", JAIR 15);
    with the full-episode return at every step it is REINFORCE (Williams 1992, "Simple statistical
    gradient-following algorithms for connectionist reinforcement learning", Machine Learning 8).
    ``returns - baseline`` is wrapped in ``stop_gradient`` (unless ``stop_target_gradients=False``),
    so neither the returns nor the baseline receives gradient from this loss (train a learned
    baseline with :func:`value_loss`).

    Note the time *sum*: the loss scale grows with ``T``, unlike the per-step means of
    :func:`ppo_clip`.

    Args:
      log_probs: ``[T, B]`` log-probabilities of the taken actions.
      returns: ``[T, B]`` returns :math:`G_t`.
      baseline: ``None`` (zero) or ``[T, B]`` baseline values.
      mask: ``None`` (all valid) or ``[T, B]`` bool/float validity mask.
      stop_target_gradients: as in rlax; pass False only when ``returns`` and ``baseline`` are
        already constants of what you differentiate (e.g. separate arguments of your loss), so
        that an outer derivative (a meta-gradient through the update) can flow through them.

    Returns:
      ``(loss, aux)`` with scalar ``loss`` and ``aux = {"mean_advantage": masked mean of
      returns - baseline}``.
    """
    chex.assert_rank([log_probs, returns], 2)
    chex.assert_equal_shape([log_probs, returns])
    if baseline is not None:
        chex.assert_equal_shape([log_probs, baseline])
        advantages = returns - baseline
    else:
        advantages = returns
    if stop_target_gradients:
        advantages = jax.lax.stop_gradient(advantages)
    terms = log_probs * advantages
    if mask is not None:
        chex.assert_equal_shape([log_probs, mask])
        m = jnp.asarray(mask).astype(terms.dtype)
        # `where` (not just `m *`) so padded steps with -inf log-probs contribute exactly 0.
        terms = jnp.where(m != 0, m * terms, 0.0)
    loss = -jnp.mean(jnp.sum(terms, axis=0))
    return loss, {"mean_advantage": masked_mean(advantages, mask)}


def ppo_clip(
    log_probs: Array,
    old_log_probs: Array,
    advantages: Array,
    *,
    clip_eps: Numeric,
    mask: Array | None = None,
    stop_target_gradients: bool = True,
) -> tuple[Array, dict[str, Array]]:
    r"""PPO clipped surrogate loss.

    .. math::

       \rho &= \exp(\log\pi - \log\pi_\text{old}) \\
       \mathcal{L} &= -\operatorname{mean}_m\big(\min(\rho A,\ \operatorname{clip}(\rho, 1-\epsilon,
          1+\epsilon) A)\big)

    The ``min`` makes the objective a pessimistic bound: once the ratio has moved past the clip
    range in the direction the advantage rewards, the gradient for that sample is zero.

    ``advantages`` and ``old_log_probs`` are constants (``stop_gradient``, unless
    ``stop_target_gradients=False``): only ``log_probs`` is differentiated.

    Reference: Schulman, Wolski, Dhariwal, Radford, Klimov (2017), "Proximal Policy Optimization
    Algorithms", arXiv:1707.06347, eq. (7).

    Args:
      log_probs: ``[...]`` log-probabilities under the current policy.
      old_log_probs: ``[...]`` log-probabilities under the behaviour policy.
      advantages: ``[...]`` advantage estimates.
      clip_eps: clip range :math:`\epsilon`, a Python or traced scalar.
      mask: ``None`` or a bool/float validity mask of the same shape.
      stop_target_gradients: as in rlax; pass False only when ``advantages`` and
        ``old_log_probs`` are already constants of what you differentiate (e.g. separate
        arguments of your loss), so that a meta-gradient through the update can flow through them.

    Returns:
      ``(loss, aux)`` with scalar ``loss`` and ``aux`` holding ``"clip_fraction"``
      (:math:`\operatorname{mean}_m(|\rho - 1| > \epsilon)`) and ``"approx_kl"``
      (:math:`\operatorname{mean}_m((\rho - 1) - \log\rho)`, an unbiased non-negative estimator of
      :math:`\mathrm{KL}(\pi_\text{old} \| \pi)`).
    """
    chex.assert_equal_shape([log_probs, old_log_probs, advantages])
    if stop_target_gradients:
        advantages = jax.lax.stop_gradient(advantages)
        old_log_probs = jax.lax.stop_gradient(old_log_probs)
    log_ratio = log_probs - old_log_probs
    ratio = jnp.exp(log_ratio)
    clipped_ratio = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    objective = jnp.minimum(ratio * advantages, clipped_ratio * advantages)
    loss = -masked_mean(objective, mask)
    aux = {
        "clip_fraction": masked_mean(jnp.abs(ratio - 1.0) > clip_eps, mask),
        "approx_kl": masked_mean((ratio - 1.0) - log_ratio, mask),
    }
    return loss, jax.lax.stop_gradient(aux)
