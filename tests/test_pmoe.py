"""PMOE-SAC (Ren et al. 2021): the estimator's loss by hand (best-expert back-propagation plus the
frequency loss), and the trainer's per-expert metrics on a tiny run."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxpg
from jaxpg import losses
from jaxpg.algos import Result


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
    """A PMOE-SAC Result at initialization (evaluation needs no training; the gate and the experts'
    means differ across states already)."""
    train = jaxpg.make_train("pmoe_sac", env="Pendulum-v1", total_steps=200, hidden_sizes=(16, 16), num_experts=3)
    state = jax.jit(train.init)(jax.random.key(0))
    return train, Result(params=state.params, metrics={}, state=state, algo=train.algo, config=train.config)


def test_evaluation_uses_the_most_probable_experts_mean(tiny):
    train, result = tiny
    act = jaxpg.policy_fn(result)
    obs = jax.random.normal(jax.random.key(3), (5, 3))
    mixture = train.network.apply(result.params, obs)
    best = np.argmax(np.asarray(mixture.logits), -1)
    expected = 2.0 * np.tanh(np.asarray(mixture.components.mean)[np.arange(5), best])
    np.testing.assert_allclose(act(obs), expected, rtol=1e-5, atol=1e-6)


def test_one_expert_pmoe_sac_is_sac():
    """K = 1: the gate has nothing to choose (its gradient is zero) and PMOE-SAC takes SAC's steps
    from SAC's parameters and key (the mixture draws its one expert's sample from the same key)."""
    kw = dict(env="Pendulum-v1", total_steps=120, hidden_sizes=(16, 16), batch_size=16, learning_starts=40,
              buffer_size=500)
    sac, moe = jaxpg.make_train("sac", **kw), jaxpg.make_train("pmoe_sac", num_experts=1, **kw)
    hp = sac.default_hparams
    key = jax.random.key(3)
    s_sac, s_moe = jax.jit(sac.init)(key), jax.jit(moe.init)(key)
    params = jax.tree.map(lambda x: x, s_moe.params)  # a copy with SAC's actor in the expert slot
    params["params"]["head"]["experts"] = s_sac.params["params"]["head"]
    params["params"]["torso"] = s_sac.params["params"]["torso"]
    s_moe = s_moe.replace(params=params, actor_opt_state=moe._optimizer(hp).init(params))
    end_sac = jax.jit(lambda s: sac.run(s, hp).state)(s_sac)
    end_moe = jax.jit(lambda s: moe.run(s, hp).state)(s_moe)
    moe_actor = {"torso": end_moe.params["params"]["torso"], "head": end_moe.params["params"]["head"]["experts"]}
    pairs = [(end_sac.params["params"], moe_actor), (end_sac.critic_params, end_moe.critic_params),
             (end_sac.log_alpha, end_moe.log_alpha)]
    for a, b in pairs:
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            np.testing.assert_allclose(x, y, rtol=2e-4, atol=1e-6)
    assert float(jnp.abs(end_sac.log_alpha - s_sac.log_alpha)) > 0  # it did train


def test_gumbel_softmax_gate_is_a_one_hot_sample_with_the_relaxations_gradient():
    logits = jnp.log(jnp.array([[0.7, 0.2, 0.1]]))
    samples = jax.vmap(lambda k: losses.gumbel_softmax_gate(k, logits))(jax.random.split(jax.random.key(0), 4000))
    np.testing.assert_allclose(samples.sum(-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.sort(np.asarray(samples).ravel())[[0, -1]], [0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(samples.mean((0, 1)), [0.7, 0.2, 0.1], atol=0.025)  # Cat(softmax(logits))
    key = jax.random.key(1)
    y = losses.gumbel_softmax_gate(key, logits, temperature=0.5)
    g = jax.random.gumbel(key, logits.shape)
    soft = lambda l: jax.nn.softmax((l + g) / 0.5)  # noqa: E731
    v = jnp.array([[1.0, -2.0, 0.5]])
    np.testing.assert_allclose(jax.grad(lambda l: (losses.gumbel_softmax_gate(key, l, temperature=0.5) * v).sum())(logits),
                               jax.grad(lambda l: (soft(l) * v).sum())(logits), rtol=1e-5)
    # The actor loss: its value is the selected expert's SAC loss; the gate gets a gradient.
    log_prob = jnp.array([[-1.0, -2.0, -3.0]])
    loss, aux = losses.gumbel_softmax_actor_loss(jnp.array([4.0]), log_prob, y, jax.nn.softmax(logits), alpha=0.1)
    k = int(jnp.argmax(y))
    np.testing.assert_allclose(loss, 0.1 * log_prob[0, k] - 4.0, rtol=1e-6)
    np.testing.assert_allclose(aux["selection_frequency"], np.eye(3)[k])


def test_score_function_gate_loss_by_hand():
    q = jnp.array([[1.0, 3.0], [2.0, 0.0]])
    log_prob = jnp.array([[-1.0, -2.0], [-0.5, -3.0]])
    logits = jnp.log(jnp.array([[0.25, 0.75], [0.5, 0.5]]))
    selected = jnp.array([0, 0])
    alpha = 0.1
    loss, aux = losses.score_function_gate_actor_loss(q, log_prob, logits, selected, alpha=alpha)
    v = np.asarray(q - alpha * log_prob)  # soft values [[1.1, 3.2], [2.05, 0.3]]
    w = np.array([[0.25, 0.75], [0.5, 0.5]])
    baseline = (w * v).sum(-1)
    actor = np.mean([alpha * -1.0 - 1.0, alpha * -0.5 - 2.0])
    gate = -np.mean([np.log(0.25) * (v[0, 0] - baseline[0]), np.log(0.5) * (v[1, 0] - baseline[1])])
    np.testing.assert_allclose(aux["actor_loss"], actor, rtol=1e-6)
    np.testing.assert_allclose(aux["gate_loss"], gate, rtol=1e-5)
    np.testing.assert_allclose(loss, actor + gate, rtol=1e-5)
    # The gate's gradient is the REINFORCE direction: d/dlogits of -log w_k (v_k - b).
    dlogits = jax.grad(lambda l: losses.score_function_gate_actor_loss(q, log_prob, l, selected, alpha=alpha)[0])(logits)
    expected = -((np.eye(2)[[0, 0]] - w) * (v[:, 0] - baseline)[:, None]) / 2
    np.testing.assert_allclose(dlogits, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("estimator", ["frequency", "gumbel_softmax", "score_function"])
def test_every_gate_estimator_sends_the_gate_a_gradient(estimator):
    """The actor loss of each estimator on a batch: the gate's kernel gets a nonzero gradient (the
    frequency loss, the relaxed sample, the score function), and the metrics name every expert."""
    train = jaxpg.make_train("pmoe_sac", env="Pendulum-v1", hidden_sizes=(16, 16), num_experts=3,
                             gate_estimator=estimator)
    state = jax.jit(train.init)(jax.random.key(0))
    obs = jax.random.normal(jax.random.key(1), (64, 3))
    grads, aux = jax.jit(jax.grad(train.actor_loss, has_aux=True))(state.params, state, state.critic_params, obs,
                                                                   jax.random.key(2), train.default_hparams)
    assert float(jnp.abs(grads["params"]["head"]["gate"]["kernel"]).max()) > 0
    assert float(jnp.abs(grads["params"]["head"]["experts"]["Dense_0"]["kernel"]).max()) > 0
    np.testing.assert_allclose(sum(aux[f"selection_frequency/{k}"] for k in range(3)), 1.0, rtol=1e-6)
    np.testing.assert_allclose(sum(aux[f"gate_probability/{k}"] for k in range(3)), 1.0, rtol=1e-6)
    assert aux["log_prob"].shape == (64,)


def test_unknown_gate_estimator_is_refused():
    with pytest.raises(ValueError, match="valid choices: frequency, gumbel_softmax, score_function"):
        jaxpg.make_train("pmoe_sac", env="Pendulum-v1", gate_estimator="softmax")


# ---- PMOE-PPO ---------------------------------------------------------------------------------
PPO_TINY = dict(env="Pendulum-v1", total_steps=1024, num_envs=2, num_steps=64, hidden_sizes=(16, 16))


def test_pmoe_ppo_loss_is_ppo_plus_the_frequency_and_q_terms():
    """On a batch of the behaviour policy's samples: the Q network's gradient is exactly that of
    q_coef * mean (Q(s, a) - target)^2, the gate gets a gradient, with both coefficients 0 the loss
    is PPO's objective, and a non-Box environment is refused."""
    from jaxpg.algos.rollout import Transition

    train = jaxpg.make_train("pmoe_ppo", num_experts=3, **PPO_TINY)
    hp = train.default_hparams.replace(q_coef=0.7)
    state = jax.jit(train.init)(jax.random.key(0))
    params = state.params
    obs = jax.random.normal(jax.random.key(1), (32, 3))
    sample, extras = jax.jit(train.act)(state, obs, jax.random.key(2))
    batch = Transition(obs=obs, latent=sample.latent, action=sample.action, log_prob=sample.log_prob,
                       reward=jnp.zeros(32), terminated=jnp.zeros(32, bool), truncated=jnp.zeros(32, bool),
                       final_obs=obs, episode_return=jnp.zeros(32), episode_length=jnp.zeros(32), extras=extras)
    adv, targets = jax.random.normal(jax.random.key(3), (2, 32))
    all_grads = jax.jit(jax.grad(lambda p: train.loss(p, hp, batch, adv, targets)[0]))(params)["params"]
    grads = all_grads["q_network"]
    assert float(jnp.abs(all_grads["head"]["gate"]["kernel"]).max()) > 0  # the gate learns (ratio and frequency loss)

    def q_term(q_params):
        p = {"params": {**params["params"], "q_network": q_params}}
        return 0.7 * jnp.mean(jnp.square(train.network.apply(p, obs, sample.action, method="q") - targets))

    expected = jax.jit(jax.grad(q_term))(params["params"]["q_network"])
    for x, y in zip(jax.tree.leaves(grads), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)
    bare = hp.replace(q_coef=0.0, frequency_coef=0.0)
    policy, values = train.network.apply(params, obs)
    ppo_loss = train.objective(policy, values, batch, adv, targets, bare)[0]
    np.testing.assert_allclose(jax.jit(train.loss)(params, bare, batch, adv, targets)[0], ppo_loss, rtol=1e-6)
    with pytest.raises(ValueError, match="continuous"):
        jaxpg.make_train("pmoe_ppo", env="CartPole-v1")


def test_curves_get_one_line_per_expert(tmp_path):
    from jaxpg import plotting

    metrics = {"env_steps": np.arange(1, 6) * 10, "episode_return": np.zeros(5),
               **{f"gate_probability/{k}": np.full(5, 1 / 12) for k in range(12)}}
    assert plotting._experts(metrics, "gate_probability")[-3:] == ["gate_probability/9", "gate_probability/10",
                                                                    "gate_probability/11"]
    assert plotting._experts(metrics, "selection_frequency") == []
    assert (tmp_path / "c.png").exists() is False
    plotting.plot_learning_curves(metrics, str(tmp_path / "c.png"))
    assert (tmp_path / "c.png").stat().st_size > 0
