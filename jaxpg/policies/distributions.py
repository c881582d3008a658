"""Policies as distribution objects that sample and score in a latent space and decode to actions.

A policy owns everything an algorithm asks of it, so algorithms never branch on its type:

* ``sample_and_log_prob(key) -> ActionSample(latent, action, log_prob)``;
* ``log_prob(latent)``: the log-density of the action that ``latent`` decodes to;
* ``decode(latent)``: the action the environment receives;
* ``mode()``: the deterministic action used for evaluation (``mode_sample()`` as an ActionSample);
* ``entropy()``: exact where a closed form exists, otherwise a documented estimate or bound.

Algorithms store and score the *latent*:

* ``Categorical`` and ``Gaussian``: latent == action;
* ``SquashedGaussian``: latent ``u ~ N(mu, sigma)``, action ``a = shift + scale * tanh(u)`` in the
  box ``[low, high]``, with the change of variables

      log pi(a) = log N(u; mu, sigma) - sum_i [ log scale_i + log(1 - tanh(u_i)^2) ],

  evaluated from ``u`` in a form that stays exact where ``tanh(u)`` saturates, never by inverting
  tanh at a saturated action. The Jacobian does not depend on the policy's parameters, so it cancels in
  importance ratios;
* ``Mixture``: K components of one kind sharing the latent space; the mixture log-likelihood is a
  logsumexp over components;
* ``DecodedPolicy``: any latent policy pushed through a decoder (e.g. a learned generative one):
  the latent is what is scored, the decoder only maps it to the action.

Every policy is a pytree (a flax struct), so it can cross ``jit``/``vmap`` boundaries. The
densities are written out in closed form rather than built from distrax objects: the same
numbers (``tests/test_policies.py`` checks them against distrax), fewer traced operations in the
training loop, and no TensorFlow Probability import (about a second) before the first run.
"""

from __future__ import annotations

import abc
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import struct

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG_2 = math.log(2.0)


@struct.dataclass
class ActionSample:
    """``latent``: what the policy sampled; ``action``: what the env receives; ``log_prob`` of it."""

    latent: jax.Array
    action: jax.Array
    log_prob: jax.Array


class Policy(abc.ABC):
    """The interface every policy implements (see the module docstring)."""

    # Number of trailing axes of one latent/action: 0 for categorical, 1 for vector actions.
    event_ndim: int = 1

    @abc.abstractmethod
    def sample_latent(self, key: jax.Array) -> jax.Array:
        """A latent drawn from the policy."""

    @abc.abstractmethod
    def log_prob(self, latent: jax.Array) -> jax.Array:
        """log-density of the action decoded from ``latent``."""

    @abc.abstractmethod
    def mode_latent(self) -> jax.Array:
        """The latent whose decoding is the deterministic (evaluation) action."""

    @abc.abstractmethod
    def entropy(self) -> jax.Array:
        """Entropy of the action distribution, or the estimate documented by the class."""

    def decode(self, latent: jax.Array) -> jax.Array:
        """The environment action that ``latent`` stands for (identity unless overridden)."""
        return latent

    def sample_and_log_prob(self, key: jax.Array) -> ActionSample:
        latent = self.sample_latent(key)
        return ActionSample(latent=latent, action=self.decode(latent), log_prob=self.log_prob(latent))

    def mode(self) -> jax.Array:
        return self.decode(self.mode_latent())

    def mode_sample(self) -> ActionSample:
        latent = self.mode_latent()
        return ActionSample(latent=latent, action=self.decode(latent), log_prob=self.log_prob(latent))


@struct.dataclass
class Categorical(Policy):
    """Softmax policy over ``logits[..., n]``; latent == action (an int32 index).

    With ``log p = log_softmax(logits)``: ``log pi(a) = log p_a``, ``H = -sum_a p_a log p_a``,
    mode ``argmax p``; sampling is ``jax.random.categorical`` (the Gumbel-max trick).
    """

    logits: jax.Array
    event_ndim = 0

    def _log_probs(self):
        return jax.nn.log_softmax(self.logits, axis=-1)

    def sample_latent(self, key):
        return jax.random.categorical(key, self.logits, axis=-1)

    def log_prob(self, latent):
        index = jnp.expand_dims(jnp.asarray(latent, jnp.int32), -1)
        return jnp.take_along_axis(self._log_probs(), index, axis=-1).squeeze(-1)

    def mode_latent(self):
        return jnp.argmax(self.logits, axis=-1)

    def entropy(self):
        log_p = self._log_probs()
        return -(jnp.exp(log_p) * log_p).sum(-1)


@struct.dataclass
class Gaussian(Policy):
    """Diagonal Gaussian ``N(mean, std^2)`` over unbounded vector actions; latent == action.

        log pi(x) = -sum_i [ (x_i - mean_i)^2 / (2 std_i^2) + log std_i + log(2 pi) / 2 ],
        H = sum_i [ log std_i + log(2 pi e) / 2 ],

    sampled as ``mean + std * eps`` with ``eps ~ N(0, I)`` (reparameterized).
    """

    mean: jax.Array
    std: jax.Array

    def sample_latent(self, key):
        mean = jnp.asarray(self.mean)
        return mean + self.std * jax.random.normal(key, mean.shape, mean.dtype)

    def log_prob(self, latent):
        z = (latent - self.mean) / self.std
        return -(0.5 * jnp.square(z) + jnp.log(self.std) + _HALF_LOG_2PI).sum(-1)

    def mode_latent(self):
        return self.mean

    def entropy(self):
        return (jnp.log(jnp.broadcast_to(self.std, jnp.shape(self.mean))) + _HALF_LOG_2PI + 0.5).sum(-1)


@struct.dataclass
class SquashedGaussian(Gaussian):
    """A diagonal Gaussian latent (sampled, with mode and entropy, as :class:`Gaussian`) squashed
    by ``tanh`` and scaled into the box ``[low, high]``: ``a = shift + scale * tanh(u)`` with
    ``shift = (high + low) / 2``, ``scale = (high - low) / 2``, and

        log |da_i/du_i| = log scale_i + log(1 - tanh(u_i)^2)
                        = log scale_i + 2 (log 2 - u_i - softplus(-2 u_i)),

    the second form being exact in floating point where ``tanh(u)`` rounds to +-1.

    ``entropy()`` has no closed form for the squashed distribution; it returns the entropy of the
    latent Gaussian (what rlax/CleanRL-style PPO regularizes), which bounds the squashed entropy
    from above up to the constant ``sum log scale``: ``H(a) = H(u) + E[log|da/du|] <= H(u) +
    sum log scale``.
    """

    low: jax.Array
    high: jax.Array

    def _shift_scale(self):
        low, high = jnp.asarray(self.low, jnp.float32), jnp.asarray(self.high, jnp.float32)
        return (high + low) / 2.0, (high - low) / 2.0

    def log_det_jacobian(self, latent):
        """``sum_i log |da_i/du_i|`` of the squashing at ``latent``."""
        _, scale = self._shift_scale()
        log_dtanh = 2.0 * (_LOG_2 - latent - jax.nn.softplus(-2.0 * latent))
        return (jnp.log(scale) + log_dtanh).sum(-1)

    def log_prob(self, latent):
        return super().log_prob(latent) - self.log_det_jacobian(latent)

    def decode(self, latent):
        shift, scale = self._shift_scale()
        return shift + scale * jnp.tanh(latent)


@struct.dataclass
class Mixture(Policy):
    """A mixture of K policies of one kind that share their latent space and decoder.

    ``components`` is one policy whose parameters carry a component axis K just before the event
    axes (e.g. ``SquashedGaussian(mean [..., K, d], ...)``); ``logits [..., K]`` are the mixture
    weights' logits. With ``w = softmax(logits)``:

        log pi(latent) = logsumexp_k [ log w_k + log pi_k(latent) ]

    (for squashed components the shared Jacobian term cancels out of the logsumexp and is
    subtracted once, so scoring stays exact). The mode is the mode of the most probable
    component (the PMOE paper's evaluation action; Ren et al. 2021). ``entropy()`` has no
    closed form; it returns the upper bound ``H(w) + sum_k w_k H(pi_k)`` (equality when the
    components do not overlap).
    """

    components: Any
    logits: jax.Array

    @property
    def event_ndim(self) -> int:
        return self.components.event_ndim

    def _weights_log(self):
        return jax.nn.log_softmax(self.logits, axis=-1)

    def weights(self) -> jax.Array:
        """The mixture weights ``softmax(logits)``, ``[..., K]`` (PMOE's gate probabilities)."""
        return jax.nn.softmax(self.logits, axis=-1)

    def _component_axis(self) -> int:
        return -(self.event_ndim + 1)

    def _select(self, per_component: jax.Array, index: jax.Array) -> jax.Array:
        """``per_component[..., index, <event>]`` for a batch of indices ``index [...]``."""
        axis = self._component_axis()
        index = jnp.expand_dims(index, axis=tuple(range(-self.event_ndim - 1, 0)))
        return jnp.take_along_axis(per_component, index, axis=axis).squeeze(axis)

    def sample_latent(self, key):
        # The components draw from ``key`` itself and the index from a key folded out of it, so
        # a one-component mixture draws exactly the latents of its component alone.
        index = jax.random.categorical(jax.random.fold_in(key, 1), self.logits)
        return self._select(self.components.sample_latent(key), index)

    def log_prob(self, latent):
        per_component = self.components.log_prob(jnp.expand_dims(latent, self._component_axis()))
        return jax.nn.logsumexp(self._weights_log() + per_component, axis=-1)

    def decode(self, latent):
        return self.components.decode(latent)  # the components share their decoder

    def mode_latent(self):
        return self._select(self.components.mode_latent(), jnp.argmax(self.logits, axis=-1))

    def entropy(self):
        log_w = self._weights_log()
        w = jnp.exp(log_w)
        return -(w * log_w).sum(-1) + (w * self.components.entropy()).sum(-1)


@struct.dataclass
class DecodedPolicy(Policy):
    """A latent policy whose latent is mapped to the action by ``decoder`` (e.g. a learned flow).

    Sampling and scoring are the latent policy's: importance ratios compare latent densities (as
    GoRL's PPO ratio does), and the decoder, which may be any function of the latent, only
    produces the action. ``entropy()`` is the latent policy's.
    """

    latent_policy: Any
    decoder: Callable = struct.field(pytree_node=False)

    @property
    def event_ndim(self) -> int:
        return self.latent_policy.event_ndim

    def sample_latent(self, key):
        return self.latent_policy.sample_latent(key)

    def log_prob(self, latent):
        return self.latent_policy.log_prob(latent)

    def decode(self, latent):
        return self.decoder(self.latent_policy.decode(latent))

    def mode_latent(self):
        return self.latent_policy.mode_latent()

    def entropy(self):
        return self.latent_policy.entropy()
