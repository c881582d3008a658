"""DeepMind Control Suite tasks from MuJoCo Playground under the jaxpg protocol.

MuJoCo Playground (Zakka et al. 2025, "MuJoCo Playground", https://playground.mujoco.org; PyPI
package ``playground``, module ``mujoco_playground``) re-implements the DeepMind Control Suite
(Tassa et al. 2018) in MJX, so a whole batch of tasks steps on an accelerator inside ``jax.jit``.
Only the DMC suite (``"playground/CartpoleBalance"``, ``"playground/CheetahRun"``, ... — see
:data:`jaxpg.envs.PLAYGROUND_ENVS`) is exposed here.

It is an *optional* extra: ``pip install -e ".[playground]"``. ``mujoco_playground`` is imported
only when an environment is built, never at ``import jaxpg``.

Real runs need a GPU. On CPU, MJX is fit for tests and smoke runs only: measured on a 2-core CPU
(4 copies, jitted 200-step scan), CartpoleBalance compiles in ~9 s and steps in ~0.01 ms, but
CheetahRun (contacts) compiles in ~60 s and takes ~19 ms per environment step. The physics uses
MJX's ``"jax"`` implementation by default (CPU and GPU); on an NVIDIA GPU with ``warp-lang``
installed, ``impl="warp"`` selects Playground's own default, MuJoCo Warp.

Like the brax adapter, the raw Playground environment is used without its wrappers: the time
limit lives in :class:`PlaygroundParams` (a pytree, so it can differ per vmapped copy) and
auto-reset, episode statistics and vectorization come from :mod:`jaxpg.envs.core`. Playground's
``State.done`` (state-based DMC tasks set it only when the physics diverges to NaN) becomes
``terminated``; the time limit (1000 steps by default, the DMC convention) becomes ``truncated``,
so a truncated episode is bootstrapped from ``ts.final_obs``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxpg.envs.core import Box, Environment
from jaxpg.envs.mujoco_common import canonical_state, quiet_mujoco_backends

INSTALL_HINT = 'pip install -e ".[playground]"'

VALID_IMPLS: tuple[str, ...] = ("jax", "warp")


def load_dm_control_suite():
    """``mujoco_playground.dm_control_suite``, imported on first use.

    Raises:
      ImportError: (one line) naming the extra to install when ``mujoco_playground`` or one of the
        packages it imports is missing.
    """
    try:
        with quiet_mujoco_backends():
            from mujoco_playground import dm_control_suite
    except ImportError as error:
        raise ImportError(
            f"MuJoCo Playground environments need the optional 'playground' extra: {INSTALL_HINT} "
            f"({type(error).__name__}: {error})"
        ) from error
    return dm_control_suite


@struct.dataclass
class PlaygroundParams:
    """Environment parameters of a Playground task (a pytree: vmappable per copy/level).

    Attributes:
      max_steps_in_episode: int32 time limit; the step that reaches it is ``truncated``.
    """

    max_steps_in_episode: jax.Array


@struct.dataclass
class PlaygroundState:
    """Backend state: Playground's ``State`` (MJX data, obs, reward, done, metrics, info) and the
    number of steps taken in the current episode."""

    pg_state: Any
    time: jax.Array


def _raw_key(key: jax.Array) -> jax.Array:
    """``key`` as raw ``uint32`` key data.

    Playground keeps the reset key in ``state.info["rng"]``. jaxpg re-types keys inside rollouts
    (:func:`jaxpg.prng.unrolled`), so typed keys of two PRNG implementations could meet in one
    ``tree_select``; raw key data (the same bits) has one dtype whatever the implementation.
    """
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return key


class PlaygroundEnv(Environment):
    """Adapter over ``mujoco_playground.dm_control_suite.load(name)``.

    Args:
      name: DMC task name as Playground spells it (``"CartpoleBalance"``; a ``"playground/"``
        prefix is accepted).
      episode_length: default ``max_steps_in_episode`` (time limit -> ``truncated``); 1000, the
        DMC convention.
      impl: MJX implementation, one of :data:`VALID_IMPLS`: ``"jax"`` (default; runs on CPU and
        GPU) or ``"warp"`` (MuJoCo Warp; NVIDIA GPU and ``warp-lang`` only).
      config_overrides: further entries of the task's Playground config (e.g. ``{"ctrl_dt":
        0.02}``), as ``dm_control_suite.load(config_overrides=...)`` takes them.

    Actions live in ``[-1, 1]`` (every DMC actuator's control range) and are clipped to it;
    ``step`` is deterministic, only ``reset`` uses the key.
    """

    def __init__(
        self,
        name: str,
        episode_length: int = 1000,
        impl: str = "jax",
        config_overrides: dict | None = None,
    ):
        name = name[len("playground/") :] if name.startswith("playground/") else name
        suite = load_dm_control_suite()
        valid = tuple(suite.ALL_ENVS)
        if name not in valid:
            raise ValueError(
                f"unknown MuJoCo Playground DMC task {name!r}; valid choices: {', '.join(valid)}"
            )
        if impl not in VALID_IMPLS:
            raise ValueError(
                f"unknown MJX implementation {impl!r}; valid choices: {', '.join(VALID_IMPLS)}"
            )
        if int(episode_length) < 1:
            raise ValueError(f"episode_length must be a positive integer, got {episode_length!r}")
        overrides = {"impl": impl, **dict(config_overrides or {})}
        with quiet_mujoco_backends():
            self.pg_env = suite.load(name, config_overrides=overrides)
        self.name = f"playground/{name}"
        self.impl = impl
        self.episode_length = int(episode_length)
        self.default_params = PlaygroundParams(
            # A NumPy constant, not jnp.asarray: params built while a function is traced (e.g.
            # evaluate under jax.jit) then stay concrete, so the horizon can be read from them.
            max_steps_in_episode=np.int32(self.episode_length)
        )
        # Tracing ``reset`` abstractly gives the observation shape without executing anything.
        obs = jax.eval_shape(self.pg_env.reset, jax.random.PRNGKey(0)).obs
        if not isinstance(obs, jax.ShapeDtypeStruct) or len(obs.shape) != 1:
            raise TypeError(
                f"MuJoCo Playground task {name!r} has observations {obs!r}; "
                "only flat vector observations are supported"
            )
        (obs_size,) = obs.shape
        self.observation_spec = Box.make(-np.inf, np.inf, (obs_size,))
        self.action_spec = Box.make(-1.0, 1.0, (int(self.pg_env.action_size),))

    def reset_raw(self, key, params):
        pg_state = canonical_state(self.pg_env.reset(_raw_key(key)), "data")
        return PlaygroundState(pg_state, jnp.zeros((), jnp.int32)), pg_state.obs

    def step_raw(self, key, state, action, params):
        del key  # DMC dynamics are deterministic
        action = jnp.clip(jnp.asarray(action, jnp.float32), -1.0, 1.0)
        like = state.pg_state
        # Hand the task copies of the metrics/info dicts; keep the originals as the template of
        # structure and dtypes.
        pg_state = self.pg_env.step(
            like.replace(metrics=dict(like.metrics), info=dict(like.info)), action
        )
        pg_state = canonical_state(pg_state, "data", like=like)
        time = state.time + 1
        terminated = pg_state.done > 0.5
        truncated = time >= params.max_steps_in_episode
        return PlaygroundState(pg_state, time), pg_state.obs, pg_state.reward, terminated, truncated

    def __repr__(self) -> str:
        return f"PlaygroundEnv({self.name!r}, impl={self.impl!r})"
