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
def tiny_sweep():
    """2 learning rates (0 and the default) x 2 seeds in one compiled sweep."""
    from jaxpg import sweep

    train = make_train("grpo", env="seq/copy", recipe="grpo", total_steps=32, **TINY)
    hparams = sweep.grid(train.default_hparams, learning_rate=[0.0, 3e-4])
    return train, hparams, sweep.run(train, seeds=2, hparams=hparams)


def test_a_small_sweep_is_finite_on_policy_and_reproducible(tiny_sweep):
    from jaxpg import sweep

    train, hparams, result = tiny_sweep
    metrics = jax.tree.map(np.asarray, result.metrics)
    assert metrics["finite"].all() and metrics["loss"].shape == (2, 2, train.num_iterations)
    # The first epoch scores the tokens with the sampler's own parameters: the KV-cache sampler's
    # log-probs equal the full forward pass's, so the ratio is 1 and the approximate KL is 0.
    np.testing.assert_allclose(metrics["approx_kl"], 0.0, atol=1e-6)
    np.testing.assert_allclose(metrics["clip_fraction"], 0.0)
    assert np.all(np.diff(metrics["env_steps"], axis=-1) == 16) and np.all(metrics["tokens"] > 0)
    lr_metrics = [k for k in metrics if k.startswith("effective_lr/")]
    # Each run gets its own hyperparameters: learning rate 0 never changes a weight.
    assert lr_metrics and all(np.all(metrics[k][0] == 0) for k in lr_metrics)
    again = sweep.run(train, seeds=2, hparams=hparams)  # the same compiled program, the same keys
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(result.params), jax.tree.leaves(again.params)))
    # jaxpg.evaluate and policy_fn work for sequence runs too: one response per fresh prompt.
    import jaxpg

    one = jax.tree.map(lambda x: x[1, 0], result)
    returns = np.asarray(jaxpg.evaluate(one, jax.random.key(1), num_episodes=6))
    assert returns.shape == (6,) and np.all((returns >= 0) & (returns <= 1))
    prompts = train.task.sample_prompts(jax.random.key(2), 3)
    assert jaxpg.policy_fn(one)(prompts).shape == (3, train.task.answer_len)


def test_the_cli_lists_token_tasks_and_recipes(capsys):
    from jaxpg import cli

    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "seq/addition" in out and "seq/multiturn" in out
    assert all(name in out for name in seq.RECIPES)


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
