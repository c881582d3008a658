"""Optimizer pieces in the optax style (pure functions and GradientTransformations)."""

from jaxpg.optim.gns import (
    CGInfo,
    ScaleByGNSState,
    conjugate_gradient,
    fisher_vector_product,
    gns_accepts,
    gns_adapt_gamma,
    gns_direction,
    gns_lambda,
    scale_by_gns,
)
from jaxpg.optim.nap import (
    NaPState,
    effective_learning_rates,
    initial_norms,
    nap,
    project,
    weight_norms,
)
from jaxpg.optim.normalized import global_norm, normalized_step
from jaxpg.optim.sinkgd import NONMATRIX_RULES, normalize_leaf, scale_by_sinkhorn, sinkgd, sinkhorn_normalize

__all__ = [
    "CGInfo",
    "NONMATRIX_RULES",
    "NaPState",
    "ScaleByGNSState",
    "conjugate_gradient",
    "effective_learning_rates",
    "fisher_vector_product",
    "global_norm",
    "gns_accepts",
    "gns_adapt_gamma",
    "gns_direction",
    "gns_lambda",
    "initial_norms",
    "nap",
    "normalize_leaf",
    "normalized_step",
    "project",
    "scale_by_gns",
    "scale_by_sinkhorn",
    "sinkgd",
    "sinkhorn_normalize",
    "weight_norms",
]
