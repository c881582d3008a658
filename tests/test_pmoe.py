"""PMOE-SAC (Ren et al. 2021): the estimator's loss by hand (best-expert back-propagation plus the
frequency loss), and the trainer's per-expert metrics on a tiny run."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxpg
from jaxpg import losses


def test_pmoe_actor_loss_by_hand():
    q = jnp.array([[1.0, 3.0], [2.0, 0.0]])  # best experts: 1, then 0
    log_prob = jnp.array([[-1.0, -2.0], [-0.5, -3.0]])
    gate = jnp.array([[0.5, 0.5], [0.9, 0.1]])
    loss, aux = losses.pmoe_actor_loss(q, log_prob, gate, alpha=0.1)
    actor = np.mean([0.1 * -2.0 - 3.0, 0.1 * -0.5 - 2.0])
    frequency = np.mean([(0.5 - 0) ** 2, (0.5 - 1) ** 2, (0.9 - 1) ** 2, (0.1 - 0) ** 2])
    np.testing.assert_allclose(loss, actor + frequency, rtol=1e-6)
    np.testing.assert_allclose(aux["selected_log_prob"], [-2.0, -0.5])
    np.testing.assert_allclose(aux["selection_frequency"], [0.5, 0.5])


def test_pmoe_gradients_reach_only_the_best_expert_and_the_gate():
    q = jnp.array([[1.0, 3.0], [2.0, 0.0]])
    log_prob = jnp.array([[-1.0, -2.0], [-0.5, -3.0]])
    gate = jnp.array([[0.5, 0.5], [0.9, 0.1]])
    f = lambda q, lp, w: losses.pmoe_actor_loss(q, lp, w, alpha=0.1)[0]  # noqa: E731
    dq, dlp, dw = jax.grad(f, argnums=(0, 1, 2))(q, log_prob, gate)
    np.testing.assert_allclose(dq, [[0.0, -0.5], [-0.5, 0.0]])  # -1/B at k*, 0 elsewhere
    np.testing.assert_allclose(dlp, [[0.0, 0.05], [0.05, 0.0]])  # alpha/B at k*
    one_hot = np.array([[0.0, 1.0], [1.0, 0.0]])
    np.testing.assert_allclose(dw, 2 * (np.asarray(gate) - one_hot) / 4, rtol=1e-6)  # MSE to the one-hot


@pytest.fixture(scope="module")
def tiny():
    train = jaxpg.make_train("pmoe_sac", env="Pendulum-v1", total_steps=200, hidden_sizes=(16, 16), batch_size=32,
                             learning_starts=100, num_experts=3)
    result = jax.jit(train)(jax.random.key(0), train.default_hparams)
    return train, result


def test_per_expert_metrics_show_gate_and_selection(tiny):
    train, result = tiny
    m = {k: np.asarray(v) for k, v in result.metrics.items()}
    assert m["finite"].all()
    selection = np.stack([m[f"selection_frequency/{k}"] for k in range(3)], -1)[100:]
    gate = np.stack([m[f"gate_probability/{k}"] for k in range(3)], -1)[100:]
    np.testing.assert_allclose(selection.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(gate.sum(-1), 1.0, rtol=1e-5)
    assert (m["frequency_loss"][100:] > 0).all()


def test_evaluation_uses_the_most_probable_experts_mean(tiny):
    train, result = tiny
    act = jaxpg.policy_fn(result)
    obs = jnp.zeros((5, 3))
    mixture = train.network.apply(result.params, obs)
    best = np.argmax(np.asarray(mixture.logits), -1)
    expected = 2.0 * np.tanh(np.asarray(mixture.components.mean)[np.arange(5), best])
    np.testing.assert_allclose(act(obs), expected, rtol=1e-5, atol=1e-6)
