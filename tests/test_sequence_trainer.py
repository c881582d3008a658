"""The ``grpo`` trainer: every catalog recipe builds its batch and steps on the token testbed; one
small compiled run is finite, on policy at its first epoch and reproducible; bad input fails in
one line; Bradley-Terry preferences."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpg.algos import make_train
from jaxpg.algos.sequence import bradley_terry_preferences
from jaxpg.losses import sequence as seq

TINY = dict(width=16, num_layers=1, num_heads=2, num_prompts=4, group_size=4, sft_steps=3, sft_batch_size=8,
            eval_prompts=8, eval_every=1)


def test_every_recipe_builds_its_batch_and_steps():
    """Traced, not compiled (``eval_shape``): every recipe's batch kind (group, pairwise with
    preferences, demonstrations, HPT's appended demos, a value network, reward weights, Nash-MD's
    opponent) reaches the loss with the fields it requires, on the multi-turn task (turn ids) and
    the structured task (reward components)."""
    for name in sorted(seq.RECIPES):
        env = "seq/struct" if name in ("rl_struct", "dynamic_reward_weighting") else "seq/multiturn"
        train = make_train("grpo", env=env, recipe=name, total_steps=16, **{**TINY, "sft_steps": 0})
        state = jax.eval_shape(train.init, jax.random.key(0))
        new_state, metrics = jax.eval_shape(train.step, state, train.default_hparams)
        assert jax.tree.structure(new_state) == jax.tree.structure(state), name
        assert all(np.ndim(metrics[k]) == 0 for k in ("loss", "episode_return", "eval_accuracy", "finite")), name


@pytest.fixture(scope="module")
def tiny_run():
    train = make_train("grpo", env="seq/copy", recipe="grpo", total_steps=32, **TINY)
    run = train.jit()
    return train, run, run(jax.random.key(0))


def test_a_small_run_is_finite_on_policy_and_reproducible(tiny_run):
    train, run, result = tiny_run
    metrics = jax.tree.map(np.asarray, result.metrics)
    assert metrics["finite"].all() and metrics["loss"].shape == (train.num_iterations,)
    # The first epoch scores the tokens with the sampler's own parameters: the KV-cache sampler's
    # log-probs equal the full forward pass's, so the ratio is 1 and the approximate KL is 0.
    np.testing.assert_allclose(metrics["approx_kl"], 0.0, atol=1e-6)
    np.testing.assert_allclose(metrics["clip_fraction"], 0.0)
    assert np.all(np.diff(metrics["env_steps"]) == 16) and np.all(metrics["tokens"] > 0)
    again = run(jax.random.key(0))
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(result.params), jax.tree.leaves(again.params)))
    # jaxpg.evaluate and policy_fn work for sequence runs too: one response per fresh prompt.
    import jaxpg

    returns = np.asarray(jaxpg.evaluate(result, jax.random.key(1), num_episodes=6))
    assert returns.shape == (6,) and np.all((returns >= 0) & (returns <= 1))
    prompts = train.task.sample_prompts(jax.random.key(2), 3)
    assert jaxpg.policy_fn(result)(prompts).shape == (3, train.task.answer_len)


def test_bad_settings_fail_in_one_line():
    with pytest.raises(ValueError, match="unknown recipe 'nope'; valid choices: .*grpo"):
        make_train("grpo", env="seq/copy", recipe="nope")
    with pytest.raises(ValueError, match="valid choices: .*seq/addition|valid choices: .*addition"):
        make_train("grpo", env="seq/nope")
    with pytest.raises(ValueError, match="group_size must be even"):
        make_train("grpo", env="seq/copy", recipe="dpo", group_size=3)
    with pytest.raises(ValueError, match="less than one iteration"):
        make_train("grpo", env="seq/copy", total_steps=10)


def test_bradley_terry_preferences():
    rewards = jnp.array([1.0, 0.0, 0.0, 1.0, 1.0, 1.0] * 2000)
    prefs = np.asarray(bradley_terry_preferences(jax.random.key(0), rewards, 0.25)).reshape(-1, 2)
    assert np.all(prefs.sum(1) == 1)  # exactly one preferred per pair
    first = prefs[:, 0].reshape(2000, 3).mean(0)
    sigma = 1 / (1 + np.exp(-4.0))  # sigmoid((1 - 0) / 0.25)
    np.testing.assert_allclose(first, [sigma, 1 - sigma, 0.5], atol=4 * np.sqrt(0.25 / 2000))
