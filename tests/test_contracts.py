"""The contracts the next algorithm families build on: a pure ``step`` to differentiate through,
replaceable objectives, hyperparameters that carry arrays, several networks with their own
optimizers, one rollout, and levels (sampling, replacing, per-level returns)."""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import struct

import jaxpg
from jaxpg import losses
from jaxpg.algos import PPOHParams, ppo_objective
from jaxpg.algos.rollout import collect_episodes, rollout
from jaxpg.algos.trainer import Trainer, all_finite
from jaxpg.envs import VectorEnv
from jaxpg.policies import ActionSample

# A small PPO on CartPole whose update is smooth in its hyperparameters: clipping (of the ratio
# and of the gradient norm) switched off, since finite differences are ill-defined at its kinks.
# Discrete actions are locally constant in the parameters, so the data a step collects depend on
# the hyperparameters only through quantities JAX differentiates.
SMALL_PPO = dict(env="CartPole-v1", num_envs=2, num_steps=16, num_minibatches=2, update_epochs=1,
                 hidden_sizes=(8,), total_steps=3 * 32, lr_schedule="constant")
SMOOTH = dict(learning_rate=1e-2, clip_eps=10.0, max_grad_norm=1e9)


def _projection(train, key=jax.random.key(1)):
    """A fixed random linear functional of the parameters."""
    params = train.init(jax.random.key(0)).params
    direction = jax.tree.map(lambda x: jax.random.normal(key, x.shape), params)
    return lambda p: sum(jnp.vdot(d, x) for d, x in zip(jax.tree.leaves(direction), jax.tree.leaves(p)))


def _after_three_steps(train, hparams):
    """Three pure steps (``run`` scans ``step``; no host callback is passed)."""
    return train.run(train.init(jax.random.key(0), hparams), hparams, num_iterations=3).params


def test_swapping_ppo_objective_for_a_hand_written_equivalent_gives_the_same_parameters():
    def hand_written(policy, values, batch, advantages, targets, hp):
        log_prob = policy.log_prob(batch.latent)
        adv = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        ratio = jnp.exp(log_prob - batch.log_prob)
        surrogate = jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - hp.clip_eps, 1 + hp.clip_eps) * adv)
        old = batch.extras["value"]
        clipped = old + jnp.clip(values - old, -hp.clip_eps, hp.clip_eps)
        value = 0.5 * jnp.maximum((values - targets) ** 2, (clipped - targets) ** 2).mean()
        total = -surrogate.mean() + hp.vf_coef * value - hp.ent_coef * policy.entropy().mean()
        return total, {"loss": total}

    kwargs = dict(SMALL_PPO, total_steps=2 * 32)
    default = jax.jit(jaxpg.make_train("ppo", **kwargs))(jax.random.key(3))
    swapped = jax.jit(jaxpg.make_train("ppo", objective=hand_written, **kwargs))(jax.random.key(3))
    for a, b in zip(jax.tree.leaves(default.params), jax.tree.leaves(swapped.params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="takes no objective; algorithms with a replaceable objective: ppo, reinforce"):
        jaxpg.make_train("n_harpg", env="CartPole-v1", objective=hand_written)


@struct.dataclass
class WeightedHParams(PPOHParams):
    """PPO hyperparameters plus an array: per-term weights of a (stand-in for a learned) objective."""

    term_weights: jax.Array = struct.field(default_factory=lambda: jnp.array([1.0, 1.0]))


def weighted_objective(policy, values, batch, advantages, targets, hp):
    loss, aux = ppo_objective(policy, values, batch, advantages, targets, hp)
    weighted = hp.term_weights[0] * aux["policy_loss"] + hp.term_weights[1] * hp.vf_coef * aux["value_loss"]
    return weighted - hp.ent_coef * aux["entropy"], aux


def test_meta_gradient_through_three_ppo_steps_matches_finite_differences():
    """d/d(hparams) of a functional of the parameters after three pure PPO steps, by jax.grad and
    by central differences: along the learning rate, and along an array hyperparameter (the
    weights of the objective's terms, as a learned objective's parameters would be). With weights
    (1, 1) the objective is PPO's own."""
    train = jaxpg.make_train("ppo", objective=weighted_objective, **SMALL_PPO)
    project = _projection(train)
    hp = WeightedHParams(**SMOOTH)
    f = lambda h: project(_after_three_steps(train, h))
    grads = jax.jit(jax.grad(f))(hp)
    f_jit = jax.jit(f)

    def central(eps, **delta):
        plus = hp.replace(**{k: getattr(hp, k) + eps * v for k, v in delta.items()})
        minus = hp.replace(**{k: getattr(hp, k) - eps * v for k, v in delta.items()})
        return float((f_jit(plus) - f_jit(minus)) / (2 * eps))

    assert abs(float(grads.learning_rate)) > 1e-2  # the learning rate matters
    np.testing.assert_allclose(grads.learning_rate, central(1e-4, learning_rate=1.0), rtol=2e-3)
    np.testing.assert_allclose(grads.term_weights[0], central(1e-2, term_weights=jnp.array([1.0, 0.0])), rtol=1e-2)


def test_hparams_carry_arrays_through_sweeps():
    train = jaxpg.make_train("ppo", objective=weighted_objective, **dict(SMALL_PPO, total_steps=2 * 32))
    hp = WeightedHParams(**SMOOTH, term_weights=jnp.array([1.0, 0.5]))
    grid = jaxpg.sweep.grid(hp, learning_rate=[1e-2, 3e-2])
    assert grid.term_weights.shape == (2, 2) and grid.learning_rate.shape == (2,)
    out = jaxpg.sweep.run(train, seeds=2, hparams=grid)
    assert out.metrics["loss"].shape == (2, 2, 2)
    assert not np.allclose(out.metrics["loss"][0], out.metrics["loss"][1])
    _, per_run = jaxpg.sweep.init(train, seeds=3, hparams=hp)  # an unbatched array field is broadcast
    assert per_run.term_weights.shape == (3, 2) and per_run.learning_rate.shape == (3,)
    np.testing.assert_array_equal(per_run.term_weights, np.tile([1.0, 0.5], (3, 1)))


# ---- several networks, several optimizers -------------------------------------------------------
@struct.dataclass
class TwoNetState:
    params: dict  # {"actor": ..., "critic": ...}
    opt_states: dict
    env_params: object
    key: jax.Array
    iteration: jax.Array


class ActorAndCritic(Trainer):
    """A one-step bandit learner with two networks and two optimizers (the shape of SAC's state):
    the critic regresses the reward of the taken action, the actor follows the critic."""

    algo = "two_networks"

    def __init__(self):
        self.config = None
        self.env = jaxpg.envs.make("tabular/random", num_states=3, num_actions=2, horizon=1, seed=5)
        self.venv = VectorEnv(self.env, 8)
        self.actor = jaxpg.nets.PolicyNetwork(head=jaxpg.policies.policy_head(self.env.action_spec), hidden_sizes=(8,))
        self.critic = nn.Dense(2)
        self.optimizers = {"actor": optax.adam(3e-2), "critic": optax.adam(1e-1)}
        self.num_iterations, self.steps_per_iteration = 30, 8
        self.default_hparams = PPOHParams()

    def init(self, key, hparams=None, env_params=None):
        obs = jnp.zeros(self.env.observation_spec.shape)
        k1, k2, k3 = jax.random.split(key, 3)
        params = {"actor": self.actor.init(k1, obs), "critic": self.critic.init(k2, obs)}
        opt_states = {name: self.optimizers[name].init(p) for name, p in params.items()}
        return TwoNetState(params, opt_states, self.env.default_params, k3, jnp.zeros((), jnp.int32))

    def networks(self, state):
        return state.params

    def step(self, state, hparams):
        key, key_episodes = jax.random.split(state.key)
        act = lambda obs, k: (self.actor.apply(state.params["actor"], obs).sample_and_log_prob(k), {})
        batch = collect_episodes(self.venv, act, key_episodes, 1, state.env_params).transitions

        def critic_loss(p):
            q = jnp.take_along_axis(self.critic.apply(p, batch.obs), batch.action[..., None], -1)[..., 0]
            return losses.value_loss(q, batch.reward)[0]

        def actor_loss(p):
            q = self.critic.apply(state.params["critic"], batch.obs)
            probs = jax.nn.softmax(self.actor.apply(p, batch.obs).logits)
            return -(probs * q).sum(-1).mean()

        new_params, new_opt_states, metrics = {}, {}, {}
        for name, loss in (("actor", actor_loss), ("critic", critic_loss)):
            value, grads = jax.value_and_grad(loss)(state.params[name])
            updates, new_opt_states[name] = self.optimizers[name].update(grads, state.opt_states[name])
            new_params[name] = optax.apply_updates(state.params[name], updates)
            metrics[f"{name}_loss"] = value
        metrics.update(episode_return=batch.reward.mean(), env_steps=(state.iteration + 1) * 8,
                       finite=all_finite(new_params))
        return TwoNetState(new_params, new_opt_states, state.env_params, key, state.iteration + 1), metrics


def test_a_state_with_two_networks_and_two_optimizers():
    train = ActorAndCritic()
    out = jaxpg.sweep.run(train, seeds=2)
    jaxpg.check_finite(out)
    names = set(out.metrics)
    assert {"weight_norm/actor/torso/Dense_0/kernel", "weight_norm/critic/kernel",
            "effective_lr/actor/head/Dense_0/kernel", "effective_lr/critic/kernel"} <= names
    critic_loss = np.asarray(out.metrics["critic_loss"])
    assert np.all(critic_loss[:, -5:].mean(-1) < critic_loss[:, :5].mean(-1))  # the critic learns
    # The actor ends up preferring the better action of each state (rewards are in the level).
    rewards = np.asarray(train.env.default_params.rewards)
    probs = jax.nn.softmax(jax.vmap(lambda p: train.actor.apply(p, jnp.eye(3)).logits)(out.params["actor"]))
    best = np.take_along_axis(np.asarray(probs), rewards.argmax(-1)[None, :, None], -1)[..., 0]
    assert np.all(best.mean(-1) > 0.6), best


# ---- one rollout ----------------------------------------------------------------------------------
def test_one_rollout_serves_segments_and_whole_episodes():
    env = jaxpg.envs.make("CartPole-v1")
    venv = VectorEnv(env, 3)
    push_right = lambda obs, key: (ActionSample(jnp.ones(3, jnp.int32), jnp.ones(3, jnp.int32), jnp.zeros(3)),
                                   {"pole_angle": obs[:, 2]})
    state, obs = venv.reset(jax.random.key(0))
    state, last_obs, traj = jax.jit(lambda s, o: rollout(venv, push_right, jax.random.key(1), s, o, 40, None))(state, obs)
    assert traj.obs.shape == (40, 3, 4) and traj.reward.shape == (40, 3)
    np.testing.assert_array_equal(traj.extras["pole_angle"], traj.obs[:, :, 2])
    np.testing.assert_array_equal(traj.obs[1:][~traj.done[:-1]], traj.final_obs[:-1][~traj.done[:-1]])
    ends = np.asarray(traj.done)
    assert ends.any()  # pushing right always drops the pole well within 40 steps
    np.testing.assert_array_equal(traj.episode_return[ends], traj.episode_length[ends])  # reward 1 per step

    episodes = jax.jit(lambda k: collect_episodes(venv, push_right, k, 40, env.default_params))(jax.random.key(2))
    mask = np.asarray(episodes.mask)
    first_end = np.argmax(np.asarray(episodes.transitions.done), axis=0)
    for env_index in range(3):  # real steps up to and including the first end, padding after
        np.testing.assert_array_equal(mask[:, env_index], np.arange(40) <= first_end[env_index])
    np.testing.assert_array_equal(episodes.episode_returns, first_end + 1)


# ---- levels --------------------------------------------------------------------------------------
def test_levels_sampled_per_env_replaced_between_iterations_and_returns_per_level():
    kwargs = dict(env="tabular/random", env_kwargs=(("num_states", 3), ("num_actions", 2), ("horizon", 5)),
                  num_envs=4, num_steps=10, num_minibatches=1, update_epochs=1, hidden_sizes=(8,),
                  total_steps=4 * 40, levels="sampled", per_env_returns=True)
    train = jaxpg.make_train("ppo", **kwargs)
    state = train.init(jax.random.key(0))
    transitions = np.asarray(state.env_params.transitions)
    assert transitions.shape == (4, 3, 2, 3)
    assert not np.allclose(transitions[0], transitions[1])  # one level per env copy

    # A curriculum's loop: train, replace the levels, train on (one compiled run program).
    run = jax.jit(train.run, static_argnames="num_iterations")
    first = run(state, num_iterations=2)
    levels = jax.vmap(train.env.sample_params)(jax.random.split(jax.random.key(9), 4))
    second = run(train.replace_levels(first.state, levels, jax.random.key(9)), num_iterations=2)
    jaxpg.check_finite(second)
    np.testing.assert_array_equal(second.state.env_params.transitions, levels.transitions)
    per_level = np.asarray(second.metrics["episode_return_per_env"])
    assert per_level.shape == (2, 4) and np.all(np.isfinite(per_level))
    # Per-level returns are the mean over the env copies of the overall mean return.
    np.testing.assert_allclose(per_level.mean(-1), second.metrics["episode_return"], rtol=1e-5)
    # Episode-based trainers take levels the same way.
    reinforce = jaxpg.make_train("reinforce", **{k: v for k, v in kwargs.items()
                                                 if k not in ("num_steps", "num_minibatches", "update_epochs")})
    result = jax.jit(reinforce)(jax.random.key(1))
    assert result.metrics["episode_return_per_env"].shape == (reinforce.num_iterations, 4)
    with pytest.raises(ValueError, match="levels='sampled' needs an environment with a level generator"):
        jaxpg.make_train("ppo", env="CartPole-v1", levels="sampled")
    with pytest.raises(ValueError, match="valid choices: default, sampled"):
        jaxpg.make_train("ppo", env="CartPole-v1", levels="random")


def test_replace_levels_restarts_ppo_episodes_on_the_new_levels():
    train = jaxpg.make_train("ppo", env="permuted/CartPole-v1", total_steps=512)
    state = train.init(jax.random.key(0))
    level = train.env.sample_params(jax.random.key(3))
    new = train.replace_levels(state, level, jax.random.key(4))
    inner, obs = jax.vmap(train.env.env.reset_raw, in_axes=(0, None))(
        jax.random.split(jax.random.key(4), train.venv.num_envs), train.env.env.default_params)
    np.testing.assert_allclose(new.obs, np.asarray(obs)[:, np.asarray(level.permutation)], rtol=1e-6)
    assert dataclasses.asdict(new.env_params.inner) == dataclasses.asdict(level.inner)
