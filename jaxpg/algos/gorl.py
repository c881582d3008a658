"""GoRL: a latent Gaussian policy trained by RL and a flow-matching action decoder, in stages
("GoRL: An Algorithm-Agnostic Framework for Online Reinforcement Learning with Generative
Policies", 2025; reference notes: shared/reference/algorithms.md, section 4).

The executed action is ``a = squash(g_phi(s, z))``: the encoder ``pi_theta(z|s) = N(mu, sigma^2)``
samples a latent, the decoder ``g_phi`` integrates a learned velocity field from ``x_1 = z`` to
``x_0`` (``flow_steps`` Euler or midpoint steps, :func:`jaxpg.policies.integrate_flow`), and tanh
maps it into the action box. The base RL algorithm is PPO on the latent: its ratio scores z, never
the decoded action (:class:`jaxpg.policies.DecodedPolicy`), and its loss adds
``latent_kl_coef * KL(pi_theta(.|s) || N(0, I))`` (:func:`jaxpg.losses.kl_to_standard_normal`).

Stages (``num_stages``, relative lengths ``stage_weights``, in PPO iterations):

* stage 0: the decoder is the identity (all its parameters zero, so v = 0): Gaussian PPO;
* at each later stage's start: the best encoder of the stage just ended (by the mean of the latest
  completed episode returns of the env copies, tracked every iteration) acts for
  ``decoder_rollouts`` rollouts; a fresh decoder is trained on the collected (state, pre-tanh
  action) pairs by flow matching (``decoder_train_steps`` Adam steps on minibatches of
  ``decoder_batch_size``, :func:`jaxpg.losses.flow_matching_loss`) and frozen; the encoder, critic
  and optimizer are re-initialized (with the first stage's key: a fresh encoder is near N(0, I),
  so the new stage starts from the old behaviour); episodes restart.

The switch runs inside ``step`` (so ``run`` in chunks, sweeps and resumed runs switch where an
uninterrupted run does) under a ``lax.while_loop`` that executes it only while some run is at a
boundary: under ``vmap`` a ``lax.cond`` would run the switch's rollouts and decoder training at
every iteration. The price: ``step`` is not reverse-differentiable (use forward mode).
Collection steps count in ``env_steps``.
"""

from __future__ import annotations

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
from jaxpg.algos.validation import NONNEGATIVE, POSITIVE_INT, bounded
from jaxpg.envs import Box, tree_select
from jaxpg.nets import ActorCritic, VelocityField
from jaxpg.policies import INTEGRATORS, ActionSample, DecodedPolicy, GaussianHead, integrate_flow


@dataclasses.dataclass(frozen=True)
class GoRLConfig(PPOConfig):
    env: str = "Pendulum-v1"
    lr_schedule: str = "constant"  # every stage restarts its optimizer
    num_stages: int = bounded(3, POSITIVE_INT)
    stage_weights: tuple = ()  # relative stage lengths, e.g. (2, 2, 1, 1) (the paper's 60/60/30/30M); () = equal
    flow_steps: int = bounded(10, POSITIVE_INT)
    integrator: str = "euler"  # see jaxpg.policies.INTEGRATORS
    decoder_hidden_sizes: tuple = (64, 64, 64, 64)
    decoder_rollouts: int = bounded(4, POSITIVE_INT)  # data per switch: this many num_envs x num_steps rollouts
    decoder_train_steps: int = bounded(1000, POSITIVE_INT)
    decoder_batch_size: int = bounded(512, POSITIVE_INT)


@struct.dataclass
class GoRLHParams(PPOHParams):
    latent_kl_coef: float = bounded(1e-3, NONNEGATIVE)
    decoder_learning_rate: float = bounded(3e-4, NONNEGATIVE)


@struct.dataclass
class GoRLState(PPOState):
    decoder_params: Any
    decoder_obs_stats: Any  # the normalization the decoder was trained with (frozen with it)
    stage: jax.Array
    best_params: Any  # the stage's best encoder so far
    best_return: jax.Array  # its score (NaN: none yet)
    encoder_key: jax.Array  # every stage's encoder starts from this key's initialization
    decoder_loss: jax.Array  # the last decoder training's final flow-matching loss (NaN in stage 0)


class GoRL(PPO):
    algo = "gorl"
    Config = GoRLConfig
    HParams = GoRLHParams

    def __init__(self, config: GoRLConfig = GoRLConfig(), objective=None):
        if config.integrator not in INTEGRATORS:
            raise ValueError(f"unknown integrator {config.integrator!r}; valid choices: {', '.join(INTEGRATORS)}")
        if config.stage_weights and (len(config.stage_weights) != config.num_stages
                                     or min(config.stage_weights) <= 0):
            raise ValueError(f"stage_weights must hold num_stages = {config.num_stages} positive numbers, "
                             f"got {config.stage_weights!r}")
        super().__init__(config, objective)
        spec = self.env.action_spec
        if not isinstance(spec, Box) or not spec.bounded:
            raise ValueError(f"gorl needs continuous actions in a bounded box; {config.env} has {spec}")
        self.action_dim = int(np.prod(spec.shape))
        latent = Box.make(-np.inf, np.inf, (self.action_dim,))
        obs_ndim = len(self.env.observation_spec.shape)
        self.network = ActorCritic(head=GaussianHead(latent, std_mode=config.std_mode, init_log_std=config.init_log_std),
                                   obs_ndim=obs_ndim, hidden_sizes=tuple(config.hidden_sizes),
                                   activation=config.activation, normalization=config.normalization)
        self.decoder = VelocityField(dim=self.action_dim, context_ndim=obs_ndim,
                                     hidden_sizes=tuple(config.decoder_hidden_sizes))
        weights = np.asarray(config.stage_weights or (1.0,) * config.num_stages, np.float64)
        if self.num_iterations < config.num_stages:
            raise ValueError(f"{self.num_iterations} iterations cannot hold num_stages = {config.num_stages}")
        edges = np.round(np.cumsum(weights) / weights.sum() * self.num_iterations).astype(int)
        self.stage_starts = tuple(int(e) for e in edges[:-1])  # iterations at which stages 1.. begin
        self.default_hparams = GoRLHParams()

    # -- the policy: latent Gaussian, decoded by the frozen flow --------------------------------
    def _shift_scale(self):
        spec = self.env.action_spec
        low, high = jnp.asarray(spec.low, jnp.float32), jnp.asarray(spec.high, jnp.float32)
        return (high + low) / 2.0, (high - low) / 2.0

    def pre_tanh(self, decoder_params, context, latent):
        """``g_phi(s, z)``: the flow from ``x_1 = z`` to ``x_0`` given the normalized state."""
        def velocity(x, t):
            return self.decoder.apply(decoder_params, context, x, t)

        return integrate_flow(velocity, latent, self.config.flow_steps, self.config.integrator)

    def _decoder_fn(self, state: GoRLState, obs):
        context = common.normalize_obs(state.decoder_obs_stats, obs, self.config.normalize_obs)
        shift, scale = self._shift_scale()
        return lambda z: shift + scale * jnp.tanh(self.pre_tanh(state.decoder_params, context, z))

    def policy(self, state: GoRLState, obs):
        latent_policy = self.network.apply(state.params, common.normalize_obs(state.obs_stats, obs, self.config.normalize_obs),
                                           method="policy")
        return DecodedPolicy(latent_policy, decoder=self._decoder_fn(state, obs))

    def act(self, state: GoRLState, obs, key):
        latent_policy, value = self.network.apply(state.params,
                                                  common.normalize_obs(state.obs_stats, obs, self.config.normalize_obs))
        return DecodedPolicy(latent_policy, decoder=self._decoder_fn(state, obs)).sample_and_log_prob(key), {"value": value}

    def loss(self, params, hparams: GoRLHParams, batch, advantages, targets):
        policy, values = self.network.apply(params, batch.obs)
        total, info = self.objective(policy, values, batch, advantages, targets, hparams)
        kl, _ = losses.kl_to_standard_normal(policy.mean, policy.std)
        total = total + hparams.latent_kl_coef * kl
        return total, {**info, "loss": total, "latent_kl": kl}

    # -- state -----------------------------------------------------------------------------------
    def init(self, key, hparams: GoRLHParams | None = None, env_params: Any = None) -> GoRLState:
        hparams = self.default_hparams if hparams is None else hparams
        base = super().init(key, hparams, env_params)  # PPO's draws, so stage 0 is Gaussian PPO's run
        encoder_key = jax.random.split(key, 3)[0]  # PPO.init's network key
        obs = jnp.zeros(self.env.observation_spec.shape, jnp.float32)
        decoder = self.decoder.init(jax.random.fold_in(key, 7), obs, jnp.zeros(self.action_dim), jnp.zeros(()))
        identity = jax.tree.map(jnp.zeros_like, decoder)  # v = 0: g(s, z) = z
        fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
        return GoRLState(**fields, decoder_params=identity, decoder_obs_stats=base.obs_stats,
                         stage=jnp.zeros((), jnp.int32), best_params=base.params,
                         best_return=jnp.full((), jnp.nan, jnp.float32), encoder_key=encoder_key,
                         decoder_loss=jnp.full((), jnp.nan, jnp.float32))

    def networks(self, state: GoRLState) -> dict:
        return {"encoder": state.params, "decoder": state.decoder_params}

    # -- the stage switch ----------------------------------------------------------------------
    def collect_pairs(self, state: GoRLState, encoder_params, key):
        """Roll out ``encoder_params`` with the current decoder: ``(env_state, obs, contexts, pre-tanh
        actions)``, contexts normalized with the current statistics (the new decoder's)."""
        c = self.config
        shift, scale = self._shift_scale()

        def act(obs, k):
            latent_policy, _ = self.network.apply(encoder_params, common.normalize_obs(state.obs_stats, obs, c.normalize_obs))
            z = latent_policy.sample_latent(k)
            context = common.normalize_obs(state.decoder_obs_stats, obs, c.normalize_obs)
            a_pre = self.pre_tanh(state.decoder_params, context, z)
            return ActionSample(latent=z, action=shift + scale * jnp.tanh(a_pre), log_prob=latent_policy.log_prob(z)), \
                {"a_pre": a_pre}

        env_state, obs, traj = rollout(self.venv, act, key, state.env_state, state.obs, c.decoder_rollouts * c.num_steps,
                                       state.env_params)
        flat = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731
        contexts = common.normalize_obs(state.obs_stats, flat(traj.obs), c.normalize_obs)
        return env_state, obs, contexts, flat(traj.extras["a_pre"])

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

    def switch_stage(self, state: GoRLState, hparams: GoRLHParams) -> GoRLState:
        """End the stage: distil the best encoder's behaviour into a fresh decoder, restart the encoder."""
        c = self.config
        key, key_collect, key_decoder, key_reset = jax.random.split(state.key, 4)
        encoder = tree_select(jnp.isfinite(state.best_return), state.best_params, state.params)
        _, _, contexts, actions = self.collect_pairs(state, encoder, key_collect)
        decoder, values = self.train_decoder(key_decoder, contexts, actions, hparams.decoder_learning_rate)
        params = self.network.init(state.encoder_key, jnp.zeros(self.env.observation_spec.shape, jnp.float32))
        env_state, obs = self.venv.reset(key_reset, state.env_params)
        tail = max(1, c.decoder_train_steps // 10)
        return state.replace(
            params=params, opt_state=self.optimizer(hparams).init(params), env_state=env_state, obs=obs, key=key,
            env_steps=state.env_steps + c.decoder_rollouts * self.steps_per_iteration,
            last_return_per_env=jnp.full_like(state.last_return_per_env, jnp.nan),
            decoder_params=decoder, decoder_obs_stats=state.obs_stats, stage=state.stage + 1, best_params=params,
            best_return=jnp.full_like(state.best_return, jnp.nan), decoder_loss=values[-tail:].mean(),
        )

    def step(self, state: GoRLState, hparams: GoRLHParams):
        at_start = jnp.isin(state.iteration, jnp.asarray(self.stage_starts, jnp.int32)) if self.stage_starts \
            else jnp.zeros((), bool)
        # A while_loop, not a cond: under vmap it runs the switch only while some run needs it.
        state, _ = jax.lax.while_loop(lambda carry: carry[1],
                                      lambda carry: (self.switch_stage(carry[0], hparams), jnp.zeros((), bool)),
                                      (state, at_start))
        state, metrics = super().step(state, hparams)
        score = jnp.nanmean(state.last_return_per_env)
        better = jnp.isfinite(score) & ~(score <= state.best_return)  # NaN best: any finite score wins
        state = state.replace(best_params=tree_select(better, state.params, state.best_params),
                              best_return=jnp.where(better, score, state.best_return))
        metrics.update(stage=state.stage, decoder_loss=state.decoder_loss, env_steps=state.env_steps)
        return state, metrics
