"""State-action value networks: ``Q(s, a)`` and a twin pair with independent parameters."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxpg.nets.actor_critic import ActorCritic, flatten_obs
from jaxpg.nets.mlp import MLP


class QNetwork(nn.Module):
    """``(obs, action) -> Q(obs, action)``: an MLP on the concatenated (flattened) observation and
    action vector, a linear scalar output."""

    obs_ndim: int = 1
    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"
    normalization: str = "none"

    @nn.compact
    def __call__(self, obs, action):
        x = jnp.concatenate([flatten_obs(obs, self.obs_ndim), jnp.asarray(action, jnp.float32)], axis=-1)
        features = MLP(self.hidden_sizes, self.activation, self.normalization)(x)
        return nn.Dense(1)(features)[..., 0]


class TwinQNetwork(nn.Module):
    """Two :class:`QNetwork` s with their own parameters (clipped double Q, Fujimoto et al. 2018):
    ``(obs, action) -> Q [2, ...]``, one parameter set stacked on a leading axis of 2 (one
    vectorized computation for both)."""

    obs_ndim: int = 1
    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"
    normalization: str = "none"

    @nn.compact
    def __call__(self, obs, action):
        twin = nn.vmap(QNetwork, variable_axes={"params": 0}, split_rngs={"params": True}, in_axes=None,
                       out_axes=0, axis_size=2)
        return twin(self.obs_ndim, self.hidden_sizes, self.activation, self.normalization, name="q")(obs, action)


class ActorCriticWithQ(ActorCritic):
    """:class:`ActorCritic` plus an auxiliary ``Q(obs, action)`` with its own MLP (PMOE-PPO's
    critic of candidate actions, Ren et al. 2021): ``q`` is a method, so one parameter tree and
    one optimizer hold all three networks. ``init`` through ``__call__`` creates the Q network's
    parameters too (with the policy's mode as the example action)."""

    def setup(self):
        super().setup()
        self.q_network = QNetwork(self.obs_ndim, self.hidden_sizes, self.activation, self.normalization)

    def __call__(self, obs):
        policy, value = super().__call__(obs)
        if self.is_initializing():
            self.q(obs, policy.mode())
        return policy, value

    def q(self, obs, action):
        return self.q_network(obs, action)
