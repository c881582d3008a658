"""Use a trained policy: ``policy_fn(result)`` and ``evaluate(result, key)``."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxpg.algos import get_algorithm
from jaxpg.algos.common import resolve_horizon
from jaxpg.algos.rollout import collect_episodes, deterministic as deterministic_act, sampling
from jaxpg.algos.trainer import Result
from jaxpg.envs import VectorEnv


def _trainer(result: Result):
    if not result.algo:
        raise ValueError("this Result carries no algorithm name; it was not produced by a jaxpg trainer")
    return get_algorithm(result.algo)(result.config)


def _policy(result: Result, trainer):
    return lambda obs: trainer.policy(result.state, obs)


def policy_fn(result: Result, deterministic: bool = True) -> Callable:
    """``obs -> action`` (jittable) for a single trained run (index a sweep's Result first).

    Deterministic: the decoded mode of the policy. Stochastic: ``fn(obs, key)`` samples.
    """
    trainer = _trainer(result)
    if hasattr(trainer, "policy_function"):  # trainers that do not act in an Environment (token tasks)
        return trainer.policy_function(result, deterministic)
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
        return lambda obs: checked(obs).mode()
    return lambda obs, key: checked(obs).sample_and_log_prob(key).action


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
    if hasattr(trainer, "evaluate_result"):  # token tasks: one response per fresh prompt
        return trainer.evaluate_result(result, key, num_episodes, deterministic)
    horizon = resolve_horizon(result.config, trainer.env)
    policy = _policy(result, trainer)
    act = deterministic_act(policy) if deterministic else sampling(policy)
    env_params = result.state.env_params
    # A run on one level per env copy is evaluated on its first level (pass a Result whose
    # state holds the level you want for another).
    if result.config.levels == "sampled":
        env_params = jax.tree.map(lambda x: x[0], env_params)
    batch = collect_episodes(VectorEnv(trainer.env, num_episodes), act, key, horizon, env_params)
    return batch.episode_returns
