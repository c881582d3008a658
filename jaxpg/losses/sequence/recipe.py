r"""Recipes: a sequence policy loss assembled from interchangeable slots.

A :class:`Recipe` is a frozen dataclass of functions and constants; calling it is the loss,
``loss, aux = recipe(batch, key)``, a pure function of the :class:`SequenceBatch` arrays (jit,
vmap and grad compose with it; ``key`` only for recipes that draw random numbers). The assembly
(Part B of ``loss-catalog.md``, with terms and sample weights made explicit):

.. math::

   L = \sum_j c_j\, \operatorname{Agg}_j\!\Big(w^{tok}_j \odot w^{seq}_j \odot
       \ell_j\big(\rho_j(\text{batch}),\ T_j(A_j(R_j(\text{batch})))\big),\ m\Big)
       + \sum_k \lambda_k\, \Omega_k(\text{batch})

per :class:`PolicyTerm` j: reward ``R`` -> advantage ``A`` (``[B]`` or ``[B, T]``) -> advantage
transforms ``T`` -> with the ratio ``rho`` and the clip range, the per-token surrogate ``ell`` ->
token weights ``w_tok`` (masks such as Clip-Cov's) and sample weights ``w_seq`` (COPO's blend,
HPT's gate) -> aggregation over the mask. Advantages and weights are constants (stop-gradient):
only the ratio (through ``batch.logp``) and the regularizers carry gradient. COPO is two terms
(local and global advantage, weights w and 1 - w); HPT is an RL term plus a gated SFT
regularizer.

Every size a slot needs is read from array shapes (group ids index ``[0, B)``), so one recipe
works for any batch layout without static constants.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import chex
import jax
import jax.numpy as jnp

from jaxpg.losses.sequence import advantages as adv_lib
from jaxpg.losses.sequence.aggregation import token_mean
from jaxpg.losses.sequence.batch import SequenceBatch, require
from jaxpg.losses.sequence.groups import to_tokens
from jaxpg.losses.sequence.ratios import token_log_ratio
from jaxpg.losses.sequence.regularizers import kl_per_token
from jaxpg.losses.sequence.rewards import scalar_reward
from jaxpg.losses.sequence.surrogates import constant_clip, ppo_surrogate

Array = chex.Array
sg = jax.lax.stop_gradient


@dataclasses.dataclass(frozen=True)
class PolicyTerm:
    """One policy-gradient term; every field is a slot (see the module docstring for signatures).

    ``token_weight(batch, adv [B,T], log_ratio [B,T], clipped [B,T], key) -> [B,T]`` and
    ``sample_weight(batch) -> [B]`` multiply the per-token loss (the aggregation's denominator
    keeps the plain mask, so a weight of 0 removes a token's gradient without re-normalizing).
    """

    advantage: Callable = adv_lib.grpo_advantage
    reward: Callable = scalar_reward
    transforms: tuple[Callable, ...] = ()
    ratio: Callable = token_log_ratio
    clip: Callable = constant_clip
    surrogate: Callable = ppo_surrogate
    token_weight: Callable | None = None
    sample_weight: Callable | None = None
    aggregate: Callable = token_mean
    coef: float = 1.0
    name: str = "policy"

    def advantages(self, batch: SequenceBatch) -> Array:
        """The term's token advantages ``[B, T]`` (constants)."""
        adv = to_tokens(sg(self.advantage(sg(self.reward(batch)), batch)), batch.mask)
        for transform in self.transforms:
            adv = sg(transform(adv, batch))
        return adv

    def __call__(self, batch: SequenceBatch, key: jax.Array | None) -> tuple[Array, dict]:
        adv = self.advantages(batch)
        log_ratio = self.ratio(batch)
        eps_low, eps_high = self.clip(batch, adv, sg(log_ratio))
        loss_tok, clipped = self.surrogate(log_ratio, adv, eps_low, eps_high)
        weight = jnp.ones_like(loss_tok)
        if self.token_weight is not None:
            weight = weight * sg(self.token_weight(batch, adv, sg(log_ratio), clipped, key))
        if self.sample_weight is not None:
            weight = weight * sg(self.sample_weight(batch))[:, None]
        loss = self.aggregate(loss_tok * weight, batch.mask)
        valid = batch.mask != 0
        aux = {
            "loss": loss,
            "clip_fraction": token_mean(clipped.astype(jnp.float32), batch.mask),
            "advantage_abs_mean": token_mean(jnp.abs(adv), batch.mask),
            "weight_mean": token_mean(jnp.where(valid, weight, 0.0), batch.mask),
        }
        return loss, aux


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A sequence loss: ``loss, aux = recipe(batch, key=None)``.

    ``terms``: the policy terms (summed with their ``coef``); ``regularizers``: ``(coef, fn)``
    pairs, ``fn(batch, adv, log_ratio)`` with the first term's advantages and ratio; ``requires``:
    optional batch fields the recipe reads (checked with a one-line error); ``needs_key``: the
    recipe draws random numbers (Clip-Cov); ``paper``: the citation; ``kind``: ``"group"``
    (G responses per prompt; the default), ``"pairwise"`` or ``"demonstration"``.
    """

    name: str
    terms: tuple[PolicyTerm, ...] = (PolicyTerm(),)
    regularizers: tuple[tuple[float, Callable], ...] = ()
    requires: tuple[str, ...] = ()
    needs_key: bool = False
    paper: str = ""
    kind: str = "group"  # what batch the trainer builds: see jaxpg.losses.sequence.recipes

    def replace_term(self, index: int = 0, **changes) -> "Recipe":
        """A copy with fields of term ``index`` replaced: ``GRPO.replace_term(advantage=rloo_advantage)``."""
        terms = list(self.terms)
        terms[index] = dataclasses.replace(terms[index], **changes)
        return dataclasses.replace(self, terms=tuple(terms))

    def __call__(self, batch: SequenceBatch, key: jax.Array | None = None) -> tuple[Array, dict]:
        require(batch, self.requires, f"recipe {self.name!r}")
        if self.needs_key and key is None:
            raise ValueError(f"recipe {self.name!r} draws random numbers: pass key=jax.random.key(...)")
        keys = jax.random.split(key, len(self.terms)) if key is not None else [None] * len(self.terms)
        total = jnp.zeros((), batch.logp.dtype)
        aux: dict = {}
        for term, term_key in zip(self.terms, keys):
            loss, term_aux = term(batch, term_key)
            total = total + term.coef * loss
            prefix = "" if len(self.terms) == 1 else f"{term.name}/"
            aux.update({f"{prefix}{k}": v for k, v in term_aux.items()})
        aux["policy_loss"] = total
        if self.regularizers:
            first = self.terms[0]
            adv = first.advantages(batch)
            log_ratio = first.ratio(batch)
            for coef, fn in self.regularizers:
                value = fn(batch, adv, log_ratio)
                aux[f"reg/{getattr(fn, 'func', fn).__name__}"] = value
                total = total + coef * value
        aux["loss"] = total
        # Diagnostics (no gradient): how far the trained policy moved from the sampling one.
        aux["approx_kl"] = token_mean(kl_per_token(sg(batch.logp), batch.old_logp, "k3"), batch.mask)
        return total, aux


@dataclasses.dataclass(frozen=True)
class LossRecipe:
    """A catalog entry for a loss that is not a :class:`Recipe` assembly (f-DPG, Nash-MD, OTR, the
    pairwise losses): ``loss, aux = entry(batch, key)`` calls ``fn(batch)`` (``fn(batch, key)``
    when ``needs_key``) after checking ``requires`` (fields or ``extras`` keys). It has the
    attributes the catalog reads (``name``, ``paper``, ``requires``, ``needs_key``, ``kind``)."""

    name: str
    fn: Callable
    requires: tuple[str, ...] = ()
    needs_key: bool = False
    paper: str = ""
    kind: str = "group"

    def __call__(self, batch: SequenceBatch, key: jax.Array | None = None) -> tuple[Array, dict]:
        require(batch, self.requires, f"recipe {self.name!r}")
        if self.needs_key:
            if key is None:
                raise ValueError(f"recipe {self.name!r} draws random numbers: pass key=jax.random.key(...)")
            return self.fn(batch, key)
        return self.fn(batch)
