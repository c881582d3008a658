"""Policy regularisers."""

from __future__ import annotations

import chex
import jax.numpy as jnp

from .normalize import masked_mean

Array = chex.Array


def entropy_loss(entropies: Array, mask: Array | None = None) -> tuple[Array, dict[str, Array]]:
    r"""Negative mean policy entropy, to be *added* to a loss with a positive coefficient.

    .. math:: \mathcal{L}_H = -\operatorname{mean}_m\big(\mathcal{H}[\pi(\cdot \mid s)]\big)

    Minimising ``coef * entropy_loss`` maximises entropy, discouraging premature collapse of the
    policy (Williams & Peng 1991, "Function optimization using connectionist reinforcement learning
    algorithms"; used as in Schulman et al. 2017, "Proximal Policy Optimization Algorithms", eq. 9).

    Args:
      entropies: ``[...]`` per-step entropies of the policy distribution.
      mask: ``None`` or a bool/float validity mask of the same shape.

    Returns:
      ``(loss, aux)``: the scalar loss and ``{"entropy": mean entropy}`` (its negative).
    """
    entropy = masked_mean(entropies, mask)
    return -entropy, {"entropy": entropy}


def kl_to_standard_normal(mean: Array, std: Array, mask: Array | None = None) -> tuple[Array, dict[str, Array]]:
    r"""Mean KL divergence of diagonal Gaussians ``N(mean, std^2)`` (event axis last) from the
    standard normal prior:

    .. math:: \mathrm{KL}\big(\mathcal N(\mu, \sigma^2) \,\|\, \mathcal N(0, I)\big)
              = \sum_i \Big(\tfrac{1}{2}(\sigma_i^2 + \mu_i^2 - 1) - \log \sigma_i\Big)

    GoRL's pull of the latent policy toward the prior its decoder was trained on (the paper's "KL
    penalty toward N(0, I)"; its code's ``c (mu^2 + sigma^2)`` pulls sigma to 0 instead, reference
    notes 4.6 pitfall 2). Zero exactly at mean 0, std 1.
    """
    kl = jnp.sum(0.5 * (jnp.square(std) + jnp.square(mean) - 1.0) - jnp.log(std), axis=-1)
    value = masked_mean(kl, mask)
    return value, {"latent_kl": value}
