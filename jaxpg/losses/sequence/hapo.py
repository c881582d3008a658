r"""HAPO: token-entropy-adaptive advantage, clip range and advantage redistribution (loss-catalog A3).

Liu, Liu, Wen, Cai, Cui, He, Zhang 2025, "From Uniform to Heterogeneous: Tailoring Policy
Optimization to Every Token's Nature" (Heterogeneous Adaptive Policy Optimization, arXiv:2509.16591;
code: starriver030515/HAPO, ``verl/trainer/ppo/core_algos.py``). Four loss-side parts:

(a) :func:`hapo_token_advantage`: the group statistics are taken over the group's *tokens* (each
    response's reward weighted by its length), with a fallback to GRPO for a group where any
    \|A\| >= 5;
(b) :func:`hapo_h_hat`: a per-token entropy statistic in [-1, 1] (0 at the entropy pivot quantile);
(c) :func:`hapo_clip`: the asymmetric adaptive clip range (a clip slot);
(d) :func:`hapo_redistribute`: the differential advantage redistribution (an advantage transform).

The paper's adaptive sampling temperature is rollout-side and not here; nor are DAPO's dynamic
filtering and overlong penalty, which the paper's runs also use (trainer-side).

Reported problem, checked (tests ``HapoTest.test_released_sign_quirk``): in the released
``compute_entropy_h``, ``scale_neg = 1 / neg_min`` with ``neg_min < 0``, so every negative h is
mapped to a *positive* h-hat; h-hat >= 0 everywhere. The low-entropy branches of (c) and (d)
(``h_hat <= 0``) then fire only where h is exactly 0, i.e. they are inert, and every token below
the entropy pivot is treated as a high-entropy one instead (its upper clip range widened, its
advantage rescaled outside the neutral band). This contradicts the paper's description (tighter
treatment of low-entropy tokens) and looks like a sign bug. ``as_released=True`` reproduces the
released behaviour; the default is the paper's signed statistic, h-hat in [-1, 0] below the pivot.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp

from jaxpg.losses.sequence.advantages import grpo_advantage
from jaxpg.losses.sequence.aggregation import token_mean
from jaxpg.losses.sequence.batch import SequenceBatch, require
from jaxpg.losses.sequence.groups import group_mean, group_std
from jaxpg.losses.sequence.ratios import token_log_ratio
from jaxpg.losses.sequence.recipe import PolicyTerm, Recipe
from jaxpg.losses.sequence.surrogates import ppo_surrogate

Array = chex.Array


def hapo_token_advantage(rewards: Array, batch: SequenceBatch, *, eps: float = 1e-6,
                         fallback_threshold: float = 5.0) -> Array:
    r"""HAPO's token-level group average (Liu et al. 2025, arXiv:2509.16591, "Token Level Group
    Average"): with :math:`L_i` the number of valid tokens of response i,

    .. math::

       \mu_g = \frac{\sum_{i \in g} L_i r_i}{\sum_{i \in g} L_i}, \qquad
       \sigma_g^2 = \frac{\sum_{i \in g} L_i (r_i - \mu_g)^2}{\sum_{i \in g} L_i}, \qquad
       A_i = \frac{r_i - \mu_g}{\sigma_g + \epsilon}

    (population statistics over all tokens of the group), and for a group where any
    :math:`|A_i| \ge 5` the GRPO advantage instead (the code's "smooth score"). Returns ``[B]``.

    Deviation from the released code: it tests :math:`|A| \ge 5` on every position of the padded
    ``[G, T]`` score matrix, padding included, where the score is 0, so a padded position of a
    group with mean reward far from 0 can trigger the fallback; here only responses with at least
    one valid token are tested. Its GRPO fallback gives a group of one A = r (mean 0, std 1); the
    GRPO here gives 0. With equal lengths this is GRPO with the population std (a test checks it).
    """
    ids = batch.group_ids
    lengths = jnp.sum(batch.mask, axis=1).astype(rewards.dtype)
    mean = group_mean(rewards, ids, lengths)
    std = group_std(rewards, ids, lengths, ddof=0)
    token_level = (rewards - mean) / (std + eps)
    has_tokens = lengths > 0
    too_large = jnp.where(has_tokens, jnp.abs(token_level) >= fallback_threshold, False).astype(jnp.int32)
    group_too_large = jax.ops.segment_max(too_large, ids, num_segments=ids.shape[0])[ids] > 0
    adv = jnp.where(group_too_large, grpo_advantage(rewards, batch, eps=eps), token_level)
    # A response without valid tokens has no tokens to train (and its weight 0 gave it no say).
    return jnp.where(has_tokens, adv, 0.0)


def _nearest_quantile(x: Array, valid: Array, q: float) -> Array:
    """The ``q`` quantile of ``x[valid]`` with torch's ``interpolation="nearest"``: the element of
    rank ``round(q (n - 1))`` (ties to even, as Python's ``round``); 0 when nothing is valid.

    (``jnp.nanquantile(..., method="nearest")`` rounds exact halves down, so it can pick the
    neighbour of the element the released code picks.)"""
    flat = jnp.where(valid, x, jnp.inf).reshape(-1)
    n = jnp.sum(valid)
    rank = jnp.round(q * (jnp.maximum(n, 1) - 1).astype(jnp.float32)).astype(jnp.int32)
    value = jnp.sort(flat)[rank]
    return jnp.where(n > 0, value, 0.0)


def hapo_h_hat(entropy: Array, mask: Array, *, pivot: float = 0.8, as_released: bool = False,
               eps: float = 1e-8) -> Array:
    r"""HAPO's per-token entropy statistic :math:`\hat h` (the released ``compute_entropy_h``):

    .. math::

       h = \frac{\log H - q_{\text{pivot}}(\log H)}{\sqrt{\operatorname{mean}_t(\cdot)^2}}, \qquad
       \hat h = \begin{cases} h / \max_t h & h > 0 \\ h / |\min_t h| & h \le 0 \end{cases}

    with the quantile, the RMS and the max/min over the valid tokens of the batch, so
    :math:`\hat h \in [-1, 1]` and 0 at the pivot quantile (``pivot = 0.8``, the paper's setting).
    ``as_released=True`` divides the negative side by :math:`\min_t h < 0` as the released code
    does, which flips its sign: :math:`\hat h \ge 0` everywhere (see the module docstring).
    ``entropy`` is clamped at ``eps`` before the log (as the code). 0 on padding.
    """
    valid = mask != 0
    log_h = jnp.log(jnp.maximum(entropy, eps))
    h = log_h - _nearest_quantile(log_h, valid, pivot)
    count = jnp.maximum(jnp.sum(valid), 1)
    rms = jnp.sqrt(jnp.maximum(jnp.sum(jnp.where(valid, jnp.square(h), 0.0)) / count, eps))
    h = jnp.where(valid, h / rms, 0.0)
    pos_max = jnp.maximum(jnp.max(jnp.where(valid & (h > 0), h, 0.0)), eps)
    neg_min = jnp.minimum(jnp.min(jnp.where(valid & (h < 0), h, 0.0)), -eps)
    neg_scale = 1.0 / neg_min if as_released else 1.0 / -neg_min
    return jnp.where(valid, jnp.where(h > 0, h / pos_max, h * neg_scale), 0.0)


def _adaptive_range(h_hat: Array, low: float, high: float, alpha_c: float) -> tuple[Array, Array]:
    """(c) for a given h-hat: widen the lower range of low-entropy tokens, the upper of high ones."""
    eps_low = jnp.where(h_hat <= 0, low * (1.0 - alpha_c * h_hat), low)
    eps_high = jnp.where(h_hat > 0, high * (1.0 + alpha_c * h_hat), high)
    return eps_low, eps_high


def hapo_clip(batch: SequenceBatch, adv: Array, log_ratio: Array, *, low: float = 0.2, high: float = 0.2,
              alpha_c: float = 1.0, pivot: float = 0.8, as_released: bool = False) -> tuple[Array, Array]:
    r"""HAPO's asymmetric adaptive clip (the released ``ada_clip``), a clip slot:

    .. math::

       \epsilon_l' = \epsilon_l (1 - \alpha_c \hat h) \text{ where } \hat h \le 0, \qquad
       \epsilon_h' = \epsilon_h (1 + \alpha_c \hat h) \text{ where } \hat h > 0

    (unchanged elsewhere): low-entropy tokens may be pushed down further, high-entropy ones up
    further. ``alpha_c = 1``, ``epsilon = 0.2 / 0.2``. Returns ``[B, T]`` ranges.
    """
    require(batch, ("entropy",), "hapo_clip")
    h_hat = hapo_h_hat(batch.entropy, batch.mask, pivot=pivot, as_released=as_released)
    return _adaptive_range(h_hat, low, high, alpha_c)


def hapo_redistribute(adv: Array, batch: SequenceBatch, *, beta_a: float = 1.0, low: float = 0.2,
                      high: float = 0.2, alpha_c: float = 1.0, adaptive_clip: bool = True, pivot: float = 0.8,
                      as_released: bool = False) -> Array:
    r"""HAPO's differential advantage redistribution (the released ``ada_advantage``), an
    advantage transform: with :math:`A^{ent} = A(1 + \beta_a \hat h)` and the neutral band
    :math:`1 - \epsilon_l'/2 < \rho < 1 + \epsilon_h'/2`,

    .. math::

       A' = \begin{cases}
         A \text{ inside the band}, \; A^{ent} \text{ outside} & \hat h > 0 \text{ (high entropy)} \\
         A^{ent} \text{ inside the band}, \; A \text{ outside} & \hat h \le 0 \text{ (low entropy)}
       \end{cases}

    The ratio :math:`\rho` is recomputed from ``batch`` (token ratio, no gradient); the band uses
    the adaptive ranges of :func:`hapo_clip` when ``adaptive_clip`` (as the code, where the clip is
    adapted first), else the constant ``low``/``high``. ``beta_a = 1``.
    """
    require(batch, ("entropy",), "hapo_redistribute")
    h_hat = hapo_h_hat(batch.entropy, batch.mask, pivot=pivot, as_released=as_released)
    if adaptive_clip:
        eps_low, eps_high = _adaptive_range(h_hat, low, high, alpha_c)
    else:
        eps_low, eps_high = jnp.full_like(h_hat, low), jnp.full_like(h_hat, high)
    ratio = jnp.exp(jax.lax.stop_gradient(token_log_ratio(batch)))
    in_band = (ratio > 1.0 - eps_low / 2.0) & (ratio < 1.0 + eps_high / 2.0)
    adv_ent = adv * (1.0 + beta_a * h_hat)
    high_entropy = jnp.where(in_band, adv, adv_ent)
    low_entropy = jnp.where(in_band, adv_ent, adv)
    return jnp.where(h_hat > 0, high_entropy, low_entropy)


def _hapo_recipe(name: str, as_released: bool) -> Recipe:
    options = dict(pivot=0.8, as_released=as_released)
    return Recipe(
        name=name,
        terms=(PolicyTerm(
            advantage=hapo_token_advantage,
            transforms=(functools.partial(hapo_redistribute, beta_a=1.0, low=0.2, high=0.2, alpha_c=1.0, **options),),
            clip=functools.partial(hapo_clip, low=0.2, high=0.2, alpha_c=1.0, **options),
            surrogate=functools.partial(ppo_surrogate, dual_clip=10.0),
            aggregate=token_mean,
        ),),
        requires=("entropy",),
        paper="Liu et al. 2025, HAPO (arXiv:2509.16591): token-level group average, entropy-adaptive clip "
              "(0.2/0.2, alpha_c = 1) and advantage redistribution (beta_a = 1), entropy pivot 0.8, dual clip "
              "c = 10, token-mean, no KL" + ("; h-hat as released (sign quirk: h-hat >= 0)" if as_released else ""),
    )


HAPO = _hapo_recipe("hapo", as_released=False)
HAPO_RELEASED = _hapo_recipe("hapo_released", as_released=True)

RECIPES: dict = {r.name: r for r in (HAPO, HAPO_RELEASED)}

__all__ = ["HAPO", "HAPO_RELEASED", "RECIPES", "hapo_clip", "hapo_h_hat", "hapo_redistribute", "hapo_token_advantage"]
