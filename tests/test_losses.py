"""Tests for jaxpg.losses: hand-computed answers (with and without jit), reductions, properties."""

from __future__ import annotations

import functools

import chex
import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from jaxpg.losses import (
    discounted_returns,
    entropy_loss,
    gae,
    masked_mean,
    normalize_advantages,
    ppo_clip,
    reinforce_surrogate,
    value_loss,
)

ATOL = 1e-5

# A 4-step segment that exercises every boundary case at once:
#   t=0: episode truncated by a time limit -> bootstrap from V(final_obs) = next_values[0] = 6,
#        which deliberately differs from values[1] = 2 (the first state of the next episode);
#   t=1: ordinary step, next_values[1] = values[2] = 4;
#   t=2: episode terminated -> next_values[2] = 9 must be ignored;
#   t=3: last step of the segment -> bootstrap from next_values[3] = 2.
REWARDS = np.array([1.0, 2.0, 3.0, 1.0], np.float32)
VALUES = np.array([1.0, 2.0, 4.0, 1.0], np.float32)
NEXT_VALUES = np.array([6.0, 4.0, 9.0, 2.0], np.float32)
TERMINATED = np.array([False, False, True, False])
TRUNCATED = np.array([True, False, False, False])


class ReturnsTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_gae_known_answer(self):
        # gamma = 0.5, lam = 0.5, so gamma * lam = 0.25.
        # delta_t = r_t + gamma * (1 - term_t) * next_values_t - values_t:
        #   delta_0 = 1 + 0.5 * 6 - 1 =  3.0   (truncation still bootstraps)
        #   delta_1 = 2 + 0.5 * 4 - 2 =  2.0
        #   delta_2 = 3 + 0       - 4 = -1.0   (termination does not bootstrap)
        #   delta_3 = 1 + 0.5 * 2 - 1 =  1.0   (segment end bootstraps)
        # A_t = delta_t + 0.25 * (1 - done_t) * A_{t+1}, A_4 = 0:
        #   A_3 = 1.0
        #   A_2 = -1.0                     (done: A_3 is another episode)
        #   A_1 = 2.0 + 0.25 * (-1.0) = 1.75
        #   A_0 = 3.0                      (done via truncation: A_1 is another episode)
        # returns = A + values = [4.0, 3.75, 3.0, 2.0].
        # Cross-check t=1 as a lambda-return: 2 + 0.5 * (0.5 * 4 + 0.5 * 3) = 3.75.
        fn = self.variant(gae)
        adv, ret = fn(REWARDS, VALUES, NEXT_VALUES, terminated=TERMINATED, truncated=TRUNCATED, gamma=0.5, lam=0.5)
        np.testing.assert_allclose(adv, [3.0, 1.75, -1.0, 1.0], atol=ATOL)
        np.testing.assert_allclose(ret, [4.0, 3.75, 3.0, 2.0], atol=ATOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_gae_accepts_float_flags(self):
        fn = self.variant(gae)
        adv, _ = fn(REWARDS, VALUES, NEXT_VALUES, terminated=TERMINATED.astype(np.float32),
                    truncated=TRUNCATED.astype(np.float32), gamma=0.5, lam=0.5)
        np.testing.assert_allclose(adv, [3.0, 1.75, -1.0, 1.0], atol=ATOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_discounted_returns_known_answer(self):
        # gamma = 0.5.
        #   G_3 = 1 + 0.5 * next_values_3 = 1 + 0.5 * 2 = 2.0   (segment-end bootstrap)
        #   G_2 = 3 + 0.5 * 0             = 3.0                  (terminated: no bootstrap)
        #   G_1 = 2 + 0.5 * G_2           = 3.5
        #   G_0 = 1 + 0.5 * next_values_0 = 1 + 0.5 * 6 = 4.0   (truncated: bootstrap, not G_1)
        fn = self.variant(discounted_returns)
        ret = fn(REWARDS, NEXT_VALUES, terminated=TERMINATED, truncated=TRUNCATED, gamma=0.5)
        np.testing.assert_allclose(ret, [4.0, 3.5, 3.0, 2.0], atol=ATOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_discounted_returns_without_bootstrap(self):
        # next_values = 0 gives the plain truncated-horizon Monte-Carlo return:
        #   G_3 = 1;  G_2 = 3;  G_1 = 2 + 0.5 * 3 = 3.5;  G_0 = 1 (episode boundary).
        fn = self.variant(discounted_returns)
        ret = fn(REWARDS, np.zeros(4, np.float32), terminated=TERMINATED, truncated=TRUNCATED, gamma=0.5)
        np.testing.assert_allclose(ret, [1.0, 3.5, 3.0, 1.0], atol=ATOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_discounted_returns_no_boundaries(self):
        # gamma = 0.9, rewards [1, 1, 1], segment end bootstraps from 10:
        #   G_2 = 1 + 0.9 * 10 = 10.0;  G_1 = 1 + 0.9 * 10 = 10.0;  G_0 = 1 + 0.9 * 10 = 10.0
        fn = self.variant(discounted_returns)
        no = np.zeros(3, bool)
        ret = fn(np.ones(3, np.float32), np.full(3, 10.0, np.float32), terminated=no, truncated=no, gamma=0.9)
        np.testing.assert_allclose(ret, [10.0, 10.0, 10.0], atol=1e-4)
        # Terminating at the last step removes the bootstrap:
        #   G_2 = 1;  G_1 = 1 + 0.9 = 1.9;  G_0 = 1 + 0.9 * 1.9 = 2.71
        term = np.array([False, False, True])
        ret = fn(np.ones(3, np.float32), np.full(3, 10.0, np.float32), terminated=term, truncated=no, gamma=0.9)
        np.testing.assert_allclose(ret, [2.71, 1.9, 1.0], atol=ATOL)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(0, 1, 2)
    def test_discounted_returns_equals_gae_lambda_one(self, seed):
        rewards, values, next_values, terminated, truncated = _random_segment(seed, (12, 3))
        gae_fn = self.variant(functools.partial(gae, lam=1.0))
        dr_fn = self.variant(discounted_returns)
        _, gae_returns = gae_fn(rewards, values, next_values, terminated=terminated, truncated=truncated, gamma=0.9)
        returns = dr_fn(rewards, next_values, terminated=terminated, truncated=truncated, gamma=0.9)
        np.testing.assert_allclose(returns, gae_returns, atol=1e-4)

    @chex.variants(with_jit=True, without_jit=True)
    def test_gae_lambda_zero_is_td_error(self):
        rewards, values, next_values, terminated, truncated = _random_segment(3, (10, 2))
        adv, ret = self.variant(gae)(rewards, values, next_values, terminated=terminated, truncated=truncated,
                                     gamma=0.9, lam=0.0)
        td = rewards + 0.9 * np.where(terminated, 0.0, next_values) - values
        np.testing.assert_allclose(adv, td, atol=ATOL)
        np.testing.assert_allclose(ret, td + values, atol=ATOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_gae_batch_axis_matches_columns(self):
        rewards, values, next_values, terminated, truncated = _random_segment(4, (9, 3))
        fn = self.variant(functools.partial(gae, gamma=0.95, lam=0.8))
        adv, ret = fn(rewards, values, next_values, terminated=terminated, truncated=truncated)
        chex.assert_shape([adv, ret], (9, 3))
        for n in range(3):
            adv_n, ret_n = fn(rewards[:, n], values[:, n], next_values[:, n], terminated=terminated[:, n],
                              truncated=truncated[:, n])
            np.testing.assert_allclose(adv[:, n], adv_n, atol=ATOL)
            np.testing.assert_allclose(ret[:, n], ret_n, atol=ATOL)

    def test_traced_gamma_and_lam(self):
        rewards, values, next_values, terminated, truncated = _random_segment(5, (8, 2))
        args = (rewards, values, next_values)
        flags = dict(terminated=terminated, truncated=truncated)
        eager_adv, eager_ret = gae(*args, **flags, gamma=0.9, lam=0.7)
        jitted = jax.jit(lambda g, l: gae(*args, **flags, gamma=g, lam=l))
        adv, ret = jitted(jnp.float32(0.9), jnp.float32(0.7))
        np.testing.assert_allclose(adv, eager_adv, atol=ATOL)
        np.testing.assert_allclose(ret, eager_ret, atol=ATOL)

        dr = jax.jit(lambda g: discounted_returns(rewards, next_values, **flags, gamma=g))
        np.testing.assert_allclose(
            dr(jnp.float32(0.9)), discounted_returns(rewards, next_values, **flags, gamma=0.9), atol=ATOL)

        # A vmapped hyperparameter sweep, as produced by a batched hyperparameter pytree.
        gammas = jnp.array([0.5, 0.9], jnp.float32)
        lams = jnp.array([0.5, 0.7], jnp.float32)
        swept_adv, _ = jax.vmap(lambda g, l: gae(*args, **flags, gamma=g, lam=l))(gammas, lams)
        for i in range(2):
            expected, _ = gae(*args, **flags, gamma=float(gammas[i]), lam=float(lams[i]))
            np.testing.assert_allclose(swept_adv[i], expected, atol=ATOL)

    def test_boundary_flags_are_keyword_only(self):
        """All five arrays share one shape, so a positional swap would pass any shape check."""
        with pytest.raises(TypeError):
            gae(REWARDS, VALUES, NEXT_VALUES, TERMINATED, TRUNCATED, gamma=0.9, lam=0.9)
        with pytest.raises(TypeError):
            discounted_returns(REWARDS, TERMINATED, TRUNCATED, NEXT_VALUES, gamma=0.9)

    def test_shape_mismatch_raises(self):
        with pytest.raises(AssertionError):
            gae(REWARDS, VALUES[:3], NEXT_VALUES, terminated=TERMINATED, truncated=TRUNCATED, gamma=0.9, lam=0.9)


def _random_segment(seed, shape):
    """A random segment whose next_values agree with values[t + 1] inside episodes."""
    rng = np.random.default_rng(seed)
    rewards = rng.normal(size=shape).astype(np.float32)
    values = rng.normal(size=shape).astype(np.float32)
    terminated = rng.random(shape) < 0.15
    truncated = (rng.random(shape) < 0.15) & ~terminated
    done = terminated | truncated
    next_values = np.concatenate([values[1:], rng.normal(size=(1,) + shape[1:])], axis=0)
    # Across a boundary V(s'_t) is the value of final_obs, unrelated to values[t + 1].
    next_values = np.where(done, rng.normal(size=shape), next_values).astype(np.float32)
    return rewards, values, next_values, terminated, truncated


class PolicyGradientTest(chex.TestCase):

    # [T=3, B=2]
    LOG_PROBS = np.array([[-1.0, -2.0], [-0.5, -1.0], [-3.0, -0.2]], np.float32)
    RETURNS = np.array([[3.0, 1.0], [2.0, 0.0], [1.0, -1.0]], np.float32)
    BASELINE = np.array([[0.5, 1.0], [1.0, 0.5], [0.0, 0.0]], np.float32)

    @chex.variants(with_jit=True, without_jit=True)
    def test_reinforce_known_answer(self):
        # advantages = returns - baseline = [[2.5, 0], [1, -0.5], [1, -1]]
        # per-trajectory sums of log_prob * advantage:
        #   b=0: -1 * 2.5 + -0.5 * 1 + -3 * 1 = -6.0
        #   b=1: -2 * 0 + -1 * -0.5 + -0.2 * -1 = 0.7
        # loss = -(-6.0 + 0.7) / 2 = 2.65
        # d loss / d log_probs = -advantages / B
        # mean_advantage = (2.5 + 0 + 1 - 0.5 + 1 - 1) / 6 = 0.5
        fn = self.variant(jax.value_and_grad(reinforce_surrogate, has_aux=True))
        (loss, aux), grad = fn(self.LOG_PROBS, self.RETURNS, self.BASELINE)
        np.testing.assert_allclose(loss, 2.65, atol=ATOL)
        np.testing.assert_allclose(
            grad, [[-1.25, 0.0], [-0.5, 0.25], [-0.5, 0.5]], atol=ATOL)
        np.testing.assert_allclose(aux["mean_advantage"], 0.5, atol=ATOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_reinforce_without_baseline(self):
        # sums: b=0: -3 - 1 - 3 = -7;  b=1: -2 + 0 + 0.2 = -1.8;  loss = 8.8 / 2 = 4.4
        fn = self.variant(reinforce_surrogate)
        loss, aux = fn(self.LOG_PROBS, self.RETURNS)
        np.testing.assert_allclose(loss, 4.4, atol=ATOL)
        np.testing.assert_allclose(aux["mean_advantage"], 6.0 / 6, atol=ATOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_reinforce_mask_removes_steps(self):
        mask = np.array([[1, 1], [1, 0], [0, 0]], np.float32)
        # Padded steps may carry -inf log-probs; the mask must keep them out of value and grad.
        log_probs = np.where(mask > 0, self.LOG_PROBS, -np.inf).astype(np.float32)
        # sums: b=0: -2.5 - 0.5 = -3.0;  b=1: 0.0;  loss = 3.0 / 2 = 1.5
        # mean_advantage over valid entries: (2.5 + 0 + 1) / 3
        fn = self.variant(jax.value_and_grad(reinforce_surrogate, has_aux=True))
        (loss, aux), grad = fn(log_probs, self.RETURNS, self.BASELINE, mask)
        np.testing.assert_allclose(loss, 1.5, atol=ATOL)
        np.testing.assert_allclose(grad, [[-1.25, 0.0], [-0.5, 0.0], [0.0, 0.0]], atol=ATOL)
        np.testing.assert_allclose(aux["mean_advantage"], 3.5 / 3, atol=ATOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_reinforce_baseline_and_returns_get_no_gradient(self):
        def loss_fn(returns, baseline):
            return reinforce_surrogate(self.LOG_PROBS, returns, baseline)[0]

        g_returns, g_baseline = self.variant(jax.grad(loss_fn, argnums=(0, 1)))(
            self.RETURNS, self.BASELINE)
        np.testing.assert_array_equal(g_returns, np.zeros_like(self.RETURNS))
        np.testing.assert_array_equal(g_baseline, np.zeros_like(self.BASELINE))

    def test_reinforce_requires_time_by_batch(self):
        with pytest.raises(AssertionError):
            reinforce_surrogate(self.LOG_PROBS[:, 0], self.RETURNS[:, 0])

    # Six samples: ratio inside / above / below the clip range, for A > 0 and A < 0.
    RATIOS = np.array([1.1, 1.5, 0.5, 0.5, 1.5, 0.9], np.float32)
    ADVANTAGES = np.array([2.0, 2.0, 2.0, -1.0, -1.0, -1.0], np.float32)
    OLD_LOG_PROBS = np.array([-1.0, -0.5, -2.0, -1.5, -0.1, -3.0], np.float32)

    @chex.variants(with_jit=True, without_jit=True)
    def test_ppo_clip_known_answer(self):
        # clip_eps = 0.2, so clip(ratio) is in [0.8, 1.2].
        #   r=1.1, A= 2: min(2.2, 2.2)   =  2.2   inside the range; grad r*A = 2.2
        #   r=1.5, A= 2: min(3.0, 2.4)   =  2.4   clipped (too optimistic); grad 0
        #   r=0.5, A= 2: min(1.0, 1.6)   =  1.0   unclipped term is the pessimistic one; grad 1.0
        #   r=0.5, A=-1: min(-0.5, -0.8) = -0.8   clipped; grad 0
        #   r=1.5, A=-1: min(-1.5, -1.2) = -1.5   unclipped; grad -1.5
        #   r=0.9, A=-1: min(-0.9, -0.9) = -0.9   inside; grad -0.9
        # objective mean = (2.2 + 2.4 + 1.0 - 0.8 - 1.5 - 0.9) / 6 = 2.4 / 6 = 0.4 -> loss -0.4
        # d ratio / d log_prob = ratio, so d loss / d log_prob_i = -(1/6) * (r_i A_i if unclipped)
        # clip_fraction: |r - 1| > 0.2 for r in {1.5, 0.5, 0.5, 1.5} -> 4/6
        # approx_kl = mean((r - 1) - log r)
        #   = (0.0046898 + 0.0945349 + 0.1931472 + 0.1931472 + 0.0945349 + 0.0053605) / 6
        #   = 0.0975691
        log_probs = self.OLD_LOG_PROBS + np.log(self.RATIOS)
        fn = self.variant(jax.value_and_grad(
            functools.partial(ppo_clip, clip_eps=0.2), has_aux=True))
        (loss, aux), grad = fn(log_probs, self.OLD_LOG_PROBS, self.ADVANTAGES)
        np.testing.assert_allclose(loss, -0.4, atol=ATOL)
        np.testing.assert_allclose(
            grad, -np.array([2.2, 0.0, 1.0, 0.0, -1.5, -0.9]) / 6, atol=ATOL)
        np.testing.assert_allclose(aux["clip_fraction"], 4 / 6, atol=ATOL)
        np.testing.assert_allclose(aux["approx_kl"], 0.0975691, atol=ATOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_ppo_clip_gradient_zero_where_pessimistically_clipped(self):
        log_probs = self.OLD_LOG_PROBS + np.log(self.RATIOS)
        fn = self.variant(jax.grad(lambda lp: ppo_clip(lp, self.OLD_LOG_PROBS, self.ADVANTAGES,
                                                       clip_eps=0.2)[0]))
        grad = np.asarray(fn(log_probs))
        # Ratio above 1 + eps with A > 0, and below 1 - eps with A < 0.
        np.testing.assert_array_equal(grad[[1, 3]], [0.0, 0.0])
        assert np.all(grad[[0, 2, 4, 5]] != 0.0)

    @chex.variants(with_jit=True, without_jit=True)
    def test_ppo_clip_mask_and_constants(self):
        log_probs = self.OLD_LOG_PROBS + np.log(self.RATIOS)
        mask = np.array([1, 1, 0, 0, 0, 0], bool)
        # objective over valid entries: (2.2 + 2.4) / 2 = 2.3; clip_fraction 1/2
        loss, aux = self.variant(functools.partial(ppo_clip, clip_eps=0.2, mask=mask))(
            log_probs, self.OLD_LOG_PROBS, self.ADVANTAGES)
        np.testing.assert_allclose(loss, -2.3, atol=ATOL)
        np.testing.assert_allclose(aux["clip_fraction"], 0.5, atol=ATOL)

        g_old, g_adv = self.variant(jax.grad(
            lambda old, adv: ppo_clip(log_probs, old, adv, clip_eps=0.2)[0], argnums=(0, 1)))(
                self.OLD_LOG_PROBS, self.ADVANTAGES)
        np.testing.assert_array_equal(g_old, np.zeros(6))
        np.testing.assert_array_equal(g_adv, np.zeros(6))


class ValueAndRegularizerTest(chex.TestCase):

    VALUES = np.array([1.0, 2.0, 3.0], np.float32)
    TARGETS = np.array([2.0, 2.0, 0.0], np.float32)
    OLD_VALUES = np.array([0.5, 2.5, 1.0], np.float32)

    @chex.variants(with_jit=True, without_jit=True)
    def test_value_loss_plain(self):
        # squared errors [1, 0, 9] -> 0.5 * 10 / 3
        fn = self.variant(value_loss)
        loss, aux = fn(self.VALUES, self.TARGETS)
        np.testing.assert_allclose(loss, 5.0 / 3, atol=ATOL)
        assert float(aux["clip_fraction"]) == 0.0
        # mask [1, 1, 0] -> 0.5 * (1 + 0) / 2
        mask = np.array([1.0, 1.0, 0.0], np.float32)
        np.testing.assert_allclose(fn(self.VALUES, self.TARGETS, mask=mask)[0], 0.25, atol=ATOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_value_loss_clipped(self):
        # values - old = [0.5, -0.5, 2.0] -> clipped to [0.2, -0.2, 0.2]
        # v_clip = [0.7, 2.3, 1.2]; (v_clip - targets)^2 = [1.69, 0.09, 1.44]
        # max with unclipped [1, 0, 9] = [1.69, 0.09, 9] -> 0.5 * 10.78 / 3
        fn = self.variant(value_loss)
        loss, aux = fn(self.VALUES, self.TARGETS, old_values=self.OLD_VALUES, clip_eps=0.2)
        np.testing.assert_allclose(loss, 0.5 * 10.78 / 3, atol=ATOL)
        np.testing.assert_allclose(aux["clip_fraction"], 2.0 / 3, atol=ATOL)  # entries 0 and 1 clipped
        # mask [1, 1, 0] -> 0.5 * (1.69 + 0.09) / 2
        mask = np.array([True, True, False])
        loss, aux = fn(self.VALUES, self.TARGETS, old_values=self.OLD_VALUES, clip_eps=0.2, mask=mask)
        np.testing.assert_allclose(loss, 0.445, atol=ATOL)
        np.testing.assert_allclose(aux["clip_fraction"], 1.0, atol=ATOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_value_loss_gradients(self):
        # Plain: d/dv 0.5 * mean((v - t)^2) = (v - t) / 3 = [-1, 0, 3] / 3; targets get none.
        fn = self.variant(jax.grad(lambda v, t: value_loss(v, t)[0], argnums=(0, 1)))
        g_values, g_targets = fn(self.VALUES, self.TARGETS)
        np.testing.assert_allclose(g_values, np.array([-1.0, 0.0, 3.0]) / 3, atol=ATOL)
        np.testing.assert_array_equal(g_targets, np.zeros(3))

    def test_value_loss_requires_both_clip_arguments(self):
        with pytest.raises(ValueError, match="old_values.*clip_eps"):
            value_loss(self.VALUES, self.TARGETS, old_values=self.OLD_VALUES)
        with pytest.raises(ValueError, match="old_values.*clip_eps"):
            value_loss(self.VALUES, self.TARGETS, clip_eps=0.2)

    @chex.variants(with_jit=True, without_jit=True)
    def test_entropy_loss(self):
        fn = self.variant(entropy_loss)
        entropies = np.array([1.0, 2.0, 6.0], np.float32)
        loss, aux = fn(entropies)
        np.testing.assert_allclose(loss, -3.0, atol=ATOL)
        np.testing.assert_allclose(aux["entropy"], 3.0, atol=ATOL)
        np.testing.assert_allclose(fn(entropies, np.array([1.0, 1.0, 0.0]))[0], -1.5, atol=ATOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_masked_mean(self):
        fn = self.variant(masked_mean)
        x = np.array([1.0, 2.0, 3.0, np.nan], np.float32)
        np.testing.assert_allclose(fn(x[:3]), 2.0, atol=ATOL)
        # NaN padding is excluded, not propagated.
        np.testing.assert_allclose(fn(x, np.array([1, 0, 1, 0], bool)), 2.0, atol=ATOL)
        # An all-invalid mask gives 0, not NaN.
        np.testing.assert_allclose(fn(x, np.zeros(4, bool)), 0.0, atol=ATOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_normalize_advantages_known_answer(self):
        # valid entries [1, 3]: mean 2, population std 1 -> [-1, 1]; invalid -> 0.
        fn = self.variant(normalize_advantages)
        out = fn(np.array([1.0, 100.0, 3.0], np.float32), np.array([True, False, True]))
        np.testing.assert_allclose(out, [-1.0, 0.0, 1.0], atol=ATOL)


# ---------------------------------------------------------------------------------------------
# Property tests. Fixed array sizes so that each jitted function compiles once.

N = 16
_normalize = jax.jit(normalize_advantages)
_masked_mean = jax.jit(masked_mean)
_finite = dict(allow_nan=False, allow_infinity=False, width=32)
_settings = hypothesis.settings(max_examples=40, deadline=None, derandomize=True)


@_settings
@hypothesis.given(
    adv=hnp.arrays(np.float32, N, elements=st.floats(-10, 10, **_finite)),
    mask=hnp.arrays(np.bool_, N),
    shift=st.floats(-10, 10, allow_nan=False, allow_infinity=False),
    scale=st.floats(0.5, 5, allow_nan=False, allow_infinity=False),
)
def test_normalize_advantages_properties(adv, mask, shift, scale):
    hypothesis.assume(mask.sum() >= 2)
    # Keep well away from the degenerate constant case, where eps dominates.
    hypothesis.assume(adv[mask].std() > 0.5)
    mask_f = mask.astype(np.float32)

    out = np.asarray(_normalize(adv, mask_f))
    transformed = np.asarray(_normalize((adv * scale + shift).astype(np.float32), mask_f))
    np.testing.assert_allclose(transformed, out, atol=1e-4)

    np.testing.assert_allclose(_masked_mean(out, mask_f), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.sqrt(_masked_mean(out**2, mask_f)), 1.0, atol=1e-4)
    np.testing.assert_array_equal(out[~mask], 0.0)


def _ppo_elementwise(log_probs, old_log_probs, advantages, clip_eps):
    per_elem = jax.vmap(
        lambda lp, olp, a: -ppo_clip(lp[None], olp[None], a[None], clip_eps=clip_eps)[0])
    return per_elem(log_probs, old_log_probs, advantages)


_ppo_elementwise = jax.jit(_ppo_elementwise)


@_settings
@hypothesis.given(
    log_ratio=hnp.arrays(np.float32, N, elements=st.floats(-2, 2, **_finite)),
    old_log_probs=hnp.arrays(np.float32, N, elements=st.floats(-5, 0, **_finite)),
    advantages=hnp.arrays(np.float32, N, elements=st.floats(-10, 10, **_finite)),
    clip_eps=st.floats(0.05, 0.5, allow_nan=False, allow_infinity=False),
)
def test_ppo_objective_bounded_by_clipped_ratio(log_ratio, old_log_probs, advantages, clip_eps):
    log_probs = old_log_probs + log_ratio
    objective = np.asarray(_ppo_elementwise(log_probs, old_log_probs, advantages, clip_eps))
    ratio = np.exp(log_probs.astype(np.float64) - old_log_probs)
    tol = 1e-4 * (1.0 + np.abs(advantages) * ratio)
    clipped = np.clip(ratio, 1 - clip_eps, 1 + clip_eps) * advantages
    # The objective never exceeds either the unclipped or the clipped term...
    assert np.all(objective <= ratio * advantages + tol)
    assert np.all(objective <= clipped + tol)
    # ...so no sample can claim more than a (1 +/- eps) policy change is worth.
    bound = np.where(advantages >= 0, 1 + clip_eps, 1 - clip_eps) * advantages
    assert np.all(objective <= bound + tol)
