"""REINFORCE with a learned state-value baseline (Williams 1992; GPOMDP form, Baxter & Bartlett 2001).

Each iteration runs ``num_envs`` fresh episodes for ``horizon`` steps (the environment's own time
limit by default) and takes one optimizer step (Adam by default; see below) on

    L(theta, phi) = -(1/B) sum_b sum_t [log pi_theta(a_t|s_t) (G_t - V_phi(s_t))]
                    + c_v * 1/2 mean_t (V_phi(s_t) - G_t)^2 - c_H H[pi_theta],
    G_t = sum_{k >= t} gamma^{k-t} r_k          (Monte-Carlo return-to-go, no bootstrapping)

Padding after an episode's end is masked. ``total_steps`` counts *simulated* steps
(``num_envs x horizon`` per iteration, padding included: that is the compute spent); the metric
``valid_steps`` counts the steps that belong to episodes.

Optimizers (``optimizer=``; every one after clipping the gradient to ``max_grad_norm``): the
shared ``"adam"`` and ``"sinkgd"`` (:func:`jaxpg.algos.common.make_optimizer`), and two that only
REINFORCE offers:

* ``"sgd"``: plain gradient descent on L, ``theta <- theta - lr clip(g)`` (the "vanilla PG" of
  the textbooks: no preconditioning, no momentum);
* ``"gns"``: natural REINFORCE (Kakade 2001, "A Natural Policy Gradient") with the step of
  gradient-normalized smoothness (Semenov, Jaggi & Doikov 2025, arXiv 2506.13710; reference
  notes A36, :mod:`jaxpg.optim.gns`):

      theta <- theta - lr (G + lambda I)^{-1} clip(g),      lambda = ||clip(g)|| / gns_gamma,
      G = sum_m w_m grad log pi(a_m|s_m) grad log pi(a_m|s_m)^T          (empirical Fisher)
          + c_v sum_m w_m grad V(s_m) grad V(s_m)^T                      (value Gauss-Newton)
      w_m = mask_m / sum mask            (the valid steps of the batch, padding weighs 0)

  solved by ``gns_cg_iters`` conjugate-gradient iterations on products ``G v`` (the network
  is linearized once per step, then each product is one jvp and one transposed jvp; G is never
  formed). The Fisher alone is zero on
  the critic's parameters, which would then move by ``clip(g) / lambda``: the critic's share of
  L is ``c_v * 1/2 mean (V - G_t)^2``, whose Gauss-Newton matrix is ``c_v J_V^T J_V / N``, so
  the critic gets the curvature of its own loss and takes a damped Gauss-Newton step. The
  network shares no weights between actor and critic, so G is block-diagonal: a natural
  gradient for the actor, Gauss-Newton for the critic. The entropy term gets no curvature.
  ``gns_gamma`` is the paper's radius of gradient-normalized smoothness, held fixed (the
  paper's adaptive search needs the loss at a trial point, i.e. a second batch): the step is
  at most ``lr * gns_gamma`` long (``||(G + lambda I)^{-1}|| <= 1 / lambda``), the length it
  has along directions of small curvature; along large curvature it is the natural gradient
  step ``lr G^{-1} clip(g)``. ``lr = 1`` is the paper's
  undamped step; the learning-rate default (3e-3) is Adam's, so set it for ``"gns"``.
  Metrics: ``gns_lambda`` and ``cg_residual`` (the relative residual of the solve).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxpg import losses, optim
from jaxpg.algos import common
from jaxpg.algos.rollout import EpisodeBatch, collect_episodes, sampling
from jaxpg.algos.trainer import Trainer, all_finite
from jaxpg.algos.validation import NONNEGATIVE, POSITIVE, POSITIVE_INT, UNIT, bounded
from jaxpg.nets import RunningStats, normalized_kernels_mask, running_norm

# Optimizers REINFORCE builds itself (on top of the shared ones of common.make_optimizer).
OWN_OPTIMIZERS = ("sgd", "gns")
# CG stops early once ||r|| <= GNS_CG_TOL ||b||; in float32 it rarely does: gns_cg_iters decides.
GNS_CG_TOL = 1e-6
# Measured: CartPole-v1, jaxpg's defaults, 160k steps, 2 seeds, mean training return over the
# run for gns_gamma in {0.3, 1, 3, 10, 30, 100} x lr in {0.1, 0.3, 1}: it rises with gamma up to
# a plateau at 30-100 (lr 1: 62, 175, 299, 393, 433, 423); at 100 CG's residual after 10
# iterations reaches 2-6% (lambda = 0.01 conditions G + lambda I worse), so 30. The gradient is
# almost always clipped there (||g|| > 1), so lambda stays about 1 / gns_gamma.
GNS_GAMMA_DEFAULT = 30.0


@dataclasses.dataclass(frozen=True)
class ReinforceConfig(common.BaseConfig):
    total_steps: int = bounded(1_000_000, POSITIVE_INT)
    num_envs: int = bounded(8, POSITIVE_INT)  # episodes per iteration
    horizon: int | None = bounded(None, POSITIVE_INT, optional=True)  # None: the env's max_steps_in_episode
    normalize_advantages: bool = True
    lr_schedule: str = "constant"
    gns_cg_iters: int = bounded(10, POSITIVE_INT)  # CG iterations per optimizer="gns" step (one G v each)

    # optimizer: the shared "adam" | "sinkgd" (common.make_optimizer), and "sgd" (plain PG) |
    # "gns" (natural PG with the gradient-normalized-smoothness step; module docstring).
    OPTIMIZERS = common.OPTIMIZERS + OWN_OPTIMIZERS


@struct.dataclass
class ReinforceHParams:
    learning_rate: float = bounded(3e-3, NONNEGATIVE)
    gamma: float = bounded(0.99, UNIT)
    vf_coef: float = bounded(0.5, NONNEGATIVE)
    ent_coef: float = bounded(0.0, NONNEGATIVE)
    max_grad_norm: float = bounded(1.0, POSITIVE)
    # optimizer="gns": lambda = ||clip(g)|| / gns_gamma (unused by the other optimizers).
    gns_gamma: float = bounded(GNS_GAMMA_DEFAULT, POSITIVE)


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

    def optimizer(self, hparams, curvature: optim.gns.CurvatureVectorProduct | None = None
                  ) -> optax.GradientTransformation:
        """Clipping then the optimizer ``config.optimizer`` names (NaP's projection with ``nap``).

        ``curvature``: for ``"gns"``, this step's ``v -> G v`` (:meth:`curvature`), closed over
        rather than passed as ``update(..., hvp=)`` so that NaP's wrapper (which forwards no
        extra arguments) composes; ``init`` needs none (the state does not depend on it).
        """
        c = self.config
        schedule = common.learning_rate_schedule(c.lr_schedule, hparams.learning_rate, self.num_iterations)
        if c.optimizer not in OWN_OPTIMIZERS:
            return common.make_optimizer(c, schedule, hparams.max_grad_norm)
        if c.optimizer == "sgd":
            inner = optax.sgd(schedule)
        else:
            fn = None if curvature is None else (lambda params, v: curvature(v))
            inner = optax.chain(
                optim.scale_by_gns(fn, gamma=hparams.gns_gamma, num_cg_iters=c.gns_cg_iters, tol=GNS_CG_TOL),
                optax.scale_by_learning_rate(schedule),
            )
        tx = optax.chain(optax.clip_by_global_norm(hparams.max_grad_norm), inner)
        return optim.nap(tx, mask=normalized_kernels_mask) if c.nap else tx

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

    def curvature(self, params, hparams, batch: EpisodeBatch) -> optim.gns.CurvatureVectorProduct:
        """``v -> G v`` for ``optimizer="gns"``: the empirical Fisher of the sampled actions' log-probs
        plus ``vf_coef`` times the value loss's Gauss-Newton matrix, over the valid steps::

            G = J^T diag(w) J,   J = d [log pi(a_m|s_m); V(s_m)]_m / d params,
            w = [mask_m / sum mask; vf_coef mask_m / sum mask]_m

        (one linearization of the network serves both blocks; ``batch.transitions.obs`` are
        network inputs)."""
        mask = batch.mask.reshape(-1)
        share = mask / jnp.maximum(mask.sum(), 1.0)

        def outputs(p):
            policy, values = self.network.apply(p, batch.transitions.obs)
            log_prob = policy.log_prob(batch.transitions.latent).reshape(-1)
            return jnp.concatenate([log_prob, values.reshape(-1)])

        weights = jnp.concatenate([share, hparams.vf_coef * share])
        return optim.fisher_vector_product(outputs, params, weights=weights)

    def collect(self, state: ReinforceState, hparams):
        """One iteration's episodes and their Monte-Carlo returns: ``(batch, net_batch, returns, key)``,
        ``net_batch`` being ``batch`` with normalized observations (the network's inputs)."""
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
        return batch, net_batch, returns, key

    def update(self, params, opt_state, hparams, net_batch: EpisodeBatch, returns):
        """One optimizer step on the batch: ``(params, opt_state, grads, info)``."""
        grads, info = jax.grad(self.loss, has_aux=True)(params, hparams, net_batch, returns)
        if self.config.optimizer == "gns":
            tx = self.optimizer(hparams, curvature=self.curvature(params, hparams, net_batch))
        else:
            tx = self.optimizer(hparams)
        updates, opt_state = tx.update(grads, opt_state, params)
        if self.config.optimizer == "gns":
            info = {**info, "gns_lambda": optax.tree_utils.tree_get(opt_state, "lam"),
                    "cg_residual": optax.tree_utils.tree_get(opt_state, "cg_residual")}
        return optax.apply_updates(params, updates), opt_state, grads, info

    def step(self, state: ReinforceState, hparams):
        c = self.config
        batch, net_batch, returns, key = self.collect(state, hparams)
        traj = batch.transitions
        params, opt_state, grads, info = self.update(state.params, state.opt_state, hparams, net_batch, returns)
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
