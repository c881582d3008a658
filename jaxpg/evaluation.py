"""Use a trained policy: ``policy_fn(result)`` and ``evaluate(result, key)``."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxpg import policies
from jaxpg.algos import get_algorithm
from jaxpg.algos.common import Result, normalize_obs
from jaxpg.algos.episodes import collect_episodes, resolve_horizon
from jaxpg.envs import VectorEnv


def _trainer(result: Result):
    if not result.algo:
        raise ValueError("this Result carries no algorithm name; it was not produced by a jaxpg trainer")
    return get_algorithm(result.algo)(result.config)


def _policy(result: Result, trainer):
    stats = result.state.obs_stats
    enabled = result.config.normalize_obs
    return lambda obs: trainer.network.apply(result.params, normalize_obs(stats, obs, enabled), method="policy")


def policy_fn(result: Result, deterministic: bool = True) -> Callable:
    """``obs -> action`` (jittable) for a single trained run (index a sweep's Result first).

    Deterministic: the decoded mode of the policy. Stochastic: ``fn(obs, key)`` samples.
    """
    trainer = _trainer(result)
    policy = _policy(result, trainer)
    expected = tuple(trainer.env.observation_spec.shape)

    def checked(obs):
        obs = jnp.asarray(obs)
        if obs.ndim < len(expected) or obs.shape[obs.ndim - len(expected):] != expected:
            raise ValueError(
                f"policy_fn for {result.config.env} expects observations of shape {expected} "
                f"(or a batch [..., {', '.join(map(str, expected))}]), got shape {obs.shape}"
            )
        return policy(obs)

    if deterministic:
        return lambda obs: policies.mode(checked(obs))
    return lambda obs, key: policies.sample(checked(obs), key).action


def evaluate(result: Result, key: jax.Array, num_episodes: int = 10, deterministic: bool = True) -> jax.Array:
    """Returns of ``num_episodes`` fresh episodes, each run to its end (``[num_episodes]``).

    Episodes run for the environment's time limit (or the config's ``horizon``); jittable. Works
    on a sweep's batched Result by vmapping over its leading axes.
    """
    if isinstance(num_episodes, bool) or not isinstance(num_episodes, (int, np.integer)) or num_episodes < 1:
        raise ValueError(f"num_episodes must be a positive integer, got {num_episodes!r}")
    trainer = _trainer(result)
    batch_ndim = result.state.iteration.ndim
    if batch_ndim:
        keys = jax.random.split(key, result.state.iteration.shape[0])
        return jax.vmap(lambda r, k: evaluate(r, k, num_episodes, deterministic))(result, keys)
    config = result.config
    horizon = resolve_horizon(config, trainer.env)
    batch = collect_episodes(
        VectorEnv(trainer.env, num_episodes),
        _policy(result, trainer),
        key,
        horizon,
        result.state.env_params,
        deterministic=deterministic,
    )
    return batch.episode_returns
