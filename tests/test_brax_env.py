"""The brax adapter under the jaxpg environment protocol (auto-reset, truncation, batched params).

Tests that compile a brax physics pipeline are marked ``slow`` (each compile takes seconds on CPU).
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxpg.envs
from jaxpg.envs import Box, VectorEnv

# brax is a hard dependency: a broken install must fail here, not skip.
from jaxpg.envs.brax_adapter import DEFAULT_BACKENDS, BraxEnv, BraxParams, BraxState

# brax 0.14.2 reads mjx ``Data`` fields that mujoco-mjx has deprecated; not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Accessing `.*` directly from `Data` is deprecated:DeprecationWarning"
)

ROLLOUT_ENVS = ("inverted_pendulum", "hopper", "walker2d", "halfcheetah", "ant")
EXECUTED = ("inverted_pendulum", "hopper")  # the generalized and the spring pipeline, compiled and run
NUM_ENVS = 2
NUM_STEPS = 5
# (observation size, action size) of the raw brax environments.
SIZES = {
    "inverted_pendulum": (4, 1),
    "inverted_double_pendulum": (8, 1),
    "hopper": (11, 3),
    "walker2d": (17, 6),
    "halfcheetah": (17, 6),
    "ant": (27, 8),
}


@pytest.mark.parametrize("name", ROLLOUT_ENVS + ("inverted_double_pendulum",))
def test_construction_and_specs(name):
    env = jaxpg.envs.make(f"brax/{name}")
    assert isinstance(env, BraxEnv)
    assert env.name == f"brax/{name}"
    assert env.backend == DEFAULT_BACKENDS[name]
    obs_size, action_size = SIZES[name]
    assert env.observation_spec == Box.make(-np.inf, np.inf, (obs_size,))
    assert env.action_spec == Box.make(-1.0, 1.0, (action_size,))
    assert env.brax_env.action_size == action_size
    assert env.action_spec.bounded and not env.observation_spec.bounded
    assert isinstance(env.default_params, BraxParams)
    assert int(env.default_params.max_steps_in_episode) == 1000
    assert len(jax.tree.leaves(env.default_params)) == 1  # a pytree: vmappable per level


def test_episode_length_and_backend_kwargs():
    env = jaxpg.envs.make("brax/hopper", backend="generalized", episode_length=7)
    assert env.backend == "generalized"
    assert int(env.default_params.max_steps_in_episode) == 7


def test_horizon_is_known_while_tracing():
    """``evaluate`` under ``jax.jit`` builds the environment inside the trace: the horizon must
    come from the Python-level time limit, not from (then traced) params."""
    from jaxpg.algos import common
    from jaxpg.algos.ppo import PPOConfig

    config = PPOConfig(env="brax/inverted_pendulum")
    traced = jax.jit(lambda x: x + common.resolve_horizon(config, jaxpg.envs.make("brax/inverted_pendulum", episode_length=77)))
    assert int(traced(0)) == 77


def test_unknown_backend_raises_with_valid_names():
    with pytest.raises(ValueError) as info:
        jaxpg.envs.make("brax/hopper", backend="warp")
    message = str(info.value)
    assert "\n" not in message and "'warp'" in message
    for valid in ("generalized", "positional", "spring", "mjx"):
        assert valid in message


def test_unknown_brax_env_raises():
    with pytest.raises(ValueError, match="valid choices"):
        BraxEnv("no_such_env")


def test_maintenance_warning_is_silenced():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        jaxpg.envs.make("brax/inverted_pendulum")
    assert not [w for w in caught if "not actively being" in str(w.message)]


def _signature(tree):
    return jax.tree.map(lambda x: (x.shape, x.dtype, x.weak_type), tree)


@pytest.mark.slow
@pytest.mark.parametrize("name", ROLLOUT_ENVS)
def test_vector_rollout_random_actions(name):
    env = jaxpg.envs.make(f"brax/{name}")
    # reset_raw and step_raw states agree leaf for leaf (structure, shape, dtype, weak type), as
    # the base class's tree_select(done, reset_state, stepped_state) and lax.scan carries need.
    key, params = jax.random.PRNGKey(0), env.default_params
    reset_state, _ = jax.eval_shape(env.reset_raw, key, params)
    zero_action = jnp.zeros(env.action_spec.shape)
    step_state = jax.eval_shape(lambda s: env.step_raw(key, s, zero_action, params)[0], reset_state)
    assert jax.tree.structure(reset_state) == jax.tree.structure(step_state)
    assert _signature(reset_state) == _signature(step_state)

    venv = VectorEnv(env, NUM_ENVS)
    (obs_size,) = env.observation_spec.shape
    action_shape = (NUM_ENVS,) + env.action_spec.shape

    def rollout(key):
        key_reset, key_run = jax.random.split(key)
        state, obs = venv.reset(key_reset)

        def body(state, key):
            key_action, key_step = jax.random.split(key)
            action = jax.random.uniform(key_action, action_shape, minval=-1.0, maxval=1.0)
            return venv.step(key_step, state, action)

        state, traj = jax.lax.scan(body, state, jax.random.split(key_run, NUM_STEPS))
        return obs, state, traj

    if name in EXECUTED:
        obs, state, traj = jax.jit(rollout)(jax.random.PRNGKey(0))
    else:
        # Traced through the same adapter and physics code but not compiled (each brax pipeline
        # costs 15-20 s of XLA compilation on 2 cores); EXECUTED covers both CPU backends.
        obs, state, traj = jax.eval_shape(rollout, jax.random.PRNGKey(0))
    assert obs.shape == (NUM_ENVS, obs_size) and obs.dtype == jnp.float32
    assert traj.obs.shape == (NUM_STEPS, NUM_ENVS, obs_size) and traj.obs.dtype == jnp.float32
    assert traj.final_obs.shape == traj.obs.shape and traj.final_obs.dtype == jnp.float32
    assert traj.reward.shape == (NUM_STEPS, NUM_ENVS) and traj.reward.dtype == jnp.float32
    assert traj.terminated.dtype == jnp.bool_ and traj.truncated.dtype == jnp.bool_
    assert isinstance(state.inner, BraxState)
    if name not in EXECUTED:
        return
    for array in (obs, traj.obs, traj.final_obs, traj.reward):
        assert np.all(np.isfinite(np.asarray(array)))
    np.testing.assert_array_equal(state.inner.time, state.episode_length)
    # The two copies got different reset keys.
    assert not np.allclose(obs[0], obs[1])


@pytest.fixture(scope="module")
def pendulum():
    """inverted_pendulum and one jitted single-env rollout, compiled once for several tests.

    ``rollout(key, params, action)`` runs ``HORIZON`` steps with a constant action; ``params`` is a
    traced argument, so different time limits reuse the same compilation.
    """
    env = jaxpg.envs.make("brax/inverted_pendulum")

    @jax.jit
    def rollout(key, params, action):
        key_reset, key_run = jax.random.split(key)
        state, obs = env.reset(key_reset, params)

        def body(state, key):
            return env.step(key, state, action, params)

        _, traj = jax.lax.scan(body, state, jax.random.split(key_run, HORIZON))
        return obs, traj

    return env, rollout


HORIZON = 200


@pytest.mark.slow
def test_truncation_then_auto_reset(pendulum):
    env, rollout = pendulum
    params = BraxParams(max_steps_in_episode=jnp.asarray(5, jnp.int32))
    _, traj = rollout(jax.random.PRNGKey(1), params, jnp.zeros(env.action_spec.shape))
    truncated, terminated = np.asarray(traj.truncated), np.asarray(traj.terminated)
    assert not terminated[:12].any()  # the pole does not fall in 5 steps without a push
    np.testing.assert_array_equal(np.flatnonzero(truncated[:12]), [4, 9])
    lengths = np.asarray(traj.info["episode_length"])
    np.testing.assert_array_equal(lengths[:6], [1, 2, 3, 4, 5, 1])
    obs, final_obs = np.asarray(traj.obs), np.asarray(traj.final_obs)
    # At the time limit obs is the next episode's first observation, final_obs the one reached.
    assert not np.allclose(obs[4], final_obs[4])
    # Elsewhere they coincide, and the new episode continues from the reset observation.
    np.testing.assert_array_equal(obs[:4], final_obs[:4])
    assert np.all(np.abs(obs[4]) <= 0.011)  # brax resets within +-0.01 of upright/at rest
    np.testing.assert_allclose(np.asarray(traj.info["episode_return"])[4], 5.0)


@pytest.mark.slow
def test_termination_from_constant_push(pendulum):
    env, rollout = pendulum
    _, traj = rollout(jax.random.PRNGKey(2), env.default_params, jnp.ones(env.action_spec.shape))
    terminated, truncated = np.asarray(traj.terminated), np.asarray(traj.truncated)
    assert terminated.any(), "a constant full push must tip the pole over"
    first = int(np.argmax(terminated))
    assert first < HORIZON - 1
    assert not truncated[: first + 1].any()
    assert int(traj.info["episode_length"][first]) == first + 1
    assert abs(float(traj.final_obs[first, 1])) > 0.2  # brax's done: |pole angle| > 0.2
    # Auto-reset after termination: the next episode starts at length 1.
    assert int(traj.info["episode_length"][first + 1]) == 1


@pytest.mark.slow
def test_batched_params_truncate_each_copy_at_its_own_limit():
    env = jaxpg.envs.make("brax/inverted_pendulum")
    venv = VectorEnv(env, 2, batched_params=True)
    params = BraxParams(max_steps_in_episode=jnp.asarray([3, 6], jnp.int32))

    @jax.jit
    def rollout(key, params):
        key_reset, key_run = jax.random.split(key)
        state, _ = venv.reset(key_reset, params)
        action = jnp.zeros((2,) + env.action_spec.shape)

        def body(state, key):
            return venv.step(key, state, action, params)

        _, traj = jax.lax.scan(body, state, jax.random.split(key_run, 7))
        return traj

    traj = rollout(jax.random.PRNGKey(3), params)
    assert not np.asarray(traj.terminated).any()
    truncated = np.asarray(traj.truncated)
    np.testing.assert_array_equal(np.flatnonzero(truncated[:, 0]), [2, 5])
    np.testing.assert_array_equal(np.flatnonzero(truncated[:, 1]), [5])
    lengths = np.asarray(traj.info["episode_length"])
    np.testing.assert_array_equal(lengths[:, 0], [1, 2, 3, 1, 2, 3, 1])
    np.testing.assert_array_equal(lengths[:, 1], [1, 2, 3, 4, 5, 6, 1])
