"""Policy regularisers."""

from __future__ import annotations

import chex

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
