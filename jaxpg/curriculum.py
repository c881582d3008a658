"""Prioritized level replay: a buffer of levels ranked by a score, as pure functions.

Jiang et al. 2021, "Prioritized Level Replay" (PLR), and its use in GROOVE (Jackson et al. 2023,
scored by algorithmic regret; reference notes: shared/reference/algorithms.md, 5.3). The buffer
holds up to ``capacity`` levels (any pytree of fixed shapes, e.g. :class:`jaxpg.envs.gridworld.GridLevel`)
with a score and the time each was last sampled. Replay draws levels from

    P(i) = (1 - rho) P_S(i) + rho P_C(i),
    P_S(i) = h(S_i)^(1/beta) / sum_j h(S_j)^(1/beta),   h(S) = 1 / rank(S)  ("rank")
    P_S(i) = softmax(S / beta)_i                                               ("proportional")
    P_C(i) = (c - C_i) / sum_j (c - C_j)                                       (staleness)

over the filled slots, with temperature ``beta``, staleness weight ``rho``, the clock ``c`` (one
tick per :func:`sample`) and ``C_i`` the tick at which level i was last sampled. A new level
enters the buffer by replacing the lowest-scoring level (an empty slot first) when its score is
higher: the buffer keeps the best-scoring levels seen. GROOVE's "rank" mode takes the top levels
deterministically and has no staleness term (reference notes 5.7, pitfall 5); here it is
``temperature -> 0`` with ``staleness=0``, and PLR's sampling is the default.

jaxued (PyPI, the JAX UED library) has a level sampler of this kind, but its only release (0.0.1)
calls ``jax.tree_map``, which the pinned jax (0.10.2) no longer has, so it fails on import of a
buffer; hence these functions. Everything jits and vmaps (one buffer per meta-learner).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

PRIORITIZATIONS = ("rank", "proportional")


@struct.dataclass
class LevelBuffer:
    levels: Any  # pytree, leading axis capacity
    scores: jax.Array  # [capacity]; -inf where empty
    last_sampled: jax.Array  # [capacity] int32: the clock tick of the last sample (or insertion)
    filled: jax.Array  # [capacity] bool
    clock: jax.Array  # int32

    @property
    def capacity(self) -> int:
        return self.scores.shape[0]

    @property
    def size(self) -> jax.Array:
        return self.filled.sum()


def create(example_level: Any, capacity: int) -> LevelBuffer:
    """An empty buffer for levels shaped like ``example_level``."""
    if capacity < 1:
        raise ValueError(f"capacity must be >= 1, got {capacity}")
    levels = jax.tree.map(lambda x: jnp.zeros((capacity,) + jnp.shape(x), jnp.asarray(x).dtype), example_level)
    return LevelBuffer(levels=levels, scores=jnp.full((capacity,), -jnp.inf, jnp.float32),
                       last_sampled=jnp.zeros((capacity,), jnp.int32), filled=jnp.zeros((capacity,), bool),
                       clock=jnp.zeros((), jnp.int32))


def insert(buffer: LevelBuffer, level: Any, score: jax.Array) -> LevelBuffer:
    """Put one level in place of the lowest-scoring one (empty slots first) if its score is higher
    than that one's; otherwise the buffer is unchanged."""
    order = jnp.where(buffer.filled, buffer.scores, -jnp.inf)  # lowest first; empty slots lowest of all
    slot = jnp.argmin(order)
    score = jnp.asarray(score, jnp.float32)
    accept = ~buffer.filled[slot] | (score > order[slot])
    put = lambda stored, new: stored.at[slot].set(jnp.where(accept, new, stored[slot]))  # noqa: E731
    return buffer.replace(levels=jax.tree.map(put, buffer.levels, level), scores=put(buffer.scores, score),
                          last_sampled=put(buffer.last_sampled, buffer.clock), filled=put(buffer.filled, True))


def insert_batch(buffer: LevelBuffer, levels: Any, scores: jax.Array) -> LevelBuffer:
    """:func:`insert` for each of a batch of levels (leading axis), in order."""
    def one(buffer, item):
        return insert(buffer, *item), None

    return jax.lax.scan(one, buffer, (levels, jnp.asarray(scores, jnp.float32)))[0]


def update_scores(buffer: LevelBuffer, indices: jax.Array, scores: jax.Array) -> LevelBuffer:
    """New scores for the levels at ``indices`` (e.g. after agents finished them)."""
    return buffer.replace(scores=buffer.scores.at[indices].set(jnp.asarray(scores, jnp.float32)))


def replay_weights(buffer: LevelBuffer, temperature: float = 0.3, staleness: float = 0.3,
                   prioritization: str = "rank") -> jax.Array:
    """``P(i)`` over the slots (zero where empty; uniform over filled slots if nothing scores)."""
    if prioritization not in PRIORITIZATIONS:
        raise ValueError(f"unknown prioritization {prioritization!r}; valid choices: {', '.join(PRIORITIZATIONS)}")
    filled = buffer.filled
    scores = jnp.where(filled, buffer.scores, -jnp.inf)
    if prioritization == "rank":
        order = jnp.argsort(-scores)  # rank 1 = highest score; ties broken by slot
        rank = jnp.zeros_like(order).at[order].set(jnp.arange(1, order.shape[0] + 1))
        logits = jnp.where(filled, -jnp.log(rank.astype(jnp.float32)) / temperature, -jnp.inf)
    else:
        logits = jnp.where(filled, scores / temperature, -jnp.inf)
    by_score = jax.nn.softmax(jnp.where(jnp.any(filled), logits, 0.0))
    age = jnp.where(filled, (buffer.clock - buffer.last_sampled).astype(jnp.float32), 0.0)
    uniform = filled / jnp.maximum(filled.sum(), 1)
    by_age = jnp.where(age.sum() > 0, age / jnp.maximum(age.sum(), 1e-12), uniform)
    return (1.0 - staleness) * by_score + staleness * by_age


def sample(buffer: LevelBuffer, key: jax.Array, num: int, temperature: float = 0.3, staleness: float = 0.3,
           prioritization: str = "rank") -> tuple[LevelBuffer, jax.Array, Any]:
    """Draw ``num`` filled levels from :func:`replay_weights` (with replacement): ``(buffer with
    the clock advanced and the drawn levels marked as just sampled, indices, levels)``. The
    buffer must hold a level (under ``jit`` this cannot be checked: an empty one gives NaN weights)."""
    weights = replay_weights(buffer, temperature, staleness, prioritization)
    indices = jax.random.choice(key, buffer.capacity, (num,), p=weights)
    clock = buffer.clock + 1
    buffer = buffer.replace(clock=clock, last_sampled=buffer.last_sampled.at[indices].set(clock))
    return buffer, indices, jax.tree.map(lambda x: x[indices], buffer.levels)
