"""The catalog: one recipe per paper, by name (``get_recipe("grpo")``).

Each entry is a loss ``fn(batch, key=None) -> (loss, aux)`` with ``name``, ``paper``,
``requires``, ``needs_key`` and ``kind``: ``"group"`` (G sampled responses per prompt, scalar
rewards), ``"pairwise"`` (groups of two with a preference in ``batch.extras["preferred"]``) or
``"demonstration"`` (the batch holds demonstrations: ``targets`` and ``logits``). The trainer
(:mod:`jaxpg.algos.sequence`) builds the batch each kind needs.
"""

from __future__ import annotations

import functools

from jaxpg.losses.sequence import advantages as adv
from jaxpg.losses.sequence.aggregation import constant_length_mean, sequence_mean_token_mean, sequence_mean_token_sum
from jaxpg.losses.sequence.recipe import PolicyTerm, Recipe
from jaxpg.losses.sequence.regularizers import kl_penalty
from jaxpg.losses.sequence.surrogates import constant_clip, ppo_surrogate

GRPO = Recipe(
    name="grpo",
    terms=(PolicyTerm(advantage=adv.grpo_advantage, aggregate=sequence_mean_token_mean),),
    regularizers=((0.04, kl_penalty),),
    requires=("ref_logp",),
    paper="Shao et al. 2024, DeepSeekMath (arXiv:2402.03300): group-normalized advantage, PPO clip 0.2, "
          "per-sequence token mean, beta = 0.04 k3-KL to the reference",
)

DR_GRPO = Recipe(
    name="dr_grpo",
    terms=(PolicyTerm(advantage=adv.dr_grpo_advantage, aggregate=constant_length_mean),),
    paper="Liu et al. 2025, Understanding R1-Zero-Like Training (arXiv:2503.20783): A = r - mean_g r, "
          "token sum over a constant length, no KL",
)

RLOO = Recipe(
    name="rloo",
    terms=(PolicyTerm(advantage=adv.rloo_advantage, aggregate=sequence_mean_token_mean),),
    paper="Ahmadian et al. 2024, Back to Basics (arXiv:2402.14740): leave-one-out baseline",
)

BNPO = Recipe(
    name="bnpo",
    terms=(PolicyTerm(
        advantage=functools.partial(adv.bnpo_advantage, cap=1e6),
        clip=functools.partial(constant_clip, low=0.2, high=0.28),
        surrogate=functools.partial(ppo_surrogate, dual_clip=10.0),
        aggregate=sequence_mean_token_sum,
    ),),
    paper="Xiao et al. 2025, BNPO (arXiv:2506.02864): Beta-normalized advantage fitted to the batch's success "
          "rates, dual clip (0.2, 0.28, c = 10), seq-mean-token-sum, weight cap 1e6 (official code)",
)

BASE: dict = {r.name: r for r in (GRPO, DR_GRPO, RLOO, BNPO)}


def _catalog() -> dict:
    """Every family module's recipes, by name (a duplicate name is a bug, not an override)."""
    from jaxpg.losses.sequence import (copo, curvature, distribution_matching, down_sampling, empg, entropy_mechanism,
                                       hapo, hybrid, one_token_rollout, pairwise, reward_models, reward_weighting,
                                       stratified, structured, token_rewards, turn_level)

    catalog = dict(BASE)
    for module in (stratified, hapo, copo, entropy_mechanism, empg, down_sampling, hybrid, structured, curvature,
                   turn_level, token_rewards, reward_models, reward_weighting, distribution_matching,
                   one_token_rollout, pairwise):
        for name, recipe in module.RECIPES.items():
            if name in catalog:
                raise RuntimeError(f"two recipes named {name!r}")
            catalog[name] = recipe
    return catalog


RECIPES: dict = _catalog()


def get_recipe(name: str):
    """The catalog entry ``name``; unknown names raise with the valid choices."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; valid choices: {', '.join(sorted(RECIPES))}")
    return RECIPES[name]
