r"""OTR: supervised fine-tuning as one-token policy-gradient rollouts.

Ming et al. 2025, "One-Token Rollout: Guiding Supervised Fine-Tuning of LLMs with Policy
Gradient" (OTR, arXiv:2509.26313). Each position t of a demonstration is a one-step RL problem:
sample K candidate tokens :math:`a_k \sim \pi_\theta^{\tau}(\cdot|s_t)` from the current policy at
temperature :math:`\tau`, reward a candidate 1 if it is the demonstration's token
:math:`y^*_t` (and :math:`-\nu`, ``negative``, if not), and take the REINFORCE loss

.. math:: \ell_t = -\frac1K \sum_{k=1}^{K} r(a_k) \log\pi_\theta(a_k|s_t),
          \qquad r(a) = \mathbb{1}[a = y^*_t] - \nu\, \mathbb{1}[a \ne y^*_t],

averaged over the demonstration's valid tokens. With :math:`\tau = 1` its expected gradient is
:math:`\mathbb{E}_a[r(a)\nabla\log\pi(a)] = (1+\nu)\,\pi(y^*)\nabla\log\pi(y^*) = (1+\nu)\nabla\pi(y^*)`
(since :math:`\sum_a \pi(a)\nabla\log\pi(a) = 0`): probability-weighted SFT, the DFT gradient.
The negative reward changes each sample's gradient (it pushes down the wrong tokens it drew)
and the variance, not the expectation.

From the paper's abstract and reviews; the exact reward values, K and the temperature of the
official runs are not confirmed (defaults here: K = 8, tau = 1, nu = 0). Samples are drawn from
the stop-gradient logits, so gradient flows only through :math:`\log\pi_\theta(a_k)`; the
trained log-probability is at temperature 1 (the temperature only shapes the sampler).
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp

from jaxpg.losses.sequence.aggregation import token_mean
from jaxpg.losses.sequence.batch import SequenceBatch, require
from jaxpg.losses.sequence.recipe import LossRecipe

Array = chex.Array
sg = jax.lax.stop_gradient


def otr_sample_counts(logits: Array, targets: Array, key: jax.Array, *, num_samples: int = 8,
                      temperature: float = 1.0, negative: float = 0.0) -> Array:
    r"""``[B, T, V]`` reward-weighted counts :math:`c_{t,v} = \sum_k r(a_k)\,\mathbb{1}[a_k = v]` of
    ``num_samples`` tokens drawn per position from ``softmax(sg(logits) / temperature)`` (a constant)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    samples = jax.random.categorical(key, sg(logits).astype(jnp.float32) / temperature, axis=-1,
                                     shape=(num_samples,) + targets.shape)  # [K, B, T]
    reward = jnp.where(samples == targets[None], 1.0, -negative)
    return jnp.sum(reward[..., None] * jax.nn.one_hot(samples, logits.shape[-1]), axis=0)


def otr_loss(batch: SequenceBatch, key: jax.Array, *, num_samples: int = 8, temperature: float = 1.0,
             negative: float = 0.0) -> tuple[Array, dict]:
    """OTR's loss on a batch of demonstrations (rows are demonstrations; ``mask`` marks the tokens
    to train): ``batch.logits [B, T, V]`` (differentiable) and ``batch.targets [B, T]``; the
    per-position REINFORCE loss (module docstring) averaged over valid tokens."""
    require(batch, ("logits", "targets"), "otr_loss")
    log_probs = jax.nn.log_softmax(batch.logits, axis=-1)
    counts = otr_sample_counts(batch.logits, batch.targets, key, num_samples=num_samples,
                               temperature=temperature, negative=negative)
    loss_tok = -jnp.sum(counts * log_probs, axis=-1) / num_samples
    loss = token_mean(loss_tok, batch.mask)
    hits = jnp.take_along_axis(counts, batch.targets[..., None], axis=-1)[..., 0] / num_samples
    aux = {"loss": loss, "target_sample_rate": token_mean(hits, batch.mask)}
    return loss, aux


OTR = LossRecipe(
    name="otr",
    fn=functools.partial(otr_loss, num_samples=8, temperature=1.0, negative=0.0),
    requires=("logits", "targets"),
    needs_key=True,
    kind="demonstration",
    paper="Ming et al. 2025, One-Token Rollout (arXiv:2509.26313): K = 8 tokens sampled per demonstration "
          "position, reward 1[a = y*] (negative reward 0 by default), REINFORCE, token mean",
)

RECIPES: dict = {OTR.name: OTR}
