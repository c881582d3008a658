r"""Turn-level importance sampling for multi-turn PPO: Turn-PPO.

Li et al. 2025, "ST-PPO: Stabilized Off-Policy Proximal Policy Optimization for Multi-Turn
Agents" (arXiv:2511.20718; v2 retitled "Stabilizing Off-Policy Training for Long-Horizon LLM
Agent via Turn-Level Importance Sampling and Clipping-Triggered Normalization"). A response is
K turns (the agent's token spans between tool calls or environment observations). The paper's
turn-level ratio is the geometric mean of the token ratios within a turn,

.. math:: \rho_k = \exp\Big(\frac{1}{|y^k|}\sum_{t \in k} \log\frac{\pi_\theta(y_t|s_t)}{\pi_{old}(y_t|s_t)}\Big),

shared by every token of turn k inside PPO's clip (epsilon 0.2), with token-level GAE
advantages from a critic.

**What is implemented: Turn-PPO only.** The paper's variants are Turn-PPO (turn-level IS only),
S-PPO (the clipping-bias normalizer on token PPO) and ST-PPO (both). The normalizer's formula
(the paper's Eq. 8) could not be read from the sources available here (only abstracts and
summaries), so it is not implemented and the recipe is named ``"turn_ppo"``, not ``"st_ppo"``.
Adding it later is one ``token_weight`` or aggregation slot on this recipe.

Other choices (not from the paper): the critic is the value head's per-token prediction (the
paper's critic estimates a turn-level state value); the scalar reward sits on the last valid
token with no KL term; value-loss coefficient 0.5. Environment tokens must be masked out
(``mask = 0``): they are excluded from the turn means and skipped by GAE.
"""

from __future__ import annotations

from jaxpg.losses.sequence.ratios import segment_log_ratio
from jaxpg.losses.sequence.token_rewards import gae_ppo_recipe, terminal_token_rewards

TURN_PPO = gae_ppo_recipe(
    "turn_ppo",
    token_reward=terminal_token_rewards,
    ratio=segment_log_ratio,
    requires=("segment_ids", "values", "old_values"),
    value_coef=0.5,
    paper="Li et al. 2025, ST-PPO (arXiv:2511.20718), Turn-PPO variant: turn-level geometric-mean ratio "
          "(segment_ids) in PPO clip 0.2, token GAE (gamma 1, lambda 0.95, whitened) on the terminal reward; the "
          "clipping-bias normalizer (Eq. 8, S-PPO/ST-PPO) is not implemented",
)

RECIPES: dict = {TURN_PPO.name: TURN_PPO}
