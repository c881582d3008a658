"""SAC: soft actor-critic with twin critics and automatic entropy tuning (Haarnoja et al. 2018,
"Soft Actor-Critic Algorithms and Applications", arXiv:1812.05905), for continuous actions.

Each iteration steps the ``num_envs`` environment copies ``num_steps`` times with actions sampled
from the squashed-Gaussian policy (uniform random actions before ``learning_starts`` env steps),
adds the transitions to a replay buffer that lives on the device inside the training state
(flashbax's item buffer: it runs under ``jit`` and ``vmap`` over seeds with the pinned jax, and its
state is a pytree, so checkpoints hold the buffer), then, once ``learning_starts`` steps are
stored, takes ``gradient_steps`` updates on uniformly sampled minibatches:

    critics:  L_Q = 1/2 sum_i mean (Q_i(s, a) - y)^2,
              y = r + gamma (1 - terminated) (min_i Qbar_i(s', a') - alpha log pi(a'|s')),  a' ~ pi(.|s')
    actor:    L_pi = mean (alpha log pi(a~|s) - min_i Q_i(s, a~)),  a~ ~ pi(.|s) reparameterized
    alpha:    L_alpha = -mean (log alpha (log pi(a~|s) + target_entropy)),  target_entropy = -dim(A)
    targets:  Qbar <- tau Q + (1 - tau) Qbar  (Polyak averaging, every gradient step)

Truncated episodes bootstrap from their final observation (``terminated`` alone stops the
bootstrap). Defaults follow the paper's Table 1 at smaller networks (256x256 ReLU, lr 3e-4,
batch 256, tau 0.005, gamma 0.99).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxpg import losses, prng
from jaxpg.algos import common
from jaxpg.algos.rollout import rollout
from jaxpg.algos.trainer import Trainer, all_finite
from jaxpg.algos.validation import NONNEGATIVE, NONNEGATIVE_INT, POSITIVE, POSITIVE_INT, UNIT, bounded
from jaxpg.envs import Box
from jaxpg.nets import PolicyNetwork, TwinQNetwork
from jaxpg.policies import ActionSample


@dataclasses.dataclass(frozen=True)
class SACConfig(common.BaseConfig):
    """Static choices; shared fields in ``BaseConfig`` (redeclared here with SAC's defaults)."""
    # The actor's and critics' optimizer; the temperature (a scalar) always takes Adam.
    OPTIMIZERS = ("adam", "sinkgd")

    env: str = "Pendulum-v1"
    num_envs: int = bounded(1, POSITIVE_INT)
    hidden_sizes: tuple = (256, 256)
    activation: str = "relu"
    std_mode: str = "state_dependent"
    num_steps: int = bounded(1, POSITIVE_INT)  # env steps per copy between update phases
    gradient_steps: int = bounded(1, POSITIVE_INT)  # updates per iteration
    buffer_size: int = bounded(100_000, POSITIVE_INT)
    batch_size: int = bounded(256, POSITIVE_INT)
    learning_starts: int = bounded(1_000, NONNEGATIVE_INT)  # env steps of random actions first
    autotune_alpha: bool = True


@struct.dataclass
class SACHParams:
    learning_rate: float = bounded(3e-4, NONNEGATIVE)  # actor, critics and temperature
    gamma: float = bounded(0.99, UNIT)
    tau: float = bounded(0.005, UNIT)
    init_alpha: float = bounded(1.0, POSITIVE)  # the fixed alpha when autotune_alpha=False
    max_grad_norm: float = bounded(10.0, POSITIVE)


@struct.dataclass
class SACState:
    params: Any  # the actor's (what policy_fn and evaluate use)
    critic_params: Any  # twin critics, stacked on a leading axis of 2
    target_critic_params: Any
    log_alpha: jax.Array
    actor_opt_state: Any
    critic_opt_state: Any
    alpha_opt_state: Any
    buffer: Any
    env_state: Any
    obs: jax.Array
    obs_stats: Any  # unused (SAC keeps raw observations); present for policy_fn
    env_params: Any
    key: jax.Array
    iteration: jax.Array
    env_steps: jax.Array
    last_return: jax.Array
    last_length: jax.Array


class SAC(Trainer):
    algo = "sac"
    Config = SACConfig
    HParams = SACHParams

    def __init__(self, config: SACConfig = SACConfig()):
        common.check_config(config)
        if config.normalize_obs:
            raise ValueError("sac keeps raw observations; normalize_obs=True is not supported (valid: False)")
        if config.nap:
            raise ValueError("sac does not support nap=True yet (valid: False)")
        self.config = config
        self.env, self.venv = common.make_environment(config)
        if not isinstance(self.env.action_spec, Box):
            raise ValueError(f"sac needs continuous (Box) actions; {config.env} has {type(self.env.action_spec).__name__} "
                             "actions (for discrete actions use ppo or reinforce)")
        self.network = common.make_network(config, self.env, network=PolicyNetwork)
        self.critic = TwinQNetwork(obs_ndim=len(self.env.observation_spec.shape), hidden_sizes=tuple(config.hidden_sizes),
                                   activation=config.activation, normalization=config.normalization)
        self.steps_per_iteration = config.num_envs * config.num_steps
        self.num_iterations = config.total_steps // self.steps_per_iteration
        if self.num_iterations < 1:
            raise ValueError(f"total_steps = {config.total_steps} is less than one iteration "
                             f"({self.steps_per_iteration} steps)")
        self.action_dim = int(np.prod(self.env.action_spec.shape))
        self.target_entropy = -float(self.action_dim)
        self.default_hparams = SACHParams()
        import flashbax

        self.buffer = flashbax.make_item_buffer(
            max_length=max(config.buffer_size, config.batch_size), min_length=1, sample_batch_size=config.batch_size,
            add_batches=True,
        )

    def networks(self, state: SACState) -> dict:
        return {"actor": state.params, "critic": state.critic_params}

    def _optimizer(self, hparams) -> optax.GradientTransformation:
        """The actor's and the critics' optimizer: clipping then ``config.optimizer`` (Adam or SinkGD)."""
        return common.clipped_optimizer(self.config.optimizer, hparams.learning_rate, hparams.max_grad_norm,
                                        adam_eps=1e-8)

    def _temperature_optimizer(self, hparams) -> optax.GradientTransformation:
        """Adam for log alpha whatever ``config.optimizer`` is: SinkGD has no rule for a scalar
        beyond its sign, which would move alpha by a fixed factor every step."""
        return common.clipped_optimizer("adam", hparams.learning_rate, hparams.max_grad_norm, adam_eps=1e-8)

    def _transition_example(self):
        obs = jnp.zeros(self.env.observation_spec.shape, jnp.float32)
        return {"obs": obs, "action": jnp.zeros((self.action_dim,), jnp.float32), "reward": jnp.zeros(()),
                "terminated": jnp.zeros((), bool), "next_obs": obs}

    def init(self, key: jax.Array, hparams: SACHParams | None = None, env_params: Any = None) -> SACState:
        hparams = self.default_hparams if hparams is None else hparams
        _, _, key_env, key_run = jax.random.split(key, 4)
        env_params = common.initial_levels(self.config, self.env, self.venv, key_env, env_params)
        env_state, first_obs = self.venv.reset(key_env, env_params)
        return SACState(
            **self.init_learner(key, hparams), env_state=env_state, obs=first_obs,
            obs_stats=common.RunningStats.create(self.env.observation_spec.shape), env_params=env_params,
            key=key_run, iteration=jnp.zeros((), jnp.int32), env_steps=jnp.zeros((), jnp.int32),
            last_return=jnp.full((), jnp.nan, jnp.float32), last_length=jnp.full((), jnp.nan, jnp.float32),
        )

    def init_learner(self, key: jax.Array, hparams: SACHParams) -> dict:
        """The learning parts of the state from ``init``'s key: networks, temperature, optimizer
        states and an empty buffer (what a restart, e.g. GoRL's next stage, re-creates)."""
        key_actor, key_critic, _, _ = jax.random.split(key, 4)
        obs = jnp.zeros(self.env.observation_spec.shape, jnp.float32)
        actor = self.network.init(key_actor, obs)
        critic = self.critic.init(key_critic, obs, jnp.zeros((self.action_dim,), jnp.float32))
        log_alpha = jnp.log(jnp.asarray(hparams.init_alpha, jnp.float32))
        tx = self._optimizer(hparams)
        return dict(params=actor, critic_params=critic, target_critic_params=critic, log_alpha=log_alpha,
                    actor_opt_state=tx.init(actor), critic_opt_state=tx.init(critic),
                    alpha_opt_state=self._temperature_optimizer(hparams).init(log_alpha), buffer=self.buffer.init(self._transition_example()))

    def replace_levels(self, state, env_params, key=None):
        key = jax.random.fold_in(state.key, 1) if key is None else key
        env_state, obs = self.venv.reset(key, env_params)
        return state.replace(env_params=env_params, env_state=env_state, obs=obs)

    # -- losses --------------------------------------------------------------------------------
    def critic_loss(self, critic_params, state: SACState, batch: dict, key: jax.Array, hparams):
        alpha = jnp.exp(state.log_alpha)
        next_action, next_log_prob = self.next_action(self.network.apply(state.params, batch["next_obs"]), key)
        next_q = self.critic.apply(state.target_critic_params, batch["next_obs"], next_action).min(0)
        targets = losses.soft_q_targets(batch["reward"], batch["terminated"], next_q, next_log_prob,
                                        alpha=alpha, gamma=hparams.gamma)
        q = self.critic.apply(critic_params, batch["obs"], batch["action"])  # [2, B]
        loss = 0.5 * jnp.mean(jnp.square(q - targets[None]), axis=1).sum()
        return loss, {"critic_loss": loss, "q": q.mean()}

    def next_action(self, policy, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The action a' ~ pi(.|s') of the soft target and the log-density its entropy term uses."""
        sample = policy.sample_and_log_prob(key)
        return sample.action, sample.log_prob

    def actor_loss(self, actor_params, state: SACState, critic_params, obs: jax.Array, key: jax.Array, hparams):
        """``(loss, aux)``; ``aux["log_prob"]`` is what the temperature's loss reads."""
        policy = self.network.apply(actor_params, obs)
        sample = policy.sample_and_log_prob(key)
        q = self.critic.apply(critic_params, obs, sample.action).min(0)
        loss, aux = losses.soft_actor_loss(q, sample.log_prob, alpha=jnp.exp(state.log_alpha))
        penalty, penalty_info = self.policy_penalty(policy, hparams)
        return loss + penalty, {"actor_loss": loss, **aux, **penalty_info, "log_prob": sample.log_prob}

    def policy_penalty(self, policy, hparams) -> tuple[jax.Array, dict]:
        """A term added to the actor's loss (none in SAC; GoRL's pull toward the prior)."""
        return jnp.zeros(()), {}

    def update(self, state: SACState, hparams: SACHParams, key: jax.Array) -> tuple[SACState, dict]:
        """One gradient step of the critics, the actor and the temperature, then the targets."""
        tx = self._optimizer(hparams)
        key_sample, key_critic, key_actor = jax.random.split(key, 3)
        batch = self.buffer.sample(state.buffer, key_sample).experience
        critic_grads, critic_info = jax.grad(self.critic_loss, has_aux=True)(
            state.critic_params, state, batch, key_critic, hparams)
        updates, critic_opt_state = tx.update(critic_grads, state.critic_opt_state, state.critic_params)
        critic_params = optax.apply_updates(state.critic_params, updates)

        actor_grads, actor_info = jax.grad(self.actor_loss, has_aux=True)(
            state.params, state, critic_params, batch["obs"], key_actor, hparams)
        updates, actor_opt_state = tx.update(actor_grads, state.actor_opt_state, state.params)
        actor_params = optax.apply_updates(state.params, updates)

        log_prob = actor_info.pop("log_prob")
        alpha_grad, alpha_info = jax.grad(losses.temperature_loss, has_aux=True)(
            state.log_alpha, log_prob, target_entropy=self.target_entropy)
        if not self.config.autotune_alpha:
            alpha_grad = jnp.zeros_like(alpha_grad)
        updates, alpha_opt_state = self._temperature_optimizer(hparams).update(
            alpha_grad, state.alpha_opt_state, state.log_alpha)
        log_alpha = optax.apply_updates(state.log_alpha, updates)

        target = optax.incremental_update(critic_params, state.target_critic_params, hparams.tau)
        state = state.replace(params=actor_params, critic_params=critic_params, target_critic_params=target,
                              log_alpha=log_alpha, actor_opt_state=actor_opt_state,
                              critic_opt_state=critic_opt_state, alpha_opt_state=alpha_opt_state)
        return state, {**critic_info, **actor_info, "alpha": jnp.exp(log_alpha)}

    # -- one iteration -------------------------------------------------------------------------
    def behaviour(self, state: SACState, obs: jax.Array, key: jax.Array) -> ActionSample:
        """The rollout's step at ``obs``: uniform in the action box for the first
        ``learning_starts`` env steps, then sampled from the policy. ``latent`` is the action the
        buffer stores and the critics score, ``action`` what the environment executes
        (:meth:`execute`; the same in SAC)."""
        spec = self.env.action_spec
        key_policy, key_random = jax.random.split(key)
        sample = self.network.apply(state.params, obs).sample_and_log_prob(key_policy)
        uniform = jax.random.uniform(key_random, sample.action.shape, minval=jnp.asarray(spec.low),
                                     maxval=jnp.asarray(spec.high))
        warming_up = state.env_steps < self.config.learning_starts
        return ActionSample(latent=jnp.where(warming_up, uniform, sample.action),
                            action=jnp.where(warming_up, uniform, self.execute(state, obs, sample)),
                            log_prob=sample.log_prob)

    def execute(self, state: SACState, obs: jax.Array, sample: ActionSample) -> jax.Array:
        """The environment's action for a policy sample (GoRL-SAC decodes it)."""
        return sample.action

    def learning_ready(self, state: SACState) -> jax.Array:
        """Whether the buffer holds enough to learn from: ``learning_starts`` (and a batch) of steps."""
        return state.env_steps >= max(self.config.learning_starts, self.config.batch_size)

    def step(self, state: SACState, hparams: SACHParams):
        c = self.config
        key, key_rollout, key_update = jax.random.split(state.key, 3)

        env_state, obs, traj = rollout(self.venv, lambda o, k: (self.behaviour(state, o, k), {}), key_rollout,
                                       state.env_state, state.obs, c.num_steps, state.env_params)
        flat = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731  [T, N, ...] -> [T*N, ...]
        transitions = {"obs": flat(traj.obs), "action": flat(traj.latent).reshape(-1, self.action_dim),
                       "reward": flat(traj.reward), "terminated": flat(traj.terminated), "next_obs": flat(traj.final_obs)}
        buffer = self.buffer.add(state.buffer, transitions)
        env_steps = state.env_steps + self.steps_per_iteration
        state = state.replace(buffer=buffer, env_state=env_state, obs=obs, key=key, env_steps=env_steps)

        def train(state):
            def one(state, k):
                return self.update(state, hparams, k)

            state, info = jax.lax.scan(one, state, jax.random.split(prng.unrolled(key_update), c.gradient_steps))
            return state, jax.tree.map(jnp.mean, info)

        def skip(state):
            return state, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(train, state)[1])

        ready = self.learning_ready(state)
        state, info = jax.lax.cond(ready, train, skip, state)

        ep_return, ep_length, episodes = common.episode_statistics(
            traj.done, traj.episode_return, traj.episode_length, state.last_return, state.last_length)
        state = state.replace(iteration=state.iteration + 1, last_return=ep_return, last_length=ep_length)
        metrics = {
            **info,
            "learning": ready,
            "episode_return": ep_return,
            "episode_length": ep_length,
            "episodes": episodes,
            "env_steps": env_steps,
            "finite": jnp.logical_and(all_finite(info), all_finite((state.params, state.critic_params))),
        }
        return state, metrics
