"""Momentum, implicit gradient transport and Hessian-aided recursive momentum, as pure pieces.

Notation of Fatkhullin, Barakat, Kireeva, He (ICML 2023): iterates theta_t, momentum d_t, step
sizes gamma_t, momentum weights eta_t in (0, 1], eta_0 = 1.

* momentum (N-MPG):          d_t = (1 - eta_t) d_{t-1} + eta_t g(tau_t, theta_t)
* IGT extrapolation (N-PG-IGT, Algorithm 1; Arnold et al. 2019, Cutkosky & Mehta 2020):
                             theta~_t = theta_t + ((1 - eta_t) / eta_t) (theta_t - theta_{t-1})
                             and the gradient is taken at theta~_t with tau_t ~ pi_{theta~_t}
* HARPG recursive momentum (Algorithm 2, STORM-like):
                             q_t ~ U[0, 1],  theta^_t = q_t theta_t + (1 - q_t) theta_{t-1}
                             v_t = B(tau^_t, theta^_t) (theta_t - theta_{t-1})
                             d_t = (1 - eta_t) (d_{t-1} + v_t) + eta_t g(tau_t, theta_t)
  E_q[B(theta^_t)(theta_t - theta_{t-1})] = grad J(theta_t) - grad J(theta_{t-1}), which removes
  the bias of the stale momentum term.

The paper's step-size and momentum schedules are powers of r_t = 2 / (t + 2)
(:func:`power_schedule`); which power each method uses is the algorithm's business
(``jaxpg.algos.harpg``), not this layer's.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def power_schedule(initial, t, exponent: float) -> jax.Array:
    """``initial * (2 / (t + 2))^exponent`` (t counts from 0): the schedules of Fatkhullin et al."""
    return initial * (2.0 / (jnp.asarray(t, jnp.float32) + 2.0)) ** exponent


def momentum(previous: Any, gradient: Any, eta) -> Any:
    """``(1 - eta) d_{t-1} + eta g``."""
    return jax.tree.map(lambda d, g: (1.0 - eta) * d + eta * g, previous, gradient)


def igt_extrapolation(params: Any, previous_params: Any, eta) -> Any:
    """``theta_t + ((1 - eta) / eta) (theta_t - theta_{t-1})``: where N-PG-IGT samples and differentiates."""
    factor = (1.0 - eta) / eta
    return jax.tree.map(lambda p, q: p + factor * (p - q), params, previous_params)


def interpolation_point(params: Any, previous_params: Any, q) -> Any:
    """``q theta_t + (1 - q) theta_{t-1}`` (q ~ U[0, 1] in HARPG)."""
    return jax.tree.map(lambda p, r: q * p + (1.0 - q) * r, params, previous_params)


def harpg_momentum(previous: Any, hessian_correction: Any, gradient: Any, eta) -> Any:
    """``(1 - eta) (d_{t-1} + v_t) + eta g``."""
    return jax.tree.map(lambda d, v, g: (1.0 - eta) * (d + v) + eta * g, previous, hessian_correction, gradient)


def difference(params: Any, previous_params: Any) -> Any:
    """``theta_t - theta_{t-1}``, the direction of the Hessian correction."""
    return jax.tree.map(jnp.subtract, params, previous_params)
