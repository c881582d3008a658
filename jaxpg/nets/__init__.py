"""flax.linen modules: MLP torsos, value heads, the actor-critic pair, observation normalizer."""

from jaxpg.nets import running_norm
from jaxpg.nets.actor_critic import ActorCritic, PolicyNetwork
from jaxpg.nets.mlp import ACTIVATIONS, MLP, NORMALIZATIONS, NORMALIZED_DENSE_PREFIX, ValueHead, get_activation
from jaxpg.nets.running_norm import RunningStats

__all__ = ["ACTIVATIONS", "ActorCritic", "MLP", "NORMALIZATIONS", "NORMALIZED_DENSE_PREFIX", "PolicyNetwork", "RunningStats", "ValueHead", "get_activation", "running_norm"]
