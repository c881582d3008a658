r"""Regularizers (slot ``regularizers``): ``regularizer(batch, adv, log_ratio) -> scalar``.

A recipe adds ``coef * regularizer`` to its loss. ``adv`` and ``log_ratio`` are the first policy
term's (KL-Cov selects tokens by them).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from jaxpg.losses.sequence.aggregation import token_mean
from jaxpg.losses.sequence.batch import SequenceBatch, require

Array = chex.Array

KL_ESTIMATORS = ("k1", "k2", "k3")


def kl_per_token(logp: Array, ref_logp: Array, estimator: str = "k3") -> Array:
    r"""Per-token estimates of :math:`\mathrm{KL}(\pi_\theta\|\pi_{ref})` from the sampled tokens
    (Schulman 2020, "Approximating KL divergence"), with :math:`d = \log\pi_{ref} - \log\pi_\theta`:
    k1 = :math:`-d` (unbiased, high variance), k2 = :math:`d^2/2`, k3 = :math:`e^d - d - 1`
    (unbiased, nonnegative; GRPO's choice)."""
    if estimator not in KL_ESTIMATORS:
        raise ValueError(f"unknown KL estimator {estimator!r}; valid choices: {', '.join(KL_ESTIMATORS)}")
    d = ref_logp - logp
    if estimator == "k1":
        return -d
    if estimator == "k2":
        return 0.5 * jnp.square(d)
    return jnp.expm1(d) - d


def kl_penalty(batch: SequenceBatch, adv: Array, log_ratio: Array, *, estimator: str = "k3") -> Array:
    """Token-mean KL to the reference policy (``batch.ref_logp``): GRPO's ``beta * KL`` term."""
    require(batch, ("ref_logp",), "kl_penalty")
    return token_mean(kl_per_token(batch.logp, batch.ref_logp, estimator), batch.mask)


def entropy_bonus(batch: SequenceBatch, adv: Array, log_ratio: Array) -> Array:
    r"""Minus the token-mean entropy of the trained policy, from ``batch.logits`` (differentiable):
    :math:`-\operatorname{mean}_t H[\pi_\theta(\cdot|s_t)]` (a positive coefficient raises entropy)."""
    require(batch, ("logits",), "entropy_bonus")
    log_p = jax.nn.log_softmax(batch.logits, axis=-1)
    entropy = -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)
    return -token_mean(entropy, batch.mask)


def demonstration_nll(batch: SequenceBatch, adv: Array, log_ratio: Array) -> Array:
    r"""Token-mean negative log-likelihood of the demonstrations (rows with ``is_demo = 1``): the
    SFT term of HPT (Lv et al. 2025) and RPO (Liu et al. 2024)."""
    require(batch, ("is_demo",), "demonstration_nll")
    demo_mask = batch.mask * batch.is_demo[:, None].astype(batch.mask.dtype)
    return token_mean(-batch.logp, demo_mask)
