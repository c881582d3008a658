r"""Dynamic reward weighting for several objectives (multi-objective alignment).

Lu et al. 2025, "Learning to Optimize Multi-Objective Alignment Through Dynamic Reward Weighting"
(arXiv:2509.11452; code yining610/dynamic-reward-weighting). The reward is a linear scalarization
:math:`r = \sum_k w_k r_k` of K reward components whose weights change during training, by one of
two outer loops that the trainer runs (the loss only reads the current weights):

* **gradient-based** (:func:`gradient_weight_update`): with :math:`g_k` the policy gradient of the
  objective that uses advantages from :math:`r_k` alone, :math:`s_k = \sum_j \langle g_k, g_j\rangle`
  and :math:`w \leftarrow \operatorname{softmax}(\log w + \eta\, s / \lambda)` (lambda = 1e-5,
  every step; the paper restricts the gradients to layers 10-25 of the LLM). An objective whose
  gradient agrees with the others' gains weight.
* **hypervolume-guided** (:func:`hypervolume_2d`, :func:`hypervolume_contribution_2d`,
  :func:`hypervolume_meta_reward`): after each validation, the meta-reward
  :math:`m = 0.5 + 1.5\tanh(\Delta HV)` of the new point's hypervolume contribution to the Pareto
  buffer multiplies the next rewards.

The recipe :data:`DYNAMIC_REWARD_WEIGHTING` is GRPO on the weighted reward, reading the weights
from ``batch.extras["reward_weights"]`` (``[K]``, kept by the trainer).
"""

from __future__ import annotations

from typing import Any, Callable

import chex
import jax
import jax.numpy as jnp

from jaxpg.losses.sequence.advantages import grpo_advantage
from jaxpg.losses.sequence.aggregation import token_mean
from jaxpg.losses.sequence.batch import SequenceBatch
from jaxpg.losses.sequence.recipe import PolicyTerm, Recipe
from jaxpg.losses.sequence.rewards import weighted_reward

Array = chex.Array


def _stack_objectives(objective_grads: Any) -> Any:
    """A list/tuple of K pytrees -> one pytree with a leading axis K (a pytree passes through)."""
    if isinstance(objective_grads, (list, tuple)):
        return jax.tree.map(lambda *leaves: jnp.stack(leaves), *objective_grads)
    return objective_grads


def gradient_gram(objective_grads: Any) -> Array:
    r"""``[K, K]`` inner products :math:`G_{kj} = \langle g_k, g_j\rangle` summed over all leaves.

    ``objective_grads``: a list/tuple of K gradient pytrees, or one pytree whose leaves have a
    leading axis K (e.g. from :func:`objective_gradients`)."""
    leaves = jax.tree.leaves(_stack_objectives(objective_grads))
    if not leaves:
        raise ValueError("objective_grads has no arrays")
    gram = 0.0
    for leaf in leaves:
        flat = leaf.reshape(leaf.shape[0], -1).astype(jnp.float32)
        gram = gram + flat @ flat.T
    return gram


@jax.jit  # an outer-loop utility, called eagerly between steps
def gradient_weight_update(log_w: Array, objective_grads: Any, *, lr: float, lam: float = 1e-5) -> Array:
    r"""One gradient-based weight update (the code's ``ray_trainer_optimization.py``):

    .. math:: s_k = \sum_j \langle g_k, g_j\rangle, \qquad
              \log w \leftarrow \operatorname{log\,softmax}(\log w + \eta\, s / \lambda)

    ``log_w [K]``: current log-weights; ``lr`` is :math:`\eta` (the paper uses the actor's
    learning rate). Returns the new normalized log-weights. With orthogonal gradients
    :math:`w_k \propto w_k \exp(\eta \|g_k\|^2 / \lambda)`.
    """
    influence = jnp.sum(gradient_gram(objective_grads), axis=1)
    return jax.nn.log_softmax(log_w + lr * influence / lam)


def objective_gradients(loss_fn: Callable, params: Any, batch: SequenceBatch) -> Any:
    """Per-objective gradients for :func:`gradient_weight_update`: ``jax.grad(loss_fn)`` with the
    batch's rewards replaced by each component ``batch.rewards[:, k]`` in turn (vmapped; the
    result has a leading axis K). ``loss_fn(params, batch) -> scalar`` is the policy loss, e.g.
    ``lambda p, b: GRPO(b.replace(logp=model(p)))[0]``."""
    if batch.rewards.ndim != 2:
        raise ValueError(f"objective_gradients needs [B, K] reward components, got shape {batch.rewards.shape}")

    def one(component: Array) -> Any:
        return jax.grad(loss_fn)(params, batch.replace(rewards=component))

    return jax.vmap(one)(batch.rewards.T)


@jax.jit
def hypervolume_2d(points: Array, ref: Array) -> Array:
    r"""Exact hypervolume (area) dominated by 2-D ``points [N, 2]`` above ``ref [2]``
    (maximization): the area of :math:`\bigcup_i [r_1, p_{i1}] \times [r_2, p_{i2}]`.

    A sweep over the points by decreasing first coordinate; each adds the strip between its second
    coordinate and the best second coordinate seen so far. Points that do not dominate ``ref`` add
    nothing. Jittable (a sort and a cumulative max).
    """
    points = jnp.maximum(jnp.asarray(points, jnp.float32), jnp.asarray(ref, jnp.float32))
    ref = jnp.asarray(ref, jnp.float32)
    order = jnp.argsort(-points[:, 0])
    x, y = points[order, 0], points[order, 1]
    best_y = jax.lax.cummax(y)
    previous_best = jnp.concatenate([ref[1:2], best_y[:-1]])
    return jnp.sum((x - ref[0]) * jnp.maximum(y - previous_best, 0.0))


@jax.jit
def hypervolume_contribution_2d(front: Array, point: Array, ref: Array) -> Array:
    """How much ``point [2]`` adds to the hypervolume of ``front [N, 2]``: HV(front + point) - HV(front)."""
    front = jnp.asarray(front, jnp.float32)
    with_point = jnp.concatenate([front, jnp.asarray(point, jnp.float32)[None]], axis=0)
    return hypervolume_2d(with_point, ref) - hypervolume_2d(front, ref)


def hypervolume_meta_reward(hv_contribution: Array) -> Array:
    r"""The hypervolume-guided meta-reward :math:`m = 0.5 + 1.5\tanh(\Delta HV)`, in (-1, 2): it
    multiplies the rewards after a validation whose point extended the Pareto front
    (:math:`\Delta HV > 0` gives m > 0.5; no contribution gives 0.5)."""
    return 0.5 + 1.5 * jnp.tanh(hv_contribution)


DYNAMIC_REWARD_WEIGHTING = Recipe(
    name="dynamic_reward_weighting",
    terms=(PolicyTerm(
        reward=weighted_reward,
        advantage=grpo_advantage,
        aggregate=token_mean,
    ),),
    requires=("reward_weights",),
    paper="Lu et al. 2025, dynamic reward weighting (arXiv:2509.11452): GRPO (clip 0.2, token-mean, verl's "
          "clip_ratio_c = 100 i.e. no dual clip; no KL) on sum_k w_k r_k with w = extras['reward_weights'] from "
          "gradient_weight_update or the hypervolume meta-reward, run by the trainer",
)

RECIPES: dict = {DYNAMIC_REWARD_WEIGHTING.name: DYNAMIC_REWARD_WEIGHTING}
