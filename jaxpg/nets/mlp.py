"""flax.linen building blocks: MLP torsos and the actor-critic pair used by the algorithms."""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
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


NORMALIZATIONS = ("none", "layer_norm", "rms_norm")

# Dense layers whose output feeds a normalization are named with this prefix, so that
# normalized_kernels_mask can find exactly the scale-invariant kernels by their path.
NORMALIZED_DENSE_PREFIX = "NormalizedDense"


def normalized_kernels_mask(params):
    """True for the kernels of the normalized dense layers of jaxpg networks (those that feed a
    normalization, hence scale-invariant): the mask to hand to ``jaxpg.optim.nap``."""

    def is_normalized_kernel(path, _):
        names = [str(getattr(k, "key", getattr(k, "name", ""))) for k in path]
        return bool(names) and names[-1] == "kernel" and any(n.startswith(NORMALIZED_DENSE_PREFIX) for n in names[:-1])

    return jax.tree_util.tree_map_with_path(is_normalized_kernel, params)


def _normalization_layer(kind: str):
    # No learnable scale or offset: the hidden layer is then exactly invariant to the scale of
    # its kernel, and there is no free per-unit gain left for NaP to control (Lyle et al. 2024,
    # section on normalization parameters; the "simpler alternative" of the reference notes).
    if kind == "layer_norm":
        return nn.LayerNorm(use_scale=False, use_bias=False)
    if kind == "rms_norm":
        return nn.RMSNorm(use_scale=False)
    raise ValueError(f"unknown normalization {kind!r}; valid choices: {', '.join(NORMALIZATIONS)}")


class MLP(nn.Module):
    """``x -> act(Dense(x))`` repeated once per hidden size, or with ``normalization`` set,
    ``x -> act(Norm(W x))``: a normalization before every nonlinearity (the NaP layout of
    Lyle et al. 2024, "Normalization and effective learning rates in reinforcement learning").

    Orthogonal initialization with gain sqrt(2) and zero biases, the PPO-implementation default
    (Engstrom et al. 2020, "Implementation Matters in Deep Policy Gradients"). Normalized layers
    have no bias: the normalization's centring would remove it anyway.
    """

    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    normalization: str = "none"

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        act = get_activation(self.activation)
        for i, size in enumerate(self.hidden_sizes):
            if self.normalization == "none":
                x = nn.Dense(size, kernel_init=orthogonal(np.sqrt(2.0)))(x)
            else:
                dense = nn.Dense(size, use_bias=False, kernel_init=orthogonal(np.sqrt(2.0)),
                                 name=f"{NORMALIZED_DENSE_PREFIX}_{i}")
                x = _normalization_layer(self.normalization)(dense(x))
            x = act(x)
        return x


class ValueHead(nn.Module):
    """Scalar state value from torso features (orthogonal init, gain 1)."""

    @nn.compact
    def __call__(self, features: jnp.ndarray) -> jnp.ndarray:
        return nn.Dense(1, kernel_init=orthogonal(1.0))(features)[..., 0]
