"""The LPG/GROOVE grid-world: dynamics on hand-built levels (walls block, collection, termination,
respawn with its probability, random respawn only onto free cells, truncation), observations,
and the level generators (valid, vmappable)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxpg
from jaxpg.envs import make
from jaxpg.envs.gridworld import LEVELS, LPG_LEVELS, GridLevel, GridState, render

UP, DOWN, LEFT, RIGHT, STAY = range(5)


def hand_level(size=3, walls=(), start=0, objects=((1, 0),), reward=(1.0,), terminate=(0.0,), respawn=(0.0,),
               random_respawn=False, max_steps=100, env="gridworld/dense"):
    """A level of ``env``'s static shapes: ``objects`` are (cell, type) pairs."""
    grid = make(env)
    cells = grid.max_size ** 2
    kinds = [t for _, t in objects] + [-1] * (grid.max_objects - len(objects))
    where = [c for c, _ in objects] + [0] * (grid.max_objects - len(objects))
    pad = lambda v: jnp.asarray(list(v) + [0.0] * (grid.max_types - len(v)), jnp.float32)  # noqa: E731
    level = GridLevel(size=jnp.int32(size), walls=jnp.zeros(cells, bool).at[jnp.asarray(walls, jnp.int32)].set(True)
                      if walls else jnp.zeros(cells, bool), start=jnp.int32(start),
                      object_type=jnp.asarray(kinds, jnp.int32), object_cell=jnp.asarray(where, jnp.int32),
                      type_reward=pad(reward), type_terminate=pad(terminate), type_respawn=pad(respawn),
                      random_respawn=jnp.asarray(random_respawn),
                      max_steps_in_episode=jnp.int32(max_steps))
    return grid, level


def test_walls_and_edges_block_moves():
    #  A # .
    #  . . .
    #  . . .
    grid, level = hand_level(walls=(1,), objects=((8, 0),))
    assert render(level) == "A#.\n...\n..0"
    move = jax.jit(grid.move)
    assert int(move(0, RIGHT, level)) == 0  # the wall
    assert int(move(0, UP, level)) == 0 and int(move(0, LEFT, level)) == 0  # the edges
    assert int(move(0, DOWN, level)) == 3 and int(move(0, STAY, level)) == 0
    assert int(move(2, LEFT, level)) == 2 and int(move(2, RIGHT, level)) == 2  # wall on the left, edge on the right
    assert int(move(4, UP, level)) == 4  # the wall from below
    assert int(move(5, RIGHT, level)) == 5  # row end: no wrap to the next row


def test_collecting_an_object_pays_its_reward_removes_it_and_terminates_with_its_probability():
    grid, level = hand_level(objects=((1, 0), (3, 1)), reward=(1.0, -0.5), terminate=(0.0, 1.0))
    state, _ = grid.reset_raw(jax.random.key(0), level)
    step = jax.jit(grid.step_raw)
    state, obs, reward, terminated, truncated = step(jax.random.key(1), state, RIGHT, level)
    assert float(reward) == 1.0 and not bool(terminated) and not bool(truncated)
    np.testing.assert_array_equal(state.present[:2], [False, True])
    state, _, reward, terminated, _ = step(jax.random.key(2), state, LEFT, level)  # back onto the empty cell
    assert float(reward) == 0.0 and not bool(terminated)
    state, _, reward, terminated, _ = step(jax.random.key(3), state, DOWN, level)  # the terminating type
    assert float(reward) == -0.5 and bool(terminated)
    # Termination probability 0.3 over many keys.
    grid, level = hand_level(objects=((1, 0),), terminate=(0.3,))
    start, _ = grid.reset_raw(jax.random.key(0), level)
    ends = jax.vmap(lambda k: step(k, start, RIGHT, level)[3])(jax.random.split(jax.random.key(4), 4000))
    assert abs(float(ends.mean()) - 0.3) < 4 * np.sqrt(0.3 * 0.7 / 4000)


def test_absent_objects_respawn_with_their_probability_at_their_cell():
    grid, level = hand_level(objects=((1, 0),), respawn=(0.2,))
    state, _ = grid.reset_raw(jax.random.key(0), level)
    state = grid.step_raw(jax.random.key(1), state, RIGHT, level)[0]  # collected: absent, agent on its cell
    state = grid.step_raw(jax.random.key(1), state, DOWN, level)[0]
    state = state.replace(present=state.present.at[0].set(False))  # (a respawn may already have happened)
    back = jax.vmap(lambda k: grid.step_raw(k, state, STAY, level)[0])(jax.random.split(jax.random.key(2), 4000))
    assert abs(float(back.present[:, 0].mean()) - 0.2) < 4 * np.sqrt(0.2 * 0.8 / 4000)
    assert (np.asarray(back.object_cell[:, 0]) == 1).all()  # fixed cell: tabular levels
    # Present objects and unused slots never respawn.
    _, level_no = hand_level(objects=((1, 0),), respawn=(1.0,))
    fresh, _ = grid.reset_raw(jax.random.key(0), level_no)
    after = grid.step_raw(jax.random.key(5), fresh, DOWN, level_no)[0]
    np.testing.assert_array_equal(after.present, [True, False, False, False])


def test_random_respawn_only_lands_on_free_cells():
    # 3x3 with walls on 4 cells: free cells are 0, 2, 6, 8 and the centre 4 holds the agent.
    walls = (1, 3, 5, 7)
    grid, level = hand_level(walls=walls, start=4, objects=((0, 0), (8, 1)), respawn=(1.0, 1.0),
                             random_respawn=True)
    state = GridState(cell=jnp.int32(4), object_cell=jnp.asarray([0, 8, 0, 0], jnp.int32),
                      present=jnp.asarray([False, True, False, False]), time=jnp.int32(0))
    after = jax.vmap(lambda k: grid.step_raw(k, state, STAY, level)[0])(jax.random.split(jax.random.key(0), 500))
    cells = np.asarray(after.object_cell[:, 0])
    assert np.asarray(after.present[:, 0]).all()
    assert set(cells.tolist()) == {0, 2, 6}  # never a wall, the agent's cell or the other object's (8)
    assert (np.asarray(after.object_cell[:, 1]) == 8).all()
    # Resets of random-respawn levels place the objects on distinct free cells too.
    starts = jax.vmap(lambda k: grid.reset_raw(k, level)[0])(jax.random.split(jax.random.key(1), 200))
    first, second = np.asarray(starts.object_cell[:, 0]), np.asarray(starts.object_cell[:, 1])
    assert set(first.tolist()) | set(second.tolist()) <= {0, 2, 6, 8} and (first != second).all()


def test_episodes_truncate_at_the_levels_length():
    grid, level = hand_level(objects=((8, 0),), max_steps=3)
    state, _ = grid.reset_raw(jax.random.key(0), level)
    flags = []
    for i in range(3):
        state, _, _, terminated, truncated = grid.step_raw(jax.random.key(i), state, STAY, level)
        flags.append((bool(terminated), bool(truncated)))
    assert flags == [(False, False), (False, False), (False, True)]


def test_observations_encode_the_state():
    grid, level = hand_level(objects=((1, 0), (3, 1)))
    state = GridState(cell=jnp.int32(4), object_cell=level.object_cell,
                      present=jnp.asarray([False, True, False, False]), time=jnp.int32(0))
    obs = grid._observe(state, level)
    assert obs.shape == grid.observation_spec.shape and float(obs.sum()) == 1.0
    assert int(jnp.argmax(obs)) == 4 + 121 * 2  # cell 4, objects present: bit 1
    # The occupancy grid: agent plane, wall plane, one plane per type.
    grid_obs = make("gridworld/dense", observation="grid")
    obs = np.asarray(grid_obs._observe(state, level)).reshape(5, 121)
    assert obs[0, 4] == 1 and obs[0].sum() == 1 and obs[1].sum() == 0
    assert obs[3, 3] == 1 and obs[2].sum() == 0 and obs[3].sum() == 1 and obs[4].sum() == 0


@pytest.mark.parametrize("name", list(LEVELS))
def test_generated_levels_are_valid_and_vmap(name):
    env = make(f"gridworld/{name}")
    # Eager (no compile per level family: each has its own static shapes), then shapes only for reset.
    levels = jax.vmap(env.sample_params)(jax.random.split(jax.random.key(0), 64))
    for i in range(64):
        level = jax.tree.map(lambda x: np.asarray(x[i]), levels)
        size, used = int(level.size), level.object_type >= 0
        placed = np.concatenate([[level.start], level.object_cell])
        assert (placed < size * size).all() and not level.walls[placed].any()
        assert len(set(placed.tolist())) == len(placed)
        assert not level.walls[size * size:].any() and used.any() and int(level.max_steps_in_episode) >= 1
        assert (level.type_respawn >= 0).all() and (level.type_terminate <= 1).all()
    states, obs = jax.eval_shape(jax.vmap(env.reset), jax.random.split(jax.random.key(1), 64), levels)
    assert obs.shape == (64,) + env.observation_spec.shape


def test_lpg_levels_follow_the_reference_and_generators_vary():
    dense = make("gridworld/dense").default_params
    np.testing.assert_allclose(dense.type_reward, [1.0, -1.0, -1.0])
    np.testing.assert_allclose(dense.type_respawn, [0.05, 0.1, 0.5])
    assert int(dense.size) == 11 and int(dense.max_steps_in_episode) == 500
    longer = make("gridworld/longer").default_params
    assert list(np.asarray(longer.object_type)) == [0, 0, 1, 1, 1, 1, 1]  # the LPG paper's 2 + 5 objects
    assert set(LPG_LEVELS) <= set(LEVELS)
    levels = jax.vmap(make("gridworld/all").sample_params)(jax.random.split(jax.random.key(0), 200))
    assert set(np.asarray(levels.size).tolist()) == set(range(4, 11))
    first = np.asarray(levels.type_reward[:, 0])
    assert (first > 0).all() and (np.asarray(levels.type_reward[:, 1:]) < 0).any()
    steps = np.asarray(levels.max_steps_in_episode)
    assert steps.min() >= 20 and steps.max() <= 750


def test_bad_level_name_and_observation_are_refused():
    from jaxpg.envs.gridworld import GridWorld

    with pytest.raises(ValueError, match="valid choices: dense, sparse, long"):
        GridWorld("maze")
    with pytest.raises(ValueError, match="unknown grid-world level 'maze'"):
        make("gridworld/maze")
    with pytest.raises(ValueError, match="valid choices: tabular, grid"):
        make("gridworld/dense", observation="pixels")


def test_ppo_trains_on_sampled_gridworld_levels():
    """Levels vmap like seeds: every env copy of a PPO run plays its own generated level."""
    train = jaxpg.make_train("ppo", env="gridworld/small", levels="sampled", num_envs=4, num_steps=16,
                             total_steps=128, hidden_sizes=(16,))
    result = jax.jit(lambda k: train(k))(jax.random.key(0))
    assert np.asarray(result.metrics["finite"]).all()
    assert len({int(s) for s in np.asarray(result.state.env_params.size)}) >= 1
    assert result.state.env_params.walls.shape == (4, 36)
