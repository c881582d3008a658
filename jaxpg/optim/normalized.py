"""Normalized steps: move a fixed distance along a direction, whatever its magnitude.

    theta_{t+1} = theta_t + step_size * d_t / ||d_t||

with ||.|| the global L2 norm over all leaves of the pytree (not per leaf). Used by normalized
policy-gradient methods (N-MPG, N-PG-IGT, N-HARPG; Fatkhullin et al. 2023; Cutkosky & Mehta 2020).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax


def global_norm(tree: Any) -> jax.Array:
    return optax.tree.norm(tree)


def normalized_step(direction: Any, step_size, eps: float = 0.0) -> Any:
    """``step_size * direction / ||direction||``; a zero direction gives a zero step (no NaN)."""
    norm = global_norm(direction)
    scale = jnp.where(norm > eps, step_size / jnp.where(norm > eps, norm, 1.0), 0.0)
    return jax.tree.map(lambda d: scale * d, direction)
