r"""Pairwise losses on sequence log-ratios: DPO, f-DPO, RPO, CoPG and P3O.

A batch of kind ``"pairwise"`` holds groups of exactly two responses to one prompt (``group_ids``);
for the preference losses the chosen one has ``batch.extras["preferred"] == 1``. Every loss here
reads per-response sequence quantities (:class:`PairSide`): the log-ratio to the reference

.. math:: z = \sum_t m_t(\log\pi_\theta - \log\pi_{ref}) = \log\frac{\pi_\theta(y)}{\pi_{ref}(y)},

the log-ratio to the sampling policy, the reward and the sampling policy's KL to the reference.
The partner's value is the group's sum minus one's own (rows not in a group of exactly two are
left out). A loss is a *link* (the pair statistic) and an *outer* function (the per-pair loss),
:func:`pairwise_loss` (loss-catalog Part B, core C3):

================  ===========================================================  ==================
recipe            link                                                         outer
================  ===========================================================  ==================
dpo               :math:`\beta(z_w - z_l)`                                      :math:`-\log\sigma`
fdpo_*            :math:`\beta(f'(u_w) - f'(u_l))`, :math:`u = e^z`              :math:`-\log\sigma`
rpo               DPO's, plus :math:`\eta` x token-mean NLL of the chosen        :math:`-\log\sigma`
copg              :math:`(r - r') - \beta(z - z')`                               :math:`(\cdot)^2`
p3o               :math:`\tfrac12\min(\rho\Delta, \operatorname{clip}(\rho)\Delta)`  :math:`-(\cdot)`
================  ===========================================================  ==================

``p3o_separate`` is a :class:`Recipe` built from the existing slots (group size 2).
"""

from __future__ import annotations

import functools
import math
from typing import Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp

from jaxpg.losses.sequence.advantages import pairwise_half_difference
from jaxpg.losses.sequence.aggregation import sequence_mean_token_mean, token_mean
from jaxpg.losses.sequence.batch import SequenceBatch, require
from jaxpg.losses.sequence.groups import group_count
from jaxpg.losses.sequence.ratios import sequence_log_ratio
from jaxpg.losses.sequence.recipe import LossRecipe, PolicyTerm, Recipe
from jaxpg.losses.sequence.rewards import scalar_reward
from jaxpg.losses.sequence.surrogates import constant_clip, ppo_surrogate

Array = chex.Array
sg = jax.lax.stop_gradient

_LOG2 = math.log(2.0)
_EXP_CAP = 30.0  # beyond e^30 the f-DPO exponentials continue linearly (finite in float32)
_MAX_LOG_PAIR_RATIO = 20.0


class PairSide(NamedTuple):
    """Per-response sequence quantities, ``[B]`` each."""

    z: Array  # log pi(y) / pi_ref(y)   (gradient through logp)
    log_rho: Array  # log pi(y) / pi_old(y)   (gradient through logp)
    reward: Array  # r(y)   (constant)
    ref_kl: Array  # log pi_old(y) / pi_ref(y)   (constant)


def _sequence_sum(x: Array, mask: Array) -> Array:
    return jnp.sum(jnp.where(mask != 0, x, 0.0), axis=1)


def pair_side(batch: SequenceBatch) -> PairSide:
    """The :class:`PairSide` of every response."""
    require(batch, ("ref_logp",), "pair_side")
    return PairSide(
        z=_sequence_sum(batch.logp - batch.ref_logp, batch.mask),
        log_rho=_sequence_sum(batch.logp - batch.old_logp, batch.mask),
        reward=sg(scalar_reward(batch)),
        ref_kl=sg(_sequence_sum(batch.old_logp - batch.ref_logp, batch.mask)),
    )


def partner(x: Array, group_ids: Array) -> Array:
    """The other response's value in a group of two: the group's sum minus one's own
    (differentiable; meaningless for groups of other sizes, which :func:`pairwise_loss` leaves out)."""
    return jax.ops.segment_sum(x, group_ids, num_segments=x.shape[0])[group_ids] - x


def _exp_tail(x: Array) -> Array:
    r""":math:`e^x` up to :math:`x = 30`, continued linearly (with slope :math:`e^{30}`) beyond:
    finite and increasing for every finite x."""
    return jnp.exp(jnp.minimum(x, _EXP_CAP)) * (1.0 + jnp.maximum(x - _EXP_CAP, 0.0))


def _expm1_tail(x: Array) -> Array:
    """``expm1(x)`` continued linearly beyond x = 30 (see :func:`_exp_tail`)."""
    return jnp.expm1(jnp.minimum(x, _EXP_CAP)) + jnp.exp(_EXP_CAP) * jnp.maximum(x - _EXP_CAP, 0.0)


def power_difference(z_w: Array, z_l: Array, alpha: float) -> Array:
    r""":math:`(e^{-\alpha z_l} - e^{-\alpha z_w})/\alpha`, the alpha-divergence link
    :math:`f'(u_w) - f'(u_l)` with :math:`f'(u) = -u^{-\alpha}/\alpha`, written as
    :math:`-e^{-\alpha z_l}\operatorname{expm1}(-\alpha(z_w - z_l))/\alpha` so that small alpha does
    not cancel catastrophically (the two terms are each about :math:`-1/\alpha`), with the
    exponentials continued linearly past :math:`e^{30}` so large log-ratios stay finite."""
    return -_exp_tail(-alpha * z_l) * _expm1_tail(-alpha * (z_w - z_l)) / alpha


DIVERGENCES = ("reverse_kl", "forward_kl", "js", "alpha")


def f_prime(z: Array, divergence: str, alpha: float = 0.5) -> Array:
    r"""f-DPO's :math:`f'(u)` at :math:`u = e^z` (Wang et al. 2023, Table 1; official
    ``trainers.py``): reverse KL :math:`\log u`, forward KL :math:`-1/u`, JS
    :math:`\log 2 - \log(1 + 1/u)`, alpha-divergence :math:`-u^{-\alpha}/\alpha`. For
    diagnostics; the losses use the differences (:func:`fdpo_link`)."""
    if divergence == "reverse_kl":
        return z
    if divergence == "forward_kl":
        return -_exp_tail(-z)
    if divergence == "js":
        return _LOG2 - jax.nn.softplus(-z)
    if divergence == "alpha":
        return -_exp_tail(-alpha * z) / alpha
    raise ValueError(f"unknown divergence {divergence!r}; valid choices: {', '.join(DIVERGENCES)}")


# Links: (own, other) -> [B] pair statistic, read from the anchor row's point of view.

def dpo_link(own: PairSide, other: PairSide, *, beta: float = 0.1) -> Array:
    r"""DPO (Rafailov et al. 2023, arXiv:2305.18290): :math:`\beta(z_w - z_l)`."""
    return beta * (own.z - other.z)


def fdpo_link(own: PairSide, other: PairSide, *, beta: float = 0.1, divergence: str = "reverse_kl",
              alpha: float = 0.5) -> Array:
    r"""f-DPO (Wang et al. 2023, "Beyond Reverse KL: Generalizing Direct Preference Optimization
    with Diverse Divergence Constraints", arXiv:2309.16240): :math:`\beta(f'(u_w) - f'(u_l))`,
    :math:`u = \pi/\pi_{ref}`, in log space: reverse KL :math:`z_w - z_l` (DPO); forward KL
    :math:`e^{-z_l} - e^{-z_w}`; JS :math:`\operatorname{softplus}(-z_l) - \operatorname{softplus}(-z_w)`
    (the log 2 cancels); alpha :func:`power_difference` (the paper's alpha in (0, 1); forward KL
    is alpha = 1). Deviation from the official code, which exponentiates directly: exponentials
    continue linearly past :math:`e^{30}` so the loss stays finite at large log-ratios."""
    if divergence == "reverse_kl":
        diff = own.z - other.z
    elif divergence == "forward_kl":
        diff = power_difference(own.z, other.z, 1.0)
    elif divergence == "js":
        diff = jax.nn.softplus(-other.z) - jax.nn.softplus(-own.z)
    elif divergence == "alpha":
        diff = power_difference(own.z, other.z, alpha)
    else:
        raise ValueError(f"unknown divergence {divergence!r}; valid choices: {', '.join(DIVERGENCES)}")
    return beta * diff


def copg_link(own: PairSide, other: PairSide, *, beta: float = 0.1) -> Array:
    r"""CoPG (Flet-Berliac et al. 2024, "Contrastive Policy Gradient: Aligning LLMs on
    sequence-level scores in a supervised-friendly fashion", arXiv:2406.19185):
    :math:`R_\beta(y) - R_\beta(y')` with :math:`R_\beta = r - \beta\log(\pi/\pi_{ref})`. Squared
    (:func:`squared`) it is the loss; for samples from any behaviour policy with full support its
    unique optimum is :math:`\pi^* \propto \pi_{ref} e^{r/\beta}`. No preference labels."""
    return (own.reward - other.reward) - beta * (own.z - other.z)


def p3o_joint_objective(own: PairSide, other: PairSide, *, beta: float = 0.1, eps: float = 0.2) -> Array:
    r"""P3O's jointly clipped pair objective (Wu et al. 2023, "Pairwise Proximal Policy
    Optimization: Harnessing Relative Feedback for LLM Alignment", arXiv:2310.00212):

    .. math:: \tfrac12\min\big(\rho\,\Delta,\ \operatorname{clip}(\rho, 1-\epsilon, 1+\epsilon)\,\Delta\big),
              \quad \rho = \frac{\pi(y)/\pi_{old}(y)}{\pi(y')/\pi_{old}(y')},
              \quad \Delta = \tilde r(y) - \tilde r(y'),\ \tilde r = r - \beta\log\frac{\pi_{old}}{\pi_{ref}}

    (sequence-level ratios; :math:`\Delta` a constant). Invariant to adding a constant to both
    rewards of a pair. Evaluated from both responses' side and averaged (:func:`pairwise_loss`
    with ``anchor="all"``), so at :math:`\rho = 1` the gradient per pair is
    :math:`\tfrac12\Delta(\nabla\log\pi(y) - \nabla\log\pi(y'))`. The pair log-ratio is clipped
    to +-20 before exponentiating (beyond it the gradient is 0), a guard against overflow."""
    shaped_own = own.reward - beta * own.ref_kl
    shaped_other = other.reward - beta * other.ref_kl
    delta = sg(shaped_own - shaped_other)
    ratio = jnp.exp(jnp.clip(own.log_rho - other.log_rho, -_MAX_LOG_PAIR_RATIO, _MAX_LOG_PAIR_RATIO))
    return 0.5 * jnp.minimum(ratio * delta, jnp.clip(ratio, 1.0 - eps, 1.0 + eps) * delta)


# Outer functions: pair statistic -> per-pair loss.

def neg_log_sigmoid(x: Array) -> Array:
    r""":math:`-\log\sigma(x) = \operatorname{softplus}(-x)` (stable for any finite x)."""
    return jax.nn.softplus(-x)


def squared(x: Array) -> Array:
    return jnp.square(x)


def negate(x: Array) -> Array:
    return -x


ANCHORS = ("preferred", "all")


def pairwise_loss(batch: SequenceBatch, *, link: Callable, outer: Callable = neg_log_sigmoid,
                  anchor: str = "preferred", nll_coef: float = 0.0) -> tuple[Array, dict]:
    r"""The pairwise combinator: :math:`\mathcal{L} = \operatorname{mean}_{\text{anchors}}\,
    \text{outer}(\text{link}(\text{own}, \text{partner})) + \eta\,\mathrm{NLL}`.

    ``anchor="preferred"``: one term per pair, from the chosen response's row
    (``batch.extras["preferred"] == 1``; DPO, f-DPO, RPO). ``anchor="all"``: every row of a pair is
    an anchor, i.e. the mean over both orders (symmetric losses such as CoPG, where both orders give
    the same value, and P3O). Rows not in a group of exactly two are left out; a batch with no
    pair gives 0. ``nll_coef`` :math:`\eta`: adds :math:`\eta` times the token-mean negative
    log-likelihood of the chosen responses (RPO).
    """
    if anchor not in ANCHORS:
        raise ValueError(f"unknown anchor {anchor!r}; valid choices: {', '.join(ANCHORS)}")
    needs = ("ref_logp", "preferred") if anchor == "preferred" or nll_coef else ("ref_logp",)
    require(batch, needs, "pairwise_loss")
    ids = batch.group_ids
    own = pair_side(batch)
    other = PairSide(*(partner(x, ids) for x in own))
    in_pair = (group_count(ids) == 2).astype(batch.logp.dtype)
    chosen = in_pair * (batch.extras["preferred"] == 1).astype(batch.logp.dtype) if "preferred" in needs else None
    weight = chosen if anchor == "preferred" else in_pair
    statistic = link(own, other)
    total = jnp.maximum(jnp.sum(weight), 1.0)
    loss = jnp.sum(weight * outer(statistic)) / total
    aux = {
        "pair_statistic_mean": jnp.sum(weight * sg(statistic)) / total,
        "pair_positive_fraction": jnp.sum(weight * (sg(statistic) > 0)) / total,
    }
    if nll_coef:
        nll = token_mean(-batch.logp, batch.mask * chosen[:, None])
        aux["nll_chosen"] = nll
        loss = loss + nll_coef * nll
    aux["loss"] = loss
    return loss, aux


def _pairwise_recipe(name: str, paper: str, *, link: Callable, outer: Callable = neg_log_sigmoid,
                     anchor: str = "preferred", nll_coef: float = 0.0) -> LossRecipe:
    needs_preferred = anchor == "preferred" or nll_coef
    return LossRecipe(
        name=name,
        fn=functools.partial(pairwise_loss, link=link, outer=outer, anchor=anchor, nll_coef=nll_coef),
        requires=("ref_logp", "preferred") if needs_preferred else ("ref_logp",),
        kind="pairwise",
        paper=paper,
    )


DPO = _pairwise_recipe(
    "dpo", "Rafailov et al. 2023, DPO (arXiv:2305.18290): -log sigmoid(beta (z_w - z_l)), beta = 0.1",
    link=functools.partial(dpo_link, beta=0.1))

FDPO_FORWARD_KL = _pairwise_recipe(
    "fdpo_forward_kl", "Wang et al. 2023, f-DPO (arXiv:2309.16240), forward KL f'(u) = -1/u, beta = 0.1",
    link=functools.partial(fdpo_link, beta=0.1, divergence="forward_kl"))

FDPO_JS = _pairwise_recipe(
    "fdpo_js", "Wang et al. 2023, f-DPO (arXiv:2309.16240), Jensen-Shannon f'(u) = log 2 - log(1 + 1/u), beta = 0.1",
    link=functools.partial(fdpo_link, beta=0.1, divergence="js"))

FDPO_ALPHA = _pairwise_recipe(
    "fdpo_alpha", "Wang et al. 2023, f-DPO (arXiv:2309.16240), alpha-divergence f'(u) = -u^-alpha / alpha, "
                  "alpha = 0.5, beta = 0.1",
    link=functools.partial(fdpo_link, beta=0.1, divergence="alpha", alpha=0.5))

RPO = _pairwise_recipe(
    "rpo", "Liu et al. 2024, RPO, 'Provably Mitigating Overoptimization in RLHF: Your SFT Loss is Implicitly an "
           "Adversarial Regularizer' (arXiv:2405.16436): DPO beta = 0.5 plus eta = 0.2 x token-mean NLL of the "
           "chosen (official OpenRLHF train_rpo.sh)",
    link=functools.partial(dpo_link, beta=0.5), nll_coef=0.2)

COPG = _pairwise_recipe(
    "copg", "Flet-Berliac et al. 2024, CoPG (arXiv:2406.19185): ((r - r') - beta (z - z'))^2 over pairs, beta = 0.1, "
            "off-policy, no preference labels",
    link=functools.partial(copg_link, beta=0.1), outer=squared, anchor="all")

P3O = _pairwise_recipe(
    "p3o", "Wu et al. 2023, P3O (arXiv:2310.00212), joint clipping: -1/2 min(rho Delta, clip(rho, 0.8, 1.2) Delta), "
           "rho the pair's sequence-ratio quotient, Delta of KL-shaped rewards (beta = 0.1, this library's choice), "
           "averaged over both orders",
    link=functools.partial(p3o_joint_objective, beta=0.1, eps=0.2), outer=negate, anchor="all")


def kl_shaped_sequence_reward(batch: SequenceBatch, *, beta: float = 0.1) -> Array:
    r"""Reward slot: :math:`\tilde r = r - \beta \log(\pi_{old}(y)/\pi_{ref}(y))` (P3O's KL-shaped reward)."""
    require(batch, ("ref_logp",), "kl_shaped_sequence_reward")
    return scalar_reward(batch) - beta * _sequence_sum(batch.old_logp - batch.ref_logp, batch.mask)


P3O_SEPARATE = Recipe(
    name="p3o_separate",
    terms=(PolicyTerm(
        reward=functools.partial(kl_shaped_sequence_reward, beta=0.1),
        advantage=pairwise_half_difference,
        ratio=sequence_log_ratio,
        clip=functools.partial(constant_clip, low=0.2),
        surrogate=ppo_surrogate,
        aggregate=sequence_mean_token_mean,
    ),),
    requires=("ref_logp",),
    paper="Wu et al. 2023, P3O (arXiv:2310.00212), separate clipping: advantage +-(r~1 - r~2)/2 (KL-shaped, "
          "beta = 0.1), whole-sequence ratio per response, PPO clip 0.2, per-sequence mean; use group size 2 "
          "(at rho = 1 its gradient is half the joint form's)",
)

RECIPES: dict = {r.name: r for r in (DPO, FDPO_FORWARD_KL, FDPO_JS, FDPO_ALPHA, RPO, COPG, P3O, P3O_SEPARATE)}
