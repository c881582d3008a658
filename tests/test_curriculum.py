"""Prioritized level replay buffer: invariants as property tests (what it keeps, replacement of the
lowest score, weights, staleness) and the sampling distribution."""

from __future__ import annotations

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpg import curriculum

scores_lists = st.lists(st.floats(-10, 10, allow_nan=False, width=32), min_size=1, max_size=20, unique=True)


@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.given(scores=scores_lists, capacity=st.integers(1, 8))
def test_the_buffer_keeps_the_best_scoring_levels_seen(scores, capacity):
    buffer = curriculum.create(jnp.zeros((2,), jnp.int32), capacity)
    levels = jnp.stack([jnp.array([i, -i], jnp.int32) for i in range(len(scores))])
    buffer = _insert_batch(buffer, levels, jnp.asarray(scores, jnp.float32))
    kept = sorted(np.asarray(buffer.scores)[np.asarray(buffer.filled)].tolist(), reverse=True)
    assert kept == sorted(np.float32(scores).tolist(), reverse=True)[:capacity]
    # Each stored level still carries its own score (levels and scores move together).
    for slot in np.flatnonzero(np.asarray(buffer.filled)):
        index = int(buffer.levels[slot, 0])
        assert np.float32(scores[index]) == buffer.scores[slot] and int(buffer.levels[slot, 1]) == -index


_insert_batch = jax.jit(curriculum.insert_batch)
_weights = jax.jit(curriculum.replay_weights, static_argnums=3)


def test_a_new_level_replaces_the_lowest_score_only_if_it_scores_higher():
    buffer = _insert_batch(curriculum.create(jnp.zeros(()), 3), jnp.array([1.0, 2.0, 3.0]), jnp.array([5.0, 1.0, 3.0]))
    lower = curriculum.insert(buffer, jnp.float32(9.0), 0.5)
    np.testing.assert_array_equal(lower.scores, buffer.scores)  # 0.5 < 1: unchanged
    higher = curriculum.insert(buffer, jnp.float32(9.0), 2.0)
    np.testing.assert_array_equal(higher.scores, [5.0, 2.0, 3.0])
    np.testing.assert_array_equal(higher.levels, [1.0, 9.0, 3.0])


@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.example(scores=[0.0, 1.401298464324817e-45], capacity=2, temperature=1.0, staleness=0.0,
                    prioritization="rank")  # a subnormal score: found by hypothesis, flushed to zero by XLA
@hypothesis.given(scores=scores_lists, capacity=st.integers(2, 8), temperature=st.floats(0.1, 3.0),
                  staleness=st.floats(0.0, 1.0), prioritization=st.sampled_from(curriculum.PRIORITIZATIONS))
def test_replay_weights_are_a_distribution_over_filled_slots_ordered_by_score(scores, capacity, temperature,
                                                                              staleness, prioritization):
    buffer = _insert_batch(curriculum.create(jnp.zeros(()), capacity), jnp.arange(len(scores), dtype=jnp.float32),
                           jnp.asarray(scores, jnp.float32))
    weights = np.asarray(_weights(buffer, temperature, 0.0, prioritization))
    filled = np.asarray(buffer.filled)
    assert weights.sum() == pytest.approx(1.0, abs=1e-5) and (weights[~filled] == 0).all()
    # The order as the library sees it: XLA:CPU flushes subnormal floats to zero (hypothesis found
    # scores [0, 1.4e-45], equal on the device, ordered on the host), and ties go by slot (a
    # stable sort), so the host's order is computed in the same arithmetic.
    scores_seen = np.asarray(buffer.scores)[filled]
    scores_seen = np.where(np.abs(scores_seen) < np.finfo(np.float32).tiny, 0.0, scores_seen)
    order = np.argsort(-scores_seen, kind="stable")
    assert (np.diff(weights[filled][order]) <= 1e-7).all()  # a higher score never weighs less
    mixed = np.asarray(_weights(buffer, temperature, staleness, prioritization))
    assert mixed.sum() == pytest.approx(1.0, abs=1e-5) and (mixed[~filled] == 0).all()


def test_rank_weights_and_staleness_by_hand():
    buffer = _insert_batch(curriculum.create(jnp.zeros(()), 4), jnp.arange(3, dtype=jnp.float32),
                           jnp.array([0.1, 0.9, 0.5]))
    # Ranks 3, 1, 2 -> h = 1/3, 1, 1/2; temperature 1: proportional to h.
    expected = np.array([1 / 3, 1.0, 1 / 2, 0.0]) / (1 / 3 + 1 + 1 / 2)
    np.testing.assert_allclose(curriculum.replay_weights(buffer, 1.0, 0.0), expected, rtol=1e-6)
    np.testing.assert_allclose(curriculum.replay_weights(buffer, 1.0, 0.0, "proportional"),
                               np.r_[np.exp([0.1, 0.9, 0.5]) / np.exp([0.1, 0.9, 0.5]).sum(), 0.0], rtol=1e-6)
    # Staleness: slot 1 sampled at tick 1, slots 0 and 2 not since insertion (tick 0).
    buffer, _, _ = curriculum.sample(buffer, jax.random.key(0), 1, staleness=0.0,
                                     temperature=1e-3)  # (a near-greedy draw: the best, slot 1)
    np.testing.assert_array_equal(buffer.last_sampled[:3], [0, 1, 0])
    buffer = buffer.replace(clock=jnp.int32(3))
    np.testing.assert_allclose(curriculum.replay_weights(buffer, 1.0, 1.0), [3 / 8, 2 / 8, 3 / 8, 0.0], rtol=1e-6)


def test_sampling_follows_the_weights_and_marks_the_drawn_levels():
    buffer = _insert_batch(curriculum.create(jnp.zeros(()), 5), jnp.arange(4, dtype=jnp.float32),
                           jnp.array([4.0, 1.0, 3.0, 2.0]))
    weights = np.asarray(curriculum.replay_weights(buffer, 0.5, 0.2))
    after, indices, levels = jax.jit(curriculum.sample, static_argnums=2)(buffer, jax.random.key(0), 20_000, 0.5, 0.2)
    counts = np.bincount(np.asarray(indices), minlength=5) / 20_000
    np.testing.assert_allclose(counts, weights, atol=4 * np.sqrt(weights.max() / 20_000))
    assert counts[4] == 0  # the empty slot
    np.testing.assert_array_equal(levels, np.asarray(buffer.levels)[np.asarray(indices)])
    assert int(after.clock) == 1 and (np.asarray(after.last_sampled)[np.unique(indices)] == 1).all()
    updated = curriculum.update_scores(after, jnp.array([1]), jnp.array([10.0]))
    assert float(updated.scores[1]) == 10.0
    with pytest.raises(ValueError, match="valid choices: rank, proportional"):
        curriculum.replay_weights(buffer, prioritization="topk")
