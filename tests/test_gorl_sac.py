"""GoRL with SAC as its base algorithm: the reduction to SAC with the identity decoder and the
stage switch's restart of the learner and its buffer."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxpg

SAC_SMALL = dict(total_steps=600, hidden_sizes=(16, 16), batch_size=32, learning_starts=100, buffer_size=1000)


def test_with_one_stage_and_no_prior_pull_gorl_sac_is_sac():
    """The base algorithm is a parameter: on SAC, the encoder is SAC's tanh-Gaussian actor, the
    critics score its squashed sample and the decoder maps its pre-tanh sample. With the identity
    decoder and no KL pull the executed action is SAC's: the same parameters for the same key."""
    sac = jaxpg.make_train("sac", env="Pendulum-v1", **SAC_SMALL)
    gorl = jaxpg.make_train("gorl", base="sac", env="Pendulum-v1", num_stages=1, latent_kl_coef=0.0, **SAC_SMALL)
    assert type(gorl).__name__ == "GoRLSAC" and gorl.algo == "gorl_sac"
    a = jax.jit(lambda k: sac(k))(jax.random.key(5))
    b = jax.jit(lambda k: gorl(k))(jax.random.key(5))
    for x, y in zip(jax.tree.leaves((a.params, a.state.critic_params)), jax.tree.leaves((b.params, b.state.critic_params)),
                    strict=True):
        np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-6)
    np.testing.assert_allclose(a.metrics["critic_loss"], b.metrics["critic_loss"], rtol=1e-3, atol=1e-5)
    assert int(np.asarray(a.metrics["learning"]).sum()) == 501  # it learned from step 100 of 600 on


def test_gorl_sac_switch_restarts_the_learner_on_an_empty_buffer_and_decodes_with_the_new_flow():
    train = jaxpg.make_train("gorl_sac", env="Pendulum-v1", num_stages=2, decoder_rollouts=64,
                             decoder_train_steps=30, decoder_batch_size=32, **SAC_SMALL)
    assert train.stage_starts == (300,)
    hp = train.default_hparams
    fresh = jax.jit(train.init)(jax.random.key(0))
    # A state as at the end of stage 0 (without compiling the learning step): moved learner, a full
    # buffer, an episode's return.
    moved = jax.tree.map(lambda x: x + 0.1, (fresh.params, fresh.critic_params, fresh.log_alpha))
    items = jax.tree.map(lambda x: jnp.stack([x] * 40), train._transition_example())
    state = fresh.replace(params=moved[0], critic_params=moved[1], log_alpha=moved[2], env_steps=jnp.int32(300),
                          buffer=train.buffer.add(fresh.buffer, items), last_return=jnp.float32(-500.0))
    after = jax.jit(train.switch_stage)(state, hp)
    assert int(after.stages.stage) == 1 and int(after.env_steps) == 300 + 64
    assert int(after.stages.start_env_steps) == 364 and not bool(train.learning_ready(after))
    for x, y in zip(jax.tree.leaves((after.params, after.critic_params, after.log_alpha, after.buffer)),
                    jax.tree.leaves((fresh.params, fresh.critic_params, fresh.log_alpha, fresh.buffer)), strict=True):
        # The learner and its buffer restart from init: the init inside the switch's program equals
        # jit(init)'s up to the rounding of two separately compiled programs (the moved state
        # differs by 0.1).
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-9)
    assert np.isnan(float(after.last_return)) and np.isfinite(float(after.stages.decoder_loss))
    # The executed action now goes through the trained flow (not the identity).
    obs, key = state.obs, jax.random.key(3)
    sample = jax.jit(train.behaviour)(after.replace(env_steps=after.env_steps + 1000), obs, key)
    u = train.network.apply(after.params, obs).sample_latent(jax.random.split(key)[0])
    np.testing.assert_allclose(sample.action, train.decoder_fn(after, obs)(u), rtol=1e-5, atol=1e-6)
    assert not np.allclose(sample.action, sample.latent, atol=1e-3)
    with pytest.raises(ValueError, match="valid choices: ppo, sac"):
        jaxpg.make_train("gorl", base="a2c")
    with pytest.raises(ValueError, match="must cover learning_starts"):
        jaxpg.make_train("gorl_sac", env="Pendulum-v1", total_steps=600, num_stages=8, learning_starts=100)
