r"""Stratified GRPO: advantages normalized within structural strata of each group (loss-catalog A5).

Zhu, Chen, Yu, Zhao, Jia 2025, "Stratified GRPO: Handling Structural Heterogeneity in
Reinforcement Learning of LLM Search Agents" (arXiv:2510.06214). The rollouts of one prompt differ
in structure (number of search calls, turns, ...); comparing a response with peers of a different
structure adds a "cross-stratum bias" :math:`\bar R_k - \bar R` to its advantage
(:math:`A_G = A_S + (\bar R_k - \bar R)`). Stratified Advantage Normalization (SAN) compares each
response only with the responses of the same group and the same stratum (``batch.strata``), and
the paper blends it with the ordinary group normalization (GN) for finite-sample stability.

No official code was found; the third-party grpo-composer (``core/advantages/stratified.py``)
uses torch's unbiased std, which is NaN for a stratum of one response: here such a stratum gets
A_SAN = 0 (it has no peer to be compared with).
"""

from __future__ import annotations

import functools

import chex

from jaxpg.losses.sequence.advantages import grpo_advantage
from jaxpg.losses.sequence.aggregation import sequence_mean_token_mean
from jaxpg.losses.sequence.batch import SequenceBatch, require
from jaxpg.losses.sequence.groups import group_mean, group_std, relabel
from jaxpg.losses.sequence.recipe import PolicyTerm, Recipe
from jaxpg.losses.sequence.regularizers import kl_penalty

Array = chex.Array


def stratified_advantage(rewards: Array, batch: SequenceBatch, *, alpha: float = 1.0, eps: float = 1e-6,
                         ddof: int = 1) -> Array:
    r"""Blended stratified advantage (Zhu et al. 2025, arXiv:2510.06214, SAN and its blend):

    .. math::

       A^{SAN}_i = \frac{R_i - \mu_{g,k}}{\sigma_{g,k} + \epsilon}, \qquad
       A^{GN}_i = \frac{R_i - \mu_g}{\sigma_g + \epsilon}, \qquad
       A_i = \alpha A^{SAN}_i + (1 - \alpha) A^{GN}_i

    with :math:`(g, k)` the cell of response i: its group and its stratum (``batch.strata``), found
    with :func:`~jaxpg.losses.sequence.groups.relabel`, so no static count of strata is needed.
    ``alpha = 1`` is pure SAN (grpo-composer's default; the paper's value is not confirmed),
    ``alpha = 0`` is GRPO. ``ddof`` is the std's (1: torch's unbiased std, as the GRPO here); a
    cell of one response has std 0 and A_SAN = 0.
    """
    require(batch, ("strata",), "stratified_advantage")
    ids = batch.group_ids
    cells = relabel(ids, batch.strata)
    san = (rewards - group_mean(rewards, cells)) / (group_std(rewards, cells, ddof=ddof) + eps)
    gn = grpo_advantage(rewards, batch, ddof=ddof, eps=eps)
    return alpha * san + (1.0 - alpha) * gn


STRATIFIED_GRPO = Recipe(
    name="stratified_grpo",
    terms=(PolicyTerm(advantage=functools.partial(stratified_advantage, alpha=1.0),
                      aggregate=sequence_mean_token_mean),),
    regularizers=((0.04, kl_penalty),),
    requires=("strata", "ref_logp"),
    paper="Zhu et al. 2025, Stratified GRPO (arXiv:2510.06214): advantages normalized within (prompt, stratum) "
          "cells (SAN, alpha = 1); otherwise GRPO's loss (clip 0.2, per-sequence token mean, 0.04 k3-KL)",
)

RECIPES: dict = {STRATIFIED_GRPO.name: STRATIFIED_GRPO}

__all__ = ["RECIPES", "STRATIFIED_GRPO", "stratified_advantage"]
