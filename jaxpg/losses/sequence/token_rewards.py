r"""Per-token rewards and critic-based advantages: GAE over the tokens of a response (Text2Grad).

The group recipes score a response with one number; a critic recipe scores every token. This
module turns per-token rewards ``[B, T]`` and a value head's predictions into token advantages
with Generalized Advantage Estimation (Schulman et al. 2016, arXiv:1506.02438), and adds the
clipped value loss that trains the value head. RLHF-PPO (Ouyang et al. 2022), POLAR's RFT
(:mod:`.reward_models`) and Turn-PPO (:mod:`.turn_level`) are the same machinery with the
scalar reward on the last token (:func:`terminal_token_rewards`).

Slots defined here:

* token-reward functions ``fn(batch) -> [B, T]`` (:func:`text2grad_token_rewards`,
  :func:`terminal_token_rewards`), bound into the advantage with ``token_reward=``;
* the advantage slot :func:`token_gae_advantage` (returns ``[B, T]``; ``PolicyTerm`` keeps it);
* the regularizer :func:`value_loss`;
* :func:`gae_ppo_recipe`, the PPO-with-critic recipe those papers share.
"""

from __future__ import annotations

import functools
from typing import Callable

import chex
import jax
import jax.numpy as jnp

from jaxpg.losses.sequence.aggregation import token_mean
from jaxpg.losses.sequence.batch import SequenceBatch, require
from jaxpg.losses.sequence.recipe import PolicyTerm, Recipe
from jaxpg.losses.sequence.ratios import token_log_ratio
from jaxpg.losses.sequence.rewards import scalar_reward
from jaxpg.losses.sequence.surrogates import constant_clip, ppo_surrogate

Array = chex.Array
sg = jax.lax.stop_gradient


def last_token_mask(mask: Array) -> Array:
    """``[B, T]`` one-hot of each response's last valid token (all zeros for a row with none)."""
    valid = mask != 0
    t = mask.shape[1]
    last = t - 1 - jnp.argmax(valid[:, ::-1], axis=1)
    onehot = jnp.arange(t)[None, :] == last[:, None]
    return (onehot & jnp.any(valid, axis=1, keepdims=True)).astype(jnp.float32)


def _sampling_kl(batch: SequenceBatch) -> Array:
    """Per-token k1 estimate of KL(pi_old || pi_ref) on the sampled tokens, a constant."""
    return sg(batch.old_logp - batch.ref_logp)


def text2grad_token_rewards(batch: SequenceBatch, *, beta: float = 0.2) -> Array:
    r"""Text2Grad's token reward (Wang et al. 2025, "Text2Grad: Reinforcement Learning from
    Natural Language Feedback", arXiv:2505.22338; code microsoft/Text2Grad, a fork of TRL's PPO):

    .. math:: r_t = s_t - \beta\,(\log\pi_{old}(y_t) - \log\pi_{ref}(y_t))

    with :math:`s_t` the span score of token t (``batch.token_rewards``: +1 / -1 / 0 from the
    critique's good and poor spans). Deviation: the official code uses TRL's ``kl_penalty="full"``
    (the KL of the whole next-token distributions); that needs the logits of both the policy and
    the reference, so this uses the sampled-token (k1) estimate, TRL's ``"kl"`` option, which has
    the same expectation. The official beta is adaptive (initial 0.2, target KL 6); here it is a
    constant (a trainer can pass a new ``beta`` each step with ``functools.partial``).
    """
    require(batch, ("token_rewards", "ref_logp"), "text2grad_token_rewards")
    rewards = batch.token_rewards - beta * _sampling_kl(batch)
    return jnp.where(batch.mask != 0, rewards, 0.0)


def terminal_token_rewards(batch: SequenceBatch, *, beta: float = 0.0) -> Array:
    r"""RLHF-PPO's token reward (Ouyang et al. 2022, arXiv:2203.02155; TRL ``compute_rewards``):
    the scalar reward on the last valid token, minus ``beta`` times the per-token k1 KL to the
    reference on every token (``beta = 0``: no KL, and ``ref_logp`` is not needed)."""
    rewards = scalar_reward(batch)[:, None] * last_token_mask(batch.mask)
    if beta:
        require(batch, ("ref_logp",), "terminal_token_rewards with beta > 0")
        rewards = rewards - beta * _sampling_kl(batch)
    return jnp.where(batch.mask != 0, rewards, 0.0)


# Jitted (gamma, lam static) so eager callers compile the scan once per shape, not once per call.
@functools.partial(jax.jit, static_argnames=("gamma", "lam"))
def generalized_advantage(token_rewards: Array, values: Array, mask: Array, *, gamma: float = 1.0,
                          lam: float = 0.95) -> Array:
    r"""GAE along the tokens of each response (batch-major ``[B, T]``):

    .. math:: \delta_t = r_t + \gamma V_{t'} - V_t, \qquad A_t = \delta_t + \gamma\lambda A_{t'}

    where :math:`t'` is the next *valid* token: masked positions (padding, or environment tokens
    inside a multi-turn response) are skipped, carrying the next value and advantage through them
    (verl's ``compute_gae_advantage_return`` does the same), and the last valid token bootstraps
    :math:`V = 0` (the response ends there). Masked positions get 0. A constant: no gradient.
    """
    valid = mask != 0
    rewards = jnp.where(valid, token_rewards, 0.0)

    def step(carry, inputs):
        next_value, next_adv = carry
        r, v, m = inputs
        adv = r + gamma * next_value - v + gamma * lam * next_adv
        carry = (jnp.where(m, v, next_value), jnp.where(m, adv, next_adv))
        return carry, jnp.where(m, adv, 0.0)

    zeros = jnp.zeros(rewards.shape[0], rewards.dtype)
    # Scan time-major, last token first.
    xs = (rewards.T[::-1], values.T[::-1].astype(rewards.dtype), valid.T[::-1])
    _, adv = jax.lax.scan(step, (zeros, zeros), xs)
    return sg(adv[::-1].T)


def masked_whiten(x: Array, mask: Array, eps: float = 1e-8) -> Array:
    r"""TRL's ``masked_whiten``: :math:`(x - \mu) / \sqrt{\sigma^2 + \epsilon}` with the mean and
    the unbiased variance over the valid tokens of the whole batch (0 on padding). Fewer than two
    valid tokens: the variance is taken as 0 (TRL divides by zero there)."""
    m = (mask != 0).astype(x.dtype)
    n = jnp.sum(m)
    mean = jnp.sum(x * m) / jnp.maximum(n, 1.0)
    var = jnp.sum(jnp.square(x - mean) * m) / jnp.maximum(n - 1.0, 1.0)
    return jnp.where(m > 0, (x - mean) * jax.lax.rsqrt(var + eps), 0.0)


def _token_rewards(batch: SequenceBatch, token_reward: Callable | None) -> Array:
    if token_reward is None:
        require(batch, ("token_rewards",), "token_gae_advantage (token_reward=None reads batch.token_rewards)")
        return batch.token_rewards
    return token_reward(batch)


def gae_returns(batch: SequenceBatch, *, gamma: float = 1.0, lam: float = 0.95,
                token_reward: Callable | None = None) -> Array:
    """The value targets :math:`R_t = A^{GAE}_t + V^{old}_t` (before any whitening), constants."""
    require(batch, ("old_values",), "gae_returns")
    adv = generalized_advantage(_token_rewards(batch, token_reward), batch.old_values, batch.mask,
                                gamma=gamma, lam=lam)
    return sg(jnp.where(batch.mask != 0, adv + batch.old_values, 0.0))


def token_gae_advantage(rewards: Array, batch: SequenceBatch, *, gamma: float = 1.0, lam: float = 0.95,
                        whiten: bool = True, token_reward: Callable | None = None) -> Array:
    r"""Advantage slot: GAE (:func:`generalized_advantage`) over per-token rewards and the value
    head's sampling-time predictions ``batch.old_values``, returning ``[B, T]``.

    ``rewards`` (the recipe's reward-slot output) is not used: the per-token rewards come from
    ``token_reward(batch)`` (default: ``batch.token_rewards`` as given; bind
    :func:`text2grad_token_rewards` or :func:`terminal_token_rewards`). ``whiten``: TRL's and
    verl's batch whitening of the advantages (:func:`masked_whiten`). Defaults gamma = 1,
    lambda = 0.95 are TRL's.
    """
    del rewards
    require(batch, ("old_values",), "token_gae_advantage")
    adv = generalized_advantage(_token_rewards(batch, token_reward), batch.old_values, batch.mask,
                                gamma=gamma, lam=lam)
    return masked_whiten(adv, batch.mask) if whiten else adv


def value_loss(batch: SequenceBatch, adv: Array, log_ratio: Array, *, clip: float | None = 0.2, gamma: float = 1.0,
               lam: float = 0.95, token_reward: Callable | None = None) -> Array:
    r"""PPO's clipped value loss (TRL ``loss``, verl ``compute_value_loss``), token mean:

    .. math:: \tfrac12 \max\big((V_t - R_t)^2,\ (V^{old}_t + \operatorname{clip}(V_t - V^{old}_t, -c, c) - R_t)^2\big)

    with returns :math:`R_t` from :func:`gae_returns` (a constant; ``adv`` is the policy term's
    possibly whitened advantage, so the returns are recomputed with the same ``gamma``, ``lam``,
    ``token_reward``, which the recipe binds to both). Gradient flows through ``batch.values``.
    ``clip=None``: the plain squared error.
    """
    require(batch, ("values", "old_values"), "value_loss")
    returns = gae_returns(batch, gamma=gamma, lam=lam, token_reward=token_reward)
    error = jnp.square(batch.values - returns)
    if clip is not None:
        clipped = batch.old_values + jnp.clip(batch.values - batch.old_values, -clip, clip)
        error = jnp.maximum(error, jnp.square(clipped - returns))
    return token_mean(0.5 * error, batch.mask)


def gae_ppo_recipe(name: str, *, token_reward: Callable | None, paper: str, requires: tuple[str, ...],
                   gamma: float = 1.0, lam: float = 0.95, whiten: bool = True, clip: float = 0.2,
                   value_coef: float = 0.1, value_clip: float | None = 0.2, ratio: Callable = token_log_ratio,
                   recipe_class: type = Recipe) -> Recipe:
    """PPO with a critic: GAE token advantages (``token_reward`` per token), PPO clip ``clip``
    on ``ratio``, token-mean aggregation (TRL's ``masked_mean``), plus ``value_coef`` times the
    clipped value loss. The advantage and the value loss share ``gamma``, ``lam`` and
    ``token_reward``."""
    gae = dict(gamma=gamma, lam=lam, token_reward=token_reward)
    term = PolicyTerm(
        advantage=functools.partial(token_gae_advantage, whiten=whiten, **gae),
        ratio=ratio,
        clip=functools.partial(constant_clip, low=clip),
        surrogate=ppo_surrogate,
        aggregate=token_mean,
    )
    return recipe_class(
        name=name,
        terms=(term,),
        regularizers=((value_coef, functools.partial(value_loss, clip=value_clip, **gae)),),
        requires=requires,
        paper=paper,
    )


TEXT2GRAD = gae_ppo_recipe(
    "text2grad",
    token_reward=functools.partial(text2grad_token_rewards, beta=0.2),
    requires=("token_rewards", "values", "old_values", "ref_logp"),
    value_coef=0.1,
    paper="Wang et al. 2025, Text2Grad (arXiv:2505.22338): span scores per token minus beta k1-KL (beta 0.2, "
          "fixed here; adaptive in the code), GAE gamma 1 lambda 0.95 whitened, PPO clip 0.2, value loss "
          "coef 0.1 clip 0.2 (TRL PPO defaults)",
)

RECIPES: dict = {TEXT2GRAD.name: TEXT2GRAD}
