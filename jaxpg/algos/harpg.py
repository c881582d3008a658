"""Normalized and Hessian-aided policy gradients: PG, N-MPG, N-PG-IGT, HARPG and N-HARPG.

Fatkhullin, Barakat, Kireeva, He, "Stochastic Policy Gradient Methods: Improved Sample Complexity
for Fisher-non-degenerate Policies", ICML 2023 (arXiv 2302.01734). Every iteration t samples
``num_envs`` whole trajectories (``num_envs = 1`` is the single-trajectory setting of the theory)
and updates the policy parameters directly (no optax optimizer). The step sizes and momentum
weights follow the schedules of the paper's official code (section 1.3 of the reference notes),
gamma_t = gamma_0 r_t^p and eta_t = min(1, eta_0 r_t^q) with r_t = 2 / (t + 2):

    method    p      q
    pg        2/3    -  (no momentum)
    n_mpg     1      2/3
    n_pg_igt  1      4/5
    harpg     1/2    1
    n_harpg   1      1

Each method is its own trainer class (and algorithm name):

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

from jaxpg import estimators, optim
from jaxpg.algos import common
from jaxpg.algos.rollout import EpisodeBatch, collect_episodes, sampling
from jaxpg.algos.trainer import Trainer, all_finite
from jaxpg.algos.validation import NONNEGATIVE, POSITIVE, POSITIVE_INT, UNIT, bounded
from jaxpg.envs import VectorEnv
from jaxpg.nets import PolicyNetwork, RunningStats, normalized_kernels_mask

BASELINES = ("leave_one_out", "none")


@dataclasses.dataclass(frozen=True)
class HARPGConfig(common.BaseConfig):
    # The step is the method (normalized, momentum or Hessian-corrected ascent of Fatkhullin et
    # al.), not an optax optimizer: there is nothing for optimizer="sinkgd" to replace, so the
    # field keeps its default and other values are refused.
    OPTIMIZERS = ("adam",)
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


class PolicyGradientFamily(Trainer):
    """The shared trainer of the five methods; a subclass fixes the method by its class attributes:

    * ``step_exponent``, ``momentum_exponent`` (None: no momentum): the schedules above;
    * ``direction``: ``"gradient"`` (d = g), ``"momentum"`` (d = (1-eta) d + eta g), or
      ``"hessian"`` (HARPG's recursive momentum with the Hessian correction);
    * ``extrapolate``: sample and differentiate at the IGT point;
    * ``normalized``: theta += gamma_t d/|d| instead of theta += gamma_t d.
    """

    Config = HARPGConfig
    HParams = HARPGHParams
    step_exponent: float
    momentum_exponent: float | None
    direction: str
    extrapolate: bool = False
    normalized: bool = True

    def __init__(self, config: HARPGConfig = HARPGConfig()):
        common.check_config(config)
        if config.baseline not in BASELINES:
            raise ValueError(f"unknown baseline {config.baseline!r}; valid choices: {', '.join(BASELINES)}")
        if config.normalize_obs:
            raise ValueError("normalize_obs is not supported by the HARPG family (valid: false)")
        self.config = config
        self.env, self.venv = common.make_environment(config)
        self.uses_hessian = self.direction == "hessian"
        hessian_envs = config.num_envs if config.hessian_envs is None else config.hessian_envs
        sampled = config.levels == "sampled"
        if self.uses_hessian and sampled and hessian_envs != config.num_envs:
            raise ValueError("levels='sampled' gives the Hessian batch the gradient batch's levels: "
                             f"hessian_envs must equal num_envs ({config.num_envs}) or be unset")
        self.hessian_venv = VectorEnv(self.env, hessian_envs, batched_params=sampled) if self.uses_hessian else None
        self.network = common.make_network(config, self.env, PolicyNetwork)
        self.horizon = common.resolve_horizon(config, self.env)
        self.trajectories_per_iteration = config.num_envs + (hessian_envs if self.uses_hessian else 0)
        self.steps_per_iteration = self.trajectories_per_iteration * self.horizon
        if config.total_steps < self.steps_per_iteration:
            raise ValueError(
                f"total_steps = {config.total_steps} is less than one iteration ({self.steps_per_iteration} steps)"
            )
        self.num_iterations = config.total_steps // self.steps_per_iteration
        self.default_hparams = HARPGHParams()

    # -- the paper's schedules ---------------------------------------------------------------
    @classmethod
    def step_size(cls, gamma_0, t) -> jax.Array:
        """``gamma_t = gamma_0 (2 / (t + 2))^p``."""
        return estimators.power_schedule(gamma_0, t, cls.step_exponent)

    @classmethod
    def momentum_weight(cls, eta_0, t) -> jax.Array:
        """``eta_t = min(1, eta_0 (2 / (t + 2))^q)``; 1 for methods without momentum."""
        if cls.momentum_exponent is None:
            return jnp.ones((), jnp.float32)
        return jnp.minimum(1.0, estimators.power_schedule(eta_0, t, cls.momentum_exponent))

    def init(self, key, hparams=None, env_params=None) -> HARPGState:
        key_net, key_run = jax.random.split(key)
        env_params = common.initial_levels(self.config, self.env, self.venv, jax.random.fold_in(key, 1), env_params)
        params = self.network.init(key_net, jnp.zeros(self.env.observation_spec.shape, jnp.float32))
        return HARPGState(
            params=params,
            previous_params=params,
            direction=jax.tree.map(jnp.zeros_like, params),
            target_norms=optim.initial_norms(params, normalized_kernels_mask),
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
        traj = batch.transitions
        baseline = None
        if self.config.baseline == "leave_one_out":
            returns = estimators.discounted_rewards_to_go(traj.reward, batch.mask, gamma)
            baseline = estimators.leave_one_out_baseline(returns, batch.mask)

        def score(params):
            log_probs = self.network.apply(params, traj.obs).log_prob(traj.latent)
            return estimators.gpomdp_surrogate(log_probs, traj.reward, batch.mask, gamma, baseline)

        return score

    def _sample(self, venv, params, key, env_params) -> EpisodeBatch:
        return collect_episodes(venv, sampling(lambda obs: self.network.apply(params, obs)), key, self.horizon,
                                env_params)

    def step(self, state: HARPGState, hparams):
        t = state.iteration
        key, key_batch, key_hessian, key_q = jax.random.split(state.key, 4)
        step = self.step_size(hparams.step_size, t)
        eta = jnp.where(t == 0, 1.0, self.momentum_weight(hparams.momentum, t))
        theta, theta_prev = state.params, state.previous_params

        sample_point = estimators.igt_extrapolation(theta, theta_prev, eta) if self.extrapolate else theta
        batch = self._sample(self.venv, sample_point, key_batch, state.env_params)
        gradient = estimators.policy_gradient(self.score_fn(batch, hparams.gamma), sample_point)
        metrics = {}

        if self.direction == "gradient":
            direction = gradient
        elif self.direction == "momentum":
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

        if self.normalized:
            update = optim.normalized_step(direction, step)
        else:
            update = jax.tree.map(lambda d: step * d, direction)
        params = jax.tree.map(jnp.add, theta, update)
        if self.config.nap:
            params = optim.project(params, state.target_norms, normalized_kernels_mask(params))

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
                "finite": jnp.logical_and(all_finite(direction), all_finite(params)),
            }
        )
        if self.config.per_env_returns:
            metrics["episode_return_per_env"] = batch.episode_returns
        return new_state, metrics


class PG(PolicyGradientFamily):
    """Vanilla policy gradient (GPOMDP), theta += gamma_t g."""

    algo = "pg"
    step_exponent, momentum_exponent = 2.0 / 3.0, None
    direction, normalized = "gradient", False


class NMPG(PolicyGradientFamily):
    """Normalized momentum policy gradient: d = (1-eta) d + eta g; theta += gamma_t d/|d|."""

    algo = "n_mpg"
    step_exponent, momentum_exponent = 1.0, 2.0 / 3.0
    direction = "momentum"


class NPGIGT(PolicyGradientFamily):
    """N-PG-IGT (Algorithm 1): normalized momentum with implicit gradient transport."""

    algo = "n_pg_igt"
    step_exponent, momentum_exponent = 1.0, 4.0 / 5.0
    direction, extrapolate = "momentum", True


class HARPG(PolicyGradientFamily):
    """HARPG (Algorithm 2 without normalization): Hessian-aided recursive momentum."""

    algo = "harpg"
    step_exponent, momentum_exponent = 0.5, 1.0
    direction, normalized = "hessian", False


class NHARPG(PolicyGradientFamily):
    """N-HARPG (Algorithm 2): Hessian-aided recursive momentum with the normalized step."""

    algo = "n_harpg"
    step_exponent, momentum_exponent = 1.0, 1.0
    direction = "hessian"


METHODS: dict[str, type[PolicyGradientFamily]] = {cls.algo: cls for cls in (PG, NMPG, NPGIGT, HARPG, NHARPG)}
