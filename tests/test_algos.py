"""PPO and REINFORCE under the make_train contract: learning, reproducibility, resume, errors."""

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxpg


def _leaves_close(a, b, **kw):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **kw)


# ---- contract -------------------------------------------------------------------------------
def test_make_train_rejects_unknown_names():
    with pytest.raises(ValueError, match="valid choices: ppo, reinforce"):
        jaxpg.make_train("trpo", env="CartPole-v1")
    with pytest.raises(ValueError, match="valid choices:.*learning_rate"):
        jaxpg.make_train("ppo", env="CartPole-v1", learing_rate=1e-3)
    with pytest.raises(ValueError, match="valid choices:.*CartPole-v1"):
        jaxpg.make_train("ppo", env="CartPol-v1")
    with pytest.raises(ValueError, match="divisible by num_minibatches"):
        jaxpg.make_train("ppo", env="CartPole-v1", num_envs=3, num_steps=5, num_minibatches=4)
    with pytest.raises(ValueError, match="valid choices: constant, linear, cosine"):
        jaxpg.make_train("ppo", env="CartPole-v1", lr_schedule="step")
    with pytest.raises(ValueError, match="total_steps = 0 is out of range; valid: total_steps >= 1"):
        jaxpg.make_train("ppo", env="CartPole-v1", total_steps=0)


def test_make_train_routes_config_and_hparams():
    train = jaxpg.make_train("ppo", env="Acrobot-v1", total_steps=4096, learning_rate=1e-3, num_envs=8)
    assert train.config.env == "Acrobot-v1" and train.config.num_envs == 8
    assert train.default_hparams.learning_rate == 1e-3
    assert train.num_iterations == 4096 // (8 * 128)


# Tests of PPO on CartPole share one program, jit(train)(key, hparams) at this budget, compiled
# once per session (tests/conftest.py's compilation cache; the notebook test runs it too).
SMALL_PPO_STEPS = 4 * 512


def test_ppo_metrics_shapes_and_reproducibility():
    train = jaxpg.make_train("ppo", env="CartPole-v1", total_steps=SMALL_PPO_STEPS)
    run, hp = jax.jit(train), train.default_hparams
    a, b = run(jax.random.key(3), hp), run(jax.random.key(3), hp)
    c = run(jax.random.key(4), hp)
    for name in ("episode_return", "loss", "policy_loss", "value_loss", "entropy", "grad_norm",
                 "approx_kl", "clip_fraction", "env_steps", "finite"):
        assert a.metrics[name].shape == (4,), name
    np.testing.assert_array_equal(a.metrics["env_steps"], [512, 1024, 1536, 2048])
    _leaves_close(a.params, b.params, rtol=0, atol=0)  # same key, same result, bit for bit
    assert not np.allclose(a.metrics["loss"], c.metrics["loss"])


def test_resume_equals_uninterrupted_run():
    """run(2) then run(2) from the returned state == run(4): the state holds everything."""
    train = jaxpg.make_train("ppo", env="CartPole-v1", total_steps=SMALL_PPO_STEPS)
    key, hp = jax.random.key(0), train.default_hparams
    full = jax.jit(train)(key, hp)
    run = jax.jit(train.run, static_argnames="num_iterations")  # one program for both halves
    first = run(train.init(key, hp), hp, num_iterations=2)
    rest = run(first.state, hp, num_iterations=2)
    _leaves_close(full.params, rest.params, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(full.metrics["loss"][2:], rest.metrics["loss"], rtol=1e-5)


def test_nan_is_detected_with_its_iteration():
    train = jaxpg.make_train("ppo", env="CartPole-v1", total_steps=SMALL_PPO_STEPS)
    # make_train and eager calls reject a NaN learning rate; under jit values are not checked.
    with pytest.raises(ValueError, match="learning_rate = nan is out of range"):
        train(jax.random.key(0), train.default_hparams.replace(learning_rate=float("nan")))
    result = jax.jit(train)(jax.random.key(0), train.default_hparams.replace(learning_rate=float("nan")))
    with pytest.raises(FloatingPointError, match="first at iteration 0"):
        jaxpg.check_finite(result)
    # A run that goes bad later is reported at the first bad iteration.
    finite = np.array([True, True, True, False, False])
    with pytest.raises(FloatingPointError, match="first at iteration 3"):
        jaxpg.check_finite(dataclasses.replace(result, metrics={"finite": finite}))
    good = jax.jit(train)(jax.random.key(0), train.default_hparams)
    assert jaxpg.check_finite(good) is good


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"learning_rate": -1e-3}, "learning_rate = -0.001 is out of range; valid: learning_rate >= 0"),
        ({"gamma": 1.01}, "valid: 0 <= gamma <= 1"),
        ({"gae_lambda": -0.5}, "valid: 0 <= gae_lambda <= 1"),
        ({"clip_eps": -0.2}, "valid: clip_eps >= 0"),
        ({"max_grad_norm": 0.0}, "valid: max_grad_norm > 0"),
        ({"ent_coef": float("inf")}, "ent_coef = inf is out of range"),
        ({"num_steps": 0}, "valid: num_steps >= 1"),
        ({"num_minibatches": -1}, "valid: num_minibatches >= 1"),
        ({"update_epochs": 0}, "valid: update_epochs >= 1"),
        ({"num_steps": 2.5}, "num_steps must be an integer"),
        ({"normalize_obs": True, "learning_rate": "fast"}, "learning_rate must be a number"),
    ],
)
def test_make_train_rejects_out_of_range_values(overrides, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        jaxpg.make_train("ppo", env="CartPole-v1", **overrides)


def test_out_of_range_values_are_rejected_for_every_algorithm():
    with pytest.raises(ValueError, match="valid: 0 <= gamma <= 1"):
        jaxpg.make_train("reinforce", env="CartPole-v1", gamma=2.0)
    with pytest.raises(ValueError, match="valid: horizon >= 1"):
        jaxpg.make_train("reinforce", env="CartPole-v1", horizon=0)
    with pytest.raises(ValueError, match="valid: momentum > 0"):
        jaxpg.make_train("n_harpg", env="CartPole-v1", momentum=0.0)
    with pytest.raises(ValueError, match="valid: hessian_envs >= 1"):
        jaxpg.make_train("n_harpg", env="CartPole-v1", hessian_envs=0)


def test_continuous_and_normalized_observations_run():
    """Gaussian (tanh-squashed) policy on Pendulum with on-device observation normalization."""
    train = jaxpg.make_train("ppo", env="Pendulum-v1", total_steps=4 * 256, num_steps=64, normalize_obs=True)
    result = jax.jit(train)(jax.random.key(0))
    jaxpg.check_finite(result)
    stats = result.state.obs_stats
    assert float(stats.count) == 4 * 4 * 64  # every observation acted on was counted once
    # cos/sin of the angle have magnitude <= 1, so their variances are well below the prior 1.
    assert np.all(np.asarray(stats.var[:2]) < 1.0)
    action = jaxpg.policy_fn(result)(jnp.zeros((3,)))
    assert action.shape == (1,) and -2.0 <= float(action[0]) <= 2.0


def test_policy_fn_names_the_expected_observation_shape():
    train = jaxpg.make_train("ppo", env="Breakout-MinAtar", total_steps=512)
    result = jax.jit(train)(jax.random.key(0))
    act = jaxpg.policy_fn(result)
    assert act(jnp.zeros((10, 10, 4))).shape == ()
    assert act(jnp.zeros((3, 10, 10, 4))).shape == (3,)  # a batch of observations
    with pytest.raises(ValueError, match=re.escape("expects observations of shape (10, 10, 4)")):
        act(jnp.zeros((400,)))
    with pytest.raises(ValueError, match=re.escape("got shape (10, 4)")):
        jaxpg.policy_fn(result, deterministic=False)(jnp.zeros((10, 4)), jax.random.key(0))
    with pytest.raises(ValueError, match="num_episodes must be a positive integer"):
        jaxpg.evaluate(result, jax.random.key(0), num_episodes=0)


def test_progress_reaches_the_host_at_the_requested_interval():
    """The caller passes the callback; the trainer imports nothing host-side. A resumed run
    reports absolute iterations (no offset to manage)."""
    train = jaxpg.make_train("reinforce", env="CartPole-v1", total_steps=6 * 8 * 500)
    calls = []
    with jaxpg.progress.bar(total=train.num_iterations) as bar:

        def report(iteration, episode_return):
            calls.append(int(iteration))
            bar.update(iteration, episode_return)

        run = jax.jit(train.run, static_argnames=("num_iterations", "progress", "progress_every"))
        first = run(train.init(jax.random.key(0)), train.default_hparams, num_iterations=4, progress=report,
                    progress_every=2)
        jax.block_until_ready(run(first.state, train.default_hparams, num_iterations=2, progress=report,
                                  progress_every=2).metrics)
        jax.effects_barrier()
    assert calls == [2, 4, 6]
    assert bar.done == train.num_iterations
    # Without a callback nothing reaches the host: the compiled program has no host callback.
    hlo = jax.jit(train).lower(jax.random.key(0), train.default_hparams).as_text()
    assert "callback" not in hlo.lower()
