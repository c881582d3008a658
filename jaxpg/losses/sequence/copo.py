r"""COPO: a prompt-level ("global") advantage blended with GRPO's by answer consistency (loss-catalog A4).

Han, Chen, Shao, Ma, Li, Shen, Zheng, Chen, Wei, Zhang 2025, "COPO: Consistency-Aware Policy
Optimization" (arXiv:2508.04138; code: hijih/copo-code, ``verl/trainer/ppo/core_algos.py``:
``compute_grpo_outcome_advantage_with_global``, ``compute_policy_loss_with_global``; defaults from
``verl/run_copo.sh``). When every response to a prompt gets the same reward, GRPO's advantage is
0 and the prompt teaches nothing. COPO adds a second advantage per *prompt*: the z-score, across
the prompts of the batch, of the prompt's mean reward, given to all of its responses. The two
dual-clip PPO losses are blended per response with a weight w that grows with the entropy of the
group's final answers:

.. math:: L = \operatorname{Agg}\big(w\,\ell(\rho, A^{local}) + (1 - w)\,\ell(\rho, A^{global})\big)

which, the aggregation being linear, is two :class:`PolicyTerm` s with sample weights w and 1 - w.

Reported problem, checked (tests ``CopoTest.test_wrong_answers_train_on_global_loss_only``): in the
official default mode ``soft-with-zero``, :math:`w = \sigma(k(H_q - b)) \cdot 1[r_i \ne 0]`, so
every wrong answer (r = 0) has w = 0 in every group, also in mixed groups where its local GRPO
advantage is negative and informative: wrong answers are trained only by the global loss, i.e.
pushed down in proportion to how the *prompt* compares with the other prompts, never relative to
the right answers of their own group; right answers get the local signal with weight
:math:`\sigma(k(H_q - b))` (small when the group agrees: H_q = 0 gives sigmoid(-5) ~ 0.007). The
paper describes the blend as entropy-based only; the zero-reward factor is the code's. The recipe
``copo`` reproduces the official default, ``copo_soft_forced`` uses ``soft-with-forced``
(:math:`w = \sigma(k(H_q - b)) \cdot 1[A^{local} \ne 0]`), which keeps the local signal of wrong
answers and sends only zero-advantage groups to the global loss.

Deviation: the dual-clip constant is 3.0, verl's default, which ``run_copo.sh`` does not override
(the catalog's c = 10 is not in the COPO code or scripts).
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp

from jaxpg.losses.sequence.advantages import grpo_advantage
from jaxpg.losses.sequence.aggregation import sequence_mean_token_mean
from jaxpg.losses.sequence.batch import SequenceBatch, require
from jaxpg.losses.sequence.groups import group_count, group_mean, relabel
from jaxpg.losses.sequence.recipe import PolicyTerm, Recipe
from jaxpg.losses.sequence.rewards import scalar_reward
from jaxpg.losses.sequence.surrogates import constant_clip, ppo_surrogate

Array = chex.Array

COPO_MODES = ("soft-with-zero", "soft-with-forced", "only-soft", "only-zero", "only-forced", "only-global",
              "no-global")
COPO_DUAL_CLIP = 3.0  # verl's default clip_ratio_c; run_copo.sh leaves it


def answer_entropy(answer_ids: Array, group_ids: Array) -> Array:
    r"""Entropy (bits) of the distribution of final answers within each response's group:

    .. math:: H_q = -\sum_a p_a \log_2 p_a = \operatorname{mean}_{i \in q}\big(-\log_2 p_{a(i)}\big)

    with :math:`p_a` the fraction of the group's responses whose answer id is a (segment counts
    over the (group, answer) cells; no static number of answers). 0 when the group agrees,
    :math:`\log_2 G` when all G answers differ. ``[B]``, constant within a group.
    """
    cells = relabel(group_ids, answer_ids)
    share = group_count(cells) / group_count(group_ids)  # >= 1/G: each response's own answer counts
    return group_mean(-jnp.log2(share), group_ids)


def _answer_entropy(batch: SequenceBatch) -> Array:
    require(batch, ("answer_ids",), "COPO")
    return answer_entropy(batch.answer_ids, batch.group_ids)


def copo_global_advantage(rewards: Array, batch: SequenceBatch, *, entropy_coef: bool = False,
                          eps: float = 1e-6) -> Array:
    r"""COPO's global advantage: the prompt's reward :math:`g_q = \operatorname{mean}_{i \in q} r_i`
    (times :math:`1 - \lambda H_q`, :math:`\lambda = (1 - 1/G)/\log_2 G`, when ``entropy_coef``:
    the code's ``reward_coef_flg``, off in ``run_copo.sh``), z-scored across the prompts of the
    batch, each prompt counted once:

    .. math:: A^{global}_i = \frac{g_q - \operatorname{mean}_{q'} g_{q'}}{\operatorname{std}_{q'} g_{q'} + \epsilon}

    (std: torch's unbiased one, as the code; a batch of one prompt gets 0 where the code's std is
    NaN). Every response of prompt q gets the same value, so a group whose responses all agree
    still has a signal when prompts differ.
    """
    ids = batch.group_ids
    size = group_count(ids)
    g = group_mean(rewards, ids)
    if entropy_coef:
        h = _answer_entropy(batch)
        # lambda = (1 - 1/G) / log2 G makes 1 - lambda H_q = 1/G at the maximal entropy log2 G;
        # a group of one has H = 0 and no lambda (log2 1 = 0).
        lam = jnp.where(size > 1, (1.0 - 1.0 / size) / jnp.log2(jnp.maximum(size, 2.0)), 0.0)
        g = g * (1.0 - lam * h)
    per_prompt = 1.0 / size  # weight 1/n_g per response: every prompt counts once
    num_prompts = jnp.sum(per_prompt)
    mean = jnp.sum(per_prompt * g) / num_prompts
    var = jnp.sum(per_prompt * jnp.square(g - mean)) / jnp.maximum(num_prompts - 1.0, 1.0)
    std = jnp.where(num_prompts > 1.5, jnp.sqrt(var), 0.0)
    return (g - mean) / (std + eps)


def copo_weight(batch: SequenceBatch, *, mode: str = "soft-with-zero", k: float = 5.0, b: float = 1.0) -> Array:
    r"""COPO's per-response weight w of the local loss (1 - w goes to the global loss), ``[B]``:

    - ``soft-with-zero`` (the official default): :math:`\sigma(k(H_q - b)) \cdot 1[r_i \ne 0]`;
    - ``soft-with-forced``: :math:`\sigma(k(H_q - b)) \cdot 1[A^{local}_i \ne 0]`;
    - ``only-soft``: :math:`\sigma(k(H_q - b))`; ``only-zero``: :math:`1[r_i \ne 0]`;
      ``only-forced``: :math:`1[A^{local}_i \ne 0]`;
    - ``only-global``: 0 (global loss only); ``no-global``: 1 (GRPO).

    :math:`H_q` is :func:`answer_entropy`, ``k = 5``, ``b = 1`` (``run_copo.sh``).
    """
    if mode not in COPO_MODES:
        raise ValueError(f"unknown COPO mode {mode!r}; valid choices: {', '.join(COPO_MODES)}")
    r = scalar_reward(batch)
    ones = jnp.ones(r.shape, r.dtype)
    if mode == "no-global":
        return ones
    if mode == "only-global":
        return jnp.zeros_like(ones)
    nonzero_reward = (r != 0).astype(r.dtype)
    nonzero_local = (grpo_advantage(r, batch) != 0).astype(r.dtype)
    if mode == "only-zero":
        return nonzero_reward
    if mode == "only-forced":
        return nonzero_local
    soft = jax.nn.sigmoid(k * (_answer_entropy(batch) - b))
    if mode == "only-soft":
        return soft
    return soft * (nonzero_reward if mode == "soft-with-zero" else nonzero_local)


def copo_global_weight(batch: SequenceBatch, **options) -> Array:
    """``1 - w``: the global loss's sample weight (``options`` as :func:`copo_weight`)."""
    return 1.0 - copo_weight(batch, **options)


def make_copo(name: str = "copo", *, mode: str = "soft-with-zero", k: float = 5.0, b: float = 1.0,
              entropy_coef: bool = False, clip: float = 0.2, dual_clip: float = COPO_DUAL_CLIP) -> Recipe:
    """A COPO recipe: local GRPO term (sample weight w) + global term (1 - w), the same dual-clip
    PPO surrogate and ratio, ``seq-mean-token-mean``, no KL (``run_copo.sh``)."""
    options = dict(mode=mode, k=k, b=b)
    shared = dict(clip=functools.partial(constant_clip, low=clip),
                  surrogate=functools.partial(ppo_surrogate, dual_clip=dual_clip),
                  aggregate=sequence_mean_token_mean)
    local = PolicyTerm(advantage=grpo_advantage, sample_weight=functools.partial(copo_weight, **options),
                       name="local", **shared)
    global_ = PolicyTerm(advantage=functools.partial(copo_global_advantage, entropy_coef=entropy_coef),
                         sample_weight=functools.partial(copo_global_weight, **options), name="global", **shared)
    needs_answers = mode not in ("no-global", "only-global", "only-zero", "only-forced") or entropy_coef
    return Recipe(
        name=name,
        terms=(local, global_),
        requires=("answer_ids",) if needs_answers else (),
        paper=f"Han et al. 2025, COPO (arXiv:2508.04138): local GRPO + batch-z-scored prompt-level advantage, "
              f"blended per response by answer entropy (mode {mode}, k = {k:g}, b = {b:g}); dual clip "
              f"(0.2, c = {dual_clip:g}), seq-mean-token-mean, no KL",
    )


COPO = make_copo("copo", mode="soft-with-zero")
COPO_SOFT_FORCED = make_copo("copo_soft_forced", mode="soft-with-forced")

RECIPES: dict = {r.name: r for r in (COPO, COPO_SOFT_FORCED)}

__all__ = ["COPO", "COPO_MODES", "COPO_SOFT_FORCED", "RECIPES", "answer_entropy", "copo_global_advantage",
           "copo_global_weight", "copo_weight", "make_copo"]
