"""Policies: distrax action distributions built from network outputs and the action spec."""

from jaxpg.policies.distributions import (
    ActionSample,
    SquashedDistribution,
    decode,
    entropy,
    log_prob,
    mode,
    mode_sample,
    sample,
    tanh_gaussian,
)
from jaxpg.policies.heads import STD_MODES, CategoricalHead, GaussianHead, policy_head

__all__ = [
    "ActionSample",
    "CategoricalHead",
    "GaussianHead",
    "STD_MODES",
    "SquashedDistribution",
    "decode",
    "entropy",
    "log_prob",
    "mode",
    "mode_sample",
    "policy_head",
    "sample",
    "tanh_gaussian",
]
