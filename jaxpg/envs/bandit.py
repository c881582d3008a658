"""A contextual bandit with two equally good, separated actions: a test of multimodal policies
(GoRL reference notes, shared/reference/algorithms.md 4.5, item 2).

Each episode is one step: the context s ~ U[-1, 1] is observed, an action a in [-1, 1] is taken and

    r(a) = exp(-(a - m)^2 / w) + exp(-(a + m)^2 / w),   m = 0.6, w = 0.02 by default,

whatever the context; the episode then terminates. Both peaks are worth 1 (plus ~1e-14 from the
other), so a policy that puts its mass on both is as good as one that picks one; the midpoint
a = 0 earns 2 exp(-m^2 / w) ~ 3e-8.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from jaxpg.envs.core import Box, Environment


@struct.dataclass
class BimodalParams:
    peak: float = 0.6  # the peaks sit at +-peak
    width: float = 0.02  # w: each peak is exp(-(a -+ peak)^2 / w)
    max_steps_in_episode: int = 1


def bimodal_reward(action: jax.Array, params: BimodalParams = BimodalParams()) -> jax.Array:
    """``r(a)`` for actions ``[..., 1]`` (or scalars)."""
    a = jnp.asarray(action, jnp.float32).reshape(jnp.shape(action)[:-1] if jnp.ndim(action) else ())
    return jnp.exp(-jnp.square(a - params.peak) / params.width) + jnp.exp(-jnp.square(a + params.peak) / params.width)


class BimodalBandit(Environment):
    """``make("bandit/bimodal")``: observation the context (1,), action (1,) in [-1, 1]."""

    name = "bandit/bimodal"
    observation_spec = Box.make(-1.0, 1.0, (1,))
    action_spec = Box.make(-1.0, 1.0, (1,))

    def __init__(self, **params):
        try:
            self.default_params = BimodalParams(**params)
        except TypeError:
            valid = ", ".join(BimodalParams.__dataclass_fields__)
            raise ValueError(f"unknown bandit/bimodal parameter in {sorted(params)}; valid choices: {valid}") from None

    def reset_raw(self, key, params):
        context = jax.random.uniform(key, (1,), minval=-1.0, maxval=1.0)
        return context, context

    def step_raw(self, key, state, action, params):
        reward = bimodal_reward(jnp.clip(jnp.asarray(action, jnp.float32).reshape(1), -1.0, 1.0), params)
        return state, state, reward, jnp.ones((), bool), jnp.zeros((), bool)
