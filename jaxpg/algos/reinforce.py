"""REINFORCE with a learned state-value baseline (Williams 1992; GPOMDP form, Baxter & Bartlett 2001).

Each iteration runs ``num_envs`` fresh episodes for ``horizon`` steps (the environment's own time
limit by default) and takes one Adam step on

    L(theta, phi) = -(1/B) sum_b sum_t [log pi_theta(a_t|s_t) (G_t - V_phi(s_t))]
                    + c_v * mean_t (V_phi(s_t) - G_t)^2 - c_H H[pi_theta],
    G_t = sum_{k >= t} gamma^{k-t} r_k          (Monte-Carlo return-to-go, no bootstrapping)

Padding after an episode's end is masked. ``total_steps`` counts *simulated* steps
(``num_envs x horizon`` per iteration, padding included: that is the compute spent); the metric
``valid_steps`` counts the steps that belong to episodes.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxpg import losses
from jaxpg.algos import common
from jaxpg.algos.rollout import EpisodeBatch, collect_episodes, sampling
from jaxpg.algos.trainer import Trainer, all_finite
from jaxpg.algos.validation import NONNEGATIVE, POSITIVE, POSITIVE_INT, UNIT, bounded
from jaxpg.nets import RunningStats, running_norm


@dataclasses.dataclass(frozen=True)
class ReinforceConfig(common.BaseConfig):
    total_steps: int = bounded(1_000_000, POSITIVE_INT)
    num_envs: int = bounded(8, POSITIVE_INT)  # episodes per iteration
    horizon: int | None = bounded(None, POSITIVE_INT, optional=True)  # None: the env's max_steps_in_episode
    normalize_advantages: bool = True
    lr_schedule: str = "constant"


@struct.dataclass
class ReinforceHParams:
    learning_rate: float = bounded(3e-3, NONNEGATIVE)
    gamma: float = bounded(0.99, UNIT)
    vf_coef: float = bounded(0.5, NONNEGATIVE)
    ent_coef: float = bounded(0.0, NONNEGATIVE)
    max_grad_norm: float = bounded(1.0, POSITIVE)


@struct.dataclass
class ReinforceState:
    params: Any
    opt_state: Any
    obs_stats: RunningStats
    env_params: Any
    key: jax.Array
    iteration: jax.Array
    env_steps: jax.Array
    valid_steps: jax.Array


def reinforce_objective(policy, values, batch: EpisodeBatch, returns, hparams, *, normalize_advantages: bool = True):
    """REINFORCE's loss on an episode batch: ``(total, diagnostics)``.

    ``policy``/``values``: the network's outputs on ``batch.transitions.obs``; ``returns``: the
    Monte-Carlo returns-to-go ``G_t``; the learned baseline is ``stop_gradient(values)``.
    """
    mask = batch.mask
    log_prob = policy.log_prob(batch.transitions.latent)
    baseline = jax.lax.stop_gradient(values)
    if normalize_advantages:
        # Normalizing G - b is a per-batch rescaling of the estimator (same direction).
        advantages = losses.normalize_advantages(returns - baseline, mask=mask)
        policy_loss, _ = losses.reinforce_surrogate(log_prob, advantages, mask=mask)
    else:
        policy_loss, _ = losses.reinforce_surrogate(log_prob, returns, baseline, mask=mask)
    v_loss, _ = losses.value_loss(values, returns, mask=mask)
    ent_loss, ent_aux = losses.entropy_loss(policy.entropy(), mask=mask)
    total = policy_loss + hparams.vf_coef * v_loss + hparams.ent_coef * ent_loss
    return total, {"loss": total, "policy_loss": policy_loss, "value_loss": v_loss, "entropy": ent_aux["entropy"]}


class Reinforce(Trainer):
    """``train = Reinforce(config)``; ``result = jax.jit(train)(key, hparams)``.

    ``objective``: replaces :func:`reinforce_objective` (same inputs).
    """

    algo = "reinforce"
    Config = ReinforceConfig
    HParams = ReinforceHParams

    def __init__(self, config: ReinforceConfig = ReinforceConfig(), objective: Callable | None = None):
        common.check_config(config)
        self.config = config
        self.env, self.venv = common.make_environment(config)
        self.network = common.make_network(config, self.env)
        self.objective = objective or functools.partial(
            reinforce_objective, normalize_advantages=config.normalize_advantages)
        self.horizon = common.resolve_horizon(config, self.env)
        self.steps_per_iteration = config.num_envs * self.horizon
        if config.total_steps < self.steps_per_iteration:
            raise ValueError(
                f"total_steps = {config.total_steps} is less than one iteration "
                f"(num_envs x horizon = {self.steps_per_iteration} steps)"
            )
        self.num_iterations = config.total_steps // self.steps_per_iteration
        self.default_hparams = ReinforceHParams()

    def optimizer(self, hparams) -> optax.GradientTransformation:
        schedule = common.learning_rate_schedule(self.config.lr_schedule, hparams.learning_rate, self.num_iterations)
        return common.make_optimizer(self.config, schedule, hparams.max_grad_norm)

    def init(self, key, hparams=None, env_params=None) -> ReinforceState:
        hparams = self.default_hparams if hparams is None else hparams
        key_net, key_run = jax.random.split(key)
        env_params = common.initial_levels(self.config, self.env, self.venv, jax.random.fold_in(key, 1), env_params)
        params = self.network.init(key_net, jnp.zeros(self.env.observation_spec.shape, jnp.float32))
        return ReinforceState(
            params=params,
            opt_state=self.optimizer(hparams).init(params),
            obs_stats=RunningStats.create(self.env.observation_spec.shape),
            env_params=env_params,
            key=key_run,
            iteration=jnp.zeros((), jnp.int32),
            env_steps=jnp.zeros((), jnp.int32),
            valid_steps=jnp.zeros((), jnp.int32),
        )

    def loss(self, params, hparams, batch: EpisodeBatch, returns):
        """The objective on an episode batch whose ``obs`` are network inputs."""
        policy, values = self.network.apply(params, batch.transitions.obs)
        return self.objective(policy, values, batch, returns, hparams)

    def step(self, state: ReinforceState, hparams):
        c = self.config
        key, key_episodes = jax.random.split(state.key)
        norm = lambda x: common.normalize_obs(state.obs_stats, x, c.normalize_obs)
        act = sampling(lambda obs: self.network.apply(state.params, norm(obs), method="policy"))
        batch = collect_episodes(self.venv, act, key_episodes, self.horizon, state.env_params)
        traj = batch.transitions
        # Episodes end at their first termination or truncation: no bootstrap (pure Monte Carlo).
        returns = losses.discounted_returns(
            traj.reward, jnp.zeros_like(traj.reward), terminated=traj.terminated, truncated=traj.truncated,
            gamma=hparams.gamma,
        )
        net_batch = batch.replace(transitions=traj.replace(obs=norm(traj.obs)))
        grads, info = jax.grad(self.loss, has_aux=True)(state.params, hparams, net_batch, returns)
        tx = self.optimizer(hparams)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        obs_stats = state.obs_stats
        if c.normalize_obs:
            obs_stats = running_norm.update(obs_stats, traj.obs, mask=batch.mask)
        new_state = ReinforceState(
            params=params,
            opt_state=opt_state,
            obs_stats=obs_stats,
            env_params=state.env_params,
            key=key,
            iteration=state.iteration + 1,
            env_steps=state.env_steps + self.steps_per_iteration,
            valid_steps=state.valid_steps + batch.mask.sum().astype(jnp.int32),
        )
        metrics = {
            **info,
            "grad_norm": optax.tree.norm(grads),
            "episode_return": batch.episode_returns.mean(),
            "episode_length": batch.episode_lengths.mean(),
            "episodes": jnp.asarray(c.num_envs, jnp.float32),
            "env_steps": new_state.env_steps,
            "valid_steps": new_state.valid_steps,
            "finite": jnp.logical_and(all_finite(info), all_finite(params)),
        }
        if c.per_env_returns:
            metrics["episode_return_per_env"] = batch.episode_returns
        return new_state, metrics
