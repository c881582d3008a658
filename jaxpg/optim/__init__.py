"""Optimizer pieces in the optax style (pure functions and GradientTransformations)."""

from jaxpg.optim.nap import (
    NaPState,
    effective_learning_rates,
    initial_norms,
    nap,
    project,
    weight_norms,
)
from jaxpg.optim.normalized import global_norm, normalized_step

__all__ = [
    "NaPState",
    "effective_learning_rates",
    "global_norm",
    "initial_norms",
    "nap",
    "normalized_step",
    "project",
    "weight_norms",
]
