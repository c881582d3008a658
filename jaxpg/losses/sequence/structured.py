r"""RL-Struct: GRPO on a weighted sum of structural reward components (loss-catalog A11).

RL-Struct 2025 (arXiv:2512.00319; no code found, only the model Freakz3z/Qwen-JSON): standard
GRPO (the paper's "Gradient Regularized Policy Optimization" appears to be GRPO) on the
hierarchical reward :math:`r = \sum_k w_k r_k` over structural components. The paper's weights are
not known; here the structured token task's three components are weighted
(structure/format, key, value) = (0.2, 0.3, 0.5), so content counts most once the syntax is right.
A trainer can move the weights during training through ``batch.extras["reward_weights"]``
(:func:`~jaxpg.losses.sequence.rewards.weighted_reward`).
"""

from __future__ import annotations

import functools

from jaxpg.losses.sequence.advantages import grpo_advantage
from jaxpg.losses.sequence.aggregation import sequence_mean_token_mean
from jaxpg.losses.sequence.recipe import PolicyTerm, Recipe
from jaxpg.losses.sequence.regularizers import kl_penalty
from jaxpg.losses.sequence.rewards import weighted_reward

RL_STRUCT_WEIGHTS = (0.2, 0.3, 0.5)  # (structure/format, key, value)

RL_STRUCT = Recipe(
    name="rl_struct",
    terms=(PolicyTerm(
        advantage=grpo_advantage,
        reward=functools.partial(weighted_reward, weights=RL_STRUCT_WEIGHTS),
        aggregate=sequence_mean_token_mean,
    ),),
    regularizers=((0.04, kl_penalty),),
    requires=("ref_logp",),
    paper="RL-Struct 2025 (arXiv:2512.00319): GRPO (clip 0.2, per-sequence token mean, 0.04 k3-KL) on the "
          "reward 0.2 structure + 0.3 key + 0.5 value of [B, 3] reward components",
)

RECIPES: dict = {RL_STRUCT.name: RL_STRUCT}

__all__ = ["RECIPES", "RL_STRUCT", "RL_STRUCT_WEIGHTS"]
