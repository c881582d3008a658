"""PPO and REINFORCE learn (CartPole, MinAtar grids) and their zero-learning-rate variants do not:
criteria set from the spread over 20 keys (tests/learning_criteria.py). A file of its own so the
two test workers share the suite's heaviest tests."""

from __future__ import annotations

import pytest

import learning_criteria


# ---- learning ----------------------------------------------------------------------------------
# Criteria live in tests/learning_criteria.py; `python benchmarks/learning_spread.py` measures their
# spread over 20 keys and the broken variants (benchmarks/results/learning_spread.md).


@pytest.mark.slow
def test_ppo_learns_cartpole_and_zero_learning_rate_does_not(monkeypatch):
    """PPO, CartPole-v1, 60k steps; per seed: mean training return over the last 10% of iterations.
    Spread over 20 keys: working min 174, 10% 204, median 233, max 319 (initial ~22); zero learning
    rate max 24; flipped advantage sign max 9. Criterion: median of 4 seeds > 100. The zero-rate
    variant runs in the same sweep and must fail it."""
    monkeypatch.setenv("XLA_FLAGS", "")  # run-time bound: jaxpg's XLA options 
    working, zero, criterion = learning_criteria.run("ppo_cartpole", with_zero_rate=True)
    assert criterion.passes(working), working
    assert not criterion.passes(zero), zero


@pytest.mark.slow
def test_reinforce_learns_cartpole_and_zero_learning_rate_does_not(monkeypatch):
    """REINFORCE with a learned baseline, CartPole-v1, 160k simulated steps (40 iterations of 8
    episodes); per seed: mean training return over the last 10% of iterations. Spread over 20 keys:
    working min 127, 10% 221, median 389, max 480; zero learning rate max 26; flipped sign max 10.
    Criterion: median of 4 seeds > 100; the zero-rate variant (same sweep) must fail it."""
    monkeypatch.setenv("XLA_FLAGS", "")  # run-time bound: jaxpg's XLA options
    working, zero, criterion = learning_criteria.run("reinforce_cartpole", with_zero_rate=True)
    assert criterion.passes(working), working
    assert not criterion.passes(zero), zero


@pytest.mark.slow
def test_ppo_learns_a_little_on_minatar_grid_observations(monkeypatch):
    """PPO on Breakout-MinAtar's 10x10x4 grids (flattened by the network), 30k steps; per seed:
    mean training return over the last 10% of iterations. Spread over 20 keys: working min 4.0,
    median 4.5, max 5.3 (initial ~0.4); zero learning rate max 0.56; flipped sign max 0.002.
    Criterion: median of 4 seeds > 1."""
    monkeypatch.setenv("XLA_FLAGS", "")  # run-time bound: jaxpg's XLA options
    working, criterion = learning_criteria.run("ppo_minatar_breakout")
    assert criterion.passes(working), working
