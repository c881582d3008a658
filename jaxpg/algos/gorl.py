"""GoRL: a latent Gaussian policy trained by RL and a flow-matching action decoder, in stages
("GoRL: An Algorithm-Agnostic Framework for Online Reinforcement Learning with Generative
Policies", 2025; reference notes: shared/reference/algorithms.md, section 4).

The executed action is ``a = squash(g_phi(s, z))``: the encoder ``pi_theta(z|s) = N(mu, sigma^2)``
samples a latent, the decoder ``g_phi`` integrates a learned velocity field from ``x_1 = z`` to
``x_0`` (``flow_steps`` Euler or midpoint steps, :func:`jaxpg.policies.integrate_flow`), and tanh
maps it into the action box. The base RL algorithm is a parameter: it acts in the latent space,
the decoder frozen inside the environment, and its loss adds ``latent_kl_coef * KL(pi_theta(.|s) ||
N(0, I))`` (:func:`jaxpg.losses.kl_to_standard_normal`).

* :class:`GoRL` (``gorl``, the paper's): PPO on the latent; the ratio scores z, never the decoded
  action (:class:`jaxpg.policies.DecodedPolicy`).
* :class:`GoRLSAC` (``gorl_sac``; ``make_train("gorl", base="sac")``): SAC on the latent. The
  encoder is SAC's tanh-Gaussian actor; its pre-tanh sample u feeds the decoder and its squashed
  sample ``b = shift + scale tanh(u)`` is the latent action the critics score, the buffer stores
  and the entropy term measures (a bijection of u, so the latent MDP is unchanged). With the
  identity decoder the executed action is b itself: stage 0 is SAC exactly. Each stage starts with
  an empty buffer (old latents mean other actions under the new decoder), a fresh actor, critics
  and temperature, and waits ``learning_starts`` steps of the fresh encoder's (near-prior, so
  near-previous) behaviour before learning.

Stages (``num_stages``, relative lengths ``stage_weights``, in PPO iterations):

* stage 0: the decoder is the identity (all its parameters zero, so v = 0): Gaussian PPO;
* at each later stage's start: the best encoder of the stage just ended (by the mean of the latest
  completed episode returns of the env copies, tracked every iteration) acts for
  ``decoder_rollouts`` rollouts; a fresh decoder is trained on the collected (state, pre-tanh
  action) pairs by flow matching (``decoder_train_steps`` Adam steps on minibatches of
  ``decoder_batch_size``, :func:`jaxpg.losses.flow_matching_loss`) and frozen; the encoder, critic
  and optimizer are re-initialized (with the first stage's key: a fresh encoder is near N(0, I),
  so the new stage starts from the old behaviour); episodes restart.

The stage machinery (:class:`GenerativeStages`) is a mixin: a base algorithm joins it by naming
its latent Gaussian (``encoder_policy``), its restart (``restart_learner``) and the score that
picks the best encoder (``stage_score``). The switch runs inside ``step`` (so ``run`` in chunks, sweeps and resumed runs switch where an
uninterrupted run does) under a ``lax.while_loop`` that executes it only while some run is at a
boundary: under ``vmap`` a ``lax.cond`` would run the switch's rollouts and decoder training at
every iteration. The price: ``step`` is not reverse-differentiable (use forward mode).
Collection steps count in ``env_steps``.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxpg import losses
from jaxpg.algos import common
from jaxpg.algos.ppo import PPO, PPOConfig, PPOHParams, PPOState
from jaxpg.algos.rollout import rollout
from jaxpg.algos.sac import SAC, SACConfig, SACHParams, SACState
from jaxpg.algos.validation import NONNEGATIVE, POSITIVE_INT, bounded
from jaxpg.envs import Box, tree_select
from jaxpg.nets import ActorCritic, VelocityField
from jaxpg.policies import INTEGRATORS, ActionSample, DecodedPolicy, Gaussian, GaussianHead, integrate_flow


@dataclasses.dataclass(frozen=True)
class StageConfig:
    """The staged run's static choices, shared by every base algorithm."""

    num_stages: int = bounded(3, POSITIVE_INT)
    stage_weights: tuple = ()  # relative stage lengths, e.g. (2, 2, 1, 1) (the paper's 60/60/30/30M); () = equal
    flow_steps: int = bounded(10, POSITIVE_INT)
    integrator: str = "euler"  # see jaxpg.policies.INTEGRATORS
    decoder_hidden_sizes: tuple = (64, 64, 64, 64)
    decoder_rollouts: int = bounded(4, POSITIVE_INT)  # data per switch: this many num_envs x num_steps rollouts
    decoder_train_steps: int = bounded(1000, POSITIVE_INT)
    decoder_batch_size: int = bounded(512, POSITIVE_INT)


@struct.dataclass
class StageHParams:
    latent_kl_coef: float = bounded(1e-3, NONNEGATIVE)
    decoder_learning_rate: float = bounded(3e-4, NONNEGATIVE)


@struct.dataclass
class Stages:
    """The staged run's part of the training state (a field ``stages`` of the base's state)."""

    decoder_params: Any
    decoder_obs_stats: Any  # the normalization the decoder was trained with (frozen with it)
    stage: jax.Array
    best_params: Any  # the stage's best encoder so far
    best_return: jax.Array  # its score (NaN: none yet)
    init_key: jax.Array  # every stage's learner restarts from the base's initialization with this key
    decoder_loss: jax.Array  # the last decoder training's final flow-matching loss (NaN in stage 0)
    start_env_steps: jax.Array  # env steps when the stage began


class GenerativeStages(abc.ABC):
    """GoRL's stages around a base algorithm that acts with a latent Gaussian encoder.

    ``State``: the base's state class with a ``stages`` field (:class:`Stages`).

    The base names three things: ``encoder_policy(params, state, obs)`` (the latent Gaussian whose
    sample the decoder maps), ``restart_learner(state, hparams)`` (fresh encoder, critics and
    optimizer states) and ``stage_score(state)`` (the return that ranks encoders). The base's
    state gains a ``stages`` field (:class:`Stages`); everything else here is shared.
    """

    def _setup_stages(self, config) -> None:
        if config.integrator not in INTEGRATORS:
            raise ValueError(f"unknown integrator {config.integrator!r}; valid choices: {', '.join(INTEGRATORS)}")
        if config.stage_weights and (len(config.stage_weights) != config.num_stages
                                     or min(config.stage_weights) <= 0):
            raise ValueError(f"stage_weights must hold num_stages = {config.num_stages} positive numbers, "
                             f"got {config.stage_weights!r}")
        spec = self.env.action_spec
        if not isinstance(spec, Box) or not spec.bounded:
            raise ValueError(f"{self.algo} needs continuous actions in a bounded box; {config.env} has {spec}")
        self.action_dim = int(np.prod(spec.shape))
        self.decoder = VelocityField(dim=self.action_dim, context_ndim=len(self.env.observation_spec.shape),
                                     hidden_sizes=tuple(config.decoder_hidden_sizes))
        if self.num_iterations < config.num_stages:
            raise ValueError(f"{self.num_iterations} iterations cannot hold num_stages = {config.num_stages}")
        weights = np.asarray(config.stage_weights or (1.0,) * config.num_stages, np.float64)
        edges = np.round(np.cumsum(weights) / weights.sum() * self.num_iterations).astype(int)
        self.stage_starts = tuple(int(e) for e in edges[:-1])  # iterations at which stages 1.. begin

    def init(self, key, hparams=None, env_params: Any = None):
        """The base's initial state (its draws, so stage 0 is the base's run) with ``stages``."""
        base = super().init(key, hparams, env_params)
        obs = jnp.zeros(self.env.observation_spec.shape, jnp.float32)
        decoder = self.decoder.init(jax.random.fold_in(key, 7), obs, jnp.zeros(self.action_dim), jnp.zeros(()))
        stages = Stages(decoder_params=jax.tree.map(jnp.zeros_like, decoder),  # v = 0: g(s, z) = z
                        decoder_obs_stats=base.obs_stats, stage=jnp.zeros((), jnp.int32), best_params=base.params,
                        best_return=jnp.full((), jnp.nan, jnp.float32), init_key=key,
                        decoder_loss=jnp.full((), jnp.nan, jnp.float32), start_env_steps=jnp.zeros((), jnp.int32))
        return self.State(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)}, stages=stages)

    # -- what the base names (abstract: a class joining the mixin must define all three) -----------
    @abc.abstractmethod
    def encoder_policy(self, params, state, obs) -> Gaussian:
        """The latent Gaussian of encoder ``params`` at raw observations ``obs``: its sample is the decoder's input."""

    @abc.abstractmethod
    def restart_learner(self, state, hparams):
        """``state`` with a fresh encoder, critics and optimizer states (the base's own initialization)."""

    @abc.abstractmethod
    def stage_score(self, state) -> jax.Array:
        """The return that ranks encoders within a stage (NaN: none observed yet)."""

    # -- the decoded policy -------------------------------------------------------------------------
    def _shift_scale(self):
        spec = self.env.action_spec
        low, high = jnp.asarray(spec.low, jnp.float32), jnp.asarray(spec.high, jnp.float32)
        return (high + low) / 2.0, (high - low) / 2.0

    def pre_tanh(self, decoder_params, context, latent):
        """``g_phi(s, z)``: the flow from ``x_1 = z`` to ``x_0`` given the normalized state."""
        def velocity(x, t):
            return self.decoder.apply(decoder_params, context, x, t)

        return integrate_flow(velocity, latent, self.config.flow_steps, self.config.integrator)

    def decoder_fn(self, state, obs):
        """``z -> shift + scale tanh(g_phi(s, z))`` at raw observations ``obs``, the current decoder."""
        context = common.normalize_obs(state.stages.decoder_obs_stats, obs, self.config.normalize_obs)
        shift, scale = self._shift_scale()
        return lambda z: shift + scale * jnp.tanh(self.pre_tanh(state.stages.decoder_params, context, z))

    def policy(self, state, obs):
        return DecodedPolicy(self.encoder_policy(state.params, state, obs), decoder=self.decoder_fn(state, obs))

    def networks(self, state) -> dict:
        base = {name or "encoder": params for name, params in super().networks(state).items()}
        return {**base, "decoder": state.stages.decoder_params}

    # -- the stage switch ----------------------------------------------------------------------
    def collect_pairs(self, state, encoder_params, key):
        """Roll out ``encoder_params`` with the current decoder: ``(contexts, pre-tanh actions)``,
        contexts normalized with the current statistics (the new decoder's)."""
        c = self.config
        shift, scale = self._shift_scale()

        def act(obs, k):
            latent_policy = self.encoder_policy(encoder_params, state, obs)
            z = latent_policy.sample_latent(k)
            context = common.normalize_obs(state.stages.decoder_obs_stats, obs, c.normalize_obs)
            a_pre = self.pre_tanh(state.stages.decoder_params, context, z)
            return ActionSample(latent=z, action=shift + scale * jnp.tanh(a_pre), log_prob=latent_policy.log_prob(z)), \
                {"a_pre": a_pre}

        _, _, traj = rollout(self.venv, act, key, state.env_state, state.obs, c.decoder_rollouts * c.num_steps,
                             state.env_params)
        flat = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731
        contexts = common.normalize_obs(state.obs_stats, flat(traj.obs), c.normalize_obs)
        return contexts, flat(traj.extras["a_pre"])

    def train_decoder(self, key, contexts, actions, learning_rate):
        """A fresh decoder fit by flow matching: ``(params, losses per step)``."""
        c = self.config
        key_init, key_steps = jax.random.split(key)
        params = self.decoder.init(key_init, contexts[0], actions[0], jnp.zeros(()))
        tx = optax.adam(learning_rate)

        def step(carry, k):
            params, opt_state = carry
            k_index, k_noise, k_time = jax.random.split(k, 3)
            index = jax.random.randint(k_index, (c.decoder_batch_size,), 0, actions.shape[0])
            s, a = contexts[index], actions[index]
            noise = jax.random.normal(k_noise, a.shape, a.dtype)
            t = jax.random.uniform(k_time, (c.decoder_batch_size,))

            def loss(p):
                return losses.flow_matching_loss(lambda x, tt: self.decoder.apply(p, s, x, tt), a, noise, t)[0]

            value, grads = jax.value_and_grad(loss)(params)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), value

        (params, _), values = jax.lax.scan(step, (params, tx.init(params)), jax.random.split(key_steps, c.decoder_train_steps))
        return params, values

    def switch_stage(self, state, hparams):
        """End the stage: distil the best encoder's behaviour into a fresh decoder, restart the learner."""
        c = self.config
        stages = state.stages
        key, key_collect, key_decoder, key_reset = jax.random.split(state.key, 4)
        encoder = tree_select(jnp.isfinite(stages.best_return), stages.best_params, state.params)
        contexts, actions = self.collect_pairs(state, encoder, key_collect)
        decoder, values = self.train_decoder(key_decoder, contexts, actions, hparams.decoder_learning_rate)
        env_state, obs = self.venv.reset(key_reset, state.env_params)
        env_steps = state.env_steps + c.decoder_rollouts * self.steps_per_iteration
        state = self.restart_learner(state.replace(env_state=env_state, obs=obs, key=key, env_steps=env_steps), hparams)
        tail = max(1, c.decoder_train_steps // 10)
        return state.replace(stages=stages.replace(
            decoder_params=decoder, decoder_obs_stats=state.obs_stats, stage=stages.stage + 1,
            best_params=state.params, best_return=jnp.full_like(stages.best_return, jnp.nan),
            decoder_loss=values[-tail:].mean(), start_env_steps=env_steps))

    def step(self, state, hparams):
        at_start = jnp.isin(state.iteration, jnp.asarray(self.stage_starts, jnp.int32)) if self.stage_starts \
            else jnp.zeros((), bool)
        # A while_loop, not a cond: under vmap it runs the switch only while some run needs it.
        state, _ = jax.lax.while_loop(lambda carry: carry[1],
                                      lambda carry: (self.switch_stage(carry[0], hparams), jnp.zeros((), bool)),
                                      (state, at_start))
        state, metrics = super().step(state, hparams)
        stages = state.stages
        score = self.stage_score(state)
        better = jnp.isfinite(score) & ~(score <= stages.best_return)  # NaN best: any finite score wins
        state = state.replace(stages=stages.replace(best_params=tree_select(better, state.params, stages.best_params),
                                                    best_return=jnp.where(better, score, stages.best_return)))
        metrics.update(stage=stages.stage, decoder_loss=stages.decoder_loss, env_steps=state.env_steps)
        return state, metrics


# -- PPO on the latent (the paper's) ---------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class GoRLConfig(StageConfig, PPOConfig):
    env: str = "Pendulum-v1"
    lr_schedule: str = "constant"  # every stage restarts its optimizer


@struct.dataclass
class GoRLHParams(StageHParams, PPOHParams):
    pass


@struct.dataclass
class GoRLState(PPOState):
    stages: Stages


class GoRL(GenerativeStages, PPO):
    algo = "gorl"
    Config = GoRLConfig
    HParams = GoRLHParams
    State = GoRLState

    def __init__(self, config: GoRLConfig = GoRLConfig(), objective=None):
        super().__init__(config, objective)
        self._setup_stages(config)
        latent = Box.make(-np.inf, np.inf, (self.action_dim,))
        self.network = ActorCritic(head=GaussianHead(latent, std_mode=config.std_mode, init_log_std=config.init_log_std),
                                   obs_ndim=len(self.env.observation_spec.shape), hidden_sizes=tuple(config.hidden_sizes),
                                   activation=config.activation, normalization=config.normalization)
        self.default_hparams = GoRLHParams()

    def encoder_policy(self, params, state, obs):
        return self.network.apply(params, common.normalize_obs(state.obs_stats, obs, self.config.normalize_obs),
                                  method="policy")

    def act(self, state: GoRLState, obs, key):
        latent_policy, value = self.network.apply(state.params,
                                                  common.normalize_obs(state.obs_stats, obs, self.config.normalize_obs))
        return DecodedPolicy(latent_policy, decoder=self.decoder_fn(state, obs)).sample_and_log_prob(key), {"value": value}

    def loss(self, params, hparams: GoRLHParams, batch, advantages, targets):
        policy, values = self.network.apply(params, batch.obs)
        total, info = self.objective(policy, values, batch, advantages, targets, hparams)
        kl, _ = losses.kl_to_standard_normal(policy.mean, policy.std)
        total = total + hparams.latent_kl_coef * kl
        return total, {**info, "loss": total, "latent_kl": kl}

    def restart_learner(self, state: GoRLState, hparams) -> GoRLState:
        # PPO.init's network key (a fresh encoder is near N(0, I): the new stage starts from the old behaviour).
        params = self.network.init(jax.random.split(state.stages.init_key, 3)[0],
                                   jnp.zeros(self.env.observation_spec.shape, jnp.float32))
        return state.replace(params=params, opt_state=self.optimizer(hparams).init(params),
                             last_return_per_env=jnp.full_like(state.last_return_per_env, jnp.nan))

    def stage_score(self, state: GoRLState):
        return jnp.nanmean(state.last_return_per_env)  # the latest completed episode of each env copy


# -- SAC on the latent ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class GoRLSACConfig(StageConfig, SACConfig):
    decoder_rollouts: int = bounded(5000, POSITIVE_INT)  # SAC's rollouts are num_steps = 1 step long


@struct.dataclass
class GoRLSACHParams(StageHParams, SACHParams):
    pass


@struct.dataclass
class GoRLSACState(SACState):
    stages: Stages


class GoRLSAC(GenerativeStages, SAC):
    algo = "gorl_sac"
    Config = GoRLSACConfig
    HParams = GoRLSACHParams
    State = GoRLSACState

    def __init__(self, config: GoRLSACConfig = GoRLSACConfig()):
        super().__init__(config)
        self._setup_stages(config)
        if self.stage_starts and self.stage_starts[0] * self.steps_per_iteration < config.learning_starts:
            raise ValueError(f"the first stage ({self.stage_starts[0] * self.steps_per_iteration} env steps) must "
                             f"cover learning_starts = {config.learning_starts} (its uniform actions assume the "
                             "identity decoder)")
        self.default_hparams = GoRLSACHParams()

    def encoder_policy(self, params, state, obs):
        squashed = self.network.apply(params, obs)
        return Gaussian(squashed.mean, squashed.std)  # the pre-tanh u: the decoder's input

    def execute(self, state: GoRLSACState, obs, sample):
        return self.decoder_fn(state, obs)(sample.latent)  # the pre-tanh u through the flow

    def policy_penalty(self, policy, hparams):
        kl, _ = losses.kl_to_standard_normal(policy.mean, policy.std)
        return hparams.latent_kl_coef * kl, {"latent_kl": kl}

    def learning_ready(self, state: GoRLSACState):
        steps = state.env_steps - state.stages.start_env_steps  # the buffer restarts with each stage
        return steps >= max(self.config.learning_starts, self.config.batch_size)

    def restart_learner(self, state: GoRLSACState, hparams) -> GoRLSACState:
        return state.replace(**self.init_learner(state.stages.init_key, hparams),
                             last_return=jnp.full_like(state.last_return, jnp.nan))

    def stage_score(self, state: GoRLSACState):
        return state.last_return


BASES = {"ppo": GoRL, "sac": GoRLSAC}
