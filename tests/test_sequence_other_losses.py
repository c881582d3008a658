"""Known-answer and fuzz tests for the token-reward, curvature, multi-objective, REINFORCE-family and
pairwise sequence losses (jaxpg/losses/sequence: token_rewards, turn_level, reward_models,
reward_weighting, curvature, distribution_matching, one_token_rollout, pairwise).

Reference values are computed independently of the code under test: by hand, in NumPy float64
loops, as closed forms, or as jax.grad of a separately written formula.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpg.losses.sequence import (
    curvature,
    distribution_matching,
    one_token_rollout,
    pairwise,
    reward_models,
    reward_weighting,
    token_rewards,
    turn_level,
)
from jaxpg.losses.sequence import recipe as seq_recipe
from jaxpg.losses.sequence.batch import SequenceBatch
from jaxpg.losses.sequence.ratios import token_log_ratio

MODULES = (token_rewards, turn_level, reward_models, reward_weighting, curvature, distribution_matching,
           one_token_rollout, pairwise)
ALL_RECIPES = {name: r for m in MODULES for name, r in m.RECIPES.items()}
LOG2 = float(np.log(2.0))


B, T, V, D = 8, 5, 6, 4  # one shape for most tests: eager JAX compiles each op once per shape


def _batch(seed: int = 0, *, b: int = B, t: int = T, v: int = V, d: int = D, group_size: int = 2, **overrides):
    """A random valid batch with every field filled (NumPy draws: no compilation); ``logp`` is
    gathered from ``logits`` (one forward pass)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(b, t, v)).astype(np.float32)
    tokens = rng.integers(0, v, size=(b, t))
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    logp = np.take_along_axis(log_probs, tokens[..., None], -1)[..., 0]
    mask = np.ones((b, t), np.float32)
    mask[min(1, b - 1), 3:] = 0.0
    f32 = lambda x: jnp.asarray(np.asarray(x, np.float32))
    fields = dict(
        logp=f32(logp),
        old_logp=f32(logp + 0.1 * rng.normal(size=(b, t))),
        mask=f32(mask),
        rewards=f32(rng.random(b) < 0.5),
        group_ids=jnp.asarray(np.arange(b) // group_size, jnp.int32),
        ref_logp=f32(logp + 0.3 * rng.normal(size=(b, t))),
        entropy=f32(np.ones((b, t))),
        segment_ids=jnp.asarray(np.tile(np.arange(t) // 2, (b, 1)), jnp.int32),
        strata=jnp.zeros((b,), jnp.int32),
        answer_ids=jnp.zeros((b,), jnp.int32),
        is_demo=f32(np.zeros(b)),
        token_rewards=f32(np.sign(rng.normal(size=(b, t)))),
        values=f32(rng.normal(size=(b, t))),
        old_values=f32(rng.normal(size=(b, t))),
        logits=f32(logits),
        targets=jnp.asarray(tokens, jnp.int32),
        extras={
            "preferred": f32(np.arange(b) % 2 == 0),
            "p_win": f32(rng.random(b)),
            "hidden": f32(rng.normal(size=(b, t, d))),
            "reward_weights": f32([0.5, 0.3, 0.2]),
        },
    )
    fields.update(overrides)
    return SequenceBatch(**fields)


def _loss_and_grads(recipe, batch, key=None):
    """``loss, (d/d logp, d/d values, d/d logits)``; every test differentiates the same way, so the
    eager tests share compiled operations."""
    def loss(logp, values, logits):
        return recipe(batch.replace(logp=logp, values=values, logits=logits), key)[0]

    return jax.value_and_grad(loss, argnums=(0, 1, 2))(batch.logp, batch.values, batch.logits)


def _gae_reference(rewards, values, mask, gamma, lam):
    """GAE by a NumPy loop over each response's valid tokens only (the last bootstraps 0)."""
    rewards, values, mask = (np.asarray(x, np.float64) for x in (rewards, values, mask))
    adv = np.zeros_like(rewards)
    for i in range(rewards.shape[0]):
        idx = np.flatnonzero(mask[i])
        running = 0.0
        for pos in range(len(idx) - 1, -1, -1):
            t = idx[pos]
            next_value = values[i, idx[pos + 1]] if pos + 1 < len(idx) else 0.0
            delta = rewards[i, t] + gamma * next_value - values[i, t]
            running = delta + gamma * lam * running
            adv[i, t] = running
    return adv


# --------------------------------------------------------------------------- token rewards / GAE


def _set(x, index, value):
    """``x.at[index].set(value)`` in NumPy (test-side edits need no compilation)."""
    out = np.array(x)
    out[index] = value
    return jnp.asarray(out)


def _embed(rows, fill: float = 0.0):
    """Hand-written rows, left-aligned in a ``[B, T]`` array filled with ``fill`` (the shared shape)."""
    out = np.full((B, T), fill, np.float32)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    return jnp.asarray(out)


def test_gae_hand_computed_and_monte_carlo_limit():
    mask = _embed([[1, 1, 1], [1, 1, 1, 1]])
    r = _embed([[0.0, 0.0, 1.0], [0.3, -1.0, 2.0, 0.5]], fill=9.0)  # the fill is masked out
    v = _embed([[0.5, 0.2, 0.4], [0.1, 0.2, -0.3, 0.4]], fill=9.0)
    adv = token_rewards.generalized_advantage(r, v, mask, gamma=1.0, lam=0.5)
    # Row 0: delta = (-0.3, 0.2, 0.6); A2 = 0.6, A1 = 0.2 + 0.5 * 0.6, A0 = -0.3 + 0.5 * 0.5.
    np.testing.assert_allclose(adv[0], [-0.05, 0.5, 0.6, 0.0, 0.0], atol=1e-6)
    # lambda = gamma = 1: A_t = (return from t) - V_t.
    adv = token_rewards.generalized_advantage(r, v, mask, gamma=1.0, lam=1.0)
    np.testing.assert_allclose(adv[1], [1.8 - 0.1, 1.5 - 0.2, 2.5 + 0.3, 0.5 - 0.4, 0.0], atol=1e-6)
    assert np.all(np.asarray(adv)[2:] == 0.0)  # rows without valid tokens


def test_gae_skips_masked_tokens_and_matches_loop():
    batch = _batch(3)
    r, v = batch.token_rewards, batch.values
    mask = _embed([[1, 1, 1, 1, 1], [1, 0, 0, 1, 1], [0, 0, 0, 0, 0], [1, 1, 1], [0, 1], [1]])
    adv = token_rewards.generalized_advantage(r, v, mask, gamma=0.9, lam=0.8)
    np.testing.assert_allclose(adv, _gae_reference(r, v, mask, 0.9, 0.8), atol=1e-5)
    # An environment turn (masked tokens 1, 2 of row 1) is skipped: the same as the compressed
    # response (row 1's tokens 0, 3, 4 moved to positions 0, 1, 2 of a row).
    keep = np.array([0, 3, 4, 0, 0])
    compressed = token_rewards.generalized_advantage(jnp.asarray(np.asarray(r)[:, keep]),
                                                     jnp.asarray(np.asarray(v)[:, keep]),
                                                     _embed([[0], [1, 1, 1]]), gamma=0.9, lam=0.8)
    np.testing.assert_allclose(np.asarray(adv)[1, [0, 3, 4]], np.asarray(compressed)[1, :3], atol=1e-6)


def test_masked_whiten():
    batch = _batch(4)
    w = token_rewards.masked_whiten(batch.values, batch.mask)
    valid = np.asarray(batch.mask) > 0
    x = np.asarray(batch.values, np.float64)[valid]
    np.testing.assert_allclose(np.asarray(w)[valid], (x - x.mean()) / np.sqrt(x.var(ddof=1) + 1e-8), atol=1e-5)
    assert np.all(np.asarray(w)[~valid] == 0.0)


def test_text2grad_token_rewards_hand_values():
    batch = _batch(0).replace(token_rewards=_embed([[1.0, -1.0, 0.0], [0.0, 1.0, 1.0]]),
                              old_logp=jnp.full((B, T), -1.0), ref_logp=jnp.full((B, T), -1.5),
                              mask=_embed([[1.0, 1.0], [1.0, 1.0, 1.0]]))
    r = token_rewards.text2grad_token_rewards(batch, beta=0.2)  # KL_t = -1 - (-1.5) = 0.5
    np.testing.assert_allclose(r[:2, :3], [[0.9, -1.1, 0.0], [-0.1, 0.9, 0.9]], atol=1e-6)
    assert np.all(np.asarray(r)[2:] == 0.0)


def test_value_loss_hand_value_and_gradient():
    batch = _batch(0).replace(mask=_embed([[1.0, 1.0]]), token_rewards=_embed([[0.0, 1.0]]),
                              old_values=_embed([[0.2, 0.5]]), values=_embed([[0.6, 0.45]]))
    # gamma = lam = 1: returns = (1, 1). Token 0: v - old = 0.4 clipped to 0.2 -> 0.4; max((0.6-1)^2, (0.4-1)^2) = 0.36.
    # Token 1: |0.45 - 0.5| < 0.2: (0.45 - 1)^2 = 0.3025. Loss = mean(0.5 * [0.36, 0.3025]).
    value, grad = jax.value_and_grad(lambda v: token_rewards.value_loss(
        batch.replace(values=v), None, None, clip=0.2, gamma=1.0, lam=1.0))(batch.values)
    np.testing.assert_allclose(value, 0.5 * (0.36 + 0.3025) / 2, atol=1e-6)
    # The clipped branch carries no gradient for token 0; token 1: 0.5 * 2 * (0.45 - 1) / 2.
    np.testing.assert_allclose(grad, _embed([[0.0, -0.275]]), atol=1e-6)


def test_text2grad_terminal_span_equals_scalar_reward_rlhf_ppo():
    """All span scores on the last token and beta = 0: Text2Grad's advantages, returns and loss
    are RLHF-PPO's with the scalar reward (GAE over a terminal reward), i.e. POLAR-PPO's machinery."""
    batch = _batch(1)
    batch = batch.replace(mask=_set(_set(batch.mask, np.s_[2, 2:], 0.0), np.s_[4, 1:], 0.0))
    last = token_rewards.last_token_mask(batch.mask)
    np.testing.assert_array_equal(np.asarray(last).sum(1), 1.0)
    batch = batch.replace(token_rewards=batch.rewards[:, None] * last)
    text2grad_rewards = functools.partial(token_rewards.text2grad_token_rewards, beta=0.0)
    reference = _gae_reference(batch.token_rewards, batch.old_values, batch.mask, 1.0, 0.95)
    for whiten in (False, True):
        a_text = token_rewards.token_gae_advantage(None, batch, whiten=whiten, token_reward=text2grad_rewards)
        a_rlhf = token_rewards.token_gae_advantage(None, batch, whiten=whiten,
                                                   token_reward=token_rewards.terminal_token_rewards)
        np.testing.assert_allclose(a_text, a_rlhf, atol=1e-6)
        if not whiten:
            np.testing.assert_allclose(a_text, reference, atol=1e-5)
    t2g = token_rewards.gae_ppo_recipe("t2g0", token_reward=text2grad_rewards, requires=(), paper="")
    rlhf = token_rewards.gae_ppo_recipe("rlhf", token_reward=token_rewards.terminal_token_rewards, requires=(),
                                        paper="")

    (loss_t2g, grads_t2g), (loss_rlhf, grads_rlhf) = _loss_and_grads(t2g, batch), _loss_and_grads(rlhf, batch)
    np.testing.assert_allclose(loss_t2g, loss_rlhf, atol=1e-6)
    for g_t2g, g_rlhf in zip(grads_t2g, grads_rlhf):
        np.testing.assert_allclose(g_t2g, g_rlhf, atol=1e-6)


# --------------------------------------------------------------------------- turn level


def _turn_ppo_reference(batch, eps=0.2):
    """Turn-PPO's policy loss from per-turn geometric-mean ratios computed by NumPy loops."""
    adv = np.asarray(turn_level.TURN_PPO.terms[0].advantages(batch))
    logp, old, mask, seg = (np.asarray(x, np.float64) for x in (batch.logp, batch.old_logp, batch.mask,
                                                                 batch.segment_ids))
    total, count = 0.0, 0.0
    for i in range(logp.shape[0]):
        for t in range(logp.shape[1]):
            if mask[i, t] == 0:
                continue
            same = (seg[i] == seg[i, t]) & (mask[i] != 0)
            rho = np.exp(np.mean(logp[i, same] - old[i, same]))
            total += max(-adv[i, t] * rho, -adv[i, t] * np.clip(rho, 1 - eps, 1 + eps))
            count += 1
    return total / count


@pytest.mark.parametrize("layout", ["single_token_turns", "one_turn", "three_turns"])
def test_turn_ppo_matches_turn_geometric_mean_reference(layout):
    batch = _batch(2)
    noise = np.random.default_rng(9).normal(size=(B, T)).astype(np.float32)
    batch = batch.replace(old_logp=jnp.asarray(np.asarray(batch.logp) + 0.3 * noise),
                          mask=_set(batch.mask, np.s_[0, 2], 0.0))  # an environment token inside a turn
    segments = {"single_token_turns": np.tile(np.arange(T), (B, 1)),
                "one_turn": np.zeros((B, T)),
                "three_turns": np.tile(np.array([0, 0, 1, 1, 2]), (B, 1))}[layout]
    segments = jnp.asarray(segments, jnp.int32)
    batch = batch.replace(segment_ids=segments)
    policy_loss = turn_level.TURN_PPO(batch)[1]["policy_loss"]
    np.testing.assert_allclose(policy_loss, _turn_ppo_reference(batch), rtol=1e-5, atol=1e-6)


def test_turn_ppo_special_cases_equal_token_ppo_and_gspo():
    """Single-token turns: token PPO (loss and gradient); one turn: GSPO's sequence geometric ratio."""
    from jaxpg.losses.sequence.ratios import sequence_geometric_log_ratio

    batch = _batch(3)
    noise = 0.3 * np.random.default_rng(5).normal(size=(B, T))
    batch = batch.replace(old_logp=jnp.asarray(np.asarray(batch.logp) + noise, jnp.float32))
    cases = ((jnp.asarray(np.tile(np.arange(T), (B, 1)), jnp.int32), token_log_ratio),
             (jnp.zeros((B, T), jnp.int32), sequence_geometric_log_ratio))
    for segments, ratio in cases:
        b = batch.replace(segment_ids=segments)
        other = turn_level.TURN_PPO.replace_term(ratio=ratio)

        (loss_turn, grads_turn), (loss_other, grads_other) = (_loss_and_grads(turn_level.TURN_PPO, b),
                                                              _loss_and_grads(other, b))
        np.testing.assert_allclose(loss_turn, loss_other, rtol=1e-6)
        for g_turn, g_other in zip(grads_turn, grads_other):
            np.testing.assert_allclose(g_turn, g_other, atol=1e-6)


# --------------------------------------------------------------------------- reward models


def test_polar_ranking_loss_symmetry_and_gradient_sign():
    np.testing.assert_allclose(reward_models.polar_ranking_loss(jnp.array([0.7]), jnp.array([0.7])), LOG2, rtol=1e-6)
    np.testing.assert_allclose(reward_models.polar_ranking_loss(jnp.array([2.0]), jnp.array([0.0])),
                               np.log1p(np.exp(-2.0)), rtol=1e-6)
    a, b = jnp.array([0.3, -1.2, 4.0, 0.0, 1.0, 2.0, -3.0, 0.5]), jnp.array([1.1, 0.5, -2.0, 0.0, 2.0, 1.0, 3.0, 0.4])
    # -log s(x) - (-log s(-x)) = -x: loss(a, b) - loss(b, a) = mean(b - a).
    diff = reward_models.polar_ranking_loss(a, b) - reward_models.polar_ranking_loss(b, a)
    np.testing.assert_allclose(diff, np.mean(b - a), atol=1e-6)
    ga, gb = jax.grad(reward_models.polar_ranking_loss, (0, 1))(a, b)
    np.testing.assert_allclose(ga, -1.0 / (1.0 + np.exp(np.asarray(a - b))) / B, rtol=1e-5)
    assert np.all(np.asarray(ga) < 0) and np.all(np.asarray(gb) > 0)
    np.testing.assert_allclose(ga, -gb, rtol=1e-6)


# --------------------------------------------------------------------------- reward weighting


def test_hypervolume_2d_known_sets():
    ref = jnp.array([0.0, 0.0])

    def hv(points, reference=ref):  # padded to 5 points with copies of the reference (they add nothing)
        points = np.asarray(points, np.float32)
        pad = np.repeat(np.asarray(reference, np.float32)[None], 5 - len(points), 0)
        return float(reward_weighting.hypervolume_2d(jnp.asarray(np.concatenate([points, pad])), reference))

    front = [[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]]
    assert hv(front) == pytest.approx(6.0)  # 1*3 + 1*2 + 1*1
    assert hv(front + [[1.0, 1.0], [-1.0, 5.0]]) == pytest.approx(6.0)  # dominated / outside the reference box
    assert hv([[2.0, 3.0]], jnp.array([1.0, 1.0])) == pytest.approx(2.0)
    assert hv([[2.0, 1.0], [2.0, 3.0]]) == pytest.approx(6.0)  # a tie in the first coordinate
    assert hv([[0.5, 0.5]], jnp.array([1.0, 1.0])) == 0.0  # does not dominate the reference
    # Adding (2.5, 2.5): sweep 3*1 + 2.5*(2.5-1) + 0 + 1*(3-2.5) = 7.25, so it contributes 1.25.
    front4 = jnp.asarray(front + [[0.0, 0.0]], jnp.float32)
    contribution = functools.partial(reward_weighting.hypervolume_contribution_2d, front4, ref=ref)
    assert float(contribution(jnp.array([2.5, 2.5]))) == pytest.approx(1.25)
    assert float(contribution(jnp.array([1.5, 1.5]))) == 0.0  # dominated: adds nothing
    assert float(reward_weighting.hypervolume_meta_reward(0.0)) == pytest.approx(0.5)
    assert float(reward_weighting.hypervolume_meta_reward(1.25)) == pytest.approx(0.5 + 1.5 * np.tanh(1.25))


def test_gradient_weight_update_orthogonal_and_general():
    lr, lam = 1e-6, 1e-5
    grads = [{"w": jnp.array([2.0, 0.0, 0.0]), "b": jnp.zeros((2, 2))},
             {"w": jnp.array([0.0, 1.0, 0.0]), "b": jnp.array([[0.0, 1.0], [0.0, 0.0]])},
             {"w": jnp.array([0.0, 0.0, 0.5]), "b": jnp.zeros((2, 2))}]
    w0 = np.array([0.2, 0.5, 0.3])
    sq_norms = np.array([4.0, 2.0, 0.25])  # orthogonal: s_k = ||g_k||^2
    expected = w0 * np.exp(lr * sq_norms / lam)
    expected /= expected.sum()
    new = reward_weighting.gradient_weight_update(jnp.log(w0), grads, lr=lr, lam=lam)
    np.testing.assert_allclose(np.exp(new), expected, rtol=1e-5)
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *grads)
    np.testing.assert_allclose(reward_weighting.gradient_weight_update(jnp.log(w0), stacked, lr=lr, lam=lam), new,
                               rtol=1e-6)
    # Non-orthogonal: s = G 1 with G the Gram matrix.
    g = [jnp.array([1.0, 1.0]), jnp.array([1.0, -2.0])]  # G = [[2, -1], [-1, 5]], s = (1, 4)
    new = reward_weighting.gradient_weight_update(jnp.log(jnp.array([0.5, 0.5])), g, lr=1e-5, lam=1e-5)
    np.testing.assert_allclose(np.exp(new), np.exp([1.0, 4.0]) / np.exp([1.0, 4.0]).sum(), rtol=1e-5)


def test_objective_gradients_and_dynamic_weighting_recipe():
    rewards = jnp.array([[1.0, 0.0, 0.2], [0.0, 1.0, 0.4], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]] * 2)
    batch = _batch(4, group_size=4, rewards=rewards)

    def loss_fn(params, b):  # gradient = mean(r_k) * params
        return 0.5 * jnp.mean(b.rewards) * jnp.sum(jnp.square(params))

    params = jnp.array([1.0, -2.0])
    grads = reward_weighting.objective_gradients(loss_fn, params, batch)
    np.testing.assert_allclose(grads, np.mean(np.asarray(rewards), 0)[:, None] * np.asarray(params)[None], rtol=1e-6)
    # The recipe is GRPO on the weighted reward r @ w.
    recipe = reward_weighting.DYNAMIC_REWARD_WEIGHTING
    w = batch.extras["reward_weights"]
    scalar = batch.replace(rewards=rewards @ w, extras={"reward_weights": w})
    np.testing.assert_allclose(recipe(batch)[0], recipe(scalar)[0], rtol=1e-6)
    with pytest.raises(ValueError, match="reward_weights"):
        recipe(batch.replace(extras={}))


# --------------------------------------------------------------------------- curvature (CAPO)


def test_capo_factored_fisher_equals_dense_kronecker():
    rng = np.random.default_rng(0)
    h, delta = rng.normal(size=(1, 2)), rng.normal(size=(2, 3))
    p = np.exp(rng.normal(size=(1, 3)))
    p /= p.sum()
    fisher = np.kron(np.diag(p[0]) - np.outer(p[0], p[0]), np.outer(h[0], h[0]))
    vec = delta.T.reshape(-1)  # index v * d + i, matching kron(M_V, hh^T)
    predicted = jax.jit(curvature.predicted_kl)(*(jnp.asarray(x, jnp.float32) for x in (h, p, delta)))
    np.testing.assert_allclose(predicted[0], 0.5 * vec @ fisher @ vec, rtol=1e-5)


def test_capo_predicted_kl_matches_true_kl_on_softmax_regression():
    """Softmax regression (the last layer is the whole model): the head update is lr x the exact
    policy gradient, and the predicted KL of the step matches the true KL to second order."""
    n, d, v = B * T, D, V  # the shapes CAPO's recipe flattens to
    rng = np.random.default_rng(7)
    h, w = (jnp.asarray(rng.normal(size=shape), jnp.float32) for shape in ((n, d), (d, v)))
    y = jnp.asarray(rng.integers(0, v, size=n), jnp.int32)
    coef = jnp.asarray(rng.normal(size=n) / n, jnp.float32)  # advantage x aggregation weight

    @jax.jit
    @jax.grad
    def objective_grad(weights):
        return jnp.sum(coef * jnp.take_along_axis(jax.nn.log_softmax(h @ weights), y[:, None], 1)[:, 0])

    @jax.jit
    def capo_step(lr):
        probs = jax.nn.softmax(h @ w)
        delta = curvature.head_update(h, probs, y, coef, lr)
        return delta, curvature.predicted_kl(h, probs, delta)

    errors = []
    for lr in (1.0, 0.1):
        delta, predicted = capo_step(lr)
        np.testing.assert_allclose(delta, lr * objective_grad(w), rtol=1e-5, atol=1e-7)
        predicted = np.asarray(predicted, np.float64)
        z_old = np.asarray(h, np.float64) @ np.asarray(w, np.float64)
        z_new = z_old + np.asarray(h, np.float64) @ np.asarray(delta, np.float64)
        log_p_old = z_old - np.log(np.exp(z_old).sum(1, keepdims=True))
        log_p_new = z_new - np.log(np.exp(z_new).sum(1, keepdims=True))
        true_kl = np.sum(np.exp(log_p_old) * (log_p_old - log_p_new), axis=1)
        errors.append(np.abs(predicted.sum() - true_kl.sum()) / true_kl.sum())
    assert errors[0] < 0.1, errors
    assert errors[1] < 0.2 * errors[0], errors  # third-order error: shrinks about 10x per 10x smaller step


def test_capo_token_weight_threshold_and_token_recovery():
    batch = _batch(5, group_size=4)
    np.testing.assert_array_equal(curvature.sampled_tokens(batch), batch.targets)  # _batch: targets = sampled
    adv = curvature.CAPO.terms[0].advantages(batch)
    kl = curvature.capo_predicted_kl(batch, adv, lr=5.0)
    valid = np.asarray(batch.mask) != 0
    assert np.all(np.asarray(kl)[~valid] == 0) and np.all(np.asarray(kl)[valid] >= 0)
    threshold = float(np.median(np.asarray(kl)[valid]))
    weight = curvature.capo_token_weight(batch, adv, None, None, None, lr=5.0, delta_kl=threshold)
    np.testing.assert_array_equal(weight, (np.asarray(kl) <= threshold) & valid)
    # A threshold above every prediction keeps every token: CAPO is then GRPO.
    loose = curvature.capo_recipe(delta_kl=1e30)
    grpo_like = loose.replace_term(token_weight=None)
    np.testing.assert_allclose(loose(batch)[0], grpo_like(batch)[0], rtol=1e-6)
    with pytest.raises(ValueError, match="hidden"):
        curvature.CAPO(batch.replace(extras={}))


# --------------------------------------------------------------------------- f-DPG and Nash-MD


def test_log_partition_snis():
    log_target = jnp.array([0.0, np.log(3.0), 1000.0, 1000.0, 5.0, -2.0, 1.0, 1.0], jnp.float32)
    log_proposal = jnp.array([0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 1.0, 1.0 + np.log(2.0)], jnp.float32)
    ids = jnp.array([0, 0, 2, 2, 4, 5, 5, 5])
    log_z = distribution_matching.log_partition_snis(log_target, log_proposal, ids)
    # Group 5: P/q = (e^-1, 1, 1/2) -> log mean = log((e^-1 + 1.5) / 3).
    group5 = np.log((np.exp(-1.0) + 1.5) / 3)
    np.testing.assert_allclose(log_z, [np.log(2.0)] * 2 + [1000.0] * 2 + [5.0] + [group5] * 3, rtol=1e-6)


def _fdpg_inputs(beta):
    batch = _batch(6, group_size=4)
    batch = batch.replace(old_logp=batch.logp, rewards=jnp.array([1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0]))
    mask = np.asarray(batch.mask, np.float64)
    log_pi = (np.asarray(batch.logp, np.float64) * mask).sum(1)
    log_ref = (np.asarray(batch.ref_logp, np.float64) * mask).sum(1)
    log_target = log_ref + np.asarray(batch.rewards) / beta
    ids = np.asarray(batch.group_ids)
    log_z = np.array([np.log(np.mean(np.exp(log_target - log_pi)[ids == g])) for g in ids])  # q = pi
    return batch, log_pi, log_ref, log_target, log_z


def test_reverse_kl_fdpg_equals_kl_regularized_reinforce():
    """Reverse-KL f-DPG with p = pi_ref e^{r/beta} / Z is KL-regularized REINFORCE: on-policy,
    A_i = (R_i / beta) - log Z_g - 1 - b with R = r - beta log(pi/pi_ref), so
    beta * grad(f-DPG) = grad mean[-(R_i - b'_i) log pi(y_i)] with b'_i = beta (log Z_g + 1 + b).
    The 1/beta scale, the constant 1 and log Z are the only differences; with the batch-mean
    baseline the constants cancel except log Z_g - mean log Z (nonzero across prompts)."""
    beta = 0.5
    batch, log_pi, log_ref, _, log_z = _fdpg_inputs(beta)
    big_r = np.asarray(batch.rewards) - beta * (log_pi - log_ref)

    def reinforce(logp, baseline):
        seq_logp = jnp.sum(logp * batch.mask, 1)
        return jnp.mean(-(jnp.asarray(big_r, jnp.float32) - baseline) * seq_logp)

    def fdpg(logp, extras):
        return distribution_matching.fdpg_loss(batch.replace(logp=logp, extras=extras), beta=beta,
                                               divergence="reverse_kl")[0]

    # Batch-mean baseline.
    expected_baseline = big_r.mean() + beta * (log_z - log_z.mean())
    np.testing.assert_allclose(beta * jax.grad(fdpg)(batch.logp, {}),
                               jax.grad(reinforce)(batch.logp, jnp.asarray(expected_baseline, jnp.float32)),
                               atol=2e-5)
    # A given baseline b.
    b = 0.3
    np.testing.assert_allclose(beta * jax.grad(fdpg)(batch.logp, {"baseline": jnp.asarray(b)}),
                               jax.grad(reinforce)(batch.logp, jnp.asarray(beta * (log_z + 1 + b), jnp.float32)),
                               atol=2e-5)


def test_forward_kl_fdpg_advantage_is_dpg():
    beta = 1.0
    batch, log_pi, _, log_target, log_z = _fdpg_inputs(beta)
    ratio = np.exp(log_target - log_z - log_pi)  # p / pi
    adv = distribution_matching.fdpg_advantage(batch.rewards, batch, beta=beta, divergence="forward_kl")
    np.testing.assert_allclose(adv, ratio - ratio.mean(), rtol=1e-4, atol=1e-5)
    # On-policy, the DPG gradient: -mean((p/pi - b) grad log pi).
    grad = jax.grad(lambda lp: distribution_matching.fdpg_loss(batch.replace(logp=lp), beta=beta)[0])(batch.logp)
    expected = -(ratio - ratio.mean())[:, None] * np.asarray(batch.mask) / len(ratio)
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-5)


def test_nash_md_tabular_last_iterate_approaches_regularized_nash():
    # Intransitive, asymmetric: 0 beats 1 (0.9), 1 beats 2 (0.7), 2 beats 0 (0.6); mu not uniform.
    p = np.array([[0.5, 0.9, 0.4], [0.1, 0.5, 0.7], [0.6, 0.3, 0.5]])
    mu = np.array([0.5, 0.3, 0.2])
    tau = 0.5
    pi_star = np.full(3, 1 / 3)
    for _ in range(5000):  # damped fixed point of pi = mu exp(P pi / tau) / Z (float64)
        target = mu * np.exp(p @ pi_star / tau)
        pi_star = 0.5 * pi_star + 0.5 * target / target.sum()
    target = mu * np.exp(p @ pi_star / tau)
    np.testing.assert_allclose(pi_star, target / target.sum(), atol=1e-12)
    assert np.abs(pi_star - 1 / 3).max() > 0.05  # the equilibrium is not uniform

    @functools.partial(jax.jit, static_argnums=(1,))
    def run(eta, steps):
        step = lambda _, log_pi: distribution_matching.nash_md_tabular_step(
            log_pi, jnp.log(jnp.asarray(mu, jnp.float32)), jnp.asarray(p, jnp.float32), eta, tau)
        return jnp.exp(jax.lax.fori_loop(0, steps, step, jnp.log(jnp.full(3, 1 / 3))))

    err_coarse = np.abs(np.asarray(run(0.1, 4000)) - pi_star).max()
    err_fine = np.abs(np.asarray(run(0.01, 40000)) - pi_star).max()
    assert err_coarse < 0.02, err_coarse
    assert err_fine < 0.3 * err_coarse, (err_fine, err_coarse)


def test_nash_md_loss_gradient():
    batch = _batch(8)
    beta = 0.1
    grad = jax.grad(lambda lp: distribution_matching.nash_md_loss(batch.replace(logp=lp), beta=beta)[0])(batch.logp)
    score = np.asarray(batch.extras["p_win"])[:, None] - 0.5
    expected = (beta * np.asarray(batch.logp - batch.ref_logp) - score) * np.asarray(batch.mask) / B
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="p_win"):
        distribution_matching.NASH_MD(batch.replace(extras={}))


# --------------------------------------------------------------------------- OTR


def _otr_grads(batch, key, num_samples, negatives):
    """Gradients w.r.t. the logits for several negative rewards, sharing one set of samples."""
    grad = jax.grad(lambda lg, nu: one_token_rollout.otr_loss(batch.replace(logits=lg), key, num_samples=num_samples,
                                                              negative=nu)[0])
    return jax.jit(jax.vmap(grad, in_axes=(None, 0)))(batch.logits, jnp.asarray(negatives, jnp.float32))


def test_otr_expected_gradient_is_dft_gradient():
    """E[grad] with reward 1[a = y*] is grad pi(y*) (DFT); with a negative reward nu for wrong
    tokens it is (1 + nu) grad pi(y*) (sum_a pi(a) grad log pi(a) = 0)."""
    batch = _batch(9, b=1, t=2, v=4)
    # DFT: loss -mean_t pi(y*_t); d pi(y*) / d z = pi(y*) (e_{y*} - pi).
    logits = np.asarray(batch.logits, np.float64)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    onehot = np.eye(4)[np.asarray(batch.targets)]
    reference = -np.sum(probs * onehot, -1, keepdims=True) * (onehot - probs) / 2
    negatives = (0.0, 0.5)
    grads = _otr_grads(batch, jax.random.key(11), 400_000, negatives)
    for grad, negative in zip(grads, negatives):
        # Per-token gradients (the loss is a mean over 2 tokens); Monte-Carlo std < 1.2e-3.
        np.testing.assert_allclose(2 * grad, 2 * (1 + negative) * reference, atol=5e-3)


def test_otr_negative_reward_pushes_down_sampled_wrong_tokens():
    batch = _batch(10, b=1, t=2, v=4)
    logits = _set(batch.logits, np.s_[..., 0], -30.0)  # the target is token 0, never sampled
    batch = batch.replace(logits=logits, targets=jnp.zeros((1, 2), jnp.int32), mask=jnp.ones((1, 2)))
    key = jax.random.key(12)
    no_negative, grad = np.asarray(_otr_grads(batch, key, 1, (0.0, 0.5)))
    np.testing.assert_allclose(no_negative, 0.0, atol=1e-12)  # no sample is rewarded: no gradient
    counts = np.asarray(jax.jit(functools.partial(one_token_rollout.otr_sample_counts, num_samples=1, negative=0.5))(
        batch.logits, batch.targets, key))
    sampled = np.argmax(np.abs(counts), -1)[0]  # the one (wrong) token drawn at each position
    logits = np.asarray(batch.logits, np.float64)[0]
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    for t in range(2):
        a = sampled[t]
        assert a != 0
        # d/dz_a of 0.5 * log pi(a) / 2 = 0.5 (1 - p_a) / 2 > 0: a descent step lowers z_a.
        np.testing.assert_allclose(grad[0, t, a], 0.5 * (1 - probs[t, a]) / 2, rtol=1e-5)
        assert grad[0, t, a] > 0


# --------------------------------------------------------------------------- pairwise


def _pair_batch(seed=13):
    batch = _batch(seed, group_size=2)
    preferred = jnp.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0])
    return batch.replace(extras={**batch.extras, "preferred": preferred})


def _chosen_rejected(batch):
    """Row indices of the chosen and the rejected response of every pair, found by search."""
    pref = np.asarray(batch.extras["preferred"]) == 1
    ids = np.asarray(batch.group_ids)
    chosen = [i for i in range(len(ids)) if pref[i] and np.sum(ids == ids[i]) == 2]
    rejected = [next(j for j in range(len(ids)) if ids[j] == ids[i] and j != i) for i in chosen]
    return np.array(chosen), np.array(rejected)


@functools.partial(jax.jit, static_argnames=("beta",))
def _dpo_formula(logp, ref_logp, mask, chosen, rejected, beta):
    """DPO written out: mean over pairs of -log sigmoid(beta [(log pi - log ref)(y_w) - (...)(y_l)])."""
    z = jnp.sum((logp - ref_logp) * mask, 1)
    return jnp.mean(-jax.nn.log_sigmoid(beta * (z[chosen] - z[rejected])))


def _dpo_reference(batch, beta, grad=False):
    args = (batch.logp, batch.ref_logp, batch.mask, *_chosen_rejected(batch))
    return jax.grad(_dpo_formula)(*args, beta=beta) if grad else _dpo_formula(*args, beta=beta)


def test_dpo_and_reverse_kl_fdpo_equal_reference_dpo():
    batch = _pair_batch()
    reverse = seq_recipe.LossRecipe(name="fdpo_reverse_kl", fn=functools.partial(
        pairwise.pairwise_loss, link=functools.partial(pairwise.fdpo_link, beta=0.1, divergence="reverse_kl")))
    reference = _dpo_reference(batch, 0.1, grad=True)
    for recipe in (pairwise.DPO, reverse):
        value, (grad, _, _) = _loss_and_grads(recipe, batch)
        np.testing.assert_allclose(value, _dpo_reference(batch, 0.1), rtol=1e-6)
        np.testing.assert_allclose(grad, reference, atol=1e-7)


def test_rpo_reductions():
    batch = _pair_batch()
    no_nll = functools.partial(pairwise.pairwise_loss, link=functools.partial(pairwise.dpo_link, beta=0.5))
    np.testing.assert_allclose(no_nll(batch)[0], _dpo_reference(batch, 0.5), rtol=1e-6)
    # pi = pi_ref: the DPO part is log 2; NLL = token mean of -logp over the chosen responses.
    at_ref = batch.replace(ref_logp=batch.logp)
    chosen = np.asarray(at_ref.extras["preferred"]) == 1
    mask = np.asarray(at_ref.mask)[chosen]
    nll = -(np.asarray(at_ref.logp)[chosen] * mask).sum() / mask.sum()
    np.testing.assert_allclose(pairwise.RPO(at_ref)[0], LOG2 + 0.2 * nll, rtol=1e-6)


def test_fdpo_js_link_bounded_by_log2():
    z = jnp.array([-50.0, -3.0, 0.0, 3.0, 50.0, 500.0])
    f = np.asarray(pairwise.f_prime(z, "js"))
    assert np.all(f <= LOG2 + 1e-7)
    np.testing.assert_allclose(f[-1], LOG2, rtol=1e-6)
    np.testing.assert_allclose(f[2], 0.0, atol=1e-7)  # u = 1: log 2 - log 2
    # Raising the chosen response's log-ratio saturates JS's pair statistic, not DPO's.
    own = pairwise.PairSide(z=jnp.array([1e3]), log_rho=jnp.zeros(1), reward=jnp.zeros(1), ref_kl=jnp.zeros(1))
    other = own._replace(z=jnp.array([0.0]))
    assert float(pairwise.fdpo_link(own, other, beta=1.0, divergence="js")[0]) == pytest.approx(LOG2, rel=1e-6)


def test_fdpo_alpha_to_zero_approaches_dpo_gradient_and_forward_kl_form():
    batch = _pair_batch()
    dpo_grad = _dpo_reference(batch, 0.1, grad=True)

    def alpha_grad(alpha):
        loss = functools.partial(pairwise.pairwise_loss, link=functools.partial(
            pairwise.fdpo_link, beta=0.1, divergence="alpha", alpha=alpha))
        return jax.grad(lambda lp: loss(batch.replace(logp=lp))[0])(batch.logp)

    scale = np.abs(np.asarray(dpo_grad)).max()
    errors = [np.abs(np.asarray(alpha_grad(a) - dpo_grad)).max() / scale for a in (1e-2, 1e-4)]
    assert errors[1] < 1e-3 and errors[1] < 0.1 * errors[0], errors
    # Forward KL: -log sigmoid(beta (-1/u_w + 1/u_l)) from the chosen/rejected log-ratios.
    chosen, rejected = _chosen_rejected(batch)
    z = (np.asarray(batch.logp, np.float64) - np.asarray(batch.ref_logp)) * np.asarray(batch.mask)
    z = z.sum(1)
    expected = np.mean(np.log1p(np.exp(-0.1 * (-np.exp(-z[chosen]) + np.exp(-z[rejected])))))
    np.testing.assert_allclose(pairwise.FDPO_FORWARD_KL(batch)[0], expected, rtol=1e-5)
    np.testing.assert_allclose(pairwise.f_prime(jnp.array(0.7), "alpha", 0.5), -np.exp(-0.35) / 0.5, rtol=1e-6)


def test_copg_bandit_optimum_is_tilted_reference():
    """5 arms, all ordered pairs sampled uniformly (exact expected loss): gradient descent on
    tabular logits converges to softmax(log pi_ref + r / beta)."""
    beta = 0.1
    r = np.array([0.1, 0.5, 0.9, 0.3, 0.7], np.float32)
    log_ref = np.log(np.array([0.3, 0.1, 0.15, 0.25, 0.2], np.float32))
    arms = np.array([(i, j) for i in range(5) for j in range(5)]).reshape(-1)  # 25 pairs, 50 rows
    data = dict(old_logp=jnp.full((50, 1), -np.log(5.0)), mask=jnp.ones((50, 1)), rewards=jnp.asarray(r[arms]),
                group_ids=jnp.asarray(np.arange(50) // 2), ref_logp=jnp.asarray(log_ref[arms][:, None]))

    def loss(theta):
        return pairwise.COPG(SequenceBatch(logp=jax.nn.log_softmax(theta)[arms][:, None], **data))[0]

    @jax.jit
    def descend(theta):  # 60 gradient steps (the loss is quadratic in theta: linear convergence)
        theta = jax.lax.fori_loop(0, 60, lambda _, th: th - 100.0 * jax.grad(loss)(th), theta)
        return theta, loss(theta)

    theta, final_loss = descend(jnp.zeros(5))
    target = np.exp(log_ref + r / beta)
    np.testing.assert_allclose(np.exp(theta - np.log(np.exp(theta).sum())), target / target.sum(), atol=1e-4)
    assert float(final_loss) < 1e-8


def _p3o_batch(on_policy: bool):
    batch = _batch(14, group_size=2, rewards=jnp.array([1.0, 0.0, 0.3, 0.8, 0.5, 0.5, 0.0, 2.0]))
    if on_policy:
        batch = batch.replace(old_logp=batch.logp)
    return batch


def test_p3o_reward_shift_invariance():
    for on_policy in (True, False):
        batch = _p3o_batch(on_policy)
        shifted = batch.replace(rewards=batch.rewards + jnp.repeat(jnp.array([3.0, -1.5, 10.0, 0.7]), 2))
        for recipe in (pairwise.P3O, pairwise.P3O_SEPARATE):
            (loss, grads), (loss_shifted, grads_shifted) = _loss_and_grads(recipe, batch), _loss_and_grads(recipe,
                                                                                                        shifted)
            np.testing.assert_allclose(loss, loss_shifted, atol=1e-5)
            np.testing.assert_allclose(grads[0], grads_shifted[0], atol=1e-5)


def test_p3o_gradient_at_ratio_one_is_pairwise_policy_gradient():
    batch = _p3o_batch(on_policy=True)
    beta = 0.1
    mask = np.asarray(batch.mask)
    ref_kl = ((np.asarray(batch.old_logp) - np.asarray(batch.ref_logp)) * mask).sum(1)
    shaped = np.asarray(batch.rewards) - beta * ref_kl
    delta = shaped[0::2] - shaped[1::2]  # pairs (0, 1), (2, 3), ...
    # Pairwise PG, mean over the P pairs of -1/2 Delta (log pi(y1) - log pi(y2)), differentiated by hand:
    # d/d logp[i, t] = -/+ Delta_pair mask[i, t] / (2 P) for the first / second response.
    sign = np.where(np.arange(B) % 2, -1.0, 1.0)[:, None]
    pairwise_pg_grad = np.repeat(-0.5 * delta / len(delta), 2)[:, None] * sign * mask
    joint = _loss_and_grads(pairwise.P3O, batch)[1][0]
    np.testing.assert_allclose(joint, pairwise_pg_grad, atol=1e-6)
    separate = _loss_and_grads(pairwise.P3O_SEPARATE, batch)[1][0]
    np.testing.assert_allclose(separate, 0.5 * joint, atol=1e-6)


def test_pairwise_leaves_out_rows_not_in_pairs():
    batch = _pair_batch()
    lone = batch.replace(group_ids=jnp.array([0, 0, 2, 2, 4, 4, 6, 7]))  # the last two are groups of one
    np.testing.assert_allclose(pairwise.DPO(lone)[0], _dpo_reference(lone, 0.1), rtol=1e-6)  # 3 pairs
    alone = batch.replace(group_ids=jnp.arange(B))
    for recipe in (pairwise.DPO, pairwise.COPG, pairwise.P3O, pairwise.RPO):
        value, (grad, _, _) = _loss_and_grads(recipe, alone)
        assert float(value) == 0.0 and np.all(np.asarray(grad) == 0.0), recipe.name


# --------------------------------------------------------------------------- fuzz


def _fuzz_batch(seed: int, kind: str, components: bool = False):
    """Random valid inputs plus edge cases: an all-zero mask row, a group with equal rewards, and
    (group kind) a group of one; large log-ratios to the sampling and reference policies every
    other seed; ``components``: [B, 3] reward components."""
    rng = np.random.default_rng(100 + seed)
    scale = 3.0 if seed % 2 else 0.3
    batch = _batch(seed, group_size=2)
    group_ids = batch.group_ids if kind == "pairwise" else jnp.array([0, 0, 0, 3, 3, 3, 6, 7], jnp.int32)
    rewards = (rng.random(B) < 0.5).astype(np.float32)
    rewards[3:6] = 1.0
    if components:
        rewards = np.stack([rewards, 1 - rewards, 0.5 * rewards], 1)
    near_logp = lambda: jnp.asarray(np.asarray(batch.logp) + scale * rng.normal(size=(B, T)), jnp.float32)
    return batch.replace(group_ids=group_ids, rewards=jnp.asarray(rewards), mask=_set(batch.mask, 2, 0.0),
                         old_logp=near_logp(), ref_logp=near_logp())


def _all_losses_and_grads(batches, key):
    return {name: _loss_and_grads(r, batches[r.kind], key) for name, r in sorted(ALL_RECIPES.items())}


_all_losses_and_grads_jit = jax.jit(_all_losses_and_grads)  # compiled once for every seed below


def _assert_finite(results):
    for name, (loss, grads) in results.items():
        assert np.isfinite(float(loss)), name
        for g in grads:
            assert np.all(np.isfinite(np.asarray(g))), name


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fuzz_recipes_finite_under_jit(seed):
    batches = {kind: _fuzz_batch(seed, kind) for kind in ("group", "pairwise", "demonstration")}
    _assert_finite(_all_losses_and_grads_jit(batches, jax.random.key(seed)))


@pytest.mark.parametrize("seed, components", [(0, False), (1, True)])
def test_fuzz_recipes_finite_eager(seed, components):
    batches = {kind: _fuzz_batch(seed, kind, components) for kind in ("group", "pairwise", "demonstration")}
    key = jax.random.key(seed)
    eager = _all_losses_and_grads(batches, key)
    _assert_finite(eager)
    if not components:  # the same numbers as the compiled program
        jitted = _all_losses_and_grads_jit(batches, key)
        for name in eager:
            np.testing.assert_allclose(eager[name][0], jitted[name][0], rtol=1e-4, atol=1e-5, err_msg=name)


def test_fuzz_public_functions_finite_at_extremes():
    z = jnp.array([-500.0, -90.0, -30.0, -1.0, 0.0, 2.0, 90.0, 500.0])  # [B]
    for divergence in pairwise.DIVERGENCES:
        assert np.all(np.isfinite(np.asarray(pairwise.f_prime(z, divergence))))
        side = pairwise.PairSide(z=z, log_rho=z, reward=jnp.zeros(B), ref_kl=z)
        other = side._replace(z=z[::-1], log_rho=z[::-1])
        value, grad = jax.value_and_grad(
            lambda zz: jnp.sum(pairwise.neg_log_sigmoid(pairwise.fdpo_link(side._replace(z=zz), other,
                                                                               divergence=divergence))))(z)
        assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad))), divergence
    g = jax.grad(lambda lr: jnp.sum(pairwise.p3o_joint_objective(side._replace(log_rho=lr), other)))(z)
    assert np.all(np.isfinite(np.asarray(g)))
    for divergence in distribution_matching.F_PRIMES:
        assert np.all(np.isfinite(np.asarray(distribution_matching.F_PRIMES[divergence](z))))
    # Far off-policy f-DPG and a single-response batch.
    batch = _batch(0).replace(old_logp=_batch(0).logp - 40.0)
    for divergence in distribution_matching.F_PRIMES:
        loss, grad = jax.value_and_grad(lambda lp: distribution_matching.fdpg_loss(
            batch.replace(logp=lp), divergence=divergence)[0])(batch.logp)
        assert np.isfinite(float(loss)) and np.all(np.isfinite(np.asarray(grad))), divergence
    one = _batch(0, b=1, group_size=1)
    for fn in (token_rewards.masked_whiten, ):
        assert np.all(np.isfinite(np.asarray(fn(one.values, one.mask))))
    assert np.isfinite(float(reward_models.polar_ranking_loss(jnp.array([1e4]), jnp.array([-1e4]))))
    assert np.isfinite(float(reward_weighting.hypervolume_2d(jnp.zeros((0, 2)), jnp.zeros(2))))
