"""Policies: distribution objects that sample and score a latent and decode it to the action,
and the network heads that build them from the action spec."""

from jaxpg.policies.distributions import (
    ActionSample,
    Categorical,
    DecodedPolicy,
    Gaussian,
    Mixture,
    Policy,
    SquashedGaussian,
)
from jaxpg.policies.flow import INTEGRATORS, integrate_flow
from jaxpg.policies.heads import STD_MODES, CategoricalHead, GaussianHead, MixtureOfExpertsHead, policy_head

__all__ = [
    "ActionSample",
    "Categorical",
    "CategoricalHead",
    "DecodedPolicy",
    "Gaussian",
    "INTEGRATORS",
    "GaussianHead",
    "Mixture",
    "MixtureOfExpertsHead",
    "Policy",
    "STD_MODES",
    "SquashedGaussian",
    "integrate_flow",
    "policy_head",
]
