"""A conditional velocity field ``v(context, x_t, t)`` for flow-matching decoders (GoRL's decoder:
reference notes, shared/reference/algorithms.md 4.1: an MLP of 4 x 64 SiLU units on the state,
the point and a sinusoidal embedding of the time)."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxpg.nets.actor_critic import flatten_obs
from jaxpg.nets.mlp import MLP


def time_embedding(t: jnp.ndarray, frequencies: int = 4) -> jnp.ndarray:
    """``[cos(2^k t), sin(2^k t)]`` for ``k < frequencies``: ``t [...] -> [..., 2 frequencies]``."""
    angles = jnp.asarray(t, jnp.float32)[..., None] * (2.0 ** jnp.arange(frequencies, dtype=jnp.float32))
    return jnp.concatenate([jnp.cos(angles), jnp.sin(angles)], axis=-1)


class VelocityField(nn.Module):
    """``(context, x, t) -> v [..., dim]``: an MLP on the flattened context (e.g. the normalized
    state), the point ``x [..., dim]`` and ``time_embedding(t)``, then a linear output. Leading
    axes of the three inputs are batch axes and must agree."""

    dim: int
    context_ndim: int = 1
    hidden_sizes: Sequence[int] = (64, 64, 64, 64)
    activation: str = "silu"
    frequencies: int = 4

    @nn.compact
    def __call__(self, context, x, t):
        features = jnp.concatenate([flatten_obs(context, self.context_ndim), jnp.asarray(x, jnp.float32),
                                    time_embedding(t, self.frequencies)], axis=-1)
        return nn.Dense(self.dim)(MLP(self.hidden_sizes, self.activation)(features))
