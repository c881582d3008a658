"""The actor-critic network pair: separate MLP torsos for the policy and the value function.

The policy head (features -> policy object) is passed in as a module (``head=``): networks know
nothing of action spaces or policy classes (``jaxpg.policies.policy_head`` builds the head that
fits an action spec), so this layer does not depend on the policies layer above it.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxpg.nets.mlp import MLP, ValueHead


def flatten_obs(obs, obs_ndim: int):
    """Flatten the trailing ``obs_ndim`` observation axes; leading axes are batch axes."""
    obs = jnp.asarray(obs, jnp.float32)
    return obs.reshape(obs.shape[: obs.ndim - obs_ndim] + (-1,))


class ActorCritic(nn.Module):
    """``obs -> (policy, V(obs))``.

    Observations with ``obs_ndim`` trailing dimensions (e.g. MinAtar's 10x10x4 grids) are
    flattened; any leading dimensions are batch dimensions. Actor and critic share no weights,
    the usual choice for PPO on control tasks (Andrychowicz et al. 2021, "What matters in
    on-policy RL").
    """

    head: nn.Module  # features -> policy
    obs_ndim: int = 1
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    normalization: str = "none"

    def setup(self):
        self.actor_torso = MLP(self.hidden_sizes, self.activation, self.normalization)
        self.critic_torso = MLP(self.hidden_sizes, self.activation, self.normalization)
        self.value_head = ValueHead()

    def __call__(self, obs):
        x = flatten_obs(obs, self.obs_ndim)
        return self.head(self.actor_torso(x)), self.value_head(self.critic_torso(x))

    def policy(self, obs):
        return self.head(self.actor_torso(flatten_obs(obs, self.obs_ndim)))

    def value(self, obs):
        return self.value_head(self.critic_torso(flatten_obs(obs, self.obs_ndim)))


class PolicyNetwork(nn.Module):
    """``obs -> policy`` alone (no critic), for Monte-Carlo policy-gradient methods.

    Same torso and heads as :class:`ActorCritic`; ``policy`` is an alias of ``__call__`` so both
    networks serve :func:`jaxpg.policy_fn` alike.
    """

    head: nn.Module  # features -> policy
    obs_ndim: int = 1
    hidden_sizes: Sequence[int] = (32, 32)
    activation: str = "tanh"
    normalization: str = "none"

    def setup(self):
        self.torso = MLP(self.hidden_sizes, self.activation, self.normalization)

    def __call__(self, obs):
        return self.head(self.torso(flatten_obs(obs, self.obs_ndim)))

    def policy(self, obs):
        return self(obs)
