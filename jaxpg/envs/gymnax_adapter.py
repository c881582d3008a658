"""gymnax environments (classic control, MinAtar, bsuite, misc) under the jaxpg protocol."""

from __future__ import annotations

import gymnax
import jax.numpy as jnp
from gymnax.environments import spaces as gymnax_spaces

from jaxpg.envs.core import Box, Discrete, Environment

GYMNAX_ENVS: tuple[str, ...] = tuple(gymnax.registered_envs)


def _convert_space(space) -> Discrete | Box:
    if isinstance(space, gymnax_spaces.Discrete):
        return Discrete(n=int(space.n))
    if isinstance(space, gymnax_spaces.Box):
        return Box.make(space.low, space.high, space.shape)
    raise TypeError(f"unsupported gymnax space {type(space).__name__}; valid: Discrete, Box")


class GymnaxEnv(Environment):
    """Adapter over ``gymnax.make(name)``.

    gymnax reports natural termination from ``step_env`` and the time limit through
    ``is_truncated``; both are passed through unchanged, so the base class can bootstrap
    truncated episodes from their final observation.
    """

    def __init__(self, name: str, **kwargs):
        self.name = name
        self.gymnax_env, self.default_params = gymnax.make(name, **kwargs)
        self.observation_spec = _convert_space(self.gymnax_env.observation_space(self.default_params))
        self.action_spec = _convert_space(self.gymnax_env.action_space(self.default_params))

    def reset_raw(self, key, params):
        obs, state = self.gymnax_env.reset_env(key, params)
        return state, jnp.asarray(obs, jnp.float32)

    def step_raw(self, key, state, action, params):
        obs, state, reward, terminated, _ = self.gymnax_env.step_env(key, state, action, params)
        truncated = self.gymnax_env.is_truncated(state, params)
        return state, jnp.asarray(obs, jnp.float32), reward, terminated, truncated
