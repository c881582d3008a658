"""Optimizer pieces in the optax style (pure functions and GradientTransformations)."""

from jaxpg.optim.normalized import global_norm, normalized_step

__all__ = ["global_norm", "normalized_step"]
