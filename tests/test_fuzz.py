"""Fuzz: every function of ``jaxpg.losses`` and ``jaxpg.estimators``, given finite inputs of valid
shapes and in their valid ranges, returns finite outputs, with and without ``jit``.

Shapes are fixed per test (so ``jit`` compiles once); hypothesis draws the values, including the
awkward ones: all-zero masks, constant advantages, episode boundaries everywhere or nowhere,
discounts of exactly 0 and 1, zero step sizes, zero directions.
"""

from __future__ import annotations

import functools

import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np

from jaxpg import estimators, losses

T, N, OBS, ACTIONS = 6, 3, 2, 3
SETTINGS = hypothesis.settings(max_examples=25, deadline=None, derandomize=True)


def floats(shape, low=-100.0, high=100.0):
    return hnp.arrays(np.float32, shape, elements=st.floats(low, high, width=32))


def flags(shape=(T, N)):
    return hnp.arrays(np.bool_, shape)


unit = st.floats(0.0, 1.0, width=32)


def assert_finite(tree, what):
    for leaf in jax.tree.leaves(tree):
        assert np.all(np.isfinite(np.asarray(leaf))), (what, leaf)


_JITTED = {}


def _jitted(fn):
    """One jitted wrapper per function (and per partial's fixed arguments): compiled once per shape."""
    key = (fn.func, fn.args) if isinstance(fn, functools.partial) else fn
    if key not in _JITTED:
        _JITTED[key] = jax.jit(lambda args, kwargs: fn(*args, **kwargs))
    return _JITTED[key]


def check(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` is finite eagerly and under ``jit`` (every argument traced)."""
    name = getattr(fn, "__name__", repr(fn))
    assert_finite(fn(*args, **kwargs), f"{name} eager")
    assert_finite(_jitted(fn)(args, kwargs), f"{name} jit")


# ---- jaxpg.losses ---------------------------------------------------------------------------------
@SETTINGS
@hypothesis.given(floats((T, N)), floats((T, N)), floats((T, N)), flags(), flags(), unit, unit)
def test_returns_and_advantages(rewards, values, next_values, terminated, truncated, gamma, lam):
    flags = dict(terminated=terminated, truncated=truncated)
    check(losses.gae, rewards, values, next_values, **flags, gamma=gamma, lam=lam)
    check(losses.discounted_returns, rewards, next_values, **flags, gamma=gamma)


@SETTINGS
@hypothesis.given(floats((T, N), -30.0, 0.0), floats((T, N), -30.0, 0.0), floats((T, N)), floats((T, N)),
                  flags(), st.floats(0.0, 1.0, width=32))
def test_policy_losses(log_probs, old_log_probs, advantages, baseline, mask, clip_eps):
    check(losses.ppo_clip, log_probs, old_log_probs, advantages, clip_eps=clip_eps)
    check(losses.ppo_clip, log_probs, old_log_probs, advantages, clip_eps=clip_eps, mask=mask)
    check(losses.reinforce_surrogate, log_probs, advantages)
    check(losses.reinforce_surrogate, log_probs, advantages, baseline, mask)


@SETTINGS
@hypothesis.given(floats((T, N)), floats((T, N)), floats((T, N)), flags(), st.floats(0.0, 1.0, width=32),
                  floats((T, N), 0.0, 10.0))
def test_value_entropy_and_normalization(values, targets, old_values, mask, clip_eps, entropies):
    check(losses.value_loss, values, targets)
    check(losses.value_loss, values, targets, old_values=old_values, clip_eps=clip_eps, mask=mask)
    check(losses.entropy_loss, entropies)
    check(losses.entropy_loss, entropies, mask)
    check(losses.kl_to_standard_normal, values, jnp.exp(0.1 * old_values))
    check(losses.kl_to_standard_normal, values, jnp.exp(0.1 * old_values), mask[..., 0])
    velocity = lambda x, t: x * t[..., None] - 0.5 * x  # noqa: E731
    check(lambda a, eps, t: losses.flow_matching_loss(velocity, a, eps, t), values, targets,
          jnp.clip(jnp.abs(old_values[:, 0]) / 100.0, 0.0, 1.0))
    check(losses.masked_mean, values, mask)
    check(losses.normalize_advantages, values)
    check(losses.normalize_advantages, values, mask)
    check(losses.normalize_advantages, jnp.full((T, N), 3.0))  # constant: std 0


@SETTINGS
@hypothesis.given(floats((T,)), flags((T,)), floats((T,)), floats((T,), -30.0, 5.0), st.floats(0.0, 10.0, width=32),
                  unit, st.floats(-5.0, 5.0, width=32), st.floats(-10.0, 10.0, width=32))
def test_soft_actor_critic_losses(reward, terminated, q, log_prob, alpha, gamma, log_alpha, target_entropy):
    check(losses.soft_q_targets, reward, terminated, q, log_prob, alpha=alpha, gamma=gamma)
    check(losses.soft_actor_loss, q, log_prob, alpha=alpha)
    check(losses.temperature_loss, jnp.float32(log_alpha), log_prob, target_entropy=target_entropy)
    per_expert = lambda x: jnp.stack([x, x[::-1], 0.5 * x], -1)  # [T, 3]
    gate = jax.nn.softmax(per_expert(q), -1)
    check(losses.pmoe_actor_loss, per_expert(q), per_expert(log_prob), gate, alpha=alpha)
    check(losses.frequency_loss, per_expert(q), gate)
    logits = per_expert(log_prob)
    check(losses.score_function_gate_actor_loss, per_expert(q), per_expert(log_prob), logits,
          jnp.argmax(per_expert(q), -1), alpha=alpha)
    sample = losses.gumbel_softmax_gate(jax.random.key(0), logits, temperature=0.5)
    check(losses.gumbel_softmax_gate, jax.random.key(0), logits, temperature=0.5)
    check(losses.gumbel_softmax_actor_loss, q, per_expert(log_prob), sample, gate, alpha=alpha)


# ---- jaxpg.estimators -----------------------------------------------------------------------------
def _linear_softmax_estimate(estimator, obs, actions, rewards, mask, gamma, baseline, params, *vector):
    """``estimator`` applied to a linear softmax policy's GPOMDP score function on a fixed batch."""

    def score(p):
        logits = obs @ p["w"] + p["b"]
        log_probs = jnp.take_along_axis(jax.nn.log_softmax(logits), actions[..., None], -1)[..., 0]
        return estimators.gpomdp_surrogate(log_probs, rewards, mask, gamma, baseline)

    return estimator(score, params, *vector)


@SETTINGS
@hypothesis.given(
    floats((T, N, OBS), -5.0, 5.0), hnp.arrays(np.int32, (T, N), elements=st.integers(0, ACTIONS - 1)),
    floats((T, N)), flags(), unit, floats((OBS, ACTIONS), -5.0, 5.0), floats((OBS, ACTIONS), -5.0, 5.0),
)
def test_score_function_estimators(obs, actions, rewards, mask, gamma, w, v):
    mask = mask.astype(np.float32)
    returns = estimators.discounted_rewards_to_go(rewards, mask, gamma)
    baseline = estimators.leave_one_out_baseline(returns, mask)
    params = {"w": jnp.asarray(w), "b": jnp.zeros(ACTIONS)}
    vector = {"w": jnp.asarray(v), "b": jnp.ones(ACTIONS)}
    check(estimators.discounted_rewards_to_go, rewards, mask, gamma)
    check(estimators.leave_one_out_baseline, returns, mask)
    check(estimators.gpomdp_surrogate, jnp.zeros((T, N)), rewards, mask, gamma, baseline)
    batch = (obs, actions, rewards, mask, gamma)
    for b in (None, baseline):
        check(functools.partial(_linear_softmax_estimate, estimators.policy_gradient), *batch, b, params)
        for estimator in (estimators.hessian_vector_product, estimators.gradient_and_hessian_vector_product):
            check(functools.partial(_linear_softmax_estimate, estimator), *batch, b, params, vector)


@SETTINGS
@hypothesis.given(
    floats((4, 3)), floats((4, 3)), floats((4, 3)), floats((4, 3)),
    st.floats(2.0**-10, 1.0, width=32), unit, st.floats(0.0, 10.0, width=32), st.integers(0, 10**6),
    st.sampled_from([0.5, 2.0 / 3.0, 0.8, 1.0]),
)
def test_momentum_pieces(theta, theta_prev, direction, gradient, eta, q, gamma_0, t, exponent):
    params, previous = {"w": theta}, {"w": theta_prev}
    check(estimators.momentum, {"w": direction}, {"w": gradient}, eta)
    check(estimators.igt_extrapolation, params, previous, eta)
    check(estimators.interpolation_point, params, previous, q)
    check(estimators.harpg_momentum, {"w": direction}, {"w": gradient}, {"w": gradient}, eta)
    check(estimators.difference, params, previous)
    check(estimators.power_schedule, gamma_0, t, exponent)


def test_every_public_function_is_fuzzed():
    """A new loss or estimator must be added to the fuzz tests above."""
    import inspect

    source = inspect.getsource(inspect.getmodule(test_every_public_function_is_fuzzed))
    for module in (losses, estimators):
        for name in module.__all__:
            if callable(getattr(module, name)):
                assert f"{module.__name__.split('.')[-1]}.{name}" in source, name
