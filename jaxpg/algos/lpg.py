"""``lpg``: a fresh agent trained by a saved learned update rule (LPG, Oh et al. 2020; a rule from
``jaxpg meta-train``, GROOVE or LPG meta-training) under the ``make_train`` contract.

``make_train("lpg", rule="rule.msgpack", env="gridworld/dense")``: every iteration rolls out
``num_envs x num_steps`` steps of the agent's policy and applies the rule's update
(:func:`jaxpg.meta.agent_update`: the rule's policy target and prediction target; the agent's
critic head learns by TD but does not act). Any environment with discrete actions works: the
grid-worlds (tabular agents: ``hidden_sizes=()``, SGD with learning rates 40 / 4 as in GROOVE),
gymnax MinAtar and classic control (``hidden_sizes=(256, 256)`` or ``(64, 64)`` with
``optimizer="adam"``). The rule's parameters are constants of the compiled program; sweeps vmap
over seeds and the agent's hyperparameters.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxpg import meta
from jaxpg.algos import common
from jaxpg.algos.trainer import Trainer, all_finite
from jaxpg.algos.validation import NONNEGATIVE, POSITIVE, POSITIVE_INT, UNIT, bounded
from jaxpg.envs import Discrete
from jaxpg.policies import Categorical

OPTIMIZERS = ("sgd", "adam", "sinkgd")


@dataclasses.dataclass(frozen=True)
class LPGConfig(common.BaseConfig):
    env: str = "gridworld/dense"
    rule: str = ""  # path of a saved rule (jaxpg meta-train writes rule.msgpack)
    num_envs: int = bounded(8, POSITIVE_INT)
    num_steps: int = bounded(20, POSITIVE_INT)
    hidden_sizes: tuple = ()  # () = the tabular (bias-free linear) agent
    # "sgd": per-head learning rates (GROOVE's tabular agents); "adam" | "sinkgd": learning_rate
    optimizer: str = "sgd"


@struct.dataclass
class LPGTrainHParams:
    policy_learning_rate: float = bounded(40.0, NONNEGATIVE)  # sgd
    prediction_learning_rate: float = bounded(4.0, NONNEGATIVE)  # sgd
    learning_rate: float = bounded(5e-4, NONNEGATIVE)  # adam
    max_grad_norm: float = bounded(0.5, POSITIVE)
    gamma: float = bounded(0.99, UNIT)
    gae_lambda: float = bounded(0.95, UNIT)  # the critic's TD(lambda) targets
    prediction_coef: float = bounded(0.5, NONNEGATIVE)


@struct.dataclass
class LPGState:
    params: Any
    opt_state: Any
    env_state: Any
    obs: jax.Array
    obs_stats: Any  # unused (raw observations); present for policy_fn
    env_params: Any
    key: jax.Array
    iteration: jax.Array
    env_steps: jax.Array
    last_return: jax.Array
    last_length: jax.Array


class LPG(Trainer):
    algo = "lpg"
    Config = LPGConfig
    HParams = LPGTrainHParams

    def __init__(self, config: LPGConfig = LPGConfig()):
        common.check_config(config)
        if not config.rule:
            raise ValueError("lpg needs rule=PATH, a learned rule saved by `jaxpg meta-train`")
        if config.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {config.optimizer!r}; valid choices: {', '.join(OPTIMIZERS)}")
        self.config = config
        self.env, self.venv = common.make_environment(config)
        if not isinstance(self.env.action_spec, Discrete):
            raise ValueError(f"lpg needs discrete actions; {config.env} has {type(self.env.action_spec).__name__} actions")
        self.rule_network, eta, self.rule_info = meta.load_rule(config.rule)
        self.eta = jax.tree.map(jnp.asarray, eta)
        self.network = meta.LPGAgent(num_actions=self.env.action_spec.n, prediction_dim=self.rule_network.prediction_dim,
                                     hidden_sizes=tuple(config.hidden_sizes),
                                     obs_ndim=len(self.env.observation_spec.shape))
        self.steps_per_iteration = config.num_envs * config.num_steps
        self.num_iterations = config.total_steps // self.steps_per_iteration
        if self.num_iterations < 1:
            raise ValueError(f"total_steps = {config.total_steps} is less than one iteration "
                             f"({self.steps_per_iteration} steps)")
        self.default_hparams = LPGTrainHParams()

    def optimizer(self, hparams: LPGTrainHParams) -> optax.GradientTransformation:
        if self.config.optimizer in ("adam", "sinkgd"):
            return common.clipped_optimizer(self.config.optimizer, hparams.learning_rate, hparams.max_grad_norm,
                                            adam_eps=1e-8)
        return meta.tabular_optimizer(hparams.policy_learning_rate, hparams.prediction_learning_rate,
                                      hparams.prediction_learning_rate, hparams.max_grad_norm)

    def rule(self, inputs):
        return self.rule_network.apply(self.eta, inputs)

    def policy(self, state, obs):
        return Categorical(self.network.apply(state.params, obs)[0])

    def init(self, key, hparams: LPGTrainHParams | None = None, env_params: Any = None) -> LPGState:
        hparams = self.default_hparams if hparams is None else hparams
        key_agent, key_env, key_run = jax.random.split(key, 3)
        env_params = common.initial_levels(self.config, self.env, self.venv, key_env, env_params)
        agent = meta.init_agent(self.network, self.optimizer(hparams), self.venv, key_agent, env_params)
        return LPGState(params=agent.params, opt_state=agent.opt_state, env_state=agent.env_state, obs=agent.obs,
                        obs_stats=common.RunningStats.create(self.env.observation_spec.shape), env_params=env_params,
                        key=key_run, iteration=jnp.zeros((), jnp.int32), env_steps=jnp.zeros((), jnp.int32),
                        last_return=jnp.full((), jnp.nan, jnp.float32), last_length=jnp.full((), jnp.nan, jnp.float32))

    def replace_levels(self, state, env_params, key=None):
        key = jax.random.fold_in(state.key, 1) if key is None else key
        env_state, obs = self.venv.reset(key, env_params)
        return state.replace(env_params=env_params, env_state=env_state, obs=obs)

    def step(self, state: LPGState, hparams: LPGTrainHParams):
        key, key_rollout = jax.random.split(state.key)
        agent = meta.AgentState(params=state.params, opt_state=state.opt_state, env_state=state.env_state,
                                obs=state.obs, updates=state.iteration)
        agent, traj = meta.collect(self.venv, self.network, agent, key_rollout, self.config.num_steps, state.env_params)
        lpg_hparams = meta.LPGHParams(gamma=hparams.gamma, gae_lambda=hparams.gae_lambda,
                                      prediction_coef=hparams.prediction_coef)
        agent, info = meta.agent_update(agent, self.network, self.optimizer(hparams), self.rule, traj, lpg_hparams)
        ep_return, ep_length, episodes = common.episode_statistics(traj.done, traj.episode_return, traj.episode_length,
                                                                   state.last_return, state.last_length)
        env_steps = state.env_steps + self.steps_per_iteration
        state = state.replace(params=agent.params, opt_state=agent.opt_state, env_state=agent.env_state, obs=agent.obs,
                              key=key, iteration=state.iteration + 1, env_steps=env_steps, last_return=ep_return,
                              last_length=ep_length)
        metrics = {**info, "episode_return": ep_return, "episode_length": ep_length, "episodes": episodes,
                   "env_steps": env_steps, "entropy": self.policy(state, traj.obs).entropy().mean(),
                   "finite": jnp.logical_and(all_finite(info), all_finite(state.params))}
        return state, metrics
