"""Meta-training an update rule: LPG on random levels, GROOVE on a regret curriculum.

Oh et al. 2020 (LPG) and Jackson et al. 2023 (GROOVE; reference notes: shared/reference/algorithms.md,
5.1 to 5.3). A population of ``num_agents`` agents, each on its own grid-world level, lives for
``lifetime`` agent updates. Every meta-step each agent takes ``num_updates`` (K) updates by the
current rule eta, the meta-objective (:func:`jaxpg.meta.meta_loss`) is differentiated through them,
and eta takes one clipped Adam step on the mean gradient over agents (the clipping is applied: the
GROOVE code's Adam branch silently drops it, pitfall 10). When the agents' lifetimes end (all
together: lifetimes are equal), they restart from scratch on new levels:

* ``curriculum="uniform"`` (LPG, domain randomization): fresh levels from the generator;
* ``curriculum="regret"`` (GROOVE): each finished level is scored by algorithmic regret, ``J(A2C
  trained from scratch for a lifetime) - J(the agent that just finished its lifetime under the
  rule)``, and inserted in a prioritized level replay buffer (:mod:`jaxpg.curriculum`); each new
  agent replays a buffer level with probability ``replay_prob`` (once the buffer holds
  ``num_agents`` levels), else gets a fresh one;
* ``curriculum="pvl"``: the same buffer scored by PLR's positive value loss of the finished agent
  on its level (:func:`jaxpg.meta.positive_value_loss`), the score that needs no antagonist. Regret is computed only when lifetimes end
  (pitfall 4: the code trains the antagonist every meta-step), and the learner side is the agent
  that lived on the level (the code trains a second one from scratch).

The whole meta-training is a pure ``step(state) -> (state, metrics)`` scanned by ``run``, so
chunks, checkpoints and resumes continue exactly.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxpg import curriculum
from jaxpg.envs import VectorEnv, make
from jaxpg.meta.lpg import (AgentState, LPGAgent, LPGHParams, evaluate_agent, init_agent, meta_loss, oracle_update,
                            positive_value_loss, tabular_optimizer, train_lifetime)
from jaxpg.meta.network import LPGNetwork, RuleInputs

CURRICULA = ("uniform", "regret", "pvl")
# Level-scoring metrics where no lifetime ended (or nothing is scored): NaN, not zero.
_NO_SCORES = {"regret": jnp.nan, "positive_value_loss": jnp.nan, "oracle_return": jnp.nan, "lifetime_return": jnp.nan,
              "replayed": 0.0}


@dataclasses.dataclass(frozen=True)
class MetaConfig:
    env: str = "gridworld/small"
    curriculum: str = "uniform"
    num_agents: int = 8
    num_envs: int = 8  # workers per agent
    num_steps: int = 20  # rollout length
    num_updates: int = 5  # K: agent updates per meta-step (the meta-gradient's unroll)
    lifetime: int = 50  # agent updates per lifetime (a multiple of num_updates)
    meta_steps: int = 100
    prediction_dim: int = 8
    hidden_size: int = 64  # the rule's GRU (the paper and GROOVE: 256)
    embed_size: int = 16
    meta_learning_rate: float = 1e-3  # GROOVE: 1e-4 at 5000 meta-steps x 512 agents
    meta_max_grad_norm: float = 0.5
    buffer_size: int = 64
    replay_prob: float = 0.5
    temperature: float = 0.3
    staleness: float = 0.3
    eval_horizon: int = 100  # static bound on episode length when evaluating (the "small" generator: <= 100)


@struct.dataclass
class MetaState:
    eta: Any
    opt_state: Any
    agents: AgentState  # batched over agents
    levels: Any  # batched over agents
    buffer: curriculum.LevelBuffer
    key: jax.Array
    step: jax.Array


class MetaTrainer:
    """``state = trainer.init(key)``; ``state, metrics = trainer.run(state, n)``; ``trainer.rule(eta)``."""

    def __init__(self, config: MetaConfig = MetaConfig()):
        if config.curriculum not in CURRICULA:
            raise ValueError(f"unknown curriculum {config.curriculum!r}; valid choices: {', '.join(CURRICULA)}")
        if config.lifetime % config.num_updates:
            raise ValueError(f"lifetime = {config.lifetime} must be a multiple of num_updates = {config.num_updates}")
        self.config = config
        self.env = make(config.env)
        if not self.env.has_level_sampler:
            raise ValueError(f"meta-training needs an environment with levels (gridworld/...); {config.env} has none")
        self.venv = VectorEnv(self.env, config.num_envs)
        self.agent = LPGAgent(num_actions=self.env.action_spec.n, prediction_dim=config.prediction_dim)
        self.network = LPGNetwork(prediction_dim=config.prediction_dim, hidden_size=config.hidden_size,
                                  embed_size=config.embed_size)
        self.agent_tx = tabular_optimizer()
        self.meta_tx = optax.chain(optax.clip_by_global_norm(config.meta_max_grad_norm),
                                   optax.adam(config.meta_learning_rate))
        self.hparams = LPGHParams()
        self.steps_per_lifetime = config.lifetime // config.num_updates

    def rule(self, eta):
        return lambda inputs: self.network.apply(eta, inputs)

    def _example_inputs(self):
        c = self.config
        zeros = jnp.zeros((c.num_steps, c.num_envs))
        y = jnp.full((c.num_steps, c.num_envs, c.prediction_dim), 1.0 / c.prediction_dim)
        return RuleInputs(reward=zeros, done=zeros.astype(bool), gamma=jnp.float32(self.hparams.gamma),
                          pi_taken=zeros, y=y, y_next=y)

    def _new_agents(self, key, levels):
        keys = jax.random.split(key, self.config.num_agents)
        return jax.vmap(lambda k, level: init_agent(self.agent, self.agent_tx, self.venv, k, level))(keys, levels)

    def _fresh_levels(self, key):
        return jax.vmap(self.env.sample_params)(jax.random.split(key, self.config.num_agents))

    def init(self, key) -> MetaState:
        key_eta, key_levels, key_agents, key_run = jax.random.split(key, 4)
        eta = self.network.init(key_eta, self._example_inputs())
        levels = self._fresh_levels(key_levels)
        return MetaState(eta=eta, opt_state=self.meta_tx.init(eta), agents=self._new_agents(key_agents, levels),
                         levels=levels, buffer=curriculum.create(self.env.default_params, self.config.buffer_size),
                         key=key_run, step=jnp.zeros((), jnp.int32))

    # -- one meta-step -------------------------------------------------------------------------------
    def _meta_gradient(self, eta, agents, levels, key):
        c = self.config

        def one(agent_state, level, k):
            return jax.value_and_grad(meta_loss, has_aux=True)(
                eta, self.network.apply, agent_state, k, venv=self.venv, agent=self.agent, tx=self.agent_tx,
                env_params=level, num_updates=c.num_updates, num_steps=c.num_steps, hparams=self.hparams)

        (_, (agents, info)), grads = jax.vmap(one, in_axes=(0, 0, 0))(agents, levels,
                                                                        jax.random.split(key, c.num_agents))
        return jax.tree.map(lambda g: g.mean(0), grads), agents, info

    def score_levels(self, state: MetaState, key) -> tuple[jax.Array, dict]:
        """The curriculum's score of each agent's level: algorithmic regret (A2C from scratch against
        the agent that lived there) or the positive value loss of that agent there."""
        c = self.config
        if c.curriculum == "pvl":
            scores = jax.vmap(lambda a, level, k: positive_value_loss(self.venv, self.agent, a.params, level, k,
                                                                      c.num_steps, self.hparams))(
                state.agents, state.levels, jax.random.split(key, c.num_agents))
            return scores, {**_NO_SCORES, "positive_value_loss": scores.mean()}

        def regret(agent_state, level, k):
            k_oracle, k_eval_oracle, k_eval_agent = jax.random.split(k, 3)
            oracle = train_lifetime(oracle_update(self.agent, self.agent_tx, self.hparams), self.venv, self.agent,
                                    self.agent_tx, level, k_oracle, c.lifetime, c.num_steps)
            oracle_return = evaluate_agent(self.venv, self.agent, oracle.params, level, k_eval_oracle, c.eval_horizon)
            agent_return = evaluate_agent(self.venv, self.agent, agent_state.params, level, k_eval_agent,
                                          c.eval_horizon)
            return oracle_return - agent_return, oracle_return, agent_return

        regrets, oracle, agent = jax.vmap(regret)(state.agents, state.levels, jax.random.split(key, c.num_agents))
        return regrets, {**_NO_SCORES, "regret": regrets.mean(), "oracle_return": oracle.mean(),
                         "lifetime_return": agent.mean()}

    def _renew(self, state: MetaState, key):
        """End of the lifetimes: score (regret curriculum), then new levels and fresh agents."""
        c = self.config
        key_score, key_fresh, key_replay, key_choice, key_agents = jax.random.split(key, 5)
        fresh = self._fresh_levels(key_fresh)
        buffer = state.buffer
        if c.curriculum != "uniform":
            scores, info = self.score_levels(state, key_score)
            buffer = curriculum.insert_batch(buffer, state.levels, scores)
            buffer, _, replayed = curriculum.sample(buffer, key_replay, c.num_agents, c.temperature, c.staleness)
            replay = (jax.random.uniform(key_choice, (c.num_agents,)) < c.replay_prob) & (buffer.size >= c.num_agents)
            levels = jax.tree.map(lambda r, f: jnp.where(replay.reshape((-1,) + (1,) * (r.ndim - 1)), r, f),
                                  replayed, fresh)
            info = {**info, "replayed": replay.mean()}
        else:
            levels = fresh
            info = dict(_NO_SCORES)
        info = {name: jnp.asarray(value, jnp.float32) for name, value in info.items()}
        return state.replace(levels=levels, agents=self._new_agents(key_agents, levels), buffer=buffer), info

    def step(self, state: MetaState):
        key, key_grad, key_renew = jax.random.split(state.key, 3)
        grads, agents, info = self._meta_gradient(state.eta, state.agents, state.levels, key_grad)
        updates, opt_state = self.meta_tx.update(grads, state.opt_state, state.eta)
        state = state.replace(eta=optax.apply_updates(state.eta, updates), opt_state=opt_state, agents=agents,
                              key=key, step=state.step + 1)
        ends = state.step % self.steps_per_lifetime == 0  # not batched: one branch runs
        state, renew_info = jax.lax.cond(
            ends, lambda s: self._renew(s, key_renew),
            lambda s: (s, {name: jnp.asarray(v, jnp.float32) for name, v in _NO_SCORES.items()}), state)
        metrics = {name: value.mean() for name, value in info.items()}
        metrics.update(renew_info, lifetime_end=ends, buffer_mean_score=jnp.where(
                           state.buffer.size > 0,
                           jnp.sum(jnp.where(state.buffer.filled, state.buffer.scores, 0.0)) / jnp.maximum(
                               state.buffer.size, 1), jnp.nan))
        return state, metrics

    def run(self, state: MetaState, num_steps: int | None = None, progress=None):
        """``num_steps`` meta-steps in one ``lax.scan``; ``progress(step, meta_loss)`` on the host."""
        n = self.config.meta_steps if num_steps is None else int(num_steps)

        def body(state, _):
            state, metrics = self.step(state)
            if progress is not None:
                jax.debug.callback(progress, state.step, metrics["meta_loss"])
            return state, metrics

        return jax.lax.scan(body, state, None, length=n)
