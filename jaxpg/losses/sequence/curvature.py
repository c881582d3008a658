r"""CAPO: reject the tokens whose predicted policy change breaks a trust region (last-layer curvature).

Melo, Abate & Gal 2025, "Stabilizing Policy Gradients for Sample-Efficient Reinforcement Learning
in LLM Reasoning" (CAPO, Curvature-Aware Policy Optimization, arXiv:2510.00819). CAPO models the
curvature of the update with the last layer only: for the LM head :math:`W \in \mathbb{R}^{d\times V}`
(logits :math:`z_t = W^\top h_t` from last-layer features :math:`h_t`), the Fisher / Gauss-Newton
matrix of token t is

.. math:: F_t = (\operatorname{diag} p_t - p_t p_t^\top) \otimes h_t h_t^\top .

The policy-gradient loss :math:`L = \operatorname{Agg}_t(-A_t \log p_t(y_t))` has the closed-form
head gradient :math:`\nabla_W L = -\sum_t c_t A_t\, h_t (e_{y_t} - p_t)^\top`, with :math:`c_t` the
aggregation's weight of token t, so a gradient step :math:`\Delta = -\eta \nabla_W L` moves token
t's logits by :math:`\delta z_t = \Delta^\top h_t` and changes its next-token distribution by

.. math:: \mathrm{KL}_t \approx \tfrac12 \operatorname{vec}(\Delta)^\top F_t \operatorname{vec}(\Delta)
          = \tfrac12\, \delta z_t^\top (\operatorname{diag} p_t - p_t p_t^\top)\, \delta z_t
          = \tfrac12 \operatorname{Var}_{v\sim p_t}[\delta z_{t,v}],

computed in this factored form (a ``[d, V]`` update and ``[N, V]`` logit changes; the
``Vd x Vd`` Fisher is never formed). :func:`capo_token_weight` masks the tokens whose predicted KL
exceeds ``delta_kl``.

**What is confirmed and what is this library's reading.** Confirmed (abstract and summaries): a
last-layer curvature model, data selection that masks samples contributing to unstable updates
(fewer than 8% of tokens rejected), a GRPO base loss. Not confirmed (the paper's method section
and code, luckeciano/CAPO, were not read): that the criterion is this per-token predicted KL
with a threshold (the paper also predicts the change in the objective for a monotonic-
improvement condition, not implemented here), that it is per token rather than per sequence,
that the update is a plain gradient step of size ``lr`` (the trainer's optimizer is Adam), the
aggregation weights, and the defaults ``lr`` and ``delta_kl``, which depend on the scale of the
features and should be set from the predicted-KL distribution of a run
(:func:`capo_predicted_kl`). The head has no bias term; the PG direction is taken at the
sampling policy (ratio 1).

Inputs: ``batch.logits [B, T, V]`` (the trained policy's logits; used as constants here) and
``batch.extras["hidden"] [B, T, d]`` (the last-layer features that produce them). The sampled
token ids are ``batch.extras["tokens"]`` when given, else recovered from ``logits`` and ``logp``
(:func:`sampled_tokens`).
"""

from __future__ import annotations

import functools
from typing import Callable

import chex
import jax
import jax.numpy as jnp

from jaxpg.losses.sequence.advantages import grpo_advantage
from jaxpg.losses.sequence.aggregation import sequence_mean_token_mean
from jaxpg.losses.sequence.batch import SequenceBatch, require
from jaxpg.losses.sequence.recipe import PolicyTerm, Recipe
from jaxpg.losses.sequence.regularizers import kl_penalty

Array = chex.Array
sg = jax.lax.stop_gradient


def head_update(hidden: Array, probs: Array, tokens: Array, token_coef: Array, lr: float) -> Array:
    r"""The LM-head step :math:`\Delta = \eta \sum_t c_t\, h_t (e_{y_t} - p_t)^\top` (``[d, V]``):
    minus ``lr`` times the head gradient of :math:`\sum_t c_t (-\log p_t(y_t))` with
    ``token_coef`` :math:`c_t` (advantage times aggregation weight; 0 on padding).

    ``hidden [N, d]``, ``probs [N, V]``, ``tokens [N]`` int, ``token_coef [N]``."""
    score = jax.nn.one_hot(tokens, probs.shape[-1], dtype=probs.dtype) - probs  # d log p(y) / d z
    return lr * hidden.T @ (token_coef[:, None] * score)


def predicted_kl(hidden: Array, probs: Array, delta: Array) -> Array:
    r"""Per-token second-order KL of a head step ``delta [d, V]``:
    :math:`\tfrac12 \operatorname{Var}_{p_t}[\delta z_t]`, :math:`\delta z_t = \Delta^\top h_t`
    (the factored :math:`\tfrac12 \Delta^\top F_t \Delta`). ``hidden [N, d]``, ``probs [N, V]`` -> ``[N]``."""
    dz = hidden @ delta  # [N, V]
    centred = dz - jnp.sum(probs * dz, axis=-1, keepdims=True)
    return 0.5 * jnp.sum(probs * jnp.square(centred), axis=-1)


def sampled_tokens(batch: SequenceBatch) -> Array:
    """The sampled token ids ``[B, T]``: ``batch.extras["tokens"]`` if given, else the vocabulary
    entry whose log-probability under ``batch.logits`` is closest to ``batch.logp`` (exact when
    ``logp`` was gathered from these logits, as in one forward pass; two tokens with equal
    probability are interchangeable for ``logp`` and differ only in the update direction)."""
    if "tokens" in batch.extras:
        return batch.extras["tokens"]
    log_probs = jax.nn.log_softmax(sg(batch.logits), axis=-1)
    return jnp.argmin(jnp.abs(log_probs - sg(batch.logp)[..., None]), axis=-1)


def aggregation_weights(aggregate: Callable, mask: Array) -> Array:
    """``[B, T]`` weight of each token's loss in ``aggregate(loss, mask)`` (its gradient, since
    every aggregation here is linear in the loss)."""
    return jax.grad(lambda loss: aggregate(loss, mask))(jnp.zeros(mask.shape, jnp.float32))


def capo_predicted_kl(batch: SequenceBatch, adv: Array, *, lr: float,
                      aggregate: Callable = sequence_mean_token_mean) -> Array:
    """``[B, T]`` predicted KL of every token's next-token distribution after one head step on the
    batch's policy-gradient loss (advantages ``adv [B, T]``, aggregated by ``aggregate``); 0 on padding."""
    require(batch, ("logits", "hidden"), "capo_predicted_kl")
    b, t, v = batch.logits.shape
    hidden = sg(batch.extras["hidden"]).reshape(b * t, -1).astype(jnp.float32)
    probs = jax.nn.softmax(sg(batch.logits).astype(jnp.float32), axis=-1).reshape(b * t, v)
    tokens = sampled_tokens(batch).reshape(b * t)
    valid = batch.mask != 0
    coef = jnp.where(valid, sg(adv) * aggregation_weights(aggregate, batch.mask), 0.0).reshape(b * t)
    delta = head_update(hidden, probs, tokens, coef, lr)
    return jnp.where(valid, predicted_kl(hidden, probs, delta).reshape(b, t), 0.0)


def capo_token_weight(batch: SequenceBatch, adv: Array, log_ratio: Array, clipped: Array, key: jax.Array | None, *,
                      lr: float = 1.0, delta_kl: float = 0.05,
                      aggregate: Callable = sequence_mean_token_mean) -> Array:
    r"""Token-weight slot: 1 where the predicted KL (:func:`capo_predicted_kl`) is at most
    ``delta_kl``, 0 where it exceeds it (and on padding). ``aggregate`` must be the term's
    aggregation (it sets each token's share of the update)."""
    kl = capo_predicted_kl(batch, adv, lr=lr, aggregate=aggregate)
    return ((kl <= delta_kl) & (batch.mask != 0)).astype(jnp.float32)


def capo_recipe(*, lr: float = 1.0, delta_kl: float = 0.05, kl_coef: float = 0.04) -> Recipe:
    """GRPO (group-normalized advantage, clip 0.2, seq-mean-token-mean, k3-KL ``kl_coef``) with
    CAPO's token mask."""
    aggregate = sequence_mean_token_mean
    term = PolicyTerm(
        advantage=grpo_advantage,
        aggregate=aggregate,
        token_weight=functools.partial(capo_token_weight, lr=lr, delta_kl=delta_kl, aggregate=aggregate),
    )
    return Recipe(
        name="capo",
        terms=(term,),
        regularizers=((kl_coef, kl_penalty),) if kl_coef else (),
        requires=("logits", "hidden") + (("ref_logp",) if kl_coef else ()),
        paper="Melo, Abate & Gal 2025, CAPO (arXiv:2510.00819): GRPO with tokens masked where a last-layer "
              "Fisher model predicts a KL above delta_kl for one head step of size lr (criterion, per-token "
              "granularity and defaults are this library's reading, not confirmed)",
    )


CAPO = capo_recipe()

RECIPES: dict = {CAPO.name: CAPO}
