"""N2N layer removal (Ashok et al. 2018): the reward, the masked students, the REINFORCE update and
baseline rule by hand, and the controller learning to drop the redundant layers of a synthetic
teacher (reward table), against a zero-learning-rate and a sign-flipped controller."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxpg.algos import n2n
from jaxpg.algos.trainer import compiler_options

L = 6
ESSENTIAL = (0, 2, 4)
TARGET = np.array([1, 0, 1, 0, 1, 0])  # keep the essential layers, drop the redundant ones


def test_reward_formula_by_hand():
    np.testing.assert_allclose(n2n.n2n_reward(0.9, 100.0, 0.96, 100.0), 0.0)  # C = 0
    np.testing.assert_allclose(n2n.n2n_reward(0.9, 0.0, 0.96, 100.0), 0.9 / 0.96, rtol=1e-6)  # C = 1
    # C = 0.75: C (2 - C) = 0.9375, accuracy ratio 0.9375.
    np.testing.assert_allclose(n2n.n2n_reward(0.9, 25.0, 0.96, 100.0), 0.9375 * 0.9375, rtol=1e-6)
    both = n2n.n2n_reward(jnp.array([0.9, 0.9]), jnp.array([25.0, 25.0]), 0.96, 100.0, valid=jnp.array([True, False]))
    np.testing.assert_allclose(both, [0.87890625, -1.0], rtol=1e-6)
    # Constrained: eps = max(0, 1 - e/15)^4; (eps - 1) + eps R where violated.
    r = 0.5
    np.testing.assert_allclose(n2n.n2n_constrained_reward(r, True, 0), r)  # eps = 1
    np.testing.assert_allclose(n2n.n2n_constrained_reward(r, True, 7.5), (0.0625 - 1) + 0.0625 * r, rtol=1e-6)
    np.testing.assert_allclose(n2n.n2n_constrained_reward(r, True, 15), -1.0)
    # The code's eps = min(1, (1 - e/15)^4) is 1 again at e = 30; here it stays 0.
    np.testing.assert_allclose(n2n.n2n_constrained_reward(r, True, 30), -1.0)
    np.testing.assert_allclose(n2n.n2n_constrained_reward(r, False, 10), r)


def test_parameter_count_and_masked_forward_by_hand():
    # width 2, two hidden layers, two classes: a hidden layer has 4 + 2 parameters, the head 4 + 2.
    assert int(n2n.student_params(np.array([1, 1]), 2, 2)) == 18
    assert int(n2n.student_params(np.array([1, 0]), 2, 2)) == 12
    assert int(n2n.student_params(np.array([0, 0]), 2, 2)) == 6
    np.testing.assert_array_equal(n2n.mask_valid(np.array([[0, 0], [0, 1]]), min_kept=1), [False, True])
    params = {"hidden": {"w": jnp.array([[[1.0, -1.0], [2.0, 0.5]], [[0.0, 1.0], [1.0, 0.0]]]),
                         "b": jnp.array([[0.5, 0.0], [0.0, 0.0]])},
              "head": {"w": jnp.array([[1.0, 0.0], [0.0, 2.0]]), "b": jnp.array([0.1, -0.1])}}
    x = jnp.array([1.0, 1.0])
    # Layer 0: relu([1 + 2 + 0.5, -1 + 0.5 + 0]) = [3.5, 0]; layer 1 removed (identity); head.
    np.testing.assert_allclose(n2n.mlp_apply(params, jnp.array([1, 0]), x), [3.6, -0.1], rtol=1e-6)
    # Both removed: the head on x. Both kept: layer 1 swaps [3.5, 0] -> [0, 3.5].
    np.testing.assert_allclose(n2n.mlp_apply(params, jnp.array([0, 0]), x), [1.1, 1.9], rtol=1e-6)
    np.testing.assert_allclose(n2n.mlp_apply(params, jnp.array([1, 1]), x), [0.1, 6.9], rtol=1e-6)


def test_synthetic_table_best_student_keeps_exactly_the_essential_layers():
    task = n2n.redundant_layers_task(L, ESSENTIAL)
    masks = n2n.all_masks(L)
    best = masks[int(jnp.argmax(task.reward))]
    np.testing.assert_array_equal(best, TARGET)
    np.testing.assert_allclose(task.reward[0], -1.0)  # no hidden layer kept: invalid
    np.testing.assert_array_equal(n2n.mask_index(masks), np.arange(2**L))


@functools.cache
def _small_controller():
    task = n2n.redundant_layers_task(4, (0, 2))
    # A random reward table, so that the rollouts' rewards differ.
    task = task.replace(reward=jax.random.uniform(jax.random.key(5), task.reward.shape, minval=-1.0, maxval=1.0))
    config = n2n.N2NConfig(num_rollouts=3, hidden_size=4, num_lstm_layers=1)
    ctrl = n2n.N2NController(config, n2n.table_reward, n2n.layer_embeddings(4))
    return ctrl, task, jax.jit(ctrl.step)


def _three_epochs(seed):
    ctrl, task, step = _small_controller()
    hparams = n2n.N2NHParams()
    states, metrics = [ctrl.init(jax.random.key(seed), hparams)], []
    for _ in range(3):
        state, m = step(states[-1], hparams, task)
        states.append(state)
        metrics.append(jax.tree.map(np.asarray, m))
    return ctrl, task, states, metrics


def test_reinforce_update_and_baseline_rule_by_hand():
    ctrl, task, states, metrics = _three_epochs(0)
    mean_r = [float(m["rewards"].mean()) for m in metrics]
    # The code's baseline b_e = sum_{k<e} avgR_k / (e + 1) (run.py), one-too-large divisor included.
    np.testing.assert_allclose([float(m["baseline"]) for m in metrics],
                               [0.0, mean_r[0] / 2, (mean_r[0] + mean_r[1]) / 3], rtol=1e-5, atol=1e-7)
    for m, r in zip(metrics, mean_r):
        np.testing.assert_allclose(m["rewards"], task.reward[n2n.mask_index(m["masks"])], rtol=1e-6)
        np.testing.assert_allclose(m["advantage"], r - m["baseline"], rtol=1e-5, atol=1e-7)
    # The corrected running mean of the previous averages, on the same sums.
    state2 = states[2]
    np.testing.assert_allclose(n2n.N2NController(n2n.N2NConfig(baseline="running_mean"), n2n.table_reward,
                                                 n2n.layer_embeddings(4)).baseline(state2),
                               (mean_r[0] + mean_r[1]) / 2, rtol=1e-5)
    # The first two epochs' updates by hand: every sequence reinforced with A = mean R - b, one Adam step per
    # sequence, all gradients at the sampling-time parameters (the code's update_controller).
    @jax.jit
    @jax.grad
    def hand_gradient(params, mask, advantage):
        log_pi = jax.nn.log_softmax(n2n.policy_logits(params, ctrl.features))
        return -advantage * jnp.sum(log_pi[jnp.arange(4), mask])

    for epoch in (0, 1):
        before, after, m = states[epoch], states[epoch + 1], metrics[epoch]
        advantage = float(m["rewards"].mean() - m["baseline"])
        tx = optax.adam(3e-3)
        params, opt_state = before.params, before.opt_state
        for mask in m["masks"]:
            grads = hand_gradient(before.params, jnp.asarray(mask), advantage)
            updates, opt_state = tx.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), params, after.params)


def test_same_key_same_result():
    _, _, states_a, metrics_a = _three_epochs(7)
    _, _, states_b, metrics_b = _three_epochs(7)
    _, _, _, metrics_c = _three_epochs(8)
    jax.tree.map(np.testing.assert_array_equal, metrics_a, metrics_b)
    jax.tree.map(np.testing.assert_array_equal, states_a[-1].params, states_b[-1].params)
    assert any(not np.array_equal(a["masks"], c["masks"]) for a, c in zip(metrics_a, metrics_c))


def _learned(keep_prob, table):
    """Per run: does the most likely student keep exactly the essential layers; the table reward
    of the most likely student."""
    greedy = (np.asarray(keep_prob) > 0.5).astype(int)
    return (greedy == TARGET).all(axis=1), np.asarray(table)[np.asarray(n2n.mask_index(greedy))]


def learns(keep_prob, table) -> bool:
    # Measured on 6 sets of 10 keys (500 epochs): 5-10 of 10 runs end with exactly the target as
    # most likely student, mean table reward of that student 0.50-0.74 (optimum 0.74); zero
    # learning rate and flipped sign: 0 of 10, mean reward <= -0.27. A policy near uniform makes
    # the target its most likely student with chance about 1/64.
    exact, reward = _learned(keep_prob, table)
    return int(exact.sum()) >= 4 and float(reward.mean()) >= 0.45


def test_controller_learns_to_drop_redundant_layers_and_broken_variants_do_not(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "")  # run time dominates: jaxpg's XLA level, not the suite's 0
    task = n2n.redundant_layers_task(L, ESSENTIAL)
    # The code's update (sequential, mean advantage, its baseline); one LSTM layer keeps the
    # program small (the paper's two layers learn the same table, more slowly per epoch).
    config = n2n.N2NConfig(num_epochs=500, num_lstm_layers=1)
    ctrl = n2n.N2NController(config, n2n.table_reward, n2n.layer_embeddings(L))

    def one(key, learning_rate, reward):
        state, metrics = ctrl(key, n2n.N2NHParams(learning_rate=learning_rate), task.replace(reward=reward))
        return ctrl.keep_probabilities(state.params), metrics["finite"].all()

    k = 10
    keys = jnp.concatenate([jax.random.split(jax.random.key(0), k)] * 3)
    learning_rates = jnp.repeat(jnp.array([3e-3, 0.0, 3e-3]), k)
    # Negating the table flips the advantage's sign exactly (b is linear in the past rewards).
    tables = jnp.concatenate([jnp.tile(task.reward, (k, 1))] * 2 + [jnp.tile(-task.reward, (k, 1))])
    keep_prob, finite = jax.jit(jax.vmap(one), compiler_options=compiler_options())(keys, learning_rates, tables)
    assert bool(finite.all())
    keep_prob = np.asarray(keep_prob)
    correct, zero_lr, flipped = keep_prob[:k], keep_prob[k:2 * k], keep_prob[2 * k:]
    exact, reward = _learned(correct, task.reward)
    assert learns(correct, task.reward), (exact.sum(), reward.mean())
    assert not learns(zero_lr, task.reward)
    assert not learns(flipped, task.reward)
    # The learned students drop the redundant layers and keep the essential ones, on average.
    # Measured on 6 other sets of 10 keys: redundant layers kept 0.13-0.23, essential 0.97-1.0.
    greedy = (correct > 0.5).astype(int)
    assert greedy[:, [1, 3, 5]].mean() < 0.3 and greedy[:, [0, 2, 4]].mean() > 0.9


def test_bad_inputs_raise_one_line_errors():
    features = n2n.layer_embeddings(3)
    cases = [
        (lambda: n2n.N2NController(n2n.N2NConfig(baseline="ema"), n2n.table_reward, features),
         "unknown baseline 'ema'; valid choices: n2n, running_mean"),
        (lambda: n2n.N2NController(n2n.N2NConfig(advantage="x"), n2n.table_reward, features),
         "valid choices: mean, per_rollout"),
        (lambda: n2n.N2NController(n2n.N2NConfig(update="x"), n2n.table_reward, features),
         "valid choices: sequential, batch"),
        (lambda: n2n.N2NController(n2n.N2NConfig(num_rollouts=0), n2n.table_reward, features),
         "num_rollouts = 0 is out of range; valid: num_rollouts >= 1"),
        (lambda: n2n.N2NController(n2n.N2NConfig(), n2n.table_reward, jnp.ones(3)), "features must be"),
        (lambda: n2n.N2NController(n2n.N2NConfig(), n2n.table_reward, features).init(
            jax.random.key(0), n2n.N2NHParams(learning_rate=-1.0)), "learning_rate >= 0"),
        (lambda: n2n.redundant_layers_task(3, (0, 3)), "essential layers must lie in 0..2"),
        (lambda: n2n.distillation_reward(num_steps=0), "num_steps >= 1"),
        (lambda: n2n.train_teacher(jax.random.key(0), jnp.ones((4, 3)), jnp.zeros(4, int), width=4,
                                   num_layers=2, num_classes=2), "input dimension 3 must equal width = 4"),
    ]
    for make, message in cases:
        with pytest.raises(ValueError, match=None) as info:
            make()
        assert message in str(info.value) and "\n" not in str(info.value), str(info.value)
