"""HDPO as a trainer under the ``make_train`` contract: ``make_train("hdpo", env="inventory/one_store")``.

Alvo, Russo & Kanoria (2023), "Deep Reinforcement Learning for Inventory Networks: Toward
Reliable Policy Optimization", arXiv:2306.11246. Each iteration samples ``batch_size`` fresh
demand paths ``d^(b)`` [T] (known in hindsight), simulates the policy on all of them with the
differentiable simulator (:mod:`jaxpg.envs.inventory`) and takes one optimizer step on the
pathwise gradient of the sample-average cost

    J(theta) = (1 / B) sum_b (1 / (T - burn_in)) sum_{t >= burn_in} cost_t(theta; d^(b)),
    cost_t = h (J_t - d_t)^+ + p (d_t - J_t)^+,

``grad_theta J`` by ``jax.grad`` through the simulator's ``lax.scan`` (no score function).
Defaults are the paper's one-store setting: the MLP [32, 32, 32] with ELU and the head
``softplus(x + 1)``, Adam 3e-3, T = 50 with 30 burn-in periods, Poisson(5) demand, h = 1,
p = 9, lead time 4, lost sales. The paper's batch is 8192 paths; the default here is 1024 (the
CPU budget of this project; set ``batch_size=8192`` for the paper's). With ``policy="base_stock"``
or ``"capped_base_stock"`` the same trainer fits the baselines' continuous parameters by the
same gradient (the newsvendor's critical fractile is the known answer, tests/test_inventory.py).

The run's metrics are per iteration: ``cost`` (the training batch's J before the step) and
``episode_return = -cost``, so jaxpg's generic tools (the CLI summary, curves, sweeps) that
maximize a return read it as is. ``total_steps`` counts simulated store-periods
(``batch_size x periods`` per iteration). :func:`jaxpg.evaluate` on a result returns
``-average cost`` of fresh held-out paths, one per "episode".
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxpg.algos import common, pathwise
from jaxpg.algos.trainer import Trainer, all_finite
from jaxpg.algos.validation import NONNEGATIVE, POSITIVE, POSITIVE_INT, bounded, validate
from jaxpg.envs import inventory

POLICIES = ("mlp", "base_stock", "capped_base_stock")


@dataclasses.dataclass(frozen=True)
class HDPOConfig:
    env: str = "inventory/one_store"  # a name of jaxpg.envs.inventory.TASKS
    env_kwargs: tuple = ()  # ((field, value), ...) replacing InventoryParams / InventoryTask fields
    policy: str = "mlp"  # "mlp" | "base_stock" | "capped_base_stock"
    hidden_sizes: tuple = (32, 32, 32)  # the MLP's (the paper's)
    batch_size: int = bounded(1024, POSITIVE_INT)  # demand paths per step (paper: 8192)
    total_steps: int = bounded(1024 * 50 * 1500, POSITIVE_INT)  # simulated store-periods
    lr_schedule: str = "cosine"  # "constant" | "linear" | "cosine" (over the run's iterations)
    optimizer: str = "adam"  # "adam" (the paper's) | "sinkgd", after clipping


@struct.dataclass
class HDPOHParams:
    learning_rate: float = bounded(3e-3, NONNEGATIVE)
    max_grad_norm: float = bounded(1e6, POSITIVE)  # global-norm clip; the paper does not clip


@struct.dataclass
class HDPOState:
    params: Any
    opt_state: Any
    key: jax.Array
    iteration: jax.Array
    env_steps: jax.Array
    env_params: Any = None  # the contract's field; the store is static (in the config)


class HDPO(Trainer):
    """``train = make_train("hdpo", env="inventory/one_store")``; ``result = train.jit()(key)``."""

    algo = "hdpo"
    Config = HDPOConfig
    HParams = HDPOHParams

    def __init__(self, config: HDPOConfig = HDPOConfig()):
        validate(config)
        if config.policy not in POLICIES:
            raise ValueError(f"unknown policy {config.policy!r}; valid choices: {', '.join(POLICIES)}")
        if config.lr_schedule not in common.SCHEDULES:
            raise ValueError(f"unknown lr_schedule {config.lr_schedule!r}; valid choices: {', '.join(common.SCHEDULES)}")
        common.check_optimizer(config.optimizer)
        if any(int(size) < 1 for size in config.hidden_sizes):
            raise ValueError(f"hidden_sizes must be positive integers, got {config.hidden_sizes!r}")
        self.config = config
        self.task = inventory.make_task(config.env, **dict(config.env_kwargs))
        self.store = self.task.store
        self.steps_per_iteration = config.batch_size * self.task.periods
        if config.total_steps < self.steps_per_iteration:
            raise ValueError(f"total_steps = {config.total_steps} is less than one iteration "
                             f"(batch_size x periods = {self.steps_per_iteration} store-periods)")
        self.num_iterations = config.total_steps // self.steps_per_iteration
        if config.policy == "mlp":
            self.module = pathwise.InventoryMLP(hidden=tuple(config.hidden_sizes), scale=self.task.demand_mean)
            self.make_policy = pathwise.mlp_policy(self.module)
        elif config.policy == "base_stock":
            self.make_policy = pathwise.base_stock_policy
        else:
            self.make_policy = pathwise.capped_base_stock_policy
        self.default_hparams = HDPOHParams()

    def optimizer(self, hparams) -> optax.GradientTransformation:
        schedule = common.learning_rate_schedule(self.config.lr_schedule, hparams.learning_rate, self.num_iterations)
        return common.clipped_optimizer(self.config.optimizer, schedule, hparams.max_grad_norm, adam_eps=1e-8)

    def init_params(self, key: jax.Array):
        """MLP: flax's init; base stock: the level starts at the mean demand over the lead time
        plus one period, ``mu (L + 1)`` (the cap, when there is one, at ``2 mu``)."""
        if self.config.policy == "mlp":
            return self.module.init(key, jnp.zeros(1 + self.store.lead_time))
        level = jnp.float32(self.task.demand_mean * (self.store.lead_time + 1))
        if self.config.policy == "base_stock":
            return {"level": level}
        return {"level": level, "cap": jnp.float32(2 * self.task.demand_mean)}

    def init(self, key, hparams=None, env_params=None) -> HDPOState:
        hparams = self.default_hparams if hparams is None else hparams
        key_net, key_run = jax.random.split(key)
        params = self.init_params(key_net)
        return HDPOState(params=params, opt_state=self.optimizer(hparams).init(params), key=key_run,
                         iteration=jnp.zeros((), jnp.int32), env_steps=jnp.zeros((), jnp.int32))

    def cost(self, params, demand: jax.Array) -> jax.Array:
        """Average cost per period and path of the policy ``params`` on ``demand`` [B, T]."""
        policy = self.make_policy(params)
        return jnp.mean(jax.vmap(lambda path: inventory.average_cost(policy, self.store, path))(demand))

    def step(self, state: HDPOState, hparams):
        key, key_demand = jax.random.split(state.key)
        demand = self.task.sample(key_demand, self.config.batch_size)
        cost, grads = jax.value_and_grad(self.cost)(state.params, demand)
        updates, opt_state = self.optimizer(hparams).update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_state = state.replace(params=params, opt_state=opt_state, key=key, iteration=state.iteration + 1,
                                  env_steps=state.env_steps + self.steps_per_iteration)
        metrics = {
            "cost": cost,
            "episode_return": -cost,
            "grad_norm": optax.tree.norm(grads),
            "env_steps": new_state.env_steps,
            "finite": jnp.logical_and(jnp.isfinite(cost), all_finite(params)),
        }
        if self.config.policy != "mlp":  # the baselines' parameters are worth watching
            metrics.update({name: value for name, value in params.items()})
        return new_state, metrics

    # -- using a trained run (jaxpg.evaluate / jaxpg.policy_fn) ---------------------------------
    def evaluate_result(self, result, key, num_episodes: int, deterministic: bool = True) -> jax.Array:
        """``-average cost`` of the trained policy on ``num_episodes`` fresh demand paths
        ([num_episodes]; the policy is deterministic, so ``deterministic`` changes nothing)."""
        demand = self.task.sample(key, num_episodes)
        policy = self.make_policy(result.state.params)
        return -jax.vmap(lambda path: inventory.average_cost(policy, self.store, path))(demand)

    def policy_function(self, result, deterministic: bool = True):
        """``state -> order`` for an :class:`~jaxpg.envs.inventory.InventoryState` (jittable)."""
        return self.make_policy(result.state.params)
