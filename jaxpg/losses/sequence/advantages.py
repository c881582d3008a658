r"""Group advantages: one scalar per response from the rewards of its group (slot ``advantage``).

Every function has the signature ``advantage(rewards [B], batch) -> A [B]`` (keyword options
bound with ``functools.partial``); a recipe broadcasts ``A`` to the response's tokens. Rewards are
data: no gradient flows through any of these.
"""

from __future__ import annotations

import chex

import jax.numpy as jnp
import jax.scipy.special as jsp

from jaxpg.losses.sequence.batch import SequenceBatch
from jaxpg.losses.sequence.groups import group_count, group_mean, group_std

Array = chex.Array


def grpo_advantage(rewards: Array, batch: SequenceBatch, *, ddof: int = 1, eps: float = 1e-6) -> Array:
    r"""GRPO's group-normalized advantage (Shao et al. 2024, DeepSeekMath, arXiv:2402.03300, Sec. 4.1):

    .. math:: A_i = \frac{r_i - \operatorname{mean}_g r}{\operatorname{std}_g r + \epsilon}

    ``ddof=1`` (default) is torch's unbiased std, as verl and TRL compute it; ``ddof=0`` the
    population std. A group whose rewards are all equal gets A = 0.
    """
    ids = batch.group_ids
    centred = rewards - group_mean(rewards, ids)
    return centred / (group_std(rewards, ids, ddof=ddof) + eps)


def dr_grpo_advantage(rewards: Array, batch: SequenceBatch) -> Array:
    r"""Dr. GRPO (Liu et al. 2025, "Understanding R1-Zero-Like Training", arXiv:2503.20783):
    :math:`A_i = r_i - \operatorname{mean}_g r` (no division by the group std, which up-weights
    groups that are nearly all right or all wrong)."""
    return rewards - group_mean(rewards, batch.group_ids)


def rloo_advantage(rewards: Array, batch: SequenceBatch) -> Array:
    r"""REINFORCE leave-one-out (Kool et al. 2019; Ahmadian et al. 2024, arXiv:2402.14740):

    .. math:: A_i = r_i - \frac{1}{G-1}\sum_{j \ne i} r_j = \frac{G}{G-1}(r_i - \operatorname{mean}_g r)

    an unbiased baseline (it does not depend on the response it scores). A group of one gets 0.
    """
    ids = batch.group_ids
    g = group_count(ids)
    baseline = (g * group_mean(rewards, ids) - rewards) / jnp.maximum(g - 1.0, 1.0)
    return jnp.where(g > 1, rewards - baseline, 0.0)


def beta_log_pdf(p: Array, alpha: Array, beta: Array) -> Array:
    r""":math:`\log \mathrm{Beta}(p; \alpha, \beta)` density."""
    return (jsp.xlogy(alpha - 1.0, p) + jsp.xlog1py(beta - 1.0, -p)
            - (jsp.gammaln(alpha) + jsp.gammaln(beta) - jsp.gammaln(alpha + beta)))


def bnpo_weights(success: Array, alpha: Array, beta: Array, cap: float = 1e6) -> Array:
    r"""BNPO's normalizer :math:`w = \min(1/\mathrm{Beta}(p; \alpha, \beta), \text{cap})` at success rates ``p``."""
    return jnp.minimum(jnp.exp(-beta_log_pdf(success, alpha, beta)), cap)


def bnpo_fit(success: Array, ids: Array, *, var_floor: float = 1e-6, max_param: float = 1e3) -> tuple[Array, Array]:
    r"""BNPO's Beta parameters from the batch of per-prompt success rates, by moments.

    With :math:`m, v` the mean and unbiased variance of :math:`p_q` over the prompts,
    :math:`k = m(1-m)/v - 1`, :math:`a = k m`, :math:`b = k (1-m)`, and
    :math:`\alpha = \max(1 + a/3, 1)`, :math:`\beta = \max(1 + b/3, 1)` (the official code,
    changyi7231/BNPO ``bnpo_ray_trainer.py``). Guards the code lacks: the variance is floored at
    ``var_floor`` (it divides by it: a batch where every prompt has the same success rate gave
    inf/NaN) and alpha, beta are capped at ``max_param``.
    """
    # One entry per prompt: weight each response by 1/n_g so every group counts once.
    per_prompt = 1.0 / group_count(ids)
    num_prompts = per_prompt.sum()
    m = jnp.sum(per_prompt * success) / num_prompts
    v = jnp.sum(per_prompt * jnp.square(success - m)) / jnp.maximum(num_prompts - 1.0, 1.0)
    k = m * (1.0 - m) / jnp.maximum(v, var_floor) - 1.0
    alpha = jnp.clip(1.0 + k * m / 3.0, 1.0, max_param)
    beta = jnp.clip(1.0 + k * (1.0 - m) / 3.0, 1.0, max_param)
    return alpha, beta


def bnpo_advantage(rewards: Array, batch: SequenceBatch, *, alpha: float | None = None, beta: float | None = None,
                   cap: float = 1e6, r_min: float = 0.0, r_max: float = 1.0) -> Array:
    r"""BNPO (Xiao et al. 2025, "BNPO: Beta Normalization Policy Optimization", arXiv:2506.02864):

    .. math:: A_i = w(p_q)\,(r_i - p_q), \quad w(p) = \min\!\big(1/\mathrm{Beta}(p;\alpha,\beta), \text{cap}\big)

    with :math:`r` rescaled to [0, 1] by ``(r - r_min) / (r_max - r_min)`` and :math:`p_q` the
    group mean (a group of one uses p = 0, as the code does). ``alpha``/``beta`` ``None`` fit them
    to the batch (:func:`bnpo_fit`); fixed values give the known reductions: alpha = beta = 1 is
    ``r - p`` and alpha = beta = 3/2 is (pi/8) x GRPO with the population std on binary rewards.
    ``cap`` is the official 1e6; see the README for what it does with few prompts per batch.
    """
    r = (rewards - r_min) / (r_max - r_min)
    ids = batch.group_ids
    p = jnp.where(group_count(ids) > 1, group_mean(r, ids), 0.0)
    if alpha is None or beta is None:
        fitted = bnpo_fit(p, ids)
        alpha = fitted[0] if alpha is None else alpha
        beta = fitted[1] if beta is None else beta
    # The Beta density is 0 or inf at p in {0, 1} (a group all right or all wrong), where r - p
    # is 0 anyway: evaluate the weight strictly inside (0, 1).
    p_inner = jnp.clip(p, 1e-6, 1.0 - 1e-6)
    return bnpo_weights(p_inner, jnp.asarray(alpha, r.dtype), jnp.asarray(beta, r.dtype), cap) * (r - p)


def pairwise_half_difference(rewards: Array, batch: SequenceBatch) -> Array:
    r"""P3O's pairwise advantage (Wu et al. 2023, "Pairwise Proximal Policy Optimization",
    arXiv:2310.00212): groups of two, :math:`A_1 = (r_1 - r_2)/2 = -A_2`; for groups of G it is
    the group-mean baseline :math:`r_i - \operatorname{mean}_g r`, which equals it at G = 2."""
    return rewards - group_mean(rewards, batch.group_ids)


