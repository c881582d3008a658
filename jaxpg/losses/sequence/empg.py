r"""EMPG: step-level entropy modulation of the advantage for multi-step agents (loss-catalog A6).

Wang, Liu, Fu, Li, Wang, Lin, Yue, Zhang, Wang, Wang 2025, "Harnessing Uncertainty:
Entropy-Modulated Policy Gradients for Long-Horizon LLM Agents" (arXiv:2509.09265; no code
released, the pseudocode ``compute_empg_advantage`` of the project page empgseed-seed.github.io,
Eqs. 10-12). A policy gradient's size grows with the policy's entropy: confident (low-entropy)
steps get small updates, uncertain ones large. EMPG rescales each agent step's advantage by a
decreasing function of the step's entropy, normalized to mean 1 over the batch, and adds a bonus
for steps whose *next* step is confident ("future clarity").

A step is a (response, ``segment_ids`` value) pair with at least one valid token; its entropy is
the mean of ``batch.entropy`` (the sampling policy's) over those tokens.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp

from jaxpg.losses.sequence.advantages import grpo_advantage
from jaxpg.losses.sequence.aggregation import token_mean
from jaxpg.losses.sequence.batch import SequenceBatch, require
from jaxpg.losses.sequence.recipe import PolicyTerm, Recipe

Array = chex.Array


def step_entropy(entropy: Array, segment_ids: Array, mask: Array) -> tuple[Array, Array]:
    """Mean token entropy of each step: ``(H [B, T], valid [B, T])`` indexed by (response, step id);
    ``valid`` marks the steps with at least one valid token (segment ids lie in ``[0, T)``)."""
    t = entropy.shape[1]
    m = (mask != 0).astype(entropy.dtype)

    def one(h, seg, w):
        total = jax.ops.segment_sum(h * w, seg, num_segments=t)
        count = jax.ops.segment_sum(w, seg, num_segments=t)
        return total / jnp.maximum(count, 1.0), count > 0

    return jax.vmap(one)(entropy, segment_ids, m)


def _next_valid(values: Array, valid: Array) -> Array:
    """For each step, ``values`` at the next valid step of the same response (0 after the last)."""

    def one(v, ok):
        def back(carry, x):
            value, is_valid = x
            return jnp.where(is_valid, value, carry), carry

        _, nxt = jax.lax.scan(back, jnp.zeros((), v.dtype), (v, ok), reverse=True)
        return nxt

    return jax.vmap(one)(values, valid)


def empg_step_scales(entropy: Array, segment_ids: Array, mask: Array, *, k: float = 1.0, k_f: float = 1.0,
                     eps: float = 1e-8) -> tuple[Array, Array, Array]:
    r"""EMPG's per-step factors, ``(g, f_next, valid)``, each ``[B, T]`` indexed by (response, step):

    .. math::

       \tilde H_k = \frac{H_k - \min H}{\max H - \min H + \epsilon}, \quad
       g_k = \frac{e^{-k \tilde H_k}}{\operatorname{mean}_{k'} e^{-k \tilde H_{k'}}}, \quad
       f_k = e^{-k_f \tilde H_k}

    with min, max and mean over the valid steps of the batch (Eqs. 10-12), and ``f_next`` the
    f of the next valid step of the same response (0 for a response's last step). The mean of g
    over valid steps is 1 (the pseudocode divides by ``mean + 1e-8``; the mean is at least
    :math:`e^{-k}`, so the exact division is safe and keeps the mean exactly 1).
    """
    h, valid = step_entropy(entropy, segment_ids, mask)
    h_min = jnp.min(jnp.where(valid, h, jnp.inf))
    h_max = jnp.max(jnp.where(valid, h, -jnp.inf))
    any_valid = jnp.any(valid)
    h_min, h_max = jnp.where(any_valid, h_min, 0.0), jnp.where(any_valid, h_max, 0.0)
    h_norm = jnp.where(valid, (h - h_min) / (h_max - h_min + eps), 0.0)
    g_raw = jnp.exp(-k * h_norm)
    mean_g = jnp.sum(jnp.where(valid, g_raw, 0.0)) / jnp.maximum(jnp.sum(valid), 1)
    g = jnp.where(valid, g_raw / jnp.where(any_valid, mean_g, 1.0), 0.0)
    f_next = _next_valid(jnp.exp(-k_f * h_norm), valid)
    return g, jnp.where(valid, f_next, 0.0), valid


def empg_transform(adv: Array, batch: SequenceBatch, *, k: float = 1.0, k_f: float = 1.0, zeta: float = 0.1) -> Array:
    r"""EMPG's modulated advantage, an advantage transform (Wang et al. 2025, arXiv:2509.09265):

    .. math:: A'_t = g(\tilde H_{k(t)})\,A_t + \zeta\, f(\tilde H_{k(t)+1})

    for every valid token t of step k(t) (:func:`empg_step_scales`); ``k = k_f = 1``,
    ``zeta = 0.1``. The bonus is added whatever the sign of A. Whether the paper re-normalizes A'
    afterwards is not confirmed; this does not. 0 on padding.
    """
    require(batch, ("entropy", "segment_ids"), "empg_transform")
    seg = batch.segment_ids.astype(jnp.int32)
    g, f_next, _ = empg_step_scales(batch.entropy, seg, batch.mask, k=k, k_f=k_f)
    g_tok = jnp.take_along_axis(g, seg, axis=1)
    f_tok = jnp.take_along_axis(f_next, seg, axis=1)
    return jnp.where(batch.mask != 0, g_tok * adv + zeta * f_tok, 0.0)


EMPG = Recipe(
    name="empg",
    terms=(PolicyTerm(
        advantage=grpo_advantage,
        transforms=(functools.partial(empg_transform, k=1.0, k_f=1.0, zeta=0.1),),
        aggregate=token_mean,
    ),),
    requires=("entropy", "segment_ids"),
    paper="Wang et al. 2025, EMPG (arXiv:2509.09265): GRPO advantage rescaled per agent step by "
          "exp(-k H~)/mean (k = 1) plus zeta = 0.1 x exp(-k_f H~ of the next step); PPO clip 0.2, token-mean, no KL",
)

RECIPES: dict = {EMPG.name: EMPG}

__all__ = ["EMPG", "RECIPES", "empg_step_scales", "empg_transform", "step_entropy"]
