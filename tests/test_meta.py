"""LPG (Oh et al. 2020): the agent update a rule defines follows the policy gradient when the
rule's policy target is the return (checked against the exact gradient of a tabular MDP), the
LPG network's backward recurrence resets at episode ends, and the meta-gradient through K agent
updates matches finite differences."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxpg import meta
from jaxpg.algos.trainer import compiler_options
from jaxpg.envs import VectorEnv, make
from jaxpg.envs.tabular import exact_return


def returns_to_go(inputs: meta.RuleInputs):
    """A hand-made rule: pi_hat = the episode's undiscounted return from t on; y_hat = y (no change)."""
    def back(g, x):
        r, d = x
        g = r + (1.0 - d) * g
        return g, g

    _, g = jax.lax.scan(back, jnp.zeros(inputs.reward.shape[1:]), (inputs.reward, inputs.done.astype(jnp.float32)),
                        reverse=True)
    return g, inputs.y


def test_a_rule_whose_policy_target_is_the_return_follows_the_exact_policy_gradient():
    env = make("tabular/random", num_states=3, num_actions=2, horizon=4)
    level = env.sample_params(jax.random.key(3))
    venv = VectorEnv(env, 2048)
    agent = meta.LPGAgent(num_actions=2, prediction_dim=4)
    params = agent.init(jax.random.key(0), jnp.zeros(3))
    # A non-uniform tabular policy to start from.
    params["params"]["policy"]["kernel"] = jnp.array([[0.5, -0.5], [-1.0, 0.3], [0.2, 0.8]])
    env_state, obs = venv.reset(jax.random.key(1), level)
    state = meta.AgentState(params=params, opt_state=None, env_state=env_state, obs=obs, updates=jnp.int32(0))
    _, traj = meta.collect(venv, agent, state, jax.random.key(2), 8, level)  # two whole episodes per copy

    def estimated_direction(rule):
        pi_hat, y_hat = rule(meta.rule_inputs(agent, params, traj, 1.0))
        grads = jax.grad(lambda p: meta.agent_loss(p, agent, traj, pi_hat, y_hat, 0.5)[0])(params)
        return -grads["params"]["policy"]["kernel"]  # the descent direction of L_agent

    def exact(kernel):
        return exact_return(level, jax.nn.softmax(kernel, axis=-1), 1.0, 4)

    true = jax.grad(exact)(params["params"]["policy"]["kernel"])
    cosine = lambda a, b: float(jnp.vdot(a, b) / (jnp.linalg.norm(a) * jnp.linalg.norm(b)))  # noqa: E731
    follows = cosine(estimated_direction(returns_to_go), true)
    flipped = cosine(estimated_direction(lambda i: (-returns_to_go(i)[0], i.y)), true)
    assert follows > 0.9, follows
    assert flipped < -0.9, flipped
    # With y_hat = y the prediction term sends no gradient.
    pi_hat, _ = returns_to_go(meta.rule_inputs(agent, params, traj, 1.0))
    inputs = meta.rule_inputs(agent, params, traj, 1.0)
    grads = jax.grad(lambda p: meta.agent_loss(p, agent, traj, pi_hat, inputs.y, 0.5)[0])(params)
    np.testing.assert_allclose(grads["params"]["prediction"]["kernel"], 0.0, atol=1e-7)


def test_the_lpg_network_runs_backward_and_resets_at_episode_ends():
    net = meta.LPGNetwork(prediction_dim=3, hidden_size=8)
    T, N = 6, 2
    key = jax.random.key(0)
    y = jax.nn.softmax(jax.random.normal(key, (T, N, 3)))
    done = jnp.zeros((T, N), bool).at[2, :].set(True)
    inputs = meta.RuleInputs(reward=jax.random.normal(jax.random.key(1), (T, N)), done=done, gamma=jnp.float32(0.99),
                             pi_taken=jnp.full((T, N), 0.5), y=y, y_next=y)
    eta = net.init(jax.random.key(2), inputs)
    pi_hat, y_hat = net.apply(eta, inputs)
    assert pi_hat.shape == (T, N) and y_hat.shape == (T, N, 3)
    np.testing.assert_allclose(y_hat.sum(-1), 1.0, rtol=1e-6)
    # Changing a reward after the episode end at t = 2 leaves steps 0..2 unchanged (reset), and
    # changes the steps at and before it within its own episode (backward in time).
    later = inputs.replace(reward=inputs.reward.at[4, :].add(1.0))
    pi_later, _ = net.apply(eta, later)
    np.testing.assert_allclose(pi_later[:3], pi_hat[:3], rtol=1e-6)
    assert not np.allclose(pi_later[3:5], pi_hat[3:5]) and np.allclose(pi_later[5], pi_hat[5])


def test_the_meta_gradient_through_k_agent_updates_matches_finite_differences():
    with jax.enable_x64(True):
        env = make("gridworld/small")
        venv = VectorEnv(env, 3)
        agent = meta.LPGAgent(num_actions=5, prediction_dim=3)
        net = meta.LPGNetwork(prediction_dim=3, hidden_size=8, embed_size=4)
        to64 = lambda tree: jax.tree.map(lambda x: x.astype(jnp.float64), tree)  # noqa: E731
        params = to64(agent.init(jax.random.key(0), jnp.zeros(env.observation_spec.shape)))
        level = env.default_params
        env_state, obs = venv.reset(jax.random.key(1), level)
        tx = meta.tabular_optimizer(policy_lr=4.0, prediction_lr=1.0, value_lr=1.0, max_grad_norm=100.0)
        state = meta.AgentState(params=params, opt_state=tx.init(params), env_state=env_state, obs=obs,
                                updates=jnp.int32(0))
        dummy = meta.rule_inputs(agent, params, meta.collect(venv, agent, state, jax.random.key(9), 5, level)[1], 0.99)
        eta = to64(net.init(jax.random.key(3), dummy))

        def objective(eta):
            return meta.meta_loss(eta, net.apply, state, jax.random.key(4), venv=venv, agent=agent, tx=tx,
                                  env_params=level, num_updates=2, num_steps=6, hparams=meta.LPGHParams())[0]

        # One compiled program: its value output at eta +- step * direction gives the differences.
        value_and_grad = jax.jit(jax.value_and_grad(objective))
        value, grad = value_and_grad(eta)
        direction = jax.tree.map(lambda x: jax.random.normal(jax.random.key(x.size), x.shape, x.dtype), eta)
        along = sum(jnp.vdot(g, d) for g, d in zip(jax.tree.leaves(grad), jax.tree.leaves(direction)))
        step = 1e-5
        shifted = lambda s: value_and_grad(jax.tree.map(lambda e, d: e + s * d, eta, direction))[0]  # noqa: E731
        finite = (shifted(step) - shifted(-step)) / (2 * step)
        assert np.isfinite(float(value)) and abs(float(along)) > 1e-6
        # Measured: relative difference 2.6e-4 (the environment's float32 observations and rewards
        # bound the agreement); a gradient that skipped the K updates would differ at order 1.
        np.testing.assert_allclose(float(along), float(finite), rtol=1e-3)


def test_algorithmic_regret_of_the_oracle_against_itself_is_zero_up_to_noise(monkeypatch):
    """GROOVE's level score. Over 24 generated levels ("small"), A2C against an independent A2C run
    has mean regret 0 within 3 standard errors; a learner that never changes its uniform policy
    (the rule's targets are zero) has positive mean regret (A2C learns something on these levels).
    Measured: itself 0.003 +- 0.23 (sd over levels), against the frozen learner 0.72 +- 0.62."""
    env = make("gridworld/small")
    venv = VectorEnv(env, 8)
    agent = meta.LPGAgent(num_actions=5, prediction_dim=4)
    tx = meta.tabular_optimizer()
    levels = jax.vmap(env.sample_params)(jax.random.split(jax.random.key(0), 24))
    frozen = meta.rule_update(lambda i: (jnp.zeros_like(i.reward), i.y), agent, tx)
    oracle = meta.oracle_update(agent, tx)

    def regrets(level, key):
        run = lambda learner: meta.algorithmic_regret(learner, venv, agent, tx, level, key, lifetime=40,  # noqa: E731
                                                      num_steps=20, horizon=100)[0]
        return run(oracle), run(frozen)

    # Run time dominates (24 levels x 2 learners x 40 updates): jaxpg's XLA options, not the
    # suite's level 0 (measured here: 8.5 s compile + 15.5 s run -> 11.4 s + 2.0 s).
    monkeypatch.setenv("XLA_FLAGS", "")
    regrets = jax.jit(jax.vmap(regrets), compiler_options=compiler_options())
    itself, against_frozen = regrets(levels, jax.random.split(jax.random.key(1), 24))
    itself, against_frozen = np.asarray(itself), np.asarray(against_frozen)
    assert abs(itself.mean()) < 3 * itself.std() / np.sqrt(24) + 1e-6, itself
    assert against_frozen.mean() > 3 * against_frozen.std() / np.sqrt(24), against_frozen
