"""A parametrized grid-world whose params are a level: LPG's and GROOVE's training environments.

Oh et al. 2020, "Discovering Reinforcement Learning Algorithms" (LPG), appendix: the agent moves
on a grid (up, down, left, right, stay); objects of a few types sit on cells; stepping onto an
object collects it: its type's reward, episode termination with the type's probability, and the
object is gone until it respawns (each step, with the type's respawn probability) at its own cell
or, in the ``rand_*`` levels, at a random free cell. Episodes are truncated after
``max_steps``. Jackson et al. 2023 (GROOVE) meta-train on a generator of such levels.
Reference notes: shared/reference/algorithms.md, 5.2; level definitions from the GROOVE code's
``environments/gridworld/configs.py`` (EmptyJackson/groove), cited below.

A level (:class:`GridLevel`) is a pytree of fixed-shape arrays (sizes padded to the environment's
static maxima), so levels vmap like seeds: ``jax.vmap(env.sample_params)(keys)`` draws a batch and
``levels="sampled"`` configs give each env copy its own. Cells are indexed ``row * size + col`` in
the level's own size.

Observations (static per environment):

* ``"tabular"``: one-hot of (agent cell, which objects are present):
  ``cell + max_size^2 * sum_i present_i 2^i``, dimension ``max_size^2 * 2^max_objects`` (LPG's
  tabular agents are bias-free linear maps of it);
* ``"grid"``: occupancy planes, flattened: agent, walls, and one plane per object type.

Differences from the GROOVE code, deliberate: a randomly respawning object never lands on a wall,
the agent or another present object (the code's wall test compares cell indices with a boolean
mask, so walls were not excluded: reference notes 5.7, pitfall 3); the ``longer`` level has the
LPG paper's 2 + 5 objects (the code uses 2 + 3, noted there as a deviation); observations carry no
time feature (the code appends ``0.001 t``), so a tabular observation is exactly the state.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxpg.envs.core import Box, Discrete, Environment

ACTIONS = ("up", "down", "left", "right", "stay")
_MOVES = np.array([[-1, 0], [1, 0], [0, -1], [0, 1], [0, 0]], np.int32)  # (d_row, d_col) per action
OBSERVATIONS = ("tabular", "grid")


@struct.dataclass
class GridLevel:
    """One level. Arrays are padded: ``walls [max_size^2]``; per object slot ``object_type``
    (``-1``: unused slot) and ``object_cell``; per type ``type_reward``, ``type_terminate``,
    ``type_respawn`` (probabilities)."""

    size: jax.Array
    walls: jax.Array
    start: jax.Array
    object_type: jax.Array
    object_cell: jax.Array
    type_reward: jax.Array
    type_terminate: jax.Array
    type_respawn: jax.Array
    random_respawn: jax.Array
    max_steps_in_episode: jax.Array  # episode length (truncation)


@struct.dataclass
class GridState:
    cell: jax.Array
    object_cell: jax.Array
    present: jax.Array
    time: jax.Array


# -- level distributions ------------------------------------------------------------------------
def _log_uniform(key, shape, low, high):
    return jnp.exp(jax.random.uniform(key, shape, minval=np.log(low), maxval=np.log(high)))


@dataclasses.dataclass(frozen=True)
class LevelSpec:
    """A family of levels: fixed values or ``key -> value`` samplers, and the static maxima."""

    size: Any
    objects: Any  # object types per slot (list), or a sampler of the number of objects (one per type)
    reward: Any
    terminate: Any
    respawn: Any
    max_steps: Any
    walls: Any = ()  # wall cells (level indexing), or a sampler of a wall mask over max_size^2 cells
    random_respawn: bool = False
    max_size: int = 11
    max_objects: int = 4
    max_types: int = 3
    observation: str = "tabular"


def _vertical_wall(size: int, column: int, gaps: tuple) -> tuple:
    return tuple(r * size + column for r in range(size) if r not in gaps)


def _horizontal_wall(size: int, row: int, gaps: tuple) -> tuple:
    return tuple(row * size + c for c in range(size) if c not in gaps)


def _random_walls(count: int, max_size: int) -> Callable:
    def sample(key):
        cells = jax.random.choice(key, max_size * max_size, (count,), replace=False)
        return jnp.zeros(max_size * max_size, bool).at[cells].set(True)

    return sample


def _first_positive_rewards(count: int) -> Callable:
    """U(-1, 1) rewards with the first type's drawn from U(0, 1), so every level has a goal."""
    def sample(key):
        k1, k2 = jax.random.split(key)
        return jnp.concatenate([jax.random.uniform(k1, (1,)), jax.random.uniform(k2, (count - 1,), minval=-1.0)])

    return sample


def _random_distribution(sizes, walls, objects, steps, max_size) -> LevelSpec:
    """GROOVE's generators (``small``/``all``): one object per type for a random number of types."""
    return LevelSpec(
        size=lambda k: jax.random.choice(k, jnp.arange(sizes[0], sizes[1] + 1)),
        objects=lambda k: jax.random.randint(k, (), 1, objects + 1), reward=_first_positive_rewards(objects),
        terminate=lambda k: _log_uniform(k, (objects,), 1e-2, 1.0),
        respawn=lambda k: _log_uniform(k, (objects,), 1e-3, 1e-1),
        max_steps=lambda k: jnp.round(_log_uniform(k, (), *steps)).astype(jnp.int32),
        walls=_random_walls(walls, max_size), max_size=max_size, max_objects=objects, max_types=objects)


# [reward, termination probability, respawn probability] per object type, objects listed by type:
# the LPG paper's training levels as the GROOVE code defines them (configs.py, ENV_MODE_PARAMS).
_DENSE = dict(objects=[0, 0, 1, 2], reward=[1.0, -1.0, -1.0], terminate=[0.0, 0.5, 0.0], respawn=[0.05, 0.1, 0.5])
_LONG = dict(objects=[0, 0, 1, 1], reward=[1.0, -1.0], terminate=[0.0, 0.5], respawn=[0.01, 1.0])
LEVELS: dict[str, LevelSpec] = {
    "dense": LevelSpec(size=11, max_steps=500, **_DENSE),
    "sparse": LevelSpec(size=13, objects=[0, 1], reward=[1.0, -1.0], terminate=[1.0, 1.0], respawn=[0.0, 0.0],
                        max_steps=50, max_size=13, max_objects=2, max_types=2),
    "long": LevelSpec(size=11, max_steps=1000, max_types=2, **_LONG),
    "longer": LevelSpec(size=9, objects=[0, 0, 1, 1, 1, 1, 1], reward=[1.0, -1.0], terminate=[0.1, 0.8],
                        respawn=[0.01, 1.0], max_steps=2000, walls=_vertical_wall(9, 4, (1, 7)), max_size=9,
                        max_objects=7, max_types=2),
    "long_dense": LevelSpec(size=11, objects=[0, 0, 0, 0], reward=[1.0], terminate=[0.0], respawn=[0.005],
                            max_steps=2000, walls=_vertical_wall(11, 5, (0, 7)) + _horizontal_wall(11, 4, (2, 8)),
                            max_types=1),
    "rand_dense": LevelSpec(size=11, max_steps=500, random_respawn=True, observation="grid", **_DENSE),
    "rand_long": LevelSpec(size=11, max_steps=1000, random_respawn=True, observation="grid", max_types=2, **_LONG),
    "rand_small": LevelSpec(size=7, objects=[0, 0, 1, 1], reward=[1.0, -1.0], terminate=[0.0, 0.5],
                            respawn=[0.05, 0.1], max_steps=500, walls=(9, 25), random_respawn=True, max_size=7,
                            max_types=2, observation="grid"),
    "rand_sparse": LevelSpec(size=7, objects=[0, 1, 1], reward=[1.0, -1.0], terminate=[1.0, 1.0], respawn=[1.0, 1.0],
                             max_steps=50, random_respawn=True, max_size=7, max_objects=3, max_types=2,
                             observation="grid"),
    "rand_very_dense": LevelSpec(size=11, objects=[0], reward=[1.0], terminate=[0.0], respawn=[1.0], max_steps=2000,
                                 random_respawn=True, max_objects=1, max_types=1, observation="grid"),
    # GROOVE's random level generators: sizes, walls, object types with random properties, lengths.
    "small": _random_distribution((4, 6), 7, 3, (20, 100), 6),
    "all": _random_distribution((4, 10), 15, 5, (20, 750), 10),
}
# The names under which the LPG paper reports its training levels.
LPG_LEVELS = ("dense", "sparse", "long", "longer", "long_dense", "rand_dense", "rand_long", "rand_small",
              "rand_sparse", "rand_very_dense")


def _value(spec_value, key, dtype):
    return jnp.asarray(spec_value(key) if callable(spec_value) else spec_value, dtype)


def _pad(values, length, fill, dtype):
    values = jnp.asarray(values, dtype)
    return jnp.concatenate([values, jnp.full((length - values.shape[0],), fill, dtype)])


def sample_level(spec: LevelSpec, key: jax.Array) -> GridLevel:
    """Draw one level of ``spec``: its random properties, then start and object cells (distinct,
    inside the grid, off the walls)."""
    keys = jax.random.split(key, 8)
    cells = spec.max_size * spec.max_size
    size = _value(spec.size, keys[0], jnp.int32)
    if isinstance(spec.objects, (list, tuple)):
        object_type = _pad(spec.objects, spec.max_objects, -1, jnp.int32)
    else:  # one object per type, for a random number of types
        count = _value(spec.objects, keys[1], jnp.int32)
        object_type = jnp.where(jnp.arange(spec.max_objects) < count, jnp.arange(spec.max_objects), -1)
    inside = jnp.arange(cells) < size * size
    # Start and objects first, on distinct cells inside the grid (Gumbel top-k: uniform without
    # replacement); walls go only where nothing was placed, so every level is valid.
    if callable(spec.walls):
        walls = spec.walls(keys[2])
    else:
        walls = jnp.zeros(cells, bool).at[jnp.asarray(spec.walls, jnp.int32)].set(True) if spec.walls \
            else jnp.zeros(cells, bool)
    free = inside & ~walls if not callable(spec.walls) else inside
    scores = jnp.where(free, jax.random.gumbel(keys[3], (cells,)), -jnp.inf)
    placed = jax.lax.top_k(scores, spec.max_objects + 1)[1].astype(jnp.int32)
    walls = walls & inside & ~jnp.zeros(cells, bool).at[placed].set(True)
    return GridLevel(
        size=size, walls=walls, start=placed[0], object_type=object_type, object_cell=placed[1:],
        type_reward=_pad(_value(spec.reward, keys[4], jnp.float32), spec.max_types, 0.0, jnp.float32),
        type_terminate=_pad(_value(spec.terminate, keys[5], jnp.float32), spec.max_types, 0.0, jnp.float32),
        type_respawn=_pad(_value(spec.respawn, keys[6], jnp.float32), spec.max_types, 0.0, jnp.float32),
        random_respawn=jnp.asarray(spec.random_respawn),
        max_steps_in_episode=_value(spec.max_steps, keys[7], jnp.int32))


class GridWorld(Environment):
    """``make("gridworld/<level>")`` for a level family in :data:`LEVELS` (``observation=`` may
    override the family's observation). ``default_params`` is the family's level drawn with key
    0; ``sample_params`` draws more (the LPG levels differ in start and object cells, the
    generators in everything)."""

    has_level_sampler = True

    def __init__(self, level: str = "dense", observation: str | None = None):
        if level not in LEVELS:
            raise ValueError(f"unknown grid-world level {level!r}; valid choices: {', '.join(LEVELS)}")
        spec = LEVELS[level]
        observation = spec.observation if observation is None else observation
        if observation not in OBSERVATIONS:
            raise ValueError(f"unknown observation {observation!r}; valid choices: {', '.join(OBSERVATIONS)}")
        self.name = f"gridworld/{level}"
        self.spec = spec
        self.observation = observation
        self.max_size, self.max_objects, self.max_types = spec.max_size, spec.max_objects, spec.max_types
        cells = self.max_size * self.max_size
        dim = cells * 2 ** self.max_objects if observation == "tabular" else cells * (2 + self.max_types)
        self.observation_spec = Box.make(0.0, 1.0, (dim,))
        self.action_spec = Discrete(len(ACTIONS))
        self.default_params = sample_level(spec, jax.random.key(0))

    def sample_params(self, key: jax.Array) -> GridLevel:
        return sample_level(self.spec, key)

    # -- dynamics --------------------------------------------------------------------------------
    def move(self, cell, action, level: GridLevel):
        """The cell after ``action``: blocked by the grid's edge and by walls."""
        row, col = cell // level.size, cell % level.size
        d_row, d_col = jnp.asarray(_MOVES)[action]
        row2, col2 = row + d_row, col + d_col
        inside = (row2 >= 0) & (row2 < level.size) & (col2 >= 0) & (col2 < level.size)
        target = row2 * level.size + col2
        blocked = ~inside | level.walls[jnp.where(inside, target, 0)]
        return jnp.where(blocked, cell, target)

    def _observe(self, state: GridState, level: GridLevel):
        cells = self.max_size * self.max_size
        if self.observation == "tabular":
            bits = jnp.sum(jnp.where(state.present, 2 ** jnp.arange(self.max_objects), 0))
            return jax.nn.one_hot(state.cell + cells * bits, cells * 2 ** self.max_objects)
        agent = jax.nn.one_hot(state.cell, cells)
        # Object planes: slot i marks its type's plane at its cell when present.
        types = jax.nn.one_hot(jnp.maximum(level.object_type, 0), self.max_types) * state.present[:, None]
        planes = jnp.zeros((self.max_types, cells)).at[:, state.object_cell].add(types.T)
        return jnp.concatenate([agent, level.walls.astype(jnp.float32), jnp.minimum(planes, 1.0).ravel()])

    def reset_raw(self, key, level: GridLevel):
        state = GridState(cell=level.start, object_cell=level.object_cell, present=level.object_type >= 0,
                          time=jnp.zeros((), jnp.int32))
        # Levels with random respawn (rand_*) also start their objects at random free cells.
        cells = jnp.where(level.random_respawn, self._random_cells(key, state, level, state.present), level.object_cell)
        state = state.replace(object_cell=cells)
        return state, self._observe(state, level)

    def _random_cells(self, key, state: GridState, level: GridLevel, which):
        """New cells for the objects in ``which``: distinct free cells (inside, off walls, not the
        agent's, not another present object's); the others keep theirs."""
        cells = self.max_size * self.max_size
        keep = state.present & ~which
        occupied = jnp.zeros(cells, bool).at[state.cell].set(True)
        occupied = occupied.at[jnp.where(keep, state.object_cell, cells)].set(True, mode="drop")
        free = (jnp.arange(cells) < level.size * level.size) & ~level.walls & ~occupied
        scores = jnp.where(free, jax.random.gumbel(key, (cells,)), -jnp.inf)
        fresh = jax.lax.top_k(scores, self.max_objects)[1].astype(jnp.int32)
        return jnp.where(which, fresh, state.object_cell)

    def step_raw(self, key, state: GridState, action, level: GridLevel):
        key_terminate, key_respawn, key_cells = jax.random.split(key, 3)
        cell = self.move(state.cell, jnp.asarray(action, jnp.int32), level)
        kind = jnp.maximum(level.object_type, 0)
        collected = state.present & (state.object_cell == cell)
        reward = jnp.sum(jnp.where(collected, level.type_reward[kind], 0.0))
        p_terminate = jnp.minimum(jnp.sum(jnp.where(collected, level.type_terminate[kind], 0.0)), 1.0)
        terminated = jax.random.uniform(key_terminate) < p_terminate
        # Objects absent at the step's start respawn with their type's probability.
        used = level.object_type >= 0
        respawned = used & ~state.present & (jax.random.uniform(key_respawn, (self.max_objects,))
                                             < level.type_respawn[kind])
        present = (state.present & ~collected) | respawned
        moved = state.replace(cell=cell, present=present & ~respawned)
        object_cell = jnp.where(level.random_respawn, self._random_cells(key_cells, moved, level, respawned),
                                state.object_cell)
        time = state.time + 1
        next_state = GridState(cell=cell, object_cell=object_cell, present=present, time=time)
        return next_state, self._observe(next_state, level), reward, terminated, time >= level.max_steps_in_episode


def render(level: GridLevel, state: GridState | None = None) -> str:
    """The level as text (``#`` wall, ``A`` agent, ``0``-``9`` object types, ``.`` floor)."""
    size = int(level.size)
    walls, types = np.asarray(level.walls), np.asarray(level.object_type)
    cells = np.asarray(level.object_cell if state is None else state.object_cell)
    present = types >= 0 if state is None else np.asarray(state.present)
    agent = int(level.start if state is None else state.cell)
    grid = [["#" if walls[r * size + c] else "." for c in range(size)] for r in range(size)]
    for slot in np.flatnonzero(present):
        grid[cells[slot] // size][cells[slot] % size] = str(types[slot])
    grid[agent // size][agent % size] = "A"
    return "\n".join("".join(row) for row in grid)
