r"""POLAR: a reward model that ranks by policy similarity, and PPO on its score.

Lv et al. 2025, "Pre-Trained Policy Discriminators are General Reward Models" (POLAR,
arXiv:2507.05197; code InternLM/POLAR). The reward model scores a candidate against a reference
answer, :math:`s(x, y_{ref}, y)`, and is pre-trained to score a candidate from the *same* policy
as the reference above one from a different policy, with a Bradley-Terry ranking loss
(:func:`polar_ranking_loss`; fine-tuning uses the same form on (reference, chosen, rejected)).
The RL stage is plain PPO with GAE on the reward model's score, no KL, clip 0.2
(:data:`POLAR_PPO`).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from jaxpg.losses.sequence.token_rewards import gae_ppo_recipe, terminal_token_rewards

Array = chex.Array


def polar_ranking_loss(score_same: Array, score_diff: Array) -> Array:
    r"""POLAR's Bradley-Terry ranking loss (the code's ``loss_type = "ranking"``), batch mean:

    .. math:: \mathcal{L} = -\log\sigma\big(s(x, y_{A1}, y_{A2}) - s(x, y_{A1}, y_B)\big)

    ``score_same [B]``: the score of a candidate from the reference's own policy; ``score_diff [B]``:
    that of a candidate from another policy. Written as ``softplus(-(s_same - s_diff))``, finite
    for any finite scores. Gradient flows through both scores.
    """
    return jnp.mean(jax.nn.softplus(score_diff - score_same))


POLAR_PPO = gae_ppo_recipe(
    "polar_ppo",
    token_reward=terminal_token_rewards,
    requires=("values", "old_values"),
    value_coef=0.5,
    paper="Lv et al. 2025, POLAR (arXiv:2507.05197): PPO on the reward model's score (batch.rewards) on the last "
          "token, GAE (gamma 1, lambda 0.95, whitened), no KL, clip 0.2; value-loss coef 0.5 is this library's "
          "choice (the paper trains a separate critic, lr 1e-5 vs actor 1e-6)",
)

RECIPES: dict = {POLAR_PPO.name: POLAR_PPO}
