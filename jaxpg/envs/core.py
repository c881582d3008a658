"""The one functional environment protocol of jaxpg.

Every environment, whatever its backend, is driven through two pure functions::

    state, obs = env.reset(key, params)
    state, ts  = env.step(key, state, action, params)

* ``params`` is a pytree (a flax struct), so a batch of environment variants ("levels") is
  vmapped exactly like a batch of seeds.
* ``ts`` is a :class:`TimeStep`. Termination (the MDP reached an absorbing state: do not
  bootstrap) and truncation (a time limit cut the episode: bootstrap from ``ts.final_obs``) are
  kept apart.
* Episodes auto-reset: when ``terminated | truncated``, ``ts.obs`` is the first observation of the
  next episode while ``ts.final_obs`` keeps the observation the transition really reached, so a
  truncated episode can be bootstrapped with ``V(final_obs)``.
* The wrapper state carries the running episode return and length; ``ts.info`` reports them for the
  episode that just ended (read them where ``done``).

Backends implement only ``reset_raw`` / ``step_raw`` (no auto-reset, no bookkeeping); this module
adds the rest once, so auto-reset and episode statistics behave the same for gymnax and brax.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


@dataclasses.dataclass(frozen=True)
class Discrete:
    """``n`` discrete actions, encoded as an int32 scalar in ``[0, n)``."""

    n: int
    shape: tuple[int, ...] = ()
    dtype: Any = jnp.int32


@dataclasses.dataclass(frozen=True)
class Box:
    """A real-valued array of ``shape`` with elementwise bounds ``low <= x <= high``."""

    low: np.ndarray
    high: np.ndarray
    shape: tuple[int, ...]
    dtype: Any = jnp.float32

    @classmethod
    def make(cls, low, high, shape) -> "Box":
        shape = tuple(int(s) for s in shape)
        low = np.broadcast_to(np.asarray(low, np.float32), shape).copy()
        high = np.broadcast_to(np.asarray(high, np.float32), shape).copy()
        return cls(low=low, high=high, shape=shape)

    @property
    def bounded(self) -> bool:
        """True when every coordinate has finite bounds (so actions can be squashed into them)."""
        return bool(np.all(np.isfinite(self.low)) and np.all(np.isfinite(self.high)))

    def __hash__(self):  # numpy fields are unhashable; specs are compared by value
        return hash((self.shape, self.low.tobytes(), self.high.tobytes()))

    def __eq__(self, other):
        return (
            isinstance(other, Box)
            and self.shape == other.shape
            and np.array_equal(self.low, other.low)
            and np.array_equal(self.high, other.high)
        )


@struct.dataclass
class TimeStep:
    """What one environment step returns.

    Attributes:
      obs: observation to act on next (the reset observation if the episode just ended).
      reward: float32 reward of the transition.
      terminated: the transition entered an absorbing state (value of the next state is 0).
      truncated: a time limit ended the episode (bootstrap from ``final_obs``); never both.
      final_obs: the observation the transition reached, before any auto-reset.
      info: ``episode_return`` and ``episode_length`` of the episode so far, including this step;
        they are the completed episode's statistics where ``terminated | truncated``.
    """

    obs: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    final_obs: jax.Array
    info: dict

    @property
    def done(self) -> jax.Array:
        return jnp.logical_or(self.terminated, self.truncated)


@struct.dataclass
class EnvState:
    """Backend state plus the running statistics of the current episode."""

    inner: Any
    episode_return: jax.Array
    episode_length: jax.Array


def tree_select(pred: jax.Array, on_true: Any, on_false: Any) -> Any:
    """Leafwise ``where(pred, on_true, on_false)`` over two pytrees of the same structure."""
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


class Environment(abc.ABC):
    """Base class: backends implement ``reset_raw`` and ``step_raw``; reset/step are derived."""

    name: str
    observation_spec: Box
    action_spec: Discrete | Box
    default_params: Any

    @abc.abstractmethod
    def reset_raw(self, key: jax.Array, params: Any) -> tuple[Any, jax.Array]:
        """Start an episode: returns ``(backend_state, obs)``."""

    @abc.abstractmethod
    def step_raw(
        self, key: jax.Array, state: Any, action: jax.Array, params: Any
    ) -> tuple[Any, jax.Array, jax.Array, jax.Array, jax.Array]:
        """One transition without auto-reset: ``(state, obs, reward, terminated, truncated)``."""

    # Environments with a space of levels (variants held in ``params``) set this to True and
    # override ``sample_params``; curricula and ``levels="sampled"`` configs draw levels from it.
    has_level_sampler: bool = False

    def sample_params(self, key: jax.Array) -> Any:
        """A random level: params of one environment variant (vmappable over keys)."""
        raise ValueError(f"{self.name} has no level generator; environments with levels: tabular/random, permuted/<env>")

    def reset(self, key: jax.Array, params: Any = None) -> tuple[EnvState, jax.Array]:
        params = self.default_params if params is None else params
        inner, obs = self.reset_raw(key, params)
        zero = jnp.zeros((), jnp.float32)
        return EnvState(inner, zero, jnp.zeros((), jnp.int32)), obs.astype(jnp.float32)

    def step(
        self, key: jax.Array, state: EnvState, action: jax.Array, params: Any = None
    ) -> tuple[EnvState, TimeStep]:
        params = self.default_params if params is None else params
        key_step, key_reset = jax.random.split(key)
        inner, obs, reward, terminated, truncated = self.step_raw(
            key_step, state.inner, action, params
        )
        obs = obs.astype(jnp.float32)
        reward = jnp.asarray(reward, jnp.float32)
        terminated = jnp.asarray(terminated, bool)
        # Termination wins: an episode that ends in an absorbing state on the last allowed step
        # must not be bootstrapped.
        truncated = jnp.logical_and(jnp.asarray(truncated, bool), ~terminated)
        done = jnp.logical_or(terminated, truncated)

        episode_return = state.episode_return + reward
        episode_length = state.episode_length + 1
        reset_inner, reset_obs = self.reset_raw(key_reset, params)
        next_state = EnvState(
            inner=tree_select(done, reset_inner, inner),
            episode_return=jnp.where(done, 0.0, episode_return),
            episode_length=jnp.where(done, 0, episode_length),
        )
        ts = TimeStep(
            obs=jnp.where(done, reset_obs.astype(jnp.float32), obs),
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            final_obs=obs,
            info={"episode_return": episode_return, "episode_length": episode_length},
        )
        return next_state, ts

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class VectorEnv:
    """``num_envs`` copies of an environment stepped in lockstep (one vmap).

    ``params`` is shared by all copies by default; with ``batched_params=True`` every leaf of
    ``params`` carries a leading ``num_envs`` axis, one environment variant (level) per copy.
    """

    def __init__(self, env: Environment, num_envs: int, batched_params: bool = False):
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.env = env
        self.num_envs = int(num_envs)
        self._params_axis = 0 if batched_params else None

    @property
    def default_params(self):
        return self.env.default_params

    def _params(self, params):
        if params is None:
            if self._params_axis is not None:
                raise ValueError("VectorEnv(batched_params=True) needs params with a leading num_envs axis")
            return self.env.default_params
        return params

    def reset(self, key: jax.Array, params: Any = None):
        params = self._params(params)
        keys = jax.random.split(key, self.num_envs)
        return jax.vmap(self.env.reset, in_axes=(0, self._params_axis))(keys, params)

    def step(self, key: jax.Array, state: EnvState, action: jax.Array, params: Any = None):
        params = self._params(params)
        keys = jax.random.split(key, self.num_envs)
        return jax.vmap(self.env.step, in_axes=(0, 0, 0, self._params_axis))(
            keys, state, action, params
        )
