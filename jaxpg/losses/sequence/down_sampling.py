r"""D^3S: train on the responses and tokens that carry the most signal (loss-catalog A7).

Wang, Yang, Tian, Shi, Ma, Liu, Yao, Ding 2025, "Learning More with Less: A Dynamic Dual-Level
Down-Sampling Framework for Efficient Policy Optimization" (arXiv:2509.22115; code only in the
paper's supplementary material, not read: the details below follow the abstract and are marked
where unconfirmed). Two levels:

- sample level (:func:`d3s_sample_weight`): per group, keep the ``keep`` responses whose
  advantages have the largest variance (the paper bounds the policy-gradient norm by Var(A));
- token level (:func:`d3s_token_weight`): keep the fraction of tokens with the largest
  :math:`|A_{i,t}| H_{i,t}` (impactful and uncertain);

with a keep fraction that starts small and relaxes towards 1 (:func:`keep_schedule`; the schedule's
shape is not confirmed). Whether the paper recomputes the advantages on the kept subset is not
confirmed; here they are not.
"""

from __future__ import annotations

import functools
from typing import Callable

import chex
import jax
import jax.numpy as jnp

from jaxpg.losses.sequence.advantages import grpo_advantage
from jaxpg.losses.sequence.aggregation import token_mean
from jaxpg.losses.sequence.batch import SequenceBatch, require
from jaxpg.losses.sequence.groups import group_count
from jaxpg.losses.sequence.recipe import PolicyTerm, Recipe
from jaxpg.losses.sequence.rewards import scalar_reward

Array = chex.Array

KEEP_FRACTION_KEY = "d3s_keep_frac"  # batch.extras key: the scheduled token keep fraction (a traced scalar)


def _rank_in_group(values: Array, ids: Array) -> Array:
    """Descending rank of each value within its group (0 = largest; ties by position). ``O(B^2)``."""
    idx = jnp.arange(values.shape[0])
    same = ids[:, None] == ids[None, :]
    ahead = (values[None, :] > values[:, None]) | ((values[None, :] == values[:, None]) & (idx[None, :] < idx[:, None]))
    return jnp.sum(same & ahead, axis=1)


def max_variance_subset(values: Array, ids: Array, keep: int) -> Array:
    r"""Per group, a subset of ``keep`` elements of ``values`` with the largest (population)
    variance, as a 0/1 mask ``[B]``; a group of at most ``keep`` elements is kept whole.

    The optimum is always the ``j`` largest together with the ``keep - j`` smallest values for some
    j (if a kept value lies between two dropped ones, swapping it for the one on the side away
    from the other kept values' mean raises the variance), so the ``keep + 1`` candidates are
    compared. For binary rewards (two advantage values per group) this is the balanced choice:
    the top ``keep`` by \|A\|, alternating signs.
    """
    keep = int(keep)
    n = group_count(ids)
    rank = _rank_in_group(values, ids)
    b = values.shape[0]

    def candidate(j):
        chosen = (rank < j) | (rank >= n - (keep - j))
        w = chosen.astype(values.dtype)
        s1 = jax.ops.segment_sum(w * values, ids, num_segments=b)
        s2 = jax.ops.segment_sum(w * jnp.square(values), ids, num_segments=b)
        return chosen, s2 / keep - jnp.square(s1 / keep)

    chosen, variance = jax.vmap(candidate)(jnp.arange(keep + 1))  # [keep + 1, B] each
    best = jnp.argmax(variance, axis=0)[ids]  # per response: its group's best j
    picked = jnp.take_along_axis(chosen, best[None, :], axis=0)[0]
    return jnp.where(n <= keep, True, picked).astype(values.dtype)


def d3s_sample_weight(batch: SequenceBatch, *, keep: int = 4, advantage: Callable = grpo_advantage) -> Array:
    """D^3S's sample level (a sample-weight slot): 1 on the ``keep`` responses per group with the
    largest advantage variance (:func:`max_variance_subset` of ``advantage(reward, batch)``), 0 on
    the others. ``keep`` is a static count (intra-group selection, the paper's D^3S-I)."""
    rewards = scalar_reward(batch)
    return max_variance_subset(advantage(rewards, batch), batch.group_ids, keep)


def d3s_token_weight(batch: SequenceBatch, adv: Array, log_ratio: Array, clipped: Array, key: jax.Array | None, *,
                     keep_frac: float = 0.5, sample_keep: int | None = None, renormalize: bool = True,
                     advantage: Callable = grpo_advantage) -> Array:
    r"""D^3S's token level (a token-weight slot): keep the :math:`\lceil f N \rceil` valid tokens
    with the largest :math:`|A_{i,t}|\,H_{i,t}` (``batch.entropy``), among the N valid tokens of the
    responses the sample level keeps (``sample_keep``, None: all responses).

    ``f`` is ``batch.extras["d3s_keep_frac"]`` when present (a trainer feeds
    :func:`keep_schedule` there without recompiling), else ``keep_frac``. ``renormalize`` scales
    the kept tokens by (valid tokens of the batch) / (kept tokens), so a token-mean aggregation
    becomes the mean over the kept tokens, as when the dropped ones are removed from the batch.
    """
    require(batch, ("entropy",), "d3s_token_weight")
    frac = jnp.clip(jnp.asarray(batch.extras.get(KEEP_FRACTION_KEY, keep_frac), jnp.float32), 0.0, 1.0)
    valid = batch.mask != 0
    candidates = valid
    if sample_keep is not None:
        candidates = candidates & (d3s_sample_weight(batch, keep=sample_keep, advantage=advantage)[:, None] > 0)
    score = jnp.where(candidates, jnp.abs(adv) * batch.entropy, -jnp.inf)
    num_candidates = jnp.sum(candidates)
    # Nudged down by a relative 1e-6: float32 can land just above an exact integer (0.3 x 30).
    count = jnp.ceil(frac * num_candidates * (1.0 - 1e-6)).astype(jnp.int32)
    order = jnp.argsort(-score.reshape(-1), stable=True)
    rank = jnp.zeros(order.shape, jnp.int32).at[order].set(jnp.arange(order.shape[0], dtype=jnp.int32))
    kept = candidates & (rank.reshape(score.shape) < count)
    weight = kept.astype(adv.dtype)
    if renormalize:
        weight = weight * jnp.sum(valid) / jnp.maximum(jnp.sum(kept), 1)
    return weight


def keep_schedule(step: Array, *, start: float = 0.5, end: float = 1.0, steps: int = 100) -> Array:
    """D^3S's curriculum: the keep fraction goes linearly from ``start`` (aggressive down-sampling)
    to ``end`` over ``steps`` training steps, then stays (the paper's schedule shape is not
    confirmed). Jittable in ``step``."""
    progress = jnp.clip(jnp.asarray(step, jnp.float32) / max(steps, 1), 0.0, 1.0)
    return start + (end - start) * progress


D3S = Recipe(
    name="d3s",
    terms=(PolicyTerm(
        advantage=grpo_advantage,
        sample_weight=functools.partial(d3s_sample_weight, keep=4),
        token_weight=functools.partial(d3s_token_weight, keep_frac=0.5, sample_keep=4),
        aggregate=token_mean,
    ),),
    requires=("entropy",),
    paper="Wang et al. 2025, D^3S (arXiv:2509.22115): GRPO on the 4 responses per group with the largest Var(A) "
          "and the top 50 % tokens by |A| H (extras['d3s_keep_frac'] overrides: keep_schedule), PPO clip 0.2, "
          "token-mean over the kept tokens, no KL",
)

RECIPES: dict = {D3S.name: D3S}

__all__ = ["D3S", "KEEP_FRACTION_KEY", "RECIPES", "d3s_sample_weight", "d3s_token_weight", "keep_schedule",
           "max_variance_subset"]
