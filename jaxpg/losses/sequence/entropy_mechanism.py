r"""Clip-Cov and KL-Cov: act on the few tokens whose covariance drives entropy collapse (loss-catalog A2).

Cui, Zhang, Chen, Yuan, et al. 2025, "The Entropy Mechanism of Reinforcement Learning for Reasoning
Language Models" (arXiv:2505.22617; code: PRIME-RL/Entropy-Mechanism-of-RL,
``verl/trainer/ppo/core_algos.py``: ``compute_policy_loss_clip_cov``, ``compute_policy_loss_kl_cov``).
For a softmax policy the entropy change of one policy-gradient step is about
:math:`-\eta\,\mathrm{Cov}_{a \sim \pi}(\log\pi(a), \pi(a) A(a))` (natural PG:
:math:`-\eta\,\mathrm{Cov}(\log\pi, A)`), so tokens with a large positive
:math:`(A - \bar A)(\log\pi - \overline{\log\pi})` are those that collapse the entropy. Clip-Cov
detaches a random few of them; KL-Cov penalizes :math:`|\log\pi - \log\pi_{old}|` on the top ones.

Deviation: the released ``compute_policy_loss_clip_cov`` has its dual clip commented out; the
``clip_cov`` recipe adds the dual clip c = 10 the catalog lists (it only acts on tokens with A < 0
and a ratio above 10, where the clip range 1/1 no longer bounds the loss).

Selections use static shapes: a token's rank among the candidates (an argsort of the flattened
``[B*T]`` scores, scattered back) is compared with a count computed from the mask: no ``top_k`` with a traced k.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp

from jaxpg.losses.sequence.advantages import grpo_advantage
from jaxpg.losses.sequence.aggregation import token_mean
from jaxpg.losses.sequence.batch import SequenceBatch
from jaxpg.losses.sequence.recipe import PolicyTerm, Recipe
from jaxpg.losses.sequence.surrogates import constant_clip, ppo_surrogate, reinforce_ratio_surrogate

Array = chex.Array
sg = jax.lax.stop_gradient


def covariance_score(adv: Array, logp: Array, mask: Array) -> Array:
    r"""Per-token centred cross product over the valid tokens of the batch (no gradient):

    .. math:: c_t = (A_t - \bar A)(\log\pi_t - \overline{\log\pi})

    with the means over valid tokens; its token mean is the batch covariance
    :math:`\mathrm{Cov}(A, \log\pi)`. 0 on padding."""
    valid = mask != 0
    adv, logp = sg(adv), sg(logp)
    adv_c = adv - token_mean(adv, mask)
    logp_c = logp - token_mean(logp, mask)
    return jnp.where(valid, adv_c * logp_c, 0.0)


def _count(n: Array, rate: float) -> Array:
    """``max(1, floor(n * rate))`` as the code's Python ``int(n * rate)``: float32 can land just
    below an exact integer (30 x 0.1 -> 2.9999998), so the product is nudged up by a relative 1e-6
    (it can then only round a value up across an integer it is within 1e-6 relative of: with the
    official rates, whose multiples are at least ``rate`` away from the next integer, that needs
    over ~7e5 valid tokens)."""
    return jnp.maximum(jnp.floor(n.astype(jnp.float32) * rate * (1.0 + 1e-6)), 1.0).astype(jnp.int32)


def _descending_rank(score: Array) -> Array:
    """Rank of each entry of ``score`` in descending order (0 = largest; ties by position)."""
    flat = score.reshape(-1)
    order = jnp.argsort(-flat, stable=True)
    return jnp.zeros(flat.shape, jnp.int32).at[order].set(jnp.arange(flat.shape[0], dtype=jnp.int32)).reshape(
        score.shape)


def clip_cov_weight(batch: SequenceBatch, adv: Array, log_ratio: Array, clipped: Array, key: jax.Array, *,
                    fraction: float = 2e-4, lower: float = 1.0, upper: float = 5.0) -> Array:
    r"""Clip-Cov's token weights (a token-weight slot): 0 on :math:`\max(1, \lfloor f N \rfloor)`
    tokens drawn uniformly at random among the valid, not already clipped tokens with
    ``lower < c_t < upper`` (:func:`covariance_score`, with :math:`\log\pi` = ``batch.logp``), 1
    elsewhere; N is the number of valid tokens. Fewer candidates: all of them get 0. The official
    defaults: f = 2e-4, bounds (1, 5).

    ``clipped`` is the surrogate's mask; with a dual-clip surrogate it also holds the dual-clipped
    tokens, which the official code (no dual clip) could not have; they have no gradient either.
    """
    if key is None:
        raise ValueError("clip_cov_weight draws random tokens: the recipe needs a key")
    valid = batch.mask != 0
    cov = covariance_score(adv, batch.logp, batch.mask)
    eligible = valid & ~clipped & (cov > lower) & (cov < upper)
    count = _count(jnp.sum(valid), fraction)
    # A uniform random subset of `count` eligible tokens: the `count` largest uniform priorities.
    priority = jnp.where(eligible, jax.random.uniform(key, cov.shape), -1.0)
    selected = eligible & (_descending_rank(priority) < count)
    return jnp.where(selected, 0.0, 1.0)


def kl_cov_mask(batch: SequenceBatch, adv: Array, *, k_percent: float = 0.2) -> Array:
    r"""KL-Cov's selection: 1 on the :math:`\max(1, \lfloor N k / 100 \rfloor)` valid tokens with
    the largest :func:`covariance_score` (``k_percent`` is a percentage, as the code: 0.2 means
    0.2 %), 0 elsewhere; all 0 when ``k_percent == 0`` (the code skips the selection)."""
    if k_percent == 0:
        return jnp.zeros(batch.mask.shape, batch.logp.dtype)
    valid = batch.mask != 0
    cov = jnp.where(valid, covariance_score(adv, batch.logp, batch.mask), -jnp.inf)
    count = _count(jnp.sum(valid), k_percent / 100.0)
    return (valid & (_descending_rank(cov) < count)).astype(batch.logp.dtype)


def kl_cov_penalty(batch: SequenceBatch, adv: Array, log_ratio: Array, *, k_percent: float = 0.2) -> Array:
    r"""KL-Cov's penalty (a regularizer): the token mean over all valid tokens of
    :math:`m^{cov}_t\,|\log\pi_\theta - \log\pi_{old}|`, with :math:`m^{cov}` from :func:`kl_cov_mask`;
    the official loss adds ``coef * |logp - old_logp|`` to the per-token loss of the selected
    tokens and token-means, which is this with the recipe's coefficient. Gradient flows through
    ``batch.logp``."""
    selected = sg(kl_cov_mask(batch, adv, k_percent=k_percent))
    return token_mean(selected * jnp.abs(batch.logp - batch.old_logp), batch.mask)


CLIP_COV = Recipe(
    name="clip_cov",
    terms=(PolicyTerm(
        advantage=grpo_advantage,
        clip=functools.partial(constant_clip, low=1.0, high=1.0),
        surrogate=functools.partial(ppo_surrogate, dual_clip=10.0),
        token_weight=functools.partial(clip_cov_weight, fraction=2e-4, lower=1.0, upper=5.0),
        aggregate=token_mean,
    ),),
    needs_key=True,
    paper="Cui et al. 2025, The Entropy Mechanism of RL for Reasoning LMs (arXiv:2505.22617): Clip-Cov, GRPO "
          "advantage, clip range 1/1 (off) with dual clip c = 10, gradient detached on max(1, 2e-4 N) random "
          "tokens with covariance in (1, 5), token-mean",
)

KL_COV = Recipe(
    name="kl_cov",
    terms=(PolicyTerm(advantage=grpo_advantage, surrogate=reinforce_ratio_surrogate, aggregate=token_mean),),
    regularizers=((1.0, functools.partial(kl_cov_penalty, k_percent=0.2)),),
    paper="Cui et al. 2025, The Entropy Mechanism of RL for Reasoning LMs (arXiv:2505.22617): KL-Cov, GRPO "
          "advantage, unclipped -A rho, + 1.0 |logp - old_logp| on the top 0.2 % tokens by covariance, token-mean",
)

RECIPES: dict = {r.name: r for r in (CLIP_COV, KL_COV)}

__all__ = ["CLIP_COV", "KL_COV", "RECIPES", "clip_cov_weight", "covariance_score", "kl_cov_mask", "kl_cov_penalty"]
