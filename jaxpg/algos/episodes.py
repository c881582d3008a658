"""Batches of whole episodes (trajectories) for Monte-Carlo policy-gradient methods.

REINFORCE/GPOMDP and the Hessian-aided estimators need complete trajectories tau = (s_0, a_0, r_0,
..., s_{H-1}, a_{H-1}, r_{H-1}) of different lengths. We run ``B`` fresh environments for a fixed
horizon ``H`` (one ``lax.scan``) and keep a mask ``alive[t] = no episode end before t``; steps after
the first episode end are padding (the auto-reset environment keeps running, masked out).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import struct

from jaxpg import policies
from jaxpg.envs import VectorEnv


@struct.dataclass
class EpisodeBatch:
    """Time-major arrays ``[H, B, ...]``; ``mask`` is 1.0 on real steps and 0.0 on padding."""

    obs: jax.Array
    latent: jax.Array
    log_prob: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    mask: jax.Array

    @property
    def episode_returns(self) -> jax.Array:
        """Undiscounted return of each of the B episodes, [B]."""
        return (self.reward * self.mask).sum(0)

    @property
    def episode_lengths(self) -> jax.Array:
        return self.mask.sum(0)


def collect_episodes(
    venv: VectorEnv,
    policy: Callable[[jax.Array], Any],
    key: jax.Array,
    horizon: int,
    env_params: Any,
    deterministic: bool = False,
) -> EpisodeBatch:
    """Run ``venv.num_envs`` episodes from fresh resets for ``horizon`` steps.

    ``policy(obs) -> distrax distribution``; ``deterministic=True`` acts with its mode.
    """
    key_reset, key_steps = jax.random.split(key)
    env_state, obs = venv.reset(key_reset, env_params)

    def step(carry, step_key):
        env_state, obs, alive = carry
        key_act, key_env = jax.random.split(step_key)
        dist = policy(obs)
        act = policies.mode_sample(dist) if deterministic else policies.sample(dist, key_act)
        env_state, ts = venv.step(key_env, env_state, act.action, env_params)
        out = (obs, act.latent, act.log_prob, ts.reward, ts.terminated, ts.truncated, alive)
        return (env_state, ts.obs, jnp.logical_and(alive, ~ts.done)), out

    alive = jnp.ones((venv.num_envs,), bool)
    _, (obs, latent, log_prob, reward, terminated, truncated, mask) = jax.lax.scan(
        step, (env_state, obs, alive), jax.random.split(key_steps, horizon)
    )
    return EpisodeBatch(
        obs=obs,
        latent=latent,
        log_prob=log_prob,
        reward=reward,
        terminated=terminated,
        truncated=truncated,
        mask=mask.astype(jnp.float32),
    )


def resolve_horizon(config, env) -> int:
    """The episode horizon: ``config.horizon`` if the config has one set, else the env's time limit."""
    horizon = getattr(config, "horizon", None)
    if horizon is not None:  # its range is checked with the config (``check_config``)
        return int(horizon)
    limit = getattr(env.default_params, "max_steps_in_episode", None)
    if limit is None:
        raise ValueError(f"{config.env} has no max_steps_in_episode; set horizon=N explicitly")
    return int(limit)
