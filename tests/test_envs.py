"""The environment protocol on gymnax backends: specs, auto-reset, termination vs truncation.

Every rollout below runs inside one jitted ``lax.scan`` and is checked against facts that do not
come from the code under test: CartPole's reset distribution (U(-0.05, 0.05)^4), its termination
thresholds (12 degrees = 0.2095 rad, |x| = 2.4), its +1 reward per step, and the configured time
limits.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

import jaxpg.envs
from jaxpg.envs import Box, Discrete, Environment, EnvState, TimeStep, VectorEnv

THETA_THRESHOLD = 12 * 2 * np.pi / 360  # 0.2095 rad
X_THRESHOLD = 2.4
RESET_BOUND = 0.05


@functools.lru_cache(maxsize=None)
def _env(name):
    return jaxpg.envs.make(name)


def _make_rollout(venv, num_steps, policy, params=None):
    """``key -> rollout``: a jitted scan of ``num_steps`` vector steps returning the first
    observation, the observation acted on at each step, the per-step TimeSteps and the wrapper's
    running episode stats after each step (all as numpy).

    ``policy(obs) -> action`` is applied to the observation the agent actually sees (``ts.obs``).
    """
    params = venv.default_params if params is None else params

    @jax.jit
    def run(key):
        key_reset, key_steps = jax.random.split(key)
        state, obs = venv.reset(key_reset, params)

        def body(carry, k):
            state, obs = carry
            state, ts = venv.step(k, state, policy(obs), params)
            stats = (state.episode_return, state.episode_length)
            return (state, ts.obs), (obs, ts, stats)

        _, out = jax.lax.scan(body, (state, obs), jax.random.split(key_steps, num_steps))
        return obs, out

    def rollout(key):
        first_obs, (obs_before, ts, (run_return, run_length)) = run(key)
        return jax.tree.map(np.asarray, (first_obs, obs_before, ts, run_return, run_length))

    return rollout


def _rollout(venv, key, num_steps, policy, params=None):
    return _make_rollout(venv, num_steps, policy, params)(key)


def _balance(obs):
    """Push the cart toward the pole's angular velocity: keeps CartPole up for well over 10 steps."""
    return (obs[..., 3] > 0).astype(jnp.int32)


# --------------------------------------------------------------------------------------------
# Registry.


def test_list_envs_has_gymnax_and_brax_names():
    names = jaxpg.envs.list_envs()
    for name in ("CartPole-v1", "Pendulum-v1", "Breakout-MinAtar", "brax/hopper", "brax/ant"):
        assert name in names
    assert len(names) == len(set(names))


def test_gymnax_names_match_gymnax_registry():
    """jaxpg spells gymnax's list out (so importing jaxpg does not import gymnax); keep them equal."""
    import gymnax

    assert jaxpg.envs.GYMNAX_ENVS == tuple(gymnax.registered_envs)


@pytest.mark.parametrize("name", ["CartPol-v1", "hopper", "brax/not_a_robot", "brax/"])
def test_make_unknown_name_lists_valid_names(name):
    with pytest.raises(ValueError) as err:
        jaxpg.envs.make(name)
    message = str(err.value)
    assert repr(name) in message
    assert "CartPole-v1" in message and "brax/hopper" in message


def test_make_non_string_name_raises_type_error():
    with pytest.raises(TypeError, match="string"):
        jaxpg.envs.make(3)


def test_vector_env_rejects_non_positive_size():
    with pytest.raises(ValueError, match="num_envs"):
        VectorEnv(_env("CartPole-v1"), 0)


# --------------------------------------------------------------------------------------------
# Specs and the single-step protocol.


def test_cartpole_specs():
    env = _env("CartPole-v1")
    assert env.action_spec == Discrete(2)
    assert isinstance(env.observation_spec, Box)
    assert env.observation_spec.shape == (4,)
    np.testing.assert_allclose(env.observation_spec.high[[0, 2]], [2 * X_THRESHOLD, 2 * THETA_THRESHOLD], rtol=1e-6)


def test_pendulum_action_spec():
    spec = _env("Pendulum-v1").action_spec
    assert isinstance(spec, Box) and spec.bounded
    assert spec.shape == (1,)
    np.testing.assert_array_equal(spec.low, [-2.0])
    np.testing.assert_array_equal(spec.high, [2.0])
    assert spec == Box.make(-2.0, 2.0, (1,))
    assert spec != Box.make(-1.0, 1.0, (1,))


def test_minatar_breakout_obs_is_float32_grid():
    env = _env("Breakout-MinAtar")
    assert env.observation_spec.shape == (10, 10, 4)
    state, obs = jax.jit(env.reset)(jax.random.PRNGKey(0))
    assert obs.shape == (10, 10, 4) and obs.dtype == jnp.float32
    _, ts = jax.jit(env.step)(jax.random.PRNGKey(1), state, jnp.int32(1))
    for x in (ts.obs, ts.final_obs):
        assert x.shape == (10, 10, 4) and x.dtype == jnp.float32
        # Boolean channels cast to {0, 1}.
        assert set(np.unique(np.asarray(x))) <= {0.0, 1.0}
    assert np.asarray(obs).sum() > 0  # paddle, ball and bricks are drawn


def test_cartpole_single_step_protocol():
    env = _env("CartPole-v1")
    state, obs = env.reset(jax.random.PRNGKey(0))
    assert isinstance(state, EnvState)
    assert obs.shape == (4,) and obs.dtype == jnp.float32
    assert np.all(np.abs(obs) <= RESET_BOUND)
    assert int(state.episode_length) == 0 and float(state.episode_return) == 0.0
    state, ts = env.step(jax.random.PRNGKey(1), state, jnp.int32(1))
    assert isinstance(ts, TimeStep)
    assert ts.obs.dtype == jnp.float32 and ts.final_obs.dtype == jnp.float32
    assert ts.reward.dtype == jnp.float32 and ts.reward.shape == ()
    assert ts.terminated.dtype == jnp.bool_ and ts.truncated.dtype == jnp.bool_
    assert not bool(ts.done)
    # Not done: the agent sees the state the transition reached.
    np.testing.assert_array_equal(ts.obs, ts.final_obs)
    # Euler step with force +10: x' = x + tau * x_dot, x_dot grows.
    np.testing.assert_allclose(ts.obs[0], obs[0] + 0.02 * obs[1], rtol=1e-6)
    assert float(ts.obs[1]) > float(obs[1])
    assert float(ts.reward) == 1.0
    assert int(ts.info["episode_length"]) == 1 and float(ts.info["episode_return"]) == 1.0
    assert int(state.episode_length) == 1


# --------------------------------------------------------------------------------------------
# Auto-reset on termination.


def test_cartpole_constant_action_terminates_and_auto_resets():
    num_envs, num_steps = 4, 40
    venv = VectorEnv(_env("CartPole-v1"), num_envs)
    first_obs, obs_before, ts, run_return, run_length = _rollout(
        venv, jax.random.PRNGKey(42), num_steps, lambda obs: jnp.ones(obs.shape[:1], jnp.int32)
    )
    assert ts.obs.shape == (num_steps, num_envs, 4)
    assert not ts.truncated.any()  # 40 steps is far below the 500-step limit
    np.testing.assert_array_equal(ts.reward, 1.0)

    for b in range(num_envs):
        ends = np.flatnonzero(ts.terminated[:, b])
        assert len(ends) >= 2, "always pushing right must topple the pole within 20 steps"
        starts = np.concatenate([[0], ends[:-1] + 1])
        for start, end in zip(starts, ends):
            length = end - start + 1
            assert 5 <= length <= 20
            assert int(ts.info["episode_length"][end, b]) == length
            np.testing.assert_allclose(ts.info["episode_return"][end, b], ts.reward[start : end + 1, b].sum())
            # The transition really reached a failure state ...
            final = ts.final_obs[end, b]
            assert abs(final[2]) > THETA_THRESHOLD or abs(final[0]) > X_THRESHOLD
            # ... and it is the continuation of the previous observation (cart moved by tau*x_dot).
            np.testing.assert_allclose(final[0], obs_before[end, b, 0] + 0.02 * obs_before[end, b, 1], rtol=1e-5)
            # While the agent already sees a fresh reset observation.
            assert np.all(np.abs(ts.obs[end, b]) <= RESET_BOUND)
            assert not np.allclose(ts.obs[end, b], final)
            # The running stats of the wrapper were cleared.
            assert run_length[end, b] == 0 and run_return[end, b] == 0.0
            # Non-final steps of the episode: no reset, counters increase by one.
            mid = np.arange(start, end)
            np.testing.assert_array_equal(ts.obs[mid, b], ts.final_obs[mid, b])
            np.testing.assert_array_equal(ts.info["episode_length"][mid, b], mid - start + 1)
            np.testing.assert_array_equal(run_length[mid, b], mid - start + 1)
        # The next episode starts from the reset observation shown at the end step.
        np.testing.assert_array_equal(obs_before[ends[0] + 1, b], ts.obs[ends[0], b])
    # The copies start from different resets.
    assert len({tuple(o) for o in first_obs}) == num_envs


# --------------------------------------------------------------------------------------------
# Truncation is kept apart from termination.


def test_cartpole_time_limit_truncates_not_terminates():
    env = _env("CartPole-v1")
    params = env.default_params.replace(max_steps_in_episode=10)
    venv = VectorEnv(env, 3)
    _, obs_before, ts, run_return, run_length = _rollout(venv, jax.random.PRNGKey(0), 25, _balance, params)
    assert not ts.terminated.any()
    expected_trunc = np.zeros((25, 3), bool)
    expected_trunc[[9, 19]] = True
    np.testing.assert_array_equal(ts.truncated, expected_trunc)
    np.testing.assert_array_equal(ts.info["episode_length"][[9, 19]], 10)
    np.testing.assert_allclose(ts.info["episode_return"][[9, 19]], 10.0)
    np.testing.assert_array_equal(run_length[[9, 19]], 0)
    # The pole is still up in the final observation (so bootstrapping from it is meaningful) ...
    final = ts.final_obs[[9, 19]]
    assert np.all(np.abs(final[..., 2]) < THETA_THRESHOLD) and np.all(np.abs(final[..., 0]) < X_THRESHOLD)
    # ... and it continues the trajectory, while ts.obs is a new reset.
    np.testing.assert_allclose(final[..., 0], obs_before[[9, 19], :, 0] + 0.02 * obs_before[[9, 19], :, 1], rtol=1e-5)
    assert np.all(np.abs(ts.obs[[9, 19]]) <= RESET_BOUND)
    assert not np.allclose(ts.obs[[9, 19]], final)


def test_pendulum_truncates_at_200_and_never_terminates():
    venv = VectorEnv(_env("Pendulum-v1"), 2)
    _, _, ts, _, _ = _rollout(venv, jax.random.PRNGKey(3), 450, lambda obs: jnp.zeros(obs.shape[:1] + (1,)))
    assert not ts.terminated.any()
    np.testing.assert_array_equal(np.flatnonzero(ts.truncated[:, 0]), [199, 399])
    np.testing.assert_array_equal(ts.truncated[:, 0], ts.truncated[:, 1])
    np.testing.assert_array_equal(ts.info["episode_length"][[199, 399]], 200)
    np.testing.assert_allclose(ts.info["episode_return"][199], ts.reward[:200].sum(0), rtol=1e-5)
    np.testing.assert_allclose(ts.info["episode_return"][399], ts.reward[200:400].sum(0), rtol=1e-5)
    assert np.all(ts.reward <= 0.0)  # Pendulum's cost is non-negative


def test_per_env_params_truncate_each_copy_at_its_own_limit():
    env = _env("CartPole-v1")
    params = jax.tree.map(lambda x: jnp.stack([jnp.asarray(x)] * 2), env.default_params)
    params = params.replace(max_steps_in_episode=jnp.array([5, 8]))
    venv = VectorEnv(env, 2, batched_params=True)
    _, _, ts, _, _ = _rollout(venv, jax.random.PRNGKey(7), 17, _balance, params)
    assert not ts.terminated.any()
    np.testing.assert_array_equal(np.flatnonzero(ts.truncated[:, 0]), [4, 9, 14])
    np.testing.assert_array_equal(np.flatnonzero(ts.truncated[:, 1]), [7, 15])
    np.testing.assert_array_equal(ts.info["episode_length"][[4, 9, 14], 0], 5)
    np.testing.assert_array_equal(ts.info["episode_length"][[7, 15], 1], 8)


def test_termination_wins_over_truncation_on_the_last_step():
    """A toy backend whose episode hits its absorbing state exactly on the time limit."""

    @struct.dataclass
    class Params:
        max_steps_in_episode: int = 3

    class Counter(Environment):
        name = "counter"
        observation_spec = Box.make(-np.inf, np.inf, (1,))
        action_spec = Discrete(2)
        default_params = Params()

        def reset_raw(self, key, params):
            return jnp.int32(0), jnp.zeros((1,))

        def step_raw(self, key, state, action, params):
            t = state + 1
            terminated = t >= 3 + action  # action 0: absorbing at the limit; action 1: one step later
            truncated = t >= params.max_steps_in_episode
            return t, t.astype(jnp.float32)[None], jnp.float32(t), terminated, truncated

    env = Counter()
    for action, (term, trunc) in [(0, (True, False)), (1, (False, True))]:
        state, _ = env.reset(jax.random.PRNGKey(0))
        for _ in range(3):
            state, ts = env.step(jax.random.PRNGKey(0), state, jnp.int32(action))
        assert (bool(ts.terminated), bool(ts.truncated)) == (term, trunc)
        np.testing.assert_array_equal(ts.final_obs, [3.0])
        np.testing.assert_array_equal(ts.obs, [0.0])
        assert float(ts.info["episode_return"]) == 1.0 + 2.0 + 3.0
        assert int(ts.info["episode_length"]) == 3
        assert int(state.inner) == 0 and int(state.episode_length) == 0


# --------------------------------------------------------------------------------------------
# Reproducibility.


def test_same_key_same_trajectory_different_key_differs():
    venv = VectorEnv(_env("CartPole-v1"), 2)
    rollout = _make_rollout(venv, 12, _balance)
    a = rollout(jax.random.PRNGKey(11))
    b = rollout(jax.random.PRNGKey(11))
    c = rollout(jax.random.PRNGKey(12))
    chex.assert_trees_all_equal(a, b)
    assert not np.allclose(a[2].final_obs, c[2].final_obs)
    assert not np.allclose(a[0], c[0])


def test_permuted_observations_are_a_params_level_task():
    env = jaxpg.envs.make("permuted/CartPole-v1")
    key = jax.random.key(0)
    params = env.sample_params(jax.random.key(3))
    perm = np.asarray(params.permutation)
    assert sorted(perm.tolist()) == [0, 1, 2, 3]
    _, obs = env.reset(key, params)
    _, inner_obs = env.env.reset(key)
    np.testing.assert_allclose(obs, np.asarray(inner_obs)[perm])
    state, ts = env.step(jax.random.key(1), env.reset(key, params)[0], jnp.int32(1), params)
    _, inner_ts = env.env.step(jax.random.key(1), env.env.reset(key)[0], jnp.int32(1))
    np.testing.assert_allclose(ts.obs, np.asarray(inner_ts.obs)[perm])
    assert float(ts.reward) == float(inner_ts.reward)
    # One permutation per copy, vmapped like seeds.
    batched = jax.vmap(env.sample_params)(jax.random.split(jax.random.key(5), 3))
    _, obs = VectorEnv(env, 3, batched_params=True).reset(key, batched)
    assert obs.shape == (3, 4)


def test_evaluation_acts_on_the_level_stored_in_the_state():
    """A hand-set linear controller (push right when theta + theta_dot / 2 > 0, a known
    CartPole balancer) written for permutation P: evaluated on the permuted env with P in the
    state's env params, every episode lasts exactly the 500-step time limit; with the identity
    permutation in the state the same weights read the wrong coordinates and fall within ~10 steps."""
    import jaxpg

    train = jaxpg.make_train("ppo", env="permuted/CartPole-v1", total_steps=512, hidden_sizes=())
    state = train.init(jax.random.key(0))
    perm = jnp.array([2, 0, 3, 1], jnp.int32)  # reported coordinate j is CartPole coordinate perm[j]
    gains = jnp.array([0.0, 0.0, 1.0, 0.5])  # on (x, x_dot, theta, theta_dot)
    params = jax.tree.map(lambda x: x, state.params)
    params["params"]["head"]["Dense_0"] = {"kernel": jnp.zeros((4, 2)).at[:, 1].set(gains[perm]), "bias": jnp.zeros(2)}

    def returns(permutation):
        level = state.env_params.replace(permutation=permutation)
        result = jaxpg.Result(params=params, metrics={}, state=state.replace(params=params, env_params=level),
                              algo="ppo", config=train.config)
        return np.asarray(jaxpg.evaluate(result, jax.random.key(1), num_episodes=5))

    np.testing.assert_array_equal(returns(perm), 500.0)
    assert np.all(returns(jnp.arange(4, dtype=jnp.int32)) < 50)


def test_multigoal_dynamics_rewards_and_goal_termination():
    from jaxpg.envs.multigoal import MultiGoalState, goal_reached, mode_rollout_goals

    env = jaxpg.envs.make("multigoal")
    p = env.default_params
    assert env.action_spec.shape == (2,) and env.observation_spec.shape == (2,)
    start = MultiGoalState(jnp.array([4.0, 0.0]), jnp.zeros((), jnp.int32))
    # One step right reaches goal 0 at (5, 0): bonus, terminated, and the episode auto-resets near 0.
    state, ts = env.step(jax.random.key(0), env.reset(jax.random.key(1))[0].replace(inner=start), jnp.array([1.0, 0.0]))
    np.testing.assert_allclose(ts.final_obs, [5.0, 0.0])
    np.testing.assert_allclose(ts.reward, 10.0 - 0.0)
    assert bool(ts.terminated) and not bool(ts.truncated)
    assert float(jnp.abs(ts.obs).max()) <= 0.1
    # Away from the goals: -0.1 x distance to the nearest; actions are clipped to [-1, 1].
    inner, obs, reward, terminated, truncated = env.step_raw(jax.random.key(0), start, jnp.array([-3.0, 0.5]), p)
    np.testing.assert_allclose(obs, [3.0, 0.5])
    np.testing.assert_allclose(reward, -0.1 * np.hypot(2.0, 0.5), rtol=1e-6)
    assert not bool(terminated) and not bool(truncated)
    # The walls hold the point in [-7, 7]^2; the horizon truncates.
    edge = MultiGoalState(jnp.array([6.8, -6.9]), jnp.asarray(29, jnp.int32))
    inner, obs, _, terminated, truncated = env.step_raw(jax.random.key(0), edge, jnp.array([1.0, -1.0]), p)
    np.testing.assert_allclose(obs, [7.0, -7.0])
    assert bool(truncated) and not bool(terminated)
    np.testing.assert_array_equal(goal_reached(jnp.array([[0.0, -4.6], [0.0, -4.4], [-5.2, 0.1]]), p), [3, -1, 2])
    # A controller heading up reaches goal 1; one that stays put reaches none.
    assert int(mode_rollout_goals(lambda o: jnp.array([0.0, 1.0]))) == 1
    assert int(mode_rollout_goals(lambda o: jnp.zeros(2))) == -1
    with pytest.raises(ValueError, match="valid choices: goals"):
        jaxpg.envs.make("multigoal", goal_radii=1.0)
