"""A differentiable single-store inventory simulator (the HDPO setting).

Alvo, Russo & Kanoria (2023), "Deep Reinforcement Learning for Inventory Networks: Toward
Reliable Policy Optimization", arXiv:2306.11246. HDPO ("hindsight differentiable policy
optimization") samples demand paths beforehand (known in hindsight), simulates the policy on
each path with a differentiable simulator and descends the gradient of the average cost through
the simulation (a pathwise, reparameterized policy gradient).

Timing of one period t (``lax.scan`` over t = 0..T-1); the state is the on-hand inventory
``I_t`` and the pipeline ``P_t = (q_{t-L}, ..., q_{t-1})`` of outstanding orders (length L):

1. the policy sees the state and orders ``q_t = policy(state) >= 0``;
2. the order placed L periods ago arrives: ``a_t = q_{t-L}`` (L = 0: ``a_t = q_t``, the order
   arrives immediately, before demand); the pipeline shifts, ``P_{t+1} = (q_{t-L+1}, ..., q_t)``;
3. demand ``d_t`` is served from ``J_t = I_t + a_t``, with
   ``cost_t = h * max(J_t - d_t, 0) + p * max(d_t - J_t, 0)``;
   lost sales: ``I_{t+1} = max(J_t - d_t, 0)`` (unmet demand is lost);
   backlog: ``I_{t+1} = J_t - d_t`` (may be negative; then the cost is ``p * max(-I_{t+1}, 0)``).

The loss is the average cost per period, ``(1 / (T - burn_in)) * sum_{t >= burn_in} cost_t``.
Everything is piecewise linear in the (continuous) order quantities, built from
``jnp.maximum`` / ``jax.nn.relu`` with no rounding, so ``jax.grad`` through the scan is the
pathwise gradient of the paper.

Policies are plain functions ``policy(state: InventoryState) -> order`` (a scalar):
``base_stock(level)`` orders up to ``level`` of the inventory position
``position = I_t + sum(P_t)``: ``q_t = relu(level - position)``; ``capped_base_stock(level, cap)``
orders ``min(relu(level - position), cap)``.

This module imports jax only (the ``envs`` layer); it is not an :class:`~jaxpg.envs.core.Environment`
(the policy's action enters the cost differentiably, there is no reward sampling).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "InventoryParams",
    "InventoryState",
    "InventoryTask",
    "TASKS",
    "average_cost",
    "base_stock",
    "capped_base_stock",
    "initial_state",
    "inventory_position",
    "make_task",
    "sample_demand",
    "simulate",
]


@dataclasses.dataclass(frozen=True)
class InventoryParams:
    """A single store (static and hashable, so it can be closed over by ``jit``).

    Attributes:
        lead_time: L >= 0, periods between placing an order and its arrival (static int).
        holding_cost: h, per unit on hand at the end of a period.
        shortage_cost: p, per unit of unmet demand (lost or backlogged) in a period.
        lost_sales: True: unmet demand is lost; False: it is backlogged (negative inventory).
        initial_inventory: I_0; the pipeline starts empty (zeros).
        burn_in: the first ``burn_in`` periods are simulated but left out of the average cost
            (the paper simulates T = 50 and reports the last 20).
    The horizon T is the length of the demand path handed to :func:`simulate`.
    """

    lead_time: int = 0
    holding_cost: float = 1.0
    shortage_cost: float = 9.0
    lost_sales: bool = True
    initial_inventory: float = 0.0
    burn_in: int = 0

    def __post_init__(self):
        if int(self.lead_time) != self.lead_time or self.lead_time < 0:
            raise ValueError(f"lead_time must be a non-negative int, got {self.lead_time!r}")
        if self.burn_in < 0:
            raise ValueError(f"burn_in must be >= 0, got {self.burn_in!r}")


class InventoryState(NamedTuple):
    """``on_hand``: I_t (scalar; negative = backlog); ``pipeline``: [L] orders q_{t-L}..q_{t-1}."""

    on_hand: jax.Array
    pipeline: jax.Array


class Trajectory(NamedTuple):
    """Per-period records of one simulated path, each [T]."""

    order: jax.Array  # q_t
    on_hand: jax.Array  # I_{t+1}, after demand
    cost: jax.Array  # cost_t


def initial_state(params: InventoryParams, initial_inventory=None) -> InventoryState:
    """``I_0 = initial_inventory`` (default ``params.initial_inventory``) and an empty pipeline."""
    inv = params.initial_inventory if initial_inventory is None else initial_inventory
    return InventoryState(jnp.asarray(inv, jnp.float32), jnp.zeros((params.lead_time,), jnp.float32))


def inventory_position(state: InventoryState) -> jax.Array:
    """``I_t + sum(P_t)``: on hand plus on order."""
    return state.on_hand + jnp.sum(state.pipeline)


def base_stock(level) -> Callable[[InventoryState], jax.Array]:
    """Order up to ``level``: ``q = relu(level - (I_t + sum(P_t)))``."""

    def policy(state: InventoryState) -> jax.Array:
        return jax.nn.relu(level - inventory_position(state))

    return policy


def capped_base_stock(level, cap) -> Callable[[InventoryState], jax.Array]:
    """Capped base stock: ``q = min(relu(level - (I_t + sum(P_t))), cap)``."""

    def policy(state: InventoryState) -> jax.Array:
        return jnp.minimum(jax.nn.relu(level - inventory_position(state)), cap)

    return policy


def simulate(
    policy: Callable[[InventoryState], jax.Array],
    params: InventoryParams,
    demand: jax.Array,
    state: InventoryState | None = None,
) -> tuple[InventoryState, Trajectory]:
    """Run ``policy`` on one demand path ``demand`` [T] (see the module docstring for the timing).

    Returns the final state and the per-period :class:`Trajectory`. Differentiable w.r.t. anything
    the policy closes over. For a batch of paths, ``jax.vmap`` over ``demand``.
    """
    if state is None:
        state = initial_state(params)
    h = jnp.float32(params.holding_cost)
    p = jnp.float32(params.shortage_cost)

    def period(state: InventoryState, d):
        q = jnp.asarray(policy(state), jnp.float32).reshape(())
        extended = jnp.concatenate([state.pipeline, q[None]])  # [q_{t-L}, ..., q_t]
        available = state.on_hand + extended[0]  # J_t = I_t + q_{t-L}
        post = available - d
        cost = h * jax.nn.relu(post) + p * jax.nn.relu(-post)
        on_hand = jax.nn.relu(post) if params.lost_sales else post
        return InventoryState(on_hand, extended[1:]), Trajectory(q, on_hand, cost)

    return jax.lax.scan(period, state, jnp.asarray(demand, jnp.float32))


def average_cost(
    policy: Callable[[InventoryState], jax.Array],
    params: InventoryParams,
    demand: jax.Array,
    state: InventoryState | None = None,
) -> jax.Array:
    """Average cost per period, ``mean_{t >= burn_in} cost_t``, on one path ``demand`` [T]."""
    _, traj = simulate(policy, params, demand, state)
    return jnp.mean(traj.cost[params.burn_in :])


def sample_demand(
    key: jax.Array,
    shape: tuple[int, ...],
    mean: float = 5.0,
    distribution: str = "poisson",
    std: float | None = None,
) -> jax.Array:
    """Demand paths of ``shape`` (e.g. (B, T)), sampled beforehand (known in hindsight).

    ``"poisson"``: Poisson(mean) (the paper's one-store setting, mean 5); ``"normal"``:
    ``max(N(mean, std^2), 0)`` (std defaults to sqrt(mean)). float32.
    """
    if distribution == "poisson":
        return jax.random.poisson(key, mean, shape).astype(jnp.float32)
    if distribution == "normal":
        s = jnp.sqrt(mean) if std is None else std
        return jax.nn.relu(mean + s * jax.random.normal(key, shape, jnp.float32))
    raise ValueError(f"distribution must be 'poisson' or 'normal', got {distribution!r}")


DISTRIBUTIONS = ("poisson", "normal")


@dataclasses.dataclass(frozen=True)
class InventoryTask:
    """A named inventory setting ``"inventory/<name>"``: the store, the horizon and the demand.

    ``periods`` is T (the length of each sampled demand path); ``demand_mean`` and
    ``distribution`` go to :func:`sample_demand`.
    """

    name: str
    store: InventoryParams
    periods: int = 50
    demand_mean: float = 5.0
    distribution: str = "poisson"

    def __post_init__(self):
        if int(self.periods) != self.periods or self.periods <= self.store.burn_in:
            raise ValueError(f"periods must be an int > burn_in = {self.store.burn_in}, got {self.periods!r}")
        if not self.demand_mean > 0:
            raise ValueError(f"demand_mean must be > 0, got {self.demand_mean!r}")
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"unknown distribution {self.distribution!r}; valid choices: {', '.join(DISTRIBUTIONS)}")

    def sample(self, key: jax.Array, num_paths: int) -> jax.Array:
        """``num_paths`` demand paths [num_paths, periods]."""
        return sample_demand(key, (num_paths, self.periods), self.demand_mean, self.distribution)


# The paper's one-store setting (Alvo et al. 2023, Section 5.1): Poisson(5), h = 1, p = 9, lead
# time 4, T = 50 with the first 30 periods left out of the reported cost; lost sales or backlog.
# "newsvendor": lead time 0 with backlog, where a base-stock level s pays the newsvendor cost
# every period, minimized at the critical fractile F^-1(p / (p + h)) = 8 for Poisson(5).
TASKS: dict[str, InventoryTask] = {
    "one_store": InventoryTask("one_store", InventoryParams(lead_time=4, lost_sales=True, burn_in=30)),
    "one_store_backlog": InventoryTask("one_store_backlog", InventoryParams(lead_time=4, lost_sales=False, burn_in=30)),
    "newsvendor": InventoryTask("newsvendor", InventoryParams(lead_time=0, lost_sales=False), periods=10),
}


def make_task(name: str, **overrides) -> InventoryTask:
    """The setting ``"inventory/<name>"`` (or ``"<name>"``) of :data:`TASKS`, with fields replaced
    by ``overrides``: any field of :class:`InventoryParams` (``lead_time=2``, ``lost_sales=False``)
    or of :class:`InventoryTask` (``periods``, ``demand_mean``, ``distribution``)."""
    short = name[len("inventory/"):] if name.startswith("inventory/") else name
    if short not in TASKS:
        raise ValueError(f"unknown inventory task {name!r}; valid choices: {', '.join('inventory/' + t for t in TASKS)}")
    task = TASKS[short]
    store_fields = [f.name for f in dataclasses.fields(InventoryParams)]
    task_fields = ["periods", "demand_mean", "distribution"]
    unknown = sorted(set(overrides) - set(store_fields) - set(task_fields))
    if unknown:
        raise ValueError(f"unknown inventory field(s) {unknown}; valid choices: {', '.join(store_fields + task_fields)}")
    store = dataclasses.replace(task.store, **{k: v for k, v in overrides.items() if k in store_fields})
    return dataclasses.replace(task, store=store, **{k: v for k, v in overrides.items() if k in task_fields})
