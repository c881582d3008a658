"""The MuJoCo Playground (DeepMind Control Suite) adapter under the jaxpg protocol, on CPU.

``mujoco_playground`` is an optional extra (``pip install -e ".[playground]"``): the tests that
build a task skip when it is not importable; the name checks run without it. One cheap task
(CartpoleBalance, MJX ``"jax"`` implementation) is compiled once for the rollout tests.
"""

from __future__ import annotations

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxpg
import jaxpg.envs
from jaxpg import prng
from jaxpg.envs import PLAYGROUND_ENVS, Box, VectorEnv

HAS_PLAYGROUND = importlib.util.find_spec("mujoco_playground") is not None
needs_playground = pytest.mark.skipif(
    not HAS_PLAYGROUND,
    reason='mujoco_playground is not installed (optional extra: pip install -e ".[playground]")',
)

# mujoco-mjx deprecates direct access to some ``Data`` fields that Playground still reads.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Accessing `.*` directly from `Data` is deprecated:DeprecationWarning"
)

TASK = "CartpoleBalance"
NUM_ENVS = 2
NUM_STEPS = 5


def test_names_are_listed_without_importing_playground():
    import subprocess
    import sys

    code = (
        "import sys, jaxpg.envs as e; names = e.list_envs(); "
        "assert 'playground/CartpoleBalance' in names and 'playground/CheetahRun' in names; "
        "assert len(names) == len(set(names)); "
        "assert 'mujoco_playground' not in sys.modules and 'mujoco' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", ["playground/NotATask", "playground/", "playground/cartpole_balance"])
def test_unknown_task_lists_valid_dmc_names(name):
    with pytest.raises(ValueError) as info:
        jaxpg.envs.make(name)
    message = str(info.value)
    assert "\n" not in message
    assert repr(name[len("playground/") :]) in message
    for valid in ("CartpoleBalance", "CheetahRun", "WalkerWalk", "HumanoidRun"):
        assert valid in message


def test_missing_extra_gives_one_line_import_error(monkeypatch):
    """The extra hidden from this process (a None entry in sys.modules makes its import fail, as
    on a machine without it), whether or not it is installed here."""
    import sys

    for name in [m for m in sys.modules if m == "mujoco_playground" or m.startswith("mujoco_playground.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mujoco_playground", None)
    with pytest.raises(ImportError) as info:
        jaxpg.envs.make(f"playground/{TASK}")
    message = str(info.value)
    assert "\n" not in message and 'pip install -e ".[playground]"' in message


@needs_playground
def test_static_names_match_playground():
    """jaxpg spells the DMC suite out (so listing names does not import Playground); keep them equal."""
    from jaxpg.envs.playground_adapter import load_dm_control_suite

    assert PLAYGROUND_ENVS == tuple(load_dm_control_suite().ALL_ENVS)


@pytest.fixture(scope="module")
def env():
    if not HAS_PLAYGROUND:
        pytest.skip('mujoco_playground is not installed (optional extra: pip install -e ".[playground]")')
    return jaxpg.envs.make(f"playground/{TASK}")


@pytest.fixture(scope="module")
def rollout(env):
    """A jitted rollout of ``NUM_STEPS`` random actions in ``NUM_ENVS`` copies; ``params`` is an
    argument, so every time limit runs through the same compiled program."""
    venv = VectorEnv(env, NUM_ENVS)

    @jax.jit
    def run(key, params):
        key_reset, key_steps = jax.random.split(key)
        state, obs = venv.reset(key_reset, params)

        def body(state, key):
            key_action, key_step = jax.random.split(key)
            action = jax.random.uniform(key_action, (NUM_ENVS, *env.action_spec.shape), minval=-1.0, maxval=1.0)
            state, ts = venv.step(key_step, state, action, params)
            return state, ts

        # The step keys re-typed as jaxpg's rollouts re-type them (prng.unrolled) while the reset
        # key is a plain one: Playground keeps its key in the state, and both kinds meet in the
        # auto-reset's select (the adapter hands Playground raw key data).
        _, ts = jax.lax.scan(body, state, jax.random.split(prng.unrolled(key_steps), NUM_STEPS))
        return obs, ts

    return run


@needs_playground
def test_construction_and_specs(env):
    from jaxpg.envs.playground_adapter import PlaygroundEnv, PlaygroundParams

    assert isinstance(env, PlaygroundEnv)
    assert env.name == f"playground/{TASK}" and env.impl == "jax"
    assert env.observation_spec == Box.make(-np.inf, np.inf, (5,))
    assert env.action_spec == Box.make(-1.0, 1.0, (1,))
    assert env.action_spec.bounded and not env.observation_spec.bounded
    assert isinstance(env.default_params, PlaygroundParams)
    assert int(env.default_params.max_steps_in_episode) == 1000  # the DMC convention
    assert len(jax.tree.leaves(env.default_params)) == 1  # a pytree: vmappable per level
    short = jaxpg.envs.make(f"playground/{TASK}", episode_length=3)
    assert int(short.default_params.max_steps_in_episode) == 3
    with pytest.raises(ValueError, match="valid choices: jax, warp"):
        jaxpg.envs.make(f"playground/{TASK}", impl="cuda")
    with pytest.raises(ValueError, match="episode_length must be a positive integer"):
        jaxpg.envs.make(f"playground/{TASK}", episode_length=0)


@needs_playground
def test_reset_and_random_steps(env, rollout):
    obs, ts = rollout(jax.random.key(0), env.default_params)
    assert obs.shape == (NUM_ENVS, 5) and obs.dtype == jnp.float32
    assert ts.obs.shape == (NUM_STEPS, NUM_ENVS, 5) and ts.final_obs.shape == ts.obs.shape
    assert ts.reward.shape == (NUM_STEPS, NUM_ENVS) and ts.reward.dtype == jnp.float32
    assert ts.terminated.dtype == jnp.bool_ and ts.truncated.dtype == jnp.bool_
    for x in (obs, ts.obs, ts.final_obs, ts.reward):
        assert np.all(np.isfinite(np.asarray(x)))
    # CartpoleBalance's dense reward is in [0, 1] and near 1 close to upright; no episode ends in
    # five steps of a 1000-step limit.
    assert np.all((np.asarray(ts.reward) >= 0.0) & (np.asarray(ts.reward) <= 1.0))
    assert not np.any(np.asarray(ts.terminated)) and not np.any(np.asarray(ts.truncated))
    lengths = np.asarray(ts.info["episode_length"])
    np.testing.assert_array_equal(lengths, np.arange(1, NUM_STEPS + 1)[:, None].repeat(NUM_ENVS, 1))
    # the two copies start from different random states
    assert not np.allclose(np.asarray(obs[0]), np.asarray(obs[1]))


@needs_playground
def test_time_limit_truncates_and_auto_resets(env, rollout):
    short = jaxpg.envs.make(f"playground/{TASK}", episode_length=3)
    _, ts = rollout(jax.random.key(1), short.default_params)
    truncated = np.asarray(ts.truncated)
    expected = np.zeros((NUM_STEPS, NUM_ENVS), bool)
    expected[2] = True  # the third step reaches the limit
    np.testing.assert_array_equal(truncated, expected)
    assert not np.any(np.asarray(ts.terminated))
    lengths = np.asarray(ts.info["episode_length"])
    np.testing.assert_array_equal(lengths[:, 0], [1, 2, 3, 1, 2])  # counting restarts after the limit
    # at the truncated step, obs is the next episode's first observation, final_obs the reached one
    assert not np.allclose(np.asarray(ts.obs[2]), np.asarray(ts.final_obs[2]))
    np.testing.assert_array_equal(np.asarray(ts.obs[1]), np.asarray(ts.final_obs[1]))
