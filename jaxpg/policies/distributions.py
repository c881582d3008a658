"""Action distributions and the latent -> action decoding every policy goes through.

A policy produces a distrax distribution. Its *latent* sample is what the algorithms store and
score; the *action* the environment sees is ``decode(dist, latent)``:

* categorical and unsquashed Gaussian policies: latent == action;
* tanh-squashed Gaussian: latent ``u ~ N(mu, sigma)``, action ``a = shift + scale * tanh(u)`` maps
  into the box ``[low, high]``. Its log-density follows the change of variables

      log pi(a) = log N(u; mu, sigma) - sum_i log| d a_i / d u_i |
                = log N(u; mu, sigma) - sum_i [ log scale_i + log(1 - tanh(u_i)^2) ],

  evaluated from ``u`` (distrax's numerically stable ``forward_log_det_jacobian``), never by
  inverting ``tanh`` at a saturated action (``atanh(+-1) = inf``).

Scoring from the latent keeps importance ratios exact: the Jacobian term does not depend on the
policy parameters, so it cancels in ``pi_new(a) / pi_old(a)``. Later policies whose action comes
from a latent through a learned or generative decoder (PMOE, GoRL) plug into the same three
functions.
"""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp
from flax import struct


class SquashedDistribution(distrax.Transformed):
    """A latent distribution pushed through a fixed (parameter-free) decoder bijector.

    Its own class, because distrax's ``MultivariateNormalDiag`` is itself a ``Transformed``
    (a standard normal through an affine map): testing for ``Transformed`` would treat a plain
    Gaussian's standard-normal noise as the latent and lose the mean's gradient.
    """


@struct.dataclass
class ActionSample:
    """``latent``: what the policy sampled; ``action``: what the env receives; ``log_prob`` of it."""

    latent: jax.Array
    action: jax.Array
    log_prob: jax.Array


def tanh_gaussian(mean: jax.Array, std: jax.Array, low, high) -> SquashedDistribution:
    """Diagonal Gaussian squashed by ``tanh`` and scaled into ``[low, high]`` (event ndim 1)."""
    low = jnp.asarray(low, jnp.float32)
    high = jnp.asarray(high, jnp.float32)
    squash = distrax.Chain(
        [distrax.ScalarAffine(shift=(high + low) / 2.0, scale=(high - low) / 2.0), distrax.Tanh()]
    )
    return SquashedDistribution(distrax.MultivariateNormalDiag(mean, std), distrax.Block(squash, 1))


def sample(dist: distrax.Distribution, key: jax.Array) -> ActionSample:
    """Sample a latent, decode it, and score it."""
    if isinstance(dist, SquashedDistribution):
        latent = dist.distribution.sample(seed=key)
    else:
        latent = dist.sample(seed=key)
    return ActionSample(latent=latent, action=decode(dist, latent), log_prob=log_prob(dist, latent))


def mode_sample(dist: distrax.Distribution) -> ActionSample:
    """The deterministic (mode) action as an :class:`ActionSample`, for evaluation."""
    latent = dist.distribution.mode() if isinstance(dist, SquashedDistribution) else dist.mode()
    return ActionSample(latent=latent, action=decode(dist, latent), log_prob=log_prob(dist, latent))


def decode(dist: distrax.Distribution, latent: jax.Array) -> jax.Array:
    """The environment action that ``latent`` stands for."""
    if isinstance(dist, SquashedDistribution):
        return dist.bijector.forward(latent)
    return latent


def log_prob(dist: distrax.Distribution, latent: jax.Array) -> jax.Array:
    """log-density of the action decoded from ``latent`` (change of variables for squashes)."""
    if isinstance(dist, SquashedDistribution):
        return dist.distribution.log_prob(latent) - dist.bijector.forward_log_det_jacobian(latent)
    return dist.log_prob(latent)


def mode(dist: distrax.Distribution) -> jax.Array:
    """Deterministic action for evaluation: the decoded mode of the latent distribution."""
    if isinstance(dist, SquashedDistribution):
        return dist.bijector.forward(dist.distribution.mode())
    return dist.mode()


def entropy(dist: distrax.Distribution) -> jax.Array:
    """Entropy used for the entropy bonus.

    Exact for categorical and Gaussian policies. For a tanh-squashed Gaussian the entropy has no
    closed form; we return the entropy of the latent Gaussian (what rlax/CleanRL-style PPO
    regularizes), which is an upper bound of the squashed entropy up to the constant
    ``sum log scale``: ``H(a) = H(u) + E[log|da/du|] <= H(u) + sum log scale``.
    """
    if isinstance(dist, SquashedDistribution):
        return dist.distribution.entropy()
    return dist.entropy()
