"""PPO: proximal policy optimization with a clipped surrogate (Schulman et al. 2017, arXiv 1707.06347).

Each iteration collects ``num_envs x num_steps`` transitions with the current policy, computes
GAE(gamma, lambda) advantages (Schulman et al. 2016) with truncated episodes bootstrapped from
their final observation, and takes ``update_epochs`` passes of ``num_minibatches`` Adam steps on
the objective, by default

    L(theta) = -E[min(r A, clip(r, 1-eps, 1+eps) A)] + c_v L_V(theta) - c_H H[pi_theta],
    r = pi_theta(a|s) / pi_old(a|s)

(:func:`ppo_objective`). The objective is a parameter of the trainer: any pure function with the
same inputs (the policy and values the network gives on a minibatch, the minibatch, advantages,
value targets and the hyperparameters) replaces it, e.g. a learned objective whose parameters
travel in the hyperparameters.

The whole run is one ``lax.scan`` over iterations; defaults are the CartPole settings of the
PPO reference implementations (CleanRL, purejaxrl): 4 envs x 128 steps, 4 epochs x 4 minibatches,
64x64 tanh networks, lr 2.5e-4 annealed linearly to 0.
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
from jaxpg.algos.rollout import Transition, completed_returns_per_env, rollout
from jaxpg.algos.trainer import Trainer, all_finite
from jaxpg.algos.validation import NONNEGATIVE, POSITIVE, POSITIVE_INT, UNIT, bounded
from jaxpg.nets import RunningStats, running_norm


@dataclasses.dataclass(frozen=True)
class PPOConfig(common.BaseConfig):
    """Static choices (they shape the compiled program); shared fields in ``BaseConfig``."""

    num_steps: int = bounded(128, POSITIVE_INT)
    update_epochs: int = bounded(4, POSITIVE_INT)
    num_minibatches: int = bounded(4, POSITIVE_INT)
    normalize_advantages: bool = True
    clip_value_loss: bool = True
    lr_schedule: str = "linear"


@struct.dataclass
class PPOHParams:
    """Float hyperparameters: a pytree argument of ``train``, so sweeps vmap over them.

    Subclass it to carry more (arrays or pytrees too, e.g. a learned objective's parameters):
    the trainer reads only the fields below.
    """

    learning_rate: float = bounded(2.5e-4, NONNEGATIVE)
    gamma: float = bounded(0.99, UNIT)
    gae_lambda: float = bounded(0.95, UNIT)
    clip_eps: float = bounded(0.2, NONNEGATIVE)
    vf_coef: float = bounded(0.5, NONNEGATIVE)
    ent_coef: float = bounded(0.01, NONNEGATIVE)
    max_grad_norm: float = bounded(0.5, POSITIVE)


@struct.dataclass
class PPOState:
    params: Any
    opt_state: Any
    env_state: Any
    obs: jax.Array
    obs_stats: RunningStats
    env_params: Any
    key: jax.Array
    iteration: jax.Array
    env_steps: jax.Array
    last_return: jax.Array
    last_length: jax.Array
    last_return_per_env: jax.Array  # [num_envs]: the latest completed episode's return per copy


def ppo_objective(policy, values, batch: Transition, advantages, targets, hparams, *,
                  normalize_advantages: bool = True, clip_value_loss: bool = True):
    """PPO's loss on one minibatch: ``(total, diagnostics)``.

    ``policy``/``values``: the network's outputs on ``batch.obs``; ``batch``: the minibatch of
    transitions (``batch.extras["value"]``: the values it was collected with); ``advantages`` and
    ``targets``: GAE advantages and lambda-returns for it.

    The batch, advantages and targets are arguments of the loss, hence constants of its gradient
    with respect to the network parameters without any ``stop_gradient``; leaving them unstopped
    lets a meta-gradient through ``step`` (e.g. with respect to a hyperparameter) see how the
    collected data depend on it.
    """
    log_prob = policy.log_prob(batch.latent)
    if normalize_advantages:
        advantages = losses.normalize_advantages(advantages)
    policy_loss, aux = losses.ppo_clip(log_prob, batch.log_prob, advantages, clip_eps=hparams.clip_eps,
                                       stop_target_gradients=False)
    if clip_value_loss:
        v_loss, _ = losses.value_loss(values, targets, old_values=batch.extras["value"], clip_eps=hparams.clip_eps,
                                      stop_target_gradients=False)
    else:
        v_loss, _ = losses.value_loss(values, targets, stop_target_gradients=False)
    ent_loss, ent_aux = losses.entropy_loss(policy.entropy())
    total = policy_loss + hparams.vf_coef * v_loss + hparams.ent_coef * ent_loss
    return total, {
        "loss": total,
        "policy_loss": policy_loss,
        "value_loss": v_loss,
        "entropy": ent_aux["entropy"],
        "approx_kl": aux["approx_kl"],
        "clip_fraction": aux["clip_fraction"],
    }


# objective(policy, values, batch, advantages, targets, hparams) -> (loss, diagnostics)
Objective = Callable[..., tuple[jax.Array, dict]]


class PPO(Trainer):
    """``train = PPO(config)``; ``result = jax.jit(train)(key, hparams)``.

    ``objective``: replaces :func:`ppo_objective` (default: it, with the config's
    ``normalize_advantages`` and ``clip_value_loss``).
    """

    algo = "ppo"
    Config = PPOConfig
    HParams = PPOHParams

    def __init__(self, config: PPOConfig = PPOConfig(), objective: Objective | None = None):
        common.check_config(config)
        batch = config.num_envs * config.num_steps
        if batch % config.num_minibatches:
            raise ValueError(
                f"num_envs * num_steps = {batch} must be divisible by num_minibatches = {config.num_minibatches}"
            )
        if config.total_steps < batch:
            raise ValueError(f"total_steps = {config.total_steps} is less than one iteration ({batch} steps)")
        self.config = config
        self.env, self.venv = common.make_environment(config)
        self.network = common.make_network(config, self.env)
        self.objective = objective or functools.partial(
            ppo_objective, normalize_advantages=config.normalize_advantages, clip_value_loss=config.clip_value_loss
        )
        self.steps_per_iteration = batch
        self.num_iterations = config.total_steps // batch
        self.default_hparams = PPOHParams()

    # -- pieces -----------------------------------------------------------------------------
    def optimizer(self, hparams: PPOHParams) -> optax.GradientTransformation:
        c = self.config
        total_updates = self.num_iterations * c.update_epochs * c.num_minibatches
        schedule = common.learning_rate_schedule(c.lr_schedule, hparams.learning_rate, total_updates)
        return common.make_optimizer(self.config, schedule, hparams.max_grad_norm)

    def init(self, key: jax.Array, hparams: PPOHParams | None = None, env_params: Any = None) -> PPOState:
        hparams = self.default_hparams if hparams is None else hparams
        key_net, key_env, key_run = jax.random.split(key, 3)
        env_params = common.initial_levels(self.config, self.env, self.venv, key_env, env_params)
        dummy = jnp.zeros(self.env.observation_spec.shape, jnp.float32)
        params = self.network.init(key_net, dummy)
        env_state, obs = self.venv.reset(key_env, env_params)
        return PPOState(
            params=params,
            opt_state=self.optimizer(hparams).init(params),
            env_state=env_state,
            obs=obs,
            obs_stats=RunningStats.create(self.env.observation_spec.shape),
            env_params=env_params,
            key=key_run,
            iteration=jnp.zeros((), jnp.int32),
            env_steps=jnp.zeros((), jnp.int32),
            # NaN until the first episode ends: no return has been observed yet.
            last_return=jnp.full((), jnp.nan, jnp.float32),
            last_length=jnp.full((), jnp.nan, jnp.float32),
            last_return_per_env=jnp.full((self.venv.num_envs,), jnp.nan, jnp.float32),
        )

    def replace_levels(self, state: PPOState, env_params, key: jax.Array | None = None) -> PPOState:
        """New levels from the next iteration on; every env copy starts a fresh episode on its level."""
        key = jax.random.fold_in(state.key, 1) if key is None else key
        env_state, obs = self.venv.reset(key, env_params)
        return state.replace(env_params=env_params, env_state=env_state, obs=obs,
                             last_return_per_env=jnp.full_like(state.last_return_per_env, jnp.nan))

    def act(self, state: PPOState, obs: jax.Array, key: jax.Array):
        """The rollout's behaviour at raw observations ``obs``: ``(ActionSample, extras)``, the
        extras kept per step (``{"value": V(obs)}``; subclasses may keep more for their loss)."""
        obs = common.normalize_obs(state.obs_stats, obs, self.config.normalize_obs)
        policy, value = self.network.apply(state.params, obs)
        return policy.sample_and_log_prob(key), {"value": value}

    def loss(self, params, hparams: PPOHParams, batch: Transition, advantages, targets):
        """The objective on one minibatch whose ``obs`` are network inputs: (total, diagnostics)."""
        policy, values = self.network.apply(params, batch.obs)
        return self.objective(policy, values, batch, advantages, targets, hparams)

    def step(self, state: PPOState, hparams: PPOHParams):
        c = self.config
        tx = self.optimizer(hparams)
        key, key_rollout, key_update = jax.random.split(state.key, 3)
        norm = lambda x: common.normalize_obs(state.obs_stats, x, c.normalize_obs)

        def act(obs, key):
            return self.act(state, obs, key)

        env_state, obs, traj = rollout(self.venv, act, key_rollout, state.env_state, state.obs, c.num_steps,
                                       state.env_params)

        # V(s'_t) for every step: final_obs[t] is obs[t+1] unless the episode ended, where it is
        # the true last observation, so truncated episodes bootstrap correctly.
        next_values = self.network.apply(state.params, norm(traj.final_obs), method="value")
        advantages, targets = losses.gae(
            traj.reward, traj.extras["value"], next_values, terminated=traj.terminated, truncated=traj.truncated,
            gamma=hparams.gamma, lam=hparams.gae_lambda,
        )

        batch_size = self.steps_per_iteration
        flat = lambda x: x.reshape((batch_size,) + x.shape[2:])
        data = (jax.tree.map(flat, traj.replace(obs=norm(traj.obs))), flat(advantages), flat(targets))

        def minibatch_step(carry, minibatch):
            params, opt_state = carry
            mb, adv, tgt = minibatch
            grads, info = jax.grad(self.loss, has_aux=True)(params, hparams, mb, adv, tgt)
            updates, opt_state = tx.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            info["grad_norm"] = optax.tree.norm(grads)
            return (params, opt_state), info

        def epoch(carry, epoch_key):
            perm = jax.random.permutation(epoch_key, batch_size)
            shuffled = jax.tree.map(
                lambda x: x[perm].reshape((c.num_minibatches, -1) + x.shape[1:]), data
            )
            return jax.lax.scan(minibatch_step, carry, shuffled)

        (params, opt_state), info = jax.lax.scan(
            epoch, (state.params, state.opt_state), jax.random.split(key_update, c.update_epochs)
        )
        info = jax.tree.map(jnp.mean, info)

        obs_stats = running_norm.update(state.obs_stats, traj.obs) if c.normalize_obs else state.obs_stats
        ep_return, ep_length, episodes = common.episode_statistics(
            traj.done, traj.episode_return, traj.episode_length, state.last_return, state.last_length
        )
        per_env = completed_returns_per_env(traj, state.last_return_per_env)
        env_steps = state.env_steps + batch_size
        new_state = state.replace(  # replace, not a new PPOState: subclasses' states keep their fields
            params=params,
            opt_state=opt_state,
            env_state=env_state,
            obs=obs,
            obs_stats=obs_stats,
            key=key,
            iteration=state.iteration + 1,
            env_steps=env_steps,
            last_return=ep_return,
            last_length=ep_length,
            last_return_per_env=per_env,
        )
        metrics = {
            **info,
            "episode_return": ep_return,
            "episode_length": ep_length,
            "episodes": episodes,
            "env_steps": env_steps,
            "finite": jnp.logical_and(all_finite(info), all_finite(params)),
        }
        if c.per_env_returns:
            metrics["episode_return_per_env"] = per_env
        return new_state, metrics
