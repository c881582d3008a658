"""Conditional flow matching with straight paths from a fixed prior (Lipman et al. 2023, "Flow
Matching for Generative Modeling"; Liu et al. 2023, "Flow Straight and Fast"), in the convention
GoRL's decoder uses (reference notes: shared/reference/algorithms.md, 4.2 and pitfall 4):

    x_t = t eps + (1 - t) a,   eps ~ N(0, I),  t ~ U[0, 1],   target velocity u = eps - a,

so t = 1 is the prior and t = 0 the data; sampling integrates dx/dt = v(x, t) from t = 1 down to 0
(:func:`jaxpg.policies.integrate_flow`).
"""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
from chex import Array


def flow_matching_loss(velocity: Callable[[Array, Array], Array], actions: Array, noise: Array,
                       t: Array) -> tuple[Array, dict[str, Array]]:
    r"""The conditional flow-matching loss on a batch of data points ``actions [B, d]``:

    .. math:: \mathcal{L}_{FM} = \operatorname{mean}_B \big\| v(x_t, t) - (\epsilon - a) \big\|^2,
              \qquad x_t = t\,\epsilon + (1 - t)\,a

    ``velocity(x_t [B, d], t [B]) -> [B, d]`` is the model (close over any conditioning, e.g. the
    states); ``noise [B, d]`` are the prior draws :math:`\epsilon` and ``t [B]`` the times. Its
    minimizer is the marginal velocity field whose flow carries N(0, I) onto the data's
    distribution. Returns ``(loss, {"target_norm": mean ||eps - a||^2})``.
    """
    t_ = t[..., None]
    x_t = t_ * noise + (1.0 - t_) * actions
    target = noise - actions
    loss = jnp.mean(jnp.sum(jnp.square(velocity(x_t, t) - target), axis=-1))
    return loss, {"target_norm": jnp.mean(jnp.sum(jnp.square(target), axis=-1))}
