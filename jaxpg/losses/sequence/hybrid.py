r"""HPT: per prompt, RL on its rollouts or SFT on its demonstration, switched by success (loss-catalog A10).

Lv, Zuo, et al. 2025, "Towards a Unified View of Large Language Model Post-Training" (Hybrid
Post-Training, arXiv:2509.04419; code: TsinghuaC3I/Unify-Post-Training, ``hpt/verl/verl/mix_src``:
``mix_trainer.py`` (``select_on_off_ada_balance``, the ``switch`` strategy), ``mix_core_alg.py``,
``exp_scripts/train.sh``). For each prompt, count the successes :math:`s_q` (rewards equal to the
success value 1) among its n on-policy rollouts; if :math:`s_q \le` ``gate`` (0) the rollouts are
dropped and the prompt's demonstration is trained by SFT, otherwise the rollouts are trained by RL:

.. math::

   L = \frac{1}{B L_{max}} \sum_{i:\, s_{q(i)} > \text{gate}} \sum_t m_{it}\,(-A_i \rho_{it})
       + c_{sft} \operatorname{mean}_{t \in \text{demos of } q:\, s_q \le \text{gate}} (-\log\pi_\theta)

with Dr.GRPO's advantage over the on-policy rows (``grpo_use_std=False``), no clip
(``loss_remove_clip``), the token sum over a constant length (``loss_remove_token_mean``), and
``sft_coef = 1``.

Batch layout: every prompt's demonstration is a row with ``is_demo = 1`` and the prompt's group id
(present whether or not the gate selects it: the gate is applied here, as masks). Demo rows never
enter the RL term or the group statistics. Deviations: the RL denominator counts all B rows (demos
included; the code divides the micro-batch's token sum by T only), a constant scale; the code's
entropy bonus (coefficient 0.001) is left out: it needs ``batch.logits`` and would count the
gated-out rollouts, which the code removes from the batch (add ``(0.001, entropy_bonus)`` to
``regularizers`` to get it).
"""

from __future__ import annotations

import functools

import chex
import jax.numpy as jnp

from jaxpg.losses.sequence.aggregation import constant_length_mean, token_mean
from jaxpg.losses.sequence.batch import SequenceBatch, require
from jaxpg.losses.sequence.groups import group_count, group_mean
from jaxpg.losses.sequence.recipe import PolicyTerm, Recipe
from jaxpg.losses.sequence.rewards import scalar_reward
from jaxpg.losses.sequence.surrogates import reinforce_ratio_surrogate

Array = chex.Array


def _on_policy(batch: SequenceBatch) -> Array:
    require(batch, ("is_demo",), "HPT")
    return 1.0 - batch.is_demo.astype(jnp.float32)


def hpt_advantage(rewards: Array, batch: SequenceBatch) -> Array:
    r"""Dr.GRPO's advantage over the on-policy rows of each group,
    :math:`A_i = r_i - \operatorname{mean}_{j \in q,\ \text{on-policy}} r_j`; 0 on demo rows."""
    on_policy = _on_policy(batch).astype(rewards.dtype)
    return on_policy * (rewards - group_mean(rewards, batch.group_ids, on_policy))


def group_successes(batch: SequenceBatch, *, success_value: float = 1.0) -> Array:
    """Number of on-policy rollouts of each response's group whose reward reaches ``success_value``
    (the code counts rewards equal to 1), ``[B]``."""
    on_policy = _on_policy(batch)
    success = (scalar_reward(batch) >= success_value).astype(jnp.float32) * on_policy
    return group_count(batch.group_ids, success)


def hpt_rl_weight(batch: SequenceBatch, *, gate: int = 0, success_value: float = 1.0) -> Array:
    """The RL term's sample weight: 1 on on-policy rows of groups with more than ``gate`` successes."""
    above = group_successes(batch, success_value=success_value) > gate
    return _on_policy(batch) * above.astype(jnp.float32)


def hpt_sft_nll(batch: SequenceBatch, adv: Array, log_ratio: Array, *, gate: int = 0,
                success_value: float = 1.0) -> Array:
    """The SFT regularizer: token-mean NLL of the demo rows of groups with at most ``gate``
    successes (0 when no group is at or below the gate)."""
    at_or_below = (group_successes(batch, success_value=success_value) <= gate).astype(jnp.float32)
    demo_mask = batch.mask * (batch.is_demo.astype(jnp.float32) * at_or_below)[:, None].astype(batch.mask.dtype)
    return token_mean(-batch.logp, demo_mask)


def make_hpt(name: str = "hpt", *, gate: int = 0, sft_coef: float = 1.0, success_value: float = 1.0) -> Recipe:
    """An HPT recipe with the given switch gate and SFT coefficient (``sft_coef = 0.3`` is the
    paper's setting for 1.5B models)."""
    options = dict(gate=gate, success_value=success_value)
    return Recipe(
        name=name,
        terms=(PolicyTerm(
            advantage=hpt_advantage,
            surrogate=reinforce_ratio_surrogate,
            sample_weight=functools.partial(hpt_rl_weight, **options),
            aggregate=constant_length_mean,
        ),),
        regularizers=((sft_coef, functools.partial(hpt_sft_nll, **options)),),
        requires=("is_demo",),
        paper=f"Lv et al. 2025, HPT (arXiv:2509.04419): per prompt, RL (Dr.GRPO advantage over on-policy rows, "
              f"unclipped -A rho, token sum / (B T)) if successes > {gate}, else SFT NLL on its demonstration "
              f"(coef {sft_coef:g})",
    )


HPT = make_hpt("hpt")

RECIPES: dict = {HPT.name: HPT}

__all__ = ["HPT", "RECIPES", "group_successes", "hpt_advantage", "hpt_rl_weight", "hpt_sft_nll", "make_hpt"]
