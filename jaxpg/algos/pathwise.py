"""HDPO: pathwise policy optimization through a differentiable inventory simulator.

Alvo, Russo & Kanoria (2023), "Deep Reinforcement Learning for Inventory Networks: Toward
Reliable Policy Optimization", arXiv:2306.11246 (code: MatiasAlvo/Neural_inventory_control).

With B demand paths ``d^(b)`` [T] sampled beforehand, HDPO minimizes the sample-average cost

    J(theta) = (1 / B) * sum_b (1 / T) * sum_t cost_t(theta; d^(b))

by gradient descent on ``grad_theta J``, computed by ``jax.grad`` through the simulator's
``lax.scan`` (:mod:`jaxpg.envs.inventory`): a pathwise (reparameterized) gradient, no score
function. The paper uses Adam (lr 3e-3), batch 8192 and an MLP [32, 32, 32] with ELU and output
``softplus(x + 1)``; for one store it also compares with the best base-stock level.

Pieces here:
- :func:`train_pathwise`: Adam on any ``cost_fn(params, key) -> scalar``, all steps as one
  ``lax.scan`` (jit it, or not).
- :func:`batch_cost`: ``cost_fn`` for a policy family ``make_policy(params) -> policy`` on fixed
  demand paths [B, T] (or on fresh paths per step with ``resample``).
- policy families: :func:`base_stock_policy` (``params = {"level": s}``, a learnable scalar),
  :func:`capped_base_stock_policy` (``{"level", "cap"}``), :class:`InventoryMLP` with
  :func:`mlp_policy` (state (I_t, P_t) -> order via softplus).
- :func:`grid_search_base_stock` / :func:`grid_search_capped_base_stock`: the best level (and
  cap) on the same demand paths, by exhaustive evaluation.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxpg.envs.inventory import (
    InventoryParams,
    InventoryState,
    average_cost,
    base_stock,
    capped_base_stock,
    sample_demand,
)

__all__ = [
    "InventoryMLP",
    "base_stock_policy",
    "batch_cost",
    "capped_base_stock_policy",
    "grid_search_base_stock",
    "grid_search_capped_base_stock",
    "mlp_policy",
    "train_pathwise",
]


def train_pathwise(
    cost_fn: Callable[[Any, jax.Array], jax.Array],
    params: Any,
    key: jax.Array,
    num_steps: int,
    *,
    learning_rate: float | optax.Schedule = 3e-3,
    optimizer: optax.GradientTransformation | None = None,
) -> tuple[Any, jax.Array]:
    """Minimize ``cost_fn(params, key)`` by Adam on its pathwise gradient, as one ``lax.scan``.

    Each step: ``key_t`` fresh, ``g = grad_params cost_fn(params, key_t)`` (through the simulator),
    ``params <- params + adam(g)``. ``optimizer`` replaces ``optax.adam(learning_rate)``.
    Returns the final params and the cost of each step [num_steps] (before that step's update).
    """
    opt = optax.adam(learning_rate) if optimizer is None else optimizer
    value_and_grad = jax.value_and_grad(cost_fn)

    def step(carry, step_key):
        params, opt_state = carry
        cost, grads = value_and_grad(params, step_key)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), cost

    (params, _), costs = jax.lax.scan(step, (params, opt.init(params)), jax.random.split(key, num_steps))
    return params, costs


def batch_cost(
    make_policy: Callable[[Any], Callable[[InventoryState], jax.Array]],
    inv_params: InventoryParams,
    demand: jax.Array | None = None,
    *,
    resample: tuple[int, int] | None = None,
    demand_mean: float = 5.0,
    distribution: str = "poisson",
) -> Callable[[Any, jax.Array], jax.Array]:
    """``cost_fn(params, key) = (1/B) sum_b average_cost(make_policy(params), inv_params, d^(b))``.

    With ``demand`` [B, T] the paths are fixed (the key is ignored; HDPO on one sample). With
    ``resample=(B, T)`` each call draws fresh paths from ``key`` (:func:`sample_demand`).
    """
    if (demand is None) == (resample is None):
        raise ValueError("give exactly one of demand [B, T] and resample=(B, T)")

    def cost_fn(params, key):
        d = demand if resample is None else sample_demand(key, resample, demand_mean, distribution)
        policy = make_policy(params)
        return jnp.mean(jax.vmap(lambda path: average_cost(policy, inv_params, path))(d))

    return cost_fn


def base_stock_policy(params) -> Callable[[InventoryState], jax.Array]:
    """``params = {"level": s}`` -> :func:`~jaxpg.envs.inventory.base_stock` (s learnable)."""
    return base_stock(params["level"])


def capped_base_stock_policy(params) -> Callable[[InventoryState], jax.Array]:
    """``params = {"level": s, "cap": c}`` -> :func:`~jaxpg.envs.inventory.capped_base_stock`."""
    return capped_base_stock(params["level"], params["cap"])


class InventoryMLP(nn.Module):
    """State ``(I_t, P_t)`` [1 + L] -> order ``softplus(mlp(x) + 1) >= 0`` (the paper's head).

    Hidden layers ``hidden`` with ELU (paper: [32, 32, 32]); inputs are divided by ``scale``
    (e.g. the mean demand) so the network sees O(1) numbers; the order is multiplied back.
    """

    hidden: Sequence[int] = (32, 32, 32)
    scale: float = 5.0
    zero_head: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x / self.scale
        for width in self.hidden:
            x = nn.elu(nn.Dense(width)(x))
        # A zero-initialized head starts every run at the constant order scale * softplus(1)
        # (6.6 for mean demand 5) whatever the state. With flax's default head, 1 of 8 random
        # inits ordered hundreds of units per period (initial cost ~5000), saturated the ELUs and
        # stayed at cost ~20 (the best base stock pays 7.3); see tests/test_inventory.py.
        head = nn.Dense(1, kernel_init=nn.initializers.zeros if self.zero_head else nn.linear.default_kernel_init)
        return self.scale * jax.nn.softplus(head(x)[..., 0] + 1.0)


def mlp_policy(module: InventoryMLP) -> Callable[[Any], Callable[[InventoryState], jax.Array]]:
    """``make_policy(params)`` for :func:`batch_cost`: ``policy(state) = module.apply(params, obs)``
    with ``obs = concat([I_t], P_t)``. Init: ``module.init(key, jnp.zeros(1 + L))``."""

    def make_policy(params):
        def policy(state: InventoryState) -> jax.Array:
            obs = jnp.concatenate([state.on_hand[None], state.pipeline])
            return module.apply(params, obs)

        return policy

    return make_policy


def grid_search_base_stock(
    inv_params: InventoryParams, demand: jax.Array, levels: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Best base-stock level on paths ``demand`` [B, T]: ``(levels[argmin], costs [len(levels)])``."""
    levels = jnp.asarray(levels, jnp.float32)
    cost_fn = batch_cost(base_stock_policy, inv_params, demand)
    costs = jax.lax.map(lambda s: cost_fn({"level": s}, None), levels)
    return levels[jnp.argmin(costs)], costs


def grid_search_capped_base_stock(
    inv_params: InventoryParams, demand: jax.Array, levels: jax.Array, caps: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Best capped base stock on ``demand`` [B, T]: ``(level, cap, costs [len(levels), len(caps)])``."""
    levels = jnp.asarray(levels, jnp.float32)
    caps = jnp.asarray(caps, jnp.float32)
    cost_fn = batch_cost(capped_base_stock_policy, inv_params, demand)
    grid_s, grid_c = jnp.meshgrid(levels, caps, indexing="ij")
    pairs = jnp.stack([grid_s.ravel(), grid_c.ravel()], -1)
    flat = jax.lax.map(lambda sc: cost_fn({"level": sc[0], "cap": sc[1]}, None), pairs)
    costs = flat.reshape(grid_s.shape)
    i = jnp.argmin(flat)
    return grid_s.ravel()[i], grid_c.ravel()[i], costs
