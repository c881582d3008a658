"""Learned Policy Gradient (Oh et al. 2020, "Discovering Reinforcement Learning Algorithms"): the
agent, the update an update rule defines, and the meta-objective through K agent updates
(reference notes: shared/reference/algorithms.md, 5.1).

Agent (theta): a softmax policy pi_theta(a|s) and a prediction vector y_theta(s) in Delta^m whose
meaning the rule decides. An update rule maps a rollout (:class:`RuleInputs`) to a policy target
pi_hat and a prediction target y_hat (:class:`jaxpg.meta.LPGNetwork`, or any function: the rule is
a pluggable objective of the agent), and the agent descends

    L_agent(theta) = -mean_t[ log pi_theta(a_t|s_t) pi_hat_t ] + alpha_y mean_t KL(y_theta(s_t) || y_hat_t)

(the paper's sign: with pi_hat = A the first term is the policy-gradient surrogate; the GROOVE
code flips it). The rule's inputs are stop-gradient with respect to theta.

Meta-objective of the rule (eta), after K agent updates theta_K(eta) on K consecutive rollouts
and one more rollout of theta_K (advantages A from GAE with a value critic that learns alongside
the agent, by TD(lambda) regression on the same rollouts, normalized over the batch):

    L_meta(eta) = -mean[ log pi_{theta_K}(a|s) A ] - beta_0 H(pi_{theta_K}) - beta_1 H(y_{theta_K})
                  + beta_2 mean pi_hat^2 + beta_3 mean ||y_hat||^2

(entropies on the last rollout's states; the L2 terms over the K updates). The gradient flows
through the K updates; the sampled trajectories are data (their dependence on eta through the
actions is not differentiated, as in LPG). The critic does learn here: the GROOVE code's critic
update is discarded (reference notes 5.7, pitfall 1). Defaults are GROOVE's: m = 8, alpha_y =
0.5, beta = (5e-2, 1e-3, 5e-3, 1e-3); tabular agents are bias-free linear maps trained by SGD
with learning rates 40 (policy) and 4 (prediction), gradients clipped to norm 0.5 (as the code's
SGD branch does).
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxpg import losses
from jaxpg.algos.rollout import Transition, collect_episodes, rollout
from jaxpg.envs import VectorEnv
from jaxpg.meta.network import RuleInputs
from jaxpg.policies import Categorical

Rule = Callable[[RuleInputs], tuple[jax.Array, jax.Array]]


class LPGAgent(nn.Module):
    """``(policy logits [..., A], prediction logits [..., m], value [...])``. ``hidden_sizes=()``:
    bias-free linear maps of the (one-hot) observation, the tabular agent. The value head is the
    critic of the meta-objective (trained by TD, never by the rule)."""

    num_actions: int
    prediction_dim: int = 8
    hidden_sizes: tuple = ()
    obs_ndim: int = 1  # observation axes, flattened (MinAtar's [10, 10, C])

    @nn.compact
    def __call__(self, obs):
        obs = obs.reshape(obs.shape[:obs.ndim - self.obs_ndim] + (-1,))

        def head(name, size):
            x = obs
            for i, width in enumerate(self.hidden_sizes):
                x = nn.relu(nn.Dense(width, name=f"{name}_hidden_{i}")(x))
            return nn.Dense(size, use_bias=bool(self.hidden_sizes), kernel_init=nn.initializers.zeros
                            if not self.hidden_sizes else nn.initializers.lecun_normal(), name=name)(x)

        return head("policy", self.num_actions), head("prediction", self.prediction_dim), head("value", 1)[..., 0]


@struct.dataclass
class LPGHParams:
    gamma: float = 0.99
    gae_lambda: float = 0.95
    prediction_coef: float = 0.5  # alpha_y
    policy_entropy_coef: float = 5e-2  # beta_0
    prediction_entropy_coef: float = 1e-3  # beta_1
    policy_target_l2: float = 5e-3  # beta_2
    prediction_target_l2: float = 1e-3  # beta_3


def tabular_optimizer(policy_lr: float = 40.0, prediction_lr: float = 4.0, value_lr: float = 4.0,
                      max_grad_norm: float = 0.5) -> optax.GradientTransformation:
    """GROOVE's tabular agent optimizer: clipped SGD with a learning rate per head."""
    def head_of(name):
        return name.split("_hidden_")[0]

    def label_fn(params):
        return {"params": {name: jax.tree.map(lambda _: head_of(name), sub) for name, sub in params["params"].items()}}

    return optax.chain(optax.clip_by_global_norm(max_grad_norm),
                       optax.multi_transform({"policy": optax.sgd(policy_lr), "prediction": optax.sgd(prediction_lr),
                                              "value": optax.sgd(value_lr)}, label_fn))


@struct.dataclass
class AgentState:
    """One agent in its lifetime: parameters, optimizer state and its environments."""

    params: Any
    opt_state: Any
    env_state: Any
    obs: jax.Array
    updates: jax.Array  # agent updates so far


def rule_inputs(agent: LPGAgent, params, traj: Transition, gamma) -> RuleInputs:
    """What the rule sees of a rollout, stop-gradient with respect to the agent."""
    params = jax.lax.stop_gradient(params)
    logits, y_logits, _ = agent.apply(params, traj.obs)
    _, y_next_logits, _ = agent.apply(params, traj.final_obs)
    pi = jnp.exp(Categorical(logits).log_prob(traj.action))
    return RuleInputs(reward=traj.reward, done=traj.done, gamma=jnp.asarray(gamma, jnp.float32), pi_taken=pi,
                      y=jax.nn.softmax(y_logits), y_next=jax.nn.softmax(y_next_logits))


def agent_loss(params, agent: LPGAgent, traj: Transition, pi_hat, y_hat, prediction_coef):
    """``L_agent`` (module docstring) for fixed targets ``pi_hat [T, N]``, ``y_hat [T, N, m]``."""
    logits, y_logits, _ = agent.apply(params, traj.obs)
    log_pi = Categorical(logits).log_prob(traj.action)
    log_y = jax.nn.log_softmax(y_logits)
    kl = jnp.sum(jnp.exp(log_y) * (log_y - jnp.log(jnp.maximum(y_hat, 1e-12))), axis=-1)
    policy_term = -jnp.mean(log_pi * pi_hat)
    return policy_term + prediction_coef * jnp.mean(kl), {"policy_term": policy_term, "prediction_kl": kl.mean()}


def value_loss(params, agent: LPGAgent, traj: Transition, hparams: LPGHParams):
    """The critic's TD(lambda) regression on a rollout (targets from the current values, fixed)."""
    _, _, values = agent.apply(params, traj.obs)
    _, _, next_values = agent.apply(jax.lax.stop_gradient(params), traj.final_obs)
    _, targets = losses.gae(traj.reward, jax.lax.stop_gradient(values), next_values, terminated=traj.terminated,
                            truncated=traj.truncated, gamma=hparams.gamma, lam=hparams.gae_lambda)
    return 0.5 * jnp.mean(jnp.square(values - targets))


def agent_update(state: AgentState, agent: LPGAgent, tx: optax.GradientTransformation, rule: Rule,
                 traj: Transition, hparams: LPGHParams) -> tuple[AgentState, dict]:
    """One update of the agent by ``rule`` on ``traj`` (and of its critic by TD)."""
    pi_hat, y_hat = rule(rule_inputs(agent, state.params, traj, hparams.gamma))

    def loss(params):
        value, info = agent_loss(params, agent, traj, pi_hat, y_hat, hparams.prediction_coef)
        return value + value_loss(params, agent, traj, hparams), info

    grads, info = jax.grad(loss, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    info.update(policy_target_sq=jnp.mean(jnp.square(pi_hat)),
                prediction_target_sq=jnp.mean(jnp.sum(jnp.square(y_hat), -1)))
    return state.replace(params=optax.apply_updates(state.params, updates), opt_state=opt_state,
                         updates=state.updates + 1), info


def collect(venv: VectorEnv, agent: LPGAgent, state: AgentState, key, num_steps: int, env_params):
    """A rollout of the agent's policy (data: no gradient flows into it)."""
    params = jax.lax.stop_gradient(state.params)

    def act(obs, k):
        return Categorical(agent.apply(params, obs)[0]).sample_and_log_prob(k), {}

    env_state, obs, traj = rollout(venv, act, key, state.env_state, state.obs, num_steps, env_params)
    return state.replace(env_state=env_state, obs=obs), traj


def meta_loss(eta, rule_fn: Callable[[Any, RuleInputs], tuple], state: AgentState, key, *, venv: VectorEnv,
              agent: LPGAgent, tx, env_params, num_updates: int, num_steps: int, hparams: LPGHParams):
    """``(L_meta(eta), (agent state after the K updates, diagnostics))`` (module docstring);
    ``rule_fn(eta, inputs)`` is the rule, e.g. ``LPGNetwork(...).apply``."""
    def rule(inputs):
        return rule_fn(eta, inputs)

    def inner(state, k):
        state, traj = collect(venv, agent, state, k, num_steps, env_params)
        state, info = agent_update(state, agent, tx, rule, traj, hparams)
        return state, info

    keys = jax.random.split(key, num_updates + 1)
    state, infos = jax.lax.scan(inner, state, keys[:-1])
    state, traj = collect(venv, agent, state, keys[-1], num_steps, env_params)
    logits, y_logits, values = agent.apply(state.params, traj.obs)
    _, _, next_values = agent.apply(state.params, traj.final_obs)
    advantages, _ = losses.gae(traj.reward, jax.lax.stop_gradient(values), jax.lax.stop_gradient(next_values),
                               terminated=traj.terminated, truncated=traj.truncated, gamma=hparams.gamma,
                               lam=hparams.gae_lambda)
    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    policy = Categorical(logits)
    pg = -jnp.mean(policy.log_prob(traj.action) * advantages)
    policy_entropy = policy.entropy().mean()
    prediction_entropy = Categorical(y_logits).entropy().mean()
    total = (pg - hparams.policy_entropy_coef * policy_entropy - hparams.prediction_entropy_coef * prediction_entropy
             + hparams.policy_target_l2 * infos["policy_target_sq"].mean()
             + hparams.prediction_target_l2 * infos["prediction_target_sq"].mean())
    info = {"meta_loss": total, "meta_pg": pg, "policy_entropy": policy_entropy,
            "prediction_entropy": prediction_entropy, "return": jnp.sum(traj.reward) / jnp.maximum(traj.done.sum(), 1)}
    return total, (jax.lax.stop_gradient(state), info)


# -- the oracle and algorithmic regret (GROOVE) ------------------------------------------------------
def a2c_update(state: AgentState, agent: LPGAgent, tx: optax.GradientTransformation, traj: Transition,
               hparams: LPGHParams, entropy_coef: float = 0.01) -> tuple[AgentState, dict]:
    """One A2C update of the same agent (the hand-designed antagonist of algorithmic regret):
    ``-mean(log pi(a|s) A) - c_H H(pi) + 1/2 mean (V - G^lambda)^2``, GAE(gamma, lambda) from its
    value head; the prediction head is left alone."""
    def loss(params):
        logits, _, values = agent.apply(params, traj.obs)
        _, _, next_values = agent.apply(jax.lax.stop_gradient(params), traj.final_obs)
        advantages, targets = losses.gae(traj.reward, jax.lax.stop_gradient(values), next_values,
                                         terminated=traj.terminated, truncated=traj.truncated, gamma=hparams.gamma,
                                         lam=hparams.gae_lambda)
        policy = Categorical(logits)
        pg = -jnp.mean(policy.log_prob(traj.action) * advantages)
        entropy = policy.entropy().mean()
        return pg - entropy_coef * entropy + 0.5 * jnp.mean(jnp.square(values - targets)), {"policy_entropy": entropy}

    grads, info = jax.grad(loss, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    return state.replace(params=optax.apply_updates(state.params, updates), opt_state=opt_state,
                         updates=state.updates + 1), info


def init_agent(agent: LPGAgent, tx: optax.GradientTransformation, venv: VectorEnv, key, env_params) -> AgentState:
    key_params, key_env = jax.random.split(key)
    params = agent.init(key_params, jnp.zeros(venv.env.observation_spec.shape, jnp.float32))
    env_state, obs = venv.reset(key_env, env_params)
    return AgentState(params=params, opt_state=tx.init(params), env_state=env_state, obs=obs,
                      updates=jnp.zeros((), jnp.int32))


def train_lifetime(update: Callable[[AgentState, Transition], tuple[AgentState, dict]], venv: VectorEnv,
                   agent: LPGAgent, tx, env_params, key, lifetime: int, num_steps: int) -> AgentState:
    """A fresh agent trained for ``lifetime`` updates, each on a rollout of ``num_steps`` steps
    (``update(state, traj)``: e.g. a rule's :func:`agent_update` or :func:`a2c_update`)."""
    key_init, key_run = jax.random.split(key)

    def one(state, k):
        state, traj = collect(venv, agent, state, k, num_steps, env_params)
        return update(state, traj)[0], None

    return jax.lax.scan(one, init_agent(agent, tx, venv, key_init, env_params), jax.random.split(key_run, lifetime))[0]


def evaluate_agent(venv: VectorEnv, agent: LPGAgent, params, env_params, key, horizon: int) -> jax.Array:
    """Mean return of one episode per env copy from fresh resets, sampling from the policy
    (``horizon``: a static bound on the level's episode length)."""
    def act(obs, k):
        return Categorical(agent.apply(params, obs)[0]).sample_and_log_prob(k), {}

    return collect_episodes(venv, act, key, horizon, env_params).episode_returns.mean()


def rule_update(rule: Rule, agent: LPGAgent, tx, hparams: LPGHParams = LPGHParams()) -> Callable:
    """``update(state, traj)`` of an agent trained by ``rule``."""
    return lambda state, traj: agent_update(state, agent, tx, rule, traj, hparams)


def oracle_update(agent: LPGAgent, tx, hparams: LPGHParams = LPGHParams()) -> Callable:
    """``update(state, traj)`` of the A2C antagonist."""
    return lambda state, traj: a2c_update(state, agent, tx, traj, hparams)


def algorithmic_regret(learner: Callable, venv: VectorEnv, agent: LPGAgent, tx, env_params, key, *, lifetime: int,
                       num_steps: int, horizon: int, hparams: LPGHParams = LPGHParams()) -> tuple[jax.Array, dict]:
    """GROOVE's score of a level: ``J(A2C agent) - J(learner's agent)``, each trained from scratch
    for ``lifetime`` updates on the level and evaluated by :func:`evaluate_agent` (``learner``:
    an ``update(state, traj)``, e.g. :func:`rule_update` of an LPG rule)."""
    key_oracle, key_learner, key_eval_oracle, key_eval_learner = jax.random.split(key, 4)
    oracle = train_lifetime(oracle_update(agent, tx, hparams), venv, agent, tx, env_params, key_oracle, lifetime,
                            num_steps)
    trained = train_lifetime(learner, venv, agent, tx, env_params, key_learner, lifetime, num_steps)
    oracle_return = evaluate_agent(venv, agent, oracle.params, env_params, key_eval_oracle, horizon)
    learner_return = evaluate_agent(venv, agent, trained.params, env_params, key_eval_learner, horizon)
    return oracle_return - learner_return, {"oracle_return": oracle_return, "learner_return": learner_return}


def positive_value_loss(venv: VectorEnv, agent: LPGAgent, params, env_params, key, num_steps: int,
                        hparams: LPGHParams = LPGHParams()) -> jax.Array:
    """PLR's level score (Jiang et al. 2021): ``mean_t max(A_t, 0)`` over a fresh rollout of the
    agent on the level, ``A`` the GAE(gamma, lambda) advantages from the agent's own value head."""
    state = AgentState(params=params, opt_state=None, env_state=None, obs=None, updates=jnp.zeros((), jnp.int32))
    key_reset, key_run = jax.random.split(key)
    env_state, obs = venv.reset(key_reset, env_params)
    _, traj = collect(venv, agent, state.replace(env_state=env_state, obs=obs), key_run, num_steps, env_params)
    return positive_advantage_mean(agent, params, traj, hparams)


def positive_advantage_mean(agent: LPGAgent, params, traj: Transition, hparams: LPGHParams) -> jax.Array:
    """``mean_t max(A_t, 0)`` of a rollout, GAE from the agent's value head."""
    _, _, values = agent.apply(params, traj.obs)
    _, _, next_values = agent.apply(params, traj.final_obs)
    advantages, _ = losses.gae(traj.reward, values, next_values, terminated=traj.terminated,
                               truncated=traj.truncated, gamma=hparams.gamma, lam=hparams.gae_lambda)
    return jnp.mean(jnp.maximum(advantages, 0.0))
