"""Pure-array losses and return estimators (rlax-style; depends only on jax and chex).

All arrays are time-major (axis 0 is time). Masks are explicit ``None`` (all valid) or bool/float
arrays, and every masked average goes through :func:`masked_mean`.
"""

from .normalize import masked_mean, normalize_advantages
from .policy_gradient import ppo_clip, reinforce_surrogate
from .regularizers import entropy_loss, kl_to_standard_normal
from .returns import discounted_returns, gae
from .flow_matching import flow_matching_loss
from .mixture_of_experts import (
    frequency_loss,
    gumbel_softmax_actor_loss,
    gumbel_softmax_gate,
    pmoe_actor_loss,
    score_function_gate_actor_loss,
)
from .soft_actor_critic import soft_actor_loss, soft_q_targets, temperature_loss
from .value import value_loss

__all__ = [
    "discounted_returns",
    "entropy_loss",
    "flow_matching_loss",
    "frequency_loss",
    "gae",
    "gumbel_softmax_actor_loss",
    "gumbel_softmax_gate",
    "kl_to_standard_normal",
    "masked_mean",
    "normalize_advantages",
    "pmoe_actor_loss",
    "ppo_clip",
    "reinforce_surrogate",
    "score_function_gate_actor_loss",
    "soft_actor_loss",
    "soft_q_targets",
    "temperature_loss",
    "value_loss",
]
