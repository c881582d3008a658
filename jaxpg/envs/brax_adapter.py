"""brax environments under the jaxpg protocol.

The raw brax environment is used *without* brax's wrappers (``EpisodeWrapper``,
``AutoResetWrapper``, ``VmapWrapper``): the time limit lives in :class:`BraxParams` (a pytree, so it
can differ per vmapped copy), and auto-reset, episode statistics and vectorization come from
:mod:`jaxpg.envs.core` like for every other backend.

brax reports natural termination through ``State.done`` (a float); it becomes ``terminated``. The
time limit becomes ``truncated``, so a truncated episode is bootstrapped from ``ts.final_obs``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxpg.envs.core import Box, Environment
from jaxpg.envs.mujoco_common import canonical_state, quiet_mujoco_backends

with quiet_mujoco_backends():
    import brax.envs as brax_envs

VALID_BACKENDS: tuple[str, ...] = ("generalized", "positional", "spring", "mjx")

# Default physics pipeline per environment, picked for CPU speed among the pipelines that work in
# brax 0.14.2 (all four do for these environments). Measured on a 2-core CPU, one unbatched env:
# compile of a jitted 50-step lax.scan / run time per step in that scan.
#
#   env                       generalized     positional      spring          mjx
#   inverted_pendulum         1.6 s / 0.010ms 2.7 s / 0.028ms 1.4 s / 0.014ms 2.8 s / 0.033ms
#   inverted_double_pendulum  2.3 s / 0.024ms 2.6 s / 0.035ms 1.5 s / 0.019ms 3.2 s / 0.027ms
#   hopper                    6.7 s / 0.209ms 4.8 s / 0.056ms 2.8 s / 0.021ms 4.9 s / 0.106ms
#   walker2d                  8.9 s / 0.308ms 8.7 s / 0.085ms 3.0 s / 0.030ms 5.5 s / 0.269ms
#   halfcheetah               4.7 s / 0.344ms 6.4 s / 0.416ms 2.8 s / 0.106ms 8.4 s / 0.362ms
#   ant                       3.4 s / 0.303ms 7.6 s / 0.216ms 3.3 s / 0.060ms 7.0 s / 0.182ms
#
# The pendulums keep 'generalized' (exact reduced-coordinate dynamics, brax's own default): spring
# is within noise of it there. Environments not listed use brax's own default pipeline.
DEFAULT_BACKENDS: dict[str, str] = {
    "inverted_pendulum": "generalized",
    "inverted_double_pendulum": "generalized",
    "hopper": "spring",
    "walker2d": "spring",
    "ant": "spring",
    "halfcheetah": "spring",
}


@struct.dataclass
class BraxParams:
    """Environment parameters of a brax environment (a pytree: vmappable per copy/level).

    Attributes:
      max_steps_in_episode: int32 time limit; the step that reaches it is ``truncated``.
    """

    max_steps_in_episode: jax.Array


@struct.dataclass
class BraxState:
    """Backend state: brax's ``State`` (pipeline state, obs, reward, done, metrics, info) and the
    number of steps taken in the current episode."""

    brax_state: Any
    time: jax.Array


class BraxEnv(Environment):
    """Adapter over ``brax.envs.get_environment(name, backend=...)``.

    Args:
      name: brax environment name (``"hopper"``; a ``"brax/"`` prefix is accepted).
      backend: physics pipeline, one of :data:`VALID_BACKENDS`; ``None`` picks
        :data:`DEFAULT_BACKENDS` (chosen for CPU speed).
      episode_length: default ``max_steps_in_episode`` (time limit -> ``truncated``).
      **brax_kwargs: passed to the brax environment constructor.

    Actions live in ``[-1, 1]`` (brax scales them to the actuator ranges and clips in the
    physics); ``step`` is deterministic, only ``reset`` uses the key.
    """

    def __init__(
        self,
        name: str,
        backend: str | None = None,
        episode_length: int = 1000,
        **brax_kwargs,
    ):
        name = name[len("brax/") :] if name.startswith("brax/") else name
        registry = getattr(brax_envs, "_envs", None)
        if registry is not None and name not in registry:
            raise ValueError(
                f"unknown brax environment {name!r}; valid choices: {', '.join(sorted(registry))}"
            )
        if backend is None:
            backend = DEFAULT_BACKENDS.get(name)
        if backend is not None and backend not in VALID_BACKENDS:
            raise ValueError(
                f"unknown brax backend {backend!r}; valid choices: {', '.join(VALID_BACKENDS)}"
            )
        if int(episode_length) < 1:
            raise ValueError(f"episode_length must be a positive integer, got {episode_length!r}")
        if backend is not None:
            brax_kwargs["backend"] = backend
        with quiet_mujoco_backends():
            self.brax_env = brax_envs.get_environment(name, **brax_kwargs)
        self.name = f"brax/{name}"
        self.backend = self.brax_env.backend
        self.episode_length = int(episode_length)
        self.default_params = BraxParams(
            # A NumPy constant, not jnp.asarray: params built while a function is traced (e.g.
            # evaluate under jax.jit) then stay concrete, so the horizon can be read from them.
            max_steps_in_episode=np.int32(self.episode_length)
        )
        # brax's ``observation_size`` runs ``reset`` eagerly, op by op (seconds on CPU); tracing it
        # abstractly gives the same shape without executing anything.
        obs = jax.eval_shape(self.brax_env.reset, jax.random.PRNGKey(0)).obs
        if not isinstance(obs, jax.ShapeDtypeStruct) or len(obs.shape) != 1:
            raise TypeError(
                f"brax environment {name!r} has observations {obs!r}; "
                "only flat vector observations are supported"
            )
        (obs_size,) = obs.shape
        self.observation_spec = Box.make(-np.inf, np.inf, (obs_size,))
        self.action_spec = Box.make(-1.0, 1.0, (int(self.brax_env.action_size),))

    def reset_raw(self, key, params):
        brax_state = canonical_state(self.brax_env.reset(key), "pipeline_state")
        return BraxState(brax_state, jnp.zeros((), jnp.int32)), brax_state.obs

    def step_raw(self, key, state, action, params):
        del key  # brax dynamics are deterministic
        action = jnp.asarray(action, jnp.float32)
        # brax's step updates ``state.metrics`` in place: hand it copies, keep the originals as the
        # template of structure and dtypes.
        like = state.brax_state
        brax_state = self.brax_env.step(
            like.replace(metrics=dict(like.metrics), info=dict(like.info)), action
        )
        brax_state = canonical_state(brax_state, "pipeline_state", like=like)
        time = state.time + 1
        terminated = brax_state.done > 0.5
        truncated = time >= params.max_steps_in_episode
        return BraxState(brax_state, time), brax_state.obs, brax_state.reward, terminated, truncated

    def __repr__(self) -> str:
        return f"BraxEnv({self.name!r}, backend={self.backend!r})"
