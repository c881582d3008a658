"""GROOVE/LPG meta-training end to end at toy size: the trainer, ``jaxpg meta-train`` with a stop
and a resume, the saved rule, and ``make_train("lpg")`` with it."""

from __future__ import annotations

import os

import jax
import numpy as np
import pytest

import jaxpg
from jaxpg import meta
from jaxpg.cli import main

TOY = dict(curriculum="regret", num_agents=2, num_envs=2, num_steps=5, num_updates=1, lifetime=2, hidden_size=8,
           buffer_size=4, replay_prob=1.0)


def test_meta_training_resumes_exactly_and_its_rule_trains_fresh_agents(tmp_path, capsys):
    trainer = meta.MetaTrainer(meta.MetaConfig(**TOY, meta_steps=4))
    state = jax.jit(trainer.init)(jax.random.key(0))
    run = jax.jit(lambda s: trainer.run(s, 2))
    middle, first = run(state)
    after, second = run(middle)
    metrics = {k: np.concatenate([first[k], second[k]]) for k in first}
    ends = metrics["lifetime_end"]
    np.testing.assert_array_equal(ends, [False, True, False, True])  # lifetime 2 updates, K = 1
    assert np.isnan(metrics["regret"][~ends]).all() and np.isfinite(metrics["regret"][ends]).all()  # scored at ends
    assert int(after.buffer.size) == 4 and float(metrics["replayed"][3]) == 1.0  # a full buffer replays
    assert np.isfinite(metrics["meta_loss"]).all()
    assert max(float(np.abs(a - b).max()) for a, b in zip(jax.tree.leaves(state.eta), jax.tree.leaves(after.eta))) > 0

    # The command line: stop after 2 meta-steps, resume, and the saved rule is the same rule.
    out = str(tmp_path / "groove")
    settings = [arg for k, v in TOY.items() if k != "curriculum" for arg in ("--set", f"{k}={v}")]
    common = ["meta-train", "--curriculum", "regret", "--meta-steps", "4", "--checkpoint-every", "2", "--progress", "off"]
    assert main(common + settings + ["--stop-after", "2", "--out", out]) == 0
    assert "continue with: jaxpg meta-train --resume" in capsys.readouterr().out
    assert main(["meta-train", "--resume", out, "--progress", "off"]) == 0
    network, eta, info = meta.load_rule(os.path.join(out, "rule.msgpack"))
    assert network == trainer.network and info["meta_steps"] == 4
    for x, y in zip(jax.tree.leaves(eta), jax.tree.leaves(after.eta), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
    assert os.path.exists(os.path.join(out, "curves.png"))

    # A fresh agent trained by the rule: a grid-world (tabular, SGD) and classic control (MLP, Adam).
    rule = os.path.join(out, "rule.msgpack")
    train = jaxpg.make_train("lpg", env="gridworld/dense", rule=rule, num_envs=2, num_steps=10, total_steps=60)
    result = jax.jit(jax.vmap(lambda k: train(k)))(jax.random.split(jax.random.key(1), 2))  # seeds vmap
    assert np.asarray(result.metrics["finite"]).all()
    assert np.asarray(jaxpg.evaluate(result, jax.random.key(2), num_episodes=1)).shape == (2, 1)
    cartpole = jaxpg.make_train("lpg", env="CartPole-v1", rule=rule, hidden_sizes=(16,), optimizer="adam",
                                num_envs=2, num_steps=10, total_steps=60)
    assert np.asarray(jax.jit(lambda k: cartpole(k))(jax.random.key(1)).metrics["finite"]).all()


def test_bad_rules_and_options_are_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match="lpg needs rule=PATH"):
        jaxpg.make_train("lpg", env="gridworld/dense")
    with pytest.raises(FileNotFoundError, match="no learned rule at"):
        jaxpg.make_train("lpg", env="gridworld/dense", rule=str(tmp_path / "missing.msgpack"))
    junk = tmp_path / "junk.msgpack"
    junk.write_bytes(b"not a rule")
    with pytest.raises(ValueError, match="is not a jaxpg learned-rule file"):
        meta.load_rule(str(junk))
    with pytest.raises(ValueError, match="valid choices: uniform, regret, pvl"):
        meta.MetaTrainer(meta.MetaConfig(curriculum="plr"))
    with pytest.raises(ValueError, match="multiple of num_updates"):
        meta.MetaTrainer(meta.MetaConfig(lifetime=7, num_updates=5))
    assert main(["meta-train", "--set", "agents=3", "--out", str(tmp_path / "x")]) == 2
    assert "unknown setting 'agents'; valid choices:" in capsys.readouterr().err
    assert main(["meta-train", "--curriculum", "plr", "--out", str(tmp_path / "y")]) == 2
    assert "valid choices: uniform, regret, pvl" in capsys.readouterr().err


def test_positive_value_loss_score_by_hand():
    """PLR's score mean_t max(A_t, 0): with a zero value head, A_t = sum_k (gamma lambda)^k r_t+k."""
    from jaxpg.algos.rollout import Transition

    agent = meta.LPGAgent(num_actions=2, prediction_dim=2)
    params = agent.init(jax.random.key(0), np.zeros(3, np.float32))  # tabular: zero kernels, V = 0
    rewards = np.array([[1.0], [0.0], [-1.0]], np.float32)
    zeros, false = np.zeros((3, 1), np.float32), np.zeros((3, 1), bool)
    traj = Transition(obs=np.zeros((3, 1, 3), np.float32), latent=zeros, action=zeros.astype(np.int32), log_prob=zeros,
                      reward=rewards, terminated=false, truncated=false, final_obs=np.zeros((3, 1, 3), np.float32),
                      episode_return=zeros, episode_length=zeros, extras={})
    gl = 0.99 * 0.95
    advantages = np.array([1.0 - gl ** 2, -gl, -1.0])
    expected = np.maximum(advantages, 0.0).mean()
    np.testing.assert_allclose(meta.positive_advantage_mean(agent, params, traj, meta.LPGHParams()), expected, rtol=1e-5)
