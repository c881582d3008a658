"""Score-function (likelihood-ratio) gradient and Hessian-vector estimators over trajectories.

For a trajectory tau = (s_0, a_0, r_0, ..., s_{H-1}, a_{H-1}, r_{H-1}) drawn from pi_theta,

    log p(tau | theta) = sum_t log pi_theta(a_t | s_t)                    (policy part only)
    Phi(tau, theta)    = sum_t (sum_{h >= t} gamma^h r_h - b_t) log pi_theta(a_t | s_t)

(GPOMDP, Baxter & Bartlett 2001; returns and baselines are constants). Then, with J(theta) the
expected discounted return,

    g(tau, theta) = grad Phi(tau, theta),                      E[g] = grad J(theta)
    B(tau, theta) = grad Phi grad log p^T + hess Phi,          E[B] = hess J(theta)

(Fatkhullin, Barakat, Kireeva, He, ICML 2023, "Stochastic Policy Gradient Methods: Improved Sample
Complexity for Fisher-non-degenerate Policies", eq. for the Hessian estimator; Shen et al. 2019).

Hessian-vector products never form a Hessian. With the weight
``w_i(theta') = exp(log p_i(theta') - stop_gradient(log p_i(theta')))`` (= 1 at every theta', with
gradient grad log p_i), the map

    G(theta') = grad_{theta''} [ (1/N) sum_i Phi_i(theta'') w_i(theta') ] at theta'' = theta'
              = (1/N) sum_i grad Phi_i(theta') w_i(theta')

equals the batch gradient, and its forward derivative along v is exactly

    d/de G(theta + e v) = (1/N) sum_i [ hess Phi_i v + grad Phi_i (grad log p_i . v) ] = B v,

the per-trajectory product of sums averaged over trajectories. One ``jax.jvp`` through one
``jax.grad``: memory linear in the number of parameters, for any parameter pytree.

A baseline b_t that does not depend on trajectory i's own actions (e.g. leave-one-out over the
batch) leaves both estimators unbiased, by the score identities E[grad log pi] = 0 and
E[grad log pi grad log pi^T + hess log pi] = 0.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

# score_fn(params) -> (phi [N], log_p [N]): per-trajectory surrogate and log-likelihood.
ScoreFn = Callable[[Any], tuple[jax.Array, jax.Array]]


def discounted_rewards_to_go(rewards: jax.Array, mask: jax.Array, gamma) -> jax.Array:
    """``R_t = sum_{h >= t} gamma^h r_h`` over the valid steps, [H, N] (discounted from t = 0)."""
    horizon = rewards.shape[0]
    discount = gamma ** jnp.arange(horizon, dtype=rewards.dtype).reshape((horizon,) + (1,) * (rewards.ndim - 1))
    discounted = discount * rewards * mask
    return jnp.flip(jnp.cumsum(jnp.flip(discounted, 0), 0), 0)


def leave_one_out_baseline(returns_to_go: jax.Array, mask: jax.Array) -> jax.Array:
    """``b_t^i`` = mean of ``R_t^j`` over the other trajectories j != i still running at t.

    Independent of trajectory i, so the estimators stay unbiased; 0 where no other trajectory is
    running (a single-trajectory batch gets no baseline).
    """
    total = (returns_to_go * mask).sum(1, keepdims=True)
    count = mask.sum(1, keepdims=True)
    others = count - mask
    return jnp.where(others > 0, (total - returns_to_go * mask) / jnp.maximum(others, 1.0), 0.0)


def gpomdp_surrogate(log_probs, rewards, mask, gamma, baseline=None) -> tuple[jax.Array, jax.Array]:
    """Per-trajectory ``(Phi_i, log p_i)`` from time-major arrays [H, N].

    ``log_probs`` carry the gradient; rewards, mask and baseline are constants.
    """
    weights = discounted_rewards_to_go(rewards, mask, gamma)
    if baseline is not None:
        weights = weights - baseline
    weights = jax.lax.stop_gradient(weights * mask)
    valid_log_probs = jnp.where(mask > 0, log_probs, 0.0)  # padding may hold anything
    phi = (weights * valid_log_probs).sum(0)
    log_p = valid_log_probs.sum(0)
    return phi, log_p


def policy_gradient(score_fn: ScoreFn, params: Any) -> Any:
    """``(1/N) sum_i grad Phi_i(params)``: the GPOMDP gradient estimate (ascent direction)."""
    return jax.grad(lambda p: score_fn(p)[0].mean())(params)


def _weighted_gradient(score_fn: ScoreFn, params: Any) -> Any:
    """``G(params) = (1/N) sum_i grad Phi_i(params) w_i(params)``; equals the gradient in value."""
    _, log_p = score_fn(params)
    weights = jnp.exp(log_p - jax.lax.stop_gradient(log_p))
    return jax.grad(lambda inner: (score_fn(inner)[0] * weights).mean())(params)


def hessian_vector_product(score_fn: ScoreFn, params: Any, vector: Any) -> Any:
    """``(1/N) sum_i B(tau_i, params) v`` by forward-over-reverse differentiation (no Hessian)."""
    return jax.jvp(lambda p: _weighted_gradient(score_fn, p), (params,), (vector,))[1]


def gradient_and_hessian_vector_product(score_fn: ScoreFn, params: Any, vector: Any) -> tuple[Any, Any]:
    """Both ``g`` and ``B v`` on the same trajectories from one jvp (the primal output is g)."""
    return jax.jvp(lambda p: _weighted_gradient(score_fn, p), (params,), (vector,))
