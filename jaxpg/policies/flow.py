"""Sampling a flow: integrate ``dx/dt = v(x, t)`` from the prior (t = 1) to the data (t = 0), the
convention of :func:`jaxpg.losses.flow_matching_loss` (x_t = t eps + (1 - t) a)."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

INTEGRATORS = ("euler", "midpoint")


def integrate_flow(velocity: Callable[[jax.Array, jax.Array], jax.Array], x1: jax.Array, num_steps: int,
                   method: str = "euler") -> jax.Array:
    r"""``x_0`` from ``x_1`` by ``num_steps`` equal steps of ``dt = -1/num_steps`` (a ``lax.scan``):

    * ``"euler"``: :math:`x \leftarrow x + dt\, v(x, t)`;
    * ``"midpoint"`` (explicit RK2): :math:`x \leftarrow x + dt\, v\big(x + \tfrac{dt}{2} v(x, t),
      t + \tfrac{dt}{2}\big)`, two velocity calls per step, error O(dt^2) against Euler's O(dt).

    ``velocity(x [..., d], t [...]) -> [..., d]``; ``t`` is passed broadcast to ``x``'s batch
    shape. A zero velocity field is the identity map (GoRL's stage-0 decoder).
    """
    if method not in INTEGRATORS:
        raise ValueError(f"unknown integrator {method!r}; valid choices: {', '.join(INTEGRATORS)}")
    if int(num_steps) < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
    dt = -1.0 / int(num_steps)
    batch = x1.shape[:-1]
    at = lambda t: jnp.full(batch, t, x1.dtype)  # noqa: E731

    def step(x, i):
        t = 1.0 + i * dt
        if method == "euler":
            return x + dt * velocity(x, at(t)), None
        half = x + 0.5 * dt * velocity(x, at(t))
        return x + dt * velocity(half, at(t + 0.5 * dt)), None

    x0, _ = jax.lax.scan(step, x1, jnp.arange(int(num_steps), dtype=x1.dtype))
    return x0
