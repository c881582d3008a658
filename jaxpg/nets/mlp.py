"""flax.linen building blocks: MLP torsos and the actor-critic pair used by the algorithms."""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxpg.nets.initializers import orthogonal

ACTIVATIONS: dict[str, Callable] = {
    "tanh": nn.tanh,
    "relu": nn.relu,
    "gelu": nn.gelu,
    "silu": nn.silu,
    "elu": nn.elu,
}


def get_activation(name: str) -> Callable:
    """Activation by name, with a one-line error listing the valid names."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid choices: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class MLP(nn.Module):
    """``x -> act(Dense(x))`` repeated once per hidden size.

    Orthogonal initialization with gain sqrt(2) and zero biases, the PPO-implementation default
    (Engstrom et al. 2020, "Implementation Matters in Deep Policy Gradients").
    """

    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        act = get_activation(self.activation)
        for size in self.hidden_sizes:
            x = nn.Dense(size, kernel_init=orthogonal(np.sqrt(2.0)))(x)
            x = act(x)
        return x


class ValueHead(nn.Module):
    """Scalar state value from torso features (orthogonal init, gain 1)."""

    @nn.compact
    def __call__(self, features: jnp.ndarray) -> jnp.ndarray:
        return nn.Dense(1, kernel_init=orthogonal(1.0))(features)[..., 0]
