"""Gradient estimators that need more than a loss: score-function Hessian-vector products,
IGT extrapolation and Hessian-aided recursive momentum (Fatkhullin et al., ICML 2023)."""

from jaxpg.estimators.momentum import (
    difference,
    harpg_momentum,
    igt_extrapolation,
    interpolation_point,
    momentum,
    power_schedule,
)
from jaxpg.estimators.score_function import (
    discounted_rewards_to_go,
    gpomdp_surrogate,
    gradient_and_hessian_vector_product,
    hessian_vector_product,
    leave_one_out_baseline,
    policy_gradient,
)

__all__ = [
    "difference",
    "discounted_rewards_to_go",
    "gpomdp_surrogate",
    "gradient_and_hessian_vector_product",
    "harpg_momentum",
    "hessian_vector_product",
    "igt_extrapolation",
    "interpolation_point",
    "leave_one_out_baseline",
    "momentum",
    "policy_gradient",
    "power_schedule",
]
