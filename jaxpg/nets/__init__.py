"""flax.linen modules: MLP torsos, value heads, the actor-critic pair, observation normalizer."""

from jaxpg.nets import running_norm
from jaxpg.nets.actor_critic import ActorCritic, PolicyNetwork, flatten_obs
from jaxpg.nets.flow import VelocityField, time_embedding
from jaxpg.nets.mlp import (
    ACTIVATIONS,
    MLP,
    NORMALIZATIONS,
    NORMALIZED_DENSE_PREFIX,
    ValueHead,
    get_activation,
    normalized_kernels_mask,
)
from jaxpg.nets.q_network import ActorCriticWithQ, QNetwork, TwinQNetwork
from jaxpg.nets.running_norm import RunningStats

__all__ = [
    "ACTIVATIONS",
    "ActorCritic",
    "ActorCriticWithQ",
    "MLP",
    "NORMALIZATIONS",
    "NORMALIZED_DENSE_PREFIX",
    "PolicyNetwork",
    "QNetwork",
    "RunningStats",
    "TwinQNetwork",
    "ValueHead",
    "VelocityField",
    "flatten_obs",
    "get_activation",
    "normalized_kernels_mask",
    "running_norm",
    "time_embedding",
]
