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

The step-size and momentum schedules are those of the paper's official code (section 1.3 of the
reference notes): with r_t = 2 / (t + 2),

    method    gamma_t                  eta_t
    pg        gamma_0 r_t^{2/3}        -
    n_mpg     gamma_0 r_t              eta_0 r_t^{2/3}
    n_pg_igt  gamma_0 r_t              eta_0 r_t^{4/5}
    harpg     gamma_0 r_t^{1/2}        eta_0 r_t
    n_harpg   gamma_0 r_t              eta_0 r_t
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

METHODS = ("pg", "n_mpg", "n_pg_igt", "harpg", "n_harpg")

# (step-size exponent, momentum exponent) of r_t = 2 / (t + 2); None: no momentum.
SCHEDULE_EXPONENTS = {
    "pg": (2.0 / 3.0, None),
    "n_mpg": (1.0, 2.0 / 3.0),
    "n_pg_igt": (1.0, 4.0 / 5.0),
    "harpg": (0.5, 1.0),
    "n_harpg": (1.0, 1.0),
}


def _check_method(method: str) -> None:
    if method not in SCHEDULE_EXPONENTS:
        raise ValueError(f"unknown method {method!r}; valid choices: {', '.join(METHODS)}")


def step_size(method: str, gamma_0, t) -> jax.Array:
    """``gamma_t = gamma_0 (2 / (t + 2))^p`` with the method's exponent p (t counts from 0)."""
    _check_method(method)
    return gamma_0 * (2.0 / (jnp.asarray(t, jnp.float32) + 2.0)) ** SCHEDULE_EXPONENTS[method][0]


def momentum_weight(method: str, eta_0, t) -> jax.Array:
    """``eta_t = min(1, eta_0 (2 / (t + 2))^p)``; 1 at t = 0 when eta_0 = 1; 1 for plain PG."""
    _check_method(method)
    exponent = SCHEDULE_EXPONENTS[method][1]
    if exponent is None:
        return jnp.ones((), jnp.float32)
    return jnp.minimum(1.0, eta_0 * (2.0 / (jnp.asarray(t, jnp.float32) + 2.0)) ** exponent)


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
