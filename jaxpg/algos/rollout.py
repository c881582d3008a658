"""One pure rollout for every algorithm: step a ``VectorEnv`` with any policy.

``rollout`` runs ``num_steps`` steps from given environment states (on-policy segments, e.g. PPO);
``collect_episodes`` runs whole episodes from fresh resets for a fixed horizon and masks the
steps after each episode's end (Monte-Carlo methods: REINFORCE, GPOMDP, the HARPG family, and
evaluation). Both return time-major :class:`Transition` pytrees ``[T, num_envs, ...]``.

The policy is ``act(obs, key) -> (ActionSample, extras)``: what it sampled (latent, action,
log-prob) and any per-step pytree the algorithm wants kept (e.g. ``{"value": V(obs)}``).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import struct

from jaxpg import prng
from jaxpg.envs import VectorEnv
from jaxpg.policies import ActionSample

ActFn = Callable[[jax.Array, jax.Array], tuple[ActionSample, Any]]


@struct.dataclass
class Transition:
    """One step of every env copy; stacked by ``rollout`` into ``[T, num_envs, ...]``.

    ``obs`` is the observation acted on; ``final_obs`` the one the transition reached (before any
    auto-reset; bootstrap from it where ``truncated``). ``episode_return``/``episode_length`` are
    the running statistics including this step: a completed episode's where ``done``.
    """

    obs: jax.Array
    latent: jax.Array
    action: jax.Array
    log_prob: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    final_obs: jax.Array
    episode_return: jax.Array
    episode_length: jax.Array
    extras: Any

    @property
    def done(self) -> jax.Array:
        return jnp.logical_or(self.terminated, self.truncated)


def rollout(venv: VectorEnv, act: ActFn, key: jax.Array, env_state: Any, obs: jax.Array, num_steps: int,
            env_params: Any) -> tuple[Any, jax.Array, Transition]:
    """``num_steps`` steps of ``venv`` from ``(env_state, obs)`` in one ``lax.scan``.

    Returns the final environment state and observation (to continue from) and the transitions.
    Each step splits its key into the policy's and the environment's. The keys are re-typed to
    :func:`jaxpg.prng.unrolled` (the same random numbers, without XLA:CPU's per-call loop).
    """
    key = prng.unrolled(key)

    def env_step(carry, step_key):
        env_state, obs = carry
        key_act, key_env = jax.random.split(step_key)
        sample, extras = act(obs, key_act)
        env_state, ts = venv.step(key_env, env_state, sample.action, env_params)
        transition = Transition(
            obs=obs,
            latent=sample.latent,
            action=sample.action,
            log_prob=sample.log_prob,
            reward=ts.reward,
            terminated=ts.terminated,
            truncated=ts.truncated,
            final_obs=ts.final_obs,
            episode_return=ts.info["episode_return"],
            episode_length=ts.info["episode_length"],
            extras=extras,
        )
        return (env_state, ts.obs), transition

    (env_state, obs), transitions = jax.lax.scan(env_step, (env_state, obs), jax.random.split(key, num_steps))
    return env_state, obs, transitions


@struct.dataclass
class EpisodeBatch:
    """Whole episodes ``[H, B, ...]``; ``mask`` is 1.0 on real steps and 0.0 after an episode ended."""

    transitions: Transition
    mask: jax.Array

    @property
    def episode_returns(self) -> jax.Array:
        """Undiscounted return of each of the B episodes, [B]."""
        return (self.transitions.reward * self.mask).sum(0)

    @property
    def episode_lengths(self) -> jax.Array:
        return self.mask.sum(0)


def collect_episodes(venv: VectorEnv, act: ActFn, key: jax.Array, horizon: int, env_params: Any) -> EpisodeBatch:
    """Run ``venv.num_envs`` episodes from fresh resets for ``horizon`` steps.

    Step ``t`` of a copy is real (mask 1) while no episode end happened before ``t``; after its
    first end the auto-reset environment keeps running and the steps are padding.
    """
    key_reset, key_steps = jax.random.split(key)
    env_state, obs = venv.reset(key_reset, env_params)
    _, _, transitions = rollout(venv, act, key_steps, env_state, obs, horizon, env_params)
    ended_before = jnp.cumsum(transitions.done, axis=0) - transitions.done  # ends strictly before t
    return EpisodeBatch(transitions=transitions, mask=(ended_before == 0).astype(jnp.float32))


def sampling(policy_fn: Callable) -> ActFn:
    """``act`` that samples from ``policy_fn(obs)`` (a policy) and keeps no extras."""
    return lambda obs, key: (policy_fn(obs).sample_and_log_prob(key), {})


def deterministic(policy_fn: Callable) -> ActFn:
    """``act`` that takes the policy's mode (evaluation)."""
    return lambda obs, key: (policy_fn(obs).mode_sample(), {})


def completed_returns_per_env(transitions: Transition, previous: jax.Array) -> jax.Array:
    """Per env copy: the mean return of the episodes that ended in ``transitions``, or
    ``previous[env]`` where none did (``[num_envs]``; per-level returns for curricula)."""
    done = transitions.done.astype(jnp.float32)
    count = done.sum(0)
    mean = (done * transitions.episode_return).sum(0) / jnp.maximum(count, 1.0)
    return jnp.where(count > 0, mean, previous)
