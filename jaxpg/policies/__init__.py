"""Policies: distrax action distributions built from network outputs and the action spec."""

from jaxpg.policies.distributions import (
    ActionSample,
    decode,
    entropy,
    log_prob,
    mode,
    sample,
    tanh_gaussian,
)
from jaxpg.policies.heads import STD_MODES, CategoricalHead, GaussianHead, policy_head

__all__ = [
    "ActionSample",
    "CategoricalHead",
    "GaussianHead",
    "STD_MODES",
    "decode",
    "entropy",
    "log_prob",
    "mode",
    "policy_head",
    "sample",
    "tanh_gaussian",
]
