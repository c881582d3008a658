"""Environment wrappers whose variation lives in ``params`` (so variants vmap like seeds)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxpg.envs.core import Box, Environment


@struct.dataclass
class PermutedParams:
    inner: Any
    permutation: jax.Array  # int32 [obs_dim]: reported observation j is inner observation permutation[j]

    @property
    def max_steps_in_episode(self):
        """The wrapped environment's time limit (evaluation and episode horizons read it)."""
        return self.inner.max_steps_in_episode


class PermutedObservations(Environment):
    """Reports ``obs[permutation]``: a new permutation is a new task with the same dynamics
    (a standard probe of plasticity, e.g. Lyle et al. 2024; Dohare et al. 2024)."""

    has_level_sampler = True

    def __init__(self, env: Environment):
        if len(env.observation_spec.shape) != 1:
            raise ValueError(f"PermutedObservations needs vector observations, got shape {env.observation_spec.shape}")
        self.env = env
        self.name = f"permuted/{env.name}"
        dim = env.observation_spec.shape[0]
        self.default_params = PermutedParams(env.default_params, jnp.arange(dim, dtype=jnp.int32))
        spec = env.observation_spec
        # The permutation is a parameter, so per-coordinate bounds are not static: report the
        # loosest bounds that hold for every permutation.
        self.observation_spec = Box.make(spec.low.min(), spec.high.max(), spec.shape)
        self.action_spec = env.action_spec

    def sample_params(self, key: jax.Array, inner: Any = None) -> PermutedParams:
        """A level: the wrapped env's params (default ones unless given) and a random permutation."""
        dim = self.observation_spec.shape[0]
        inner = self.env.default_params if inner is None else inner
        return PermutedParams(inner, jax.random.permutation(key, dim).astype(jnp.int32))

    def reset_raw(self, key, params):
        state, obs = self.env.reset_raw(key, params.inner)
        return state, obs[params.permutation]

    def step_raw(self, key, state, action, params):
        state, obs, reward, terminated, truncated = self.env.step_raw(key, state, action, params.inner)
        return state, obs[params.permutation], reward, terminated, truncated
