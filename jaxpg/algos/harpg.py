"""Normalized and Hessian-aided policy gradients: PG, N-MPG, N-PG-IGT, HARPG and N-HARPG.

Fatkhullin, Barakat, Kireeva, He, "Stochastic Policy Gradient Methods: Improved Sample Complexity
for Fisher-non-degenerate Policies", ICML 2023 (arXiv 2302.01734). Every iteration t samples
``num_envs`` whole trajectories (``num_envs = 1`` is the single-trajectory setting of the theory)
and updates the policy parameters directly (no optax optimizer; the step sizes gamma_t and
momentum weights eta_t follow the paper's schedules, see :mod:`jaxpg.estimators.momentum`):

* ``pg``        vanilla policy gradient:  theta += gamma_t g(tau, theta)
* ``n_mpg``     normalized momentum:      d = (1-eta) d + eta g;  theta += gamma_t d/|d|
* ``n_pg_igt``  Algorithm 1: the gradient and the trajectories are taken at the IGT point
                theta~ = theta + ((1-eta)/eta)(theta - theta_prev); theta += gamma_t d/|d|
* ``harpg``     Algorithm 2 without normalization: d = (1-eta)(d + B(tau^, theta^)(theta -
                theta_prev)) + eta g(tau, theta) with theta^ a uniformly random point between the
                last two iterates and tau^ an independent batch sampled at theta^; theta += gamma_t d
* ``n_harpg``   the same with the normalized step theta += gamma_t d/|d|

g is the GPOMDP estimator and B v the score-function Hessian-vector product of
:mod:`jaxpg.estimators.score_function` (one jvp through one grad). The first iteration uses
d_0 = g_0 (eta_0 is taken as 1 there).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxpg import estimators, optim, policies
from jaxpg.algos import common
from jaxpg.algos.validation import NONNEGATIVE, POSITIVE, POSITIVE_INT, UNIT, bounded
from jaxpg.algos.episodes import EpisodeBatch, collect_episodes, resolve_horizon
from jaxpg.envs import VectorEnv
from jaxpg.nets import PolicyNetwork, RunningStats

BASELINES = ("leave_one_out", "none")


@dataclasses.dataclass(frozen=True)
class HARPGConfig(common.BaseConfig):
    method: str = "n_harpg"
    # simulated env steps (num_envs [+ hessian_envs]) x horizon per iteration
    total_steps: int = bounded(500_000, POSITIVE_INT)
    num_envs: int = bounded(10, POSITIVE_INT)  # trajectories per gradient estimate
    # trajectories for B v in (N-)HARPG; None: num_envs
    hessian_envs: int | None = bounded(None, POSITIVE_INT, optional=True)
    horizon: int | None = bounded(None, POSITIVE_INT, optional=True)
    hidden_sizes: tuple = (32, 32)
    baseline: str = "leave_one_out"


@struct.dataclass
class HARPGHParams:
    step_size: float = bounded(0.1, NONNEGATIVE)  # gamma_0
    momentum: float = bounded(1.0, POSITIVE)  # eta_0 (eta_t is capped at 1 by the schedule)
    gamma: float = bounded(0.99, UNIT)


@struct.dataclass
class HARPGState:
    params: Any
    previous_params: Any
    direction: Any
    target_norms: Any  # NaP: initial norms of the normalized kernels (unused without nap)
    obs_stats: RunningStats
    env_params: Any
    key: jax.Array
    iteration: jax.Array
    env_steps: jax.Array
    trajectories: jax.Array


class HARPG(common.Trainer):
    """``train = HARPG(HARPGConfig(method="n_harpg"))``; the five methods share this trainer."""

    algo = "harpg"
    Config = HARPGConfig
    HParams = HARPGHParams

    def __init__(self, config: HARPGConfig = HARPGConfig()):
        common.check_config(config)
        if config.method not in estimators.METHODS:
            raise ValueError(f"unknown method {config.method!r}; valid choices: {', '.join(estimators.METHODS)}")
        if config.baseline not in BASELINES:
            raise ValueError(f"unknown baseline {config.baseline!r}; valid choices: {', '.join(BASELINES)}")
        if config.normalize_obs:
            raise ValueError("normalize_obs is not supported by the HARPG family (valid: false)")
        self.config = config
        self.algo = config.method  # each method is its own algorithm name (see ``trainer_for``)
        self.env, self.venv = common.make_environment(config)
        hessian_envs = config.num_envs if config.hessian_envs is None else config.hessian_envs
        self.uses_hessian = config.method in ("harpg", "n_harpg")
        self.hessian_venv = VectorEnv(self.env, hessian_envs) if self.uses_hessian else None
        self.network = common.make_network(config, self.env, PolicyNetwork)
        self.horizon = resolve_horizon(config, self.env)
        self.trajectories_per_iteration = config.num_envs + (hessian_envs if self.uses_hessian else 0)
        self.steps_per_iteration = self.trajectories_per_iteration * self.horizon
        if config.total_steps < self.steps_per_iteration:
            raise ValueError(
                f"total_steps = {config.total_steps} is less than one iteration ({self.steps_per_iteration} steps)"
            )
        self.num_iterations = config.total_steps // self.steps_per_iteration
        self.default_hparams = HARPGHParams()

    def init(self, key, hparams=None, env_params=None) -> HARPGState:
        env_params = self.env.default_params if env_params is None else env_params
        key_net, key_run = jax.random.split(key)
        params = self.network.init(key_net, jnp.zeros(self.env.observation_spec.shape, jnp.float32))
        return HARPGState(
            params=params,
            previous_params=params,
            direction=jax.tree.map(jnp.zeros_like, params),
            target_norms=optim.initial_norms(params),
            obs_stats=RunningStats.create(self.env.observation_spec.shape),
            env_params=env_params,
            key=key_run,
            iteration=jnp.zeros((), jnp.int32),
            env_steps=jnp.zeros((), jnp.int32),
            trajectories=jnp.zeros((), jnp.int32),
        )

    # -- estimators on a batch --------------------------------------------------------------
    def score_fn(self, batch: EpisodeBatch, gamma):
        """``params -> (Phi_i, log p_i)`` for the trajectories of ``batch``."""
        baseline = None
        if self.config.baseline == "leave_one_out":
            returns = estimators.discounted_rewards_to_go(batch.reward, batch.mask, gamma)
            baseline = estimators.leave_one_out_baseline(returns, batch.mask)

        def score(params):
            log_probs = policies.log_prob(self.network.apply(params, batch.obs), batch.latent)
            return estimators.gpomdp_surrogate(log_probs, batch.reward, batch.mask, gamma, baseline)

        return score

    def _sample(self, venv, params, key, env_params) -> EpisodeBatch:
        return collect_episodes(venv, lambda obs: self.network.apply(params, obs), key, self.horizon, env_params)

    def _iteration(self, hparams, state: HARPGState):
        c, method = self.config, self.config.method
        t = state.iteration
        key, key_batch, key_hessian, key_q = jax.random.split(state.key, 4)
        step = estimators.step_size(method, hparams.step_size, t)
        eta = jnp.where(t == 0, 1.0, estimators.momentum_weight(method, hparams.momentum, t))
        theta, theta_prev = state.params, state.previous_params

        sample_point = estimators.igt_extrapolation(theta, theta_prev, eta) if method == "n_pg_igt" else theta
        batch = self._sample(self.venv, sample_point, key_batch, state.env_params)
        gradient = estimators.policy_gradient(self.score_fn(batch, hparams.gamma), sample_point)
        metrics = {}

        if method == "pg":
            direction = gradient
        elif method in ("n_mpg", "n_pg_igt"):
            direction = estimators.momentum(state.direction, gradient, eta)
        else:
            q = jax.random.uniform(key_q)
            point = estimators.interpolation_point(theta, theta_prev, q)
            hessian_batch = self._sample(self.hessian_venv, point, key_hessian, state.env_params)
            correction = estimators.hessian_vector_product(
                self.score_fn(hessian_batch, hparams.gamma), point, estimators.difference(theta, theta_prev)
            )
            direction = estimators.harpg_momentum(state.direction, correction, gradient, eta)
            metrics["hessian_correction_norm"] = optim.global_norm(correction)

        if method in ("pg", "harpg"):
            update = jax.tree.map(lambda d: step * d, direction)
        else:
            update = optim.normalized_step(direction, step)
        params = jax.tree.map(jnp.add, theta, update)
        if c.nap:
            params = optim.project(params, state.target_norms, optim.normalized_kernels_mask(params))

        new_state = HARPGState(
            params=params,
            previous_params=theta,
            direction=direction,
            target_norms=state.target_norms,
            obs_stats=state.obs_stats,
            env_params=state.env_params,
            key=key,
            iteration=t + 1,
            env_steps=state.env_steps + self.steps_per_iteration,
            trajectories=state.trajectories + self.trajectories_per_iteration,
        )
        metrics.update(
            {
                "episode_return": batch.episode_returns.mean(),
                "episode_length": batch.episode_lengths.mean(),
                "grad_norm": optim.global_norm(gradient),
                "direction_norm": optim.global_norm(direction),
                "step_size": step,
                "momentum": eta,
                "env_steps": new_state.env_steps,
                "trajectories": new_state.trajectories,
                "finite": jnp.logical_and(common.all_finite(direction), common.all_finite(params)),
            }
        )
        return new_state, metrics


def trainer_for(method: str):
    """A ``HARPG`` subclass fixed to one method, so each method is its own algorithm name.

    Its ``Config`` defaults ``method`` to that method; asking it for another method is an error
    rather than a silent switch.
    """
    if method not in estimators.METHODS:
        raise ValueError(f"unknown method {method!r}; valid choices: {', '.join(estimators.METHODS)}")
    method_config = dataclasses.make_dataclass(
        f"HARPGConfig[{method}]", [("method", str, dataclasses.field(default=method))], bases=(HARPGConfig,), frozen=True
    )

    class Method(HARPG):
        algo = method
        Config = method_config

        def __init__(self, config: HARPGConfig | None = None):
            config = method_config() if config is None else config
            if config.method != method:
                raise ValueError(
                    f"the {method} trainer cannot run method={config.method!r}; use make_train({config.method!r}, ...)"
                )
            super().__init__(config)

    Method.__name__ = Method.__qualname__ = f"HARPGFamily[{method}]"
    return Method
