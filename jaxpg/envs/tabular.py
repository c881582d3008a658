"""Small tabular MDPs whose expected return is known exactly (for known-answer tests).

States are observed one-hot. ``params`` (a pytree) hold the transition tensor ``P[s, a, s']``, the
reward table ``R[s, a]``, the initial distribution ``mu[s]`` and the horizon, so a batch of MDPs
is vmapped like a batch of seeds. Episodes never terminate; they are truncated at the horizon.

:func:`exact_return` computes J = E[sum_{t < H} gamma^t r_t] under a state-conditional action
distribution by propagating the state distribution forward, a differentiable function of the
policy: ``jax.grad`` / ``jax.hessian`` of it are the exact gradient and Hessian of J.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from jaxpg.envs.core import Box, Discrete, Environment


@struct.dataclass
class TabularParams:
    transitions: jax.Array  # [S, A, S], rows sum to 1
    rewards: jax.Array  # [S, A]
    initial: jax.Array  # [S]
    max_steps_in_episode: jax.Array  # horizon H


@struct.dataclass
class TabularState:
    state: jax.Array
    time: jax.Array


def random_mdp(key: jax.Array, num_states: int = 3, num_actions: int = 2, horizon: int = 4) -> TabularParams:
    """A random MDP: Dirichlet(1) transitions and initial distribution, U[0, 1] rewards."""
    k_p, k_r, k_mu = jax.random.split(key, 3)
    transitions = jax.random.dirichlet(k_p, jnp.ones(num_states), (num_states, num_actions))
    rewards = jax.random.uniform(k_r, (num_states, num_actions))
    initial = jax.random.dirichlet(k_mu, jnp.ones(num_states))
    return TabularParams(transitions, rewards, initial, jnp.asarray(horizon, jnp.int32))


class TabularMDP(Environment):
    """``make("tabular/random", num_states=3, num_actions=2, horizon=4, seed=0)``."""

    def __init__(self, num_states: int = 3, num_actions: int = 2, horizon: int = 4, seed: int = 0):
        for name, value in (("num_states", num_states), ("num_actions", num_actions), ("horizon", horizon)):
            if int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.name = "tabular/random"
        self.num_states, self.num_actions = int(num_states), int(num_actions)
        self.default_params = random_mdp(jax.random.key(seed), self.num_states, self.num_actions, int(horizon))
        self.observation_spec = Box.make(0.0, 1.0, (self.num_states,))
        self.action_spec = Discrete(self.num_actions)

    has_level_sampler = True

    def sample_params(self, key: jax.Array) -> TabularParams:
        """A level: a random MDP of the same sizes and horizon (see :func:`random_mdp`)."""
        horizon = int(self.default_params.max_steps_in_episode)
        return random_mdp(key, self.num_states, self.num_actions, horizon)

    def _obs(self, state):
        return jax.nn.one_hot(state, self.num_states, dtype=jnp.float32)

    def reset_raw(self, key, params):
        state = jax.random.categorical(key, jnp.log(params.initial))
        return TabularState(state, jnp.zeros((), jnp.int32)), self._obs(state)

    def step_raw(self, key, state, action, params):
        reward = params.rewards[state.state, action]
        next_state = jax.random.categorical(key, jnp.log(params.transitions[state.state, action]))
        time = state.time + 1
        truncated = time >= params.max_steps_in_episode
        return TabularState(next_state, time), self._obs(next_state), reward, jnp.zeros((), bool), truncated


def exact_return(params: TabularParams, action_probs: jax.Array, gamma, horizon: int) -> jax.Array:
    """``J = sum_{t < H} gamma^t sum_s d_t(s) sum_a pi(a|s) R(s, a)`` with ``d_0 = mu``.

    ``action_probs[s, a] = pi(a | s)``; differentiable in it (and in params).
    """

    def step(d, t):
        expected_reward = (d[:, None] * action_probs * params.rewards).sum()
        d_next = jnp.einsum("s,sa,sap->p", d, action_probs, params.transitions)
        return d_next, gamma**t * expected_reward

    _, rewards = jax.lax.scan(step, params.initial, jnp.arange(horizon, dtype=jnp.float32))
    return rewards.sum()
