"""Group-loss recipes that change the advantage, the clip or the token weights (loss-catalog A1-A7,
A10, A11): known answers against hand-computed values, closed forms or independent formulas, the
three reported problems of published code, and a fuzz test of every recipe and public function.

Kept fast: every batch is ``[8, 5]`` (so eager primitives compile once and are reused), checks run
eagerly, and one jitted program for all recipes (``vmap`` of ``value_and_grad`` over the fuzz
batches) serves the jit, vmap and eager-agreement checks at once.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpg.losses.sequence import advantages as adv_lib
from jaxpg.losses.sequence import copo, down_sampling, empg, entropy_mechanism, hapo, hybrid, stratified, structured
from jaxpg.losses.sequence.aggregation import sequence_mean_token_mean, token_mean
from jaxpg.losses.sequence.batch import SequenceBatch
from jaxpg.losses.sequence.recipe import PolicyTerm, Recipe
from jaxpg.losses.sequence.recipes import DR_GRPO, GRPO
from jaxpg.losses.sequence.rewards import weighted_reward
from jaxpg.losses.sequence.surrogates import ppo_surrogate, reinforce_ratio_surrogate

B, T = 8, 5
RECIPES: dict = {}
for _module in (stratified, hapo, copo, entropy_mechanism, empg, down_sampling, hybrid, structured):
    RECIPES.update(_module.RECIPES)

f32 = functools.partial(np.asarray, dtype=np.float32)


def make_batch(seed: int = 0, *, rewards=None, group_ids=(0, 0, 0, 0, 4, 4, 4, 4), lengths=None, entropy=None,
               segment_ids=None, strata=None, answer_ids=None, is_demo=None, logp=None, old_logp=None,
               **extra) -> SequenceBatch:
    """A valid ``[8, 5]`` batch; any field can be given, the rest is drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, T + 1, B) if lengths is None else np.asarray(lengths)
    mask = f32(np.arange(T)[None, :] < lengths[:, None])
    logp = -rng.uniform(0.05, 3.0, (B, T)) if logp is None else logp
    old_logp = logp + 0.3 * rng.normal(size=(B, T)) if old_logp is None else old_logp
    return SequenceBatch(
        logp=jnp.asarray(f32(logp)),
        old_logp=jnp.asarray(f32(old_logp)),
        mask=jnp.asarray(mask),
        rewards=jnp.asarray(f32(rng.integers(0, 2, B) if rewards is None else rewards)),
        group_ids=jnp.asarray(np.asarray(group_ids, np.int32)),
        ref_logp=jnp.asarray(f32(logp - rng.uniform(0, 0.5, (B, T)))),
        entropy=jnp.asarray(f32(rng.uniform(0.01, 2.0, (B, T)) if entropy is None else entropy)),
        segment_ids=jnp.asarray(np.asarray(np.sort(rng.integers(0, 3, (B, T)), axis=1)
                                           if segment_ids is None else segment_ids, np.int32)),
        strata=jnp.asarray(np.asarray(rng.integers(0, 2, B) if strata is None else strata, np.int32)),
        answer_ids=jnp.asarray(np.asarray(rng.integers(0, 3, B) if answer_ids is None else answer_ids, np.int32)),
        is_demo=jnp.asarray(f32(np.zeros(B) if is_demo is None else is_demo)),
        extras=dict(extra),
    )


def loss_and_grad(recipe, batch, key=None):
    """``(loss, d loss / d logp)`` of a recipe, eagerly."""
    return jax.value_and_grad(lambda lp: recipe(batch.replace(logp=lp), key)[0])(batch.logp)


def assert_same_loss_and_grad(recipe_a, recipe_b, batch, *, key=None, atol=1e-6):
    loss_a, grad_a = loss_and_grad(recipe_a, batch, key)
    loss_b, grad_b = loss_and_grad(recipe_b, batch, key)
    np.testing.assert_allclose(loss_a, loss_b, atol=atol)
    np.testing.assert_allclose(grad_a, grad_b, atol=atol)


# ---- BNPO (advantages.py) -------------------------------------------------------------------------
BINARY = f32([1, 0, 0, 1, 1, 1, 1, 0])  # group success rates 0.5 and 0.75


def test_bnpo_uniform_prior_is_the_group_mean_baseline():
    batch = make_batch(rewards=BINARY)
    a = adv_lib.bnpo_advantage(batch.rewards, batch, alpha=1.0, beta=1.0)
    np.testing.assert_allclose(a, [0.5, -0.5, -0.5, 0.5, 0.25, 0.25, 0.25, -0.75], atol=1e-6)


def test_bnpo_beta_three_halves_is_pi_over_8_times_population_grpo():
    # Beta(3/2, 3/2) has density sqrt(p (1-p)) / B(3/2, 3/2) with B(3/2, 3/2) = Gamma(3/2)^2 / Gamma(3) = pi/8,
    # so A = (pi/8) (r - p) / sqrt(p (1 - p)) = (pi/8) x GRPO with the population std (binary rewards).
    r = f32([1, 0, 0, 1, 1, 1, 1, 1])  # group 0 p = 0.5, group 4 all right (degenerate)
    batch = make_batch(rewards=r, group_ids=(0, 0, 0, 0, 4, 4, 4, 4))
    a = np.asarray(adv_lib.bnpo_advantage(batch.rewards, batch, alpha=1.5, beta=1.5))
    p = 0.5
    np.testing.assert_allclose(a[:4], math.pi / 8 * (r[:4] - p) / math.sqrt(p * (1 - p)), rtol=1e-5)
    np.testing.assert_array_equal(a[4:], 0.0)
    # The same against GRPO(ddof=0, eps=0) on a non-degenerate group with p = 0.75.
    batch = make_batch(rewards=BINARY)
    grpo = np.asarray(adv_lib.grpo_advantage(batch.rewards, batch, ddof=0, eps=0.0))
    np.testing.assert_allclose(adv_lib.bnpo_advantage(batch.rewards, batch, alpha=1.5, beta=1.5),
                               math.pi / 8 * grpo, rtol=1e-5)


def test_bnpo_fit_is_finite_when_every_prompt_has_the_same_success_rate():
    # Equal success rates: the batch variance is 0 and the unguarded moment fit divides by it. With
    # the floor 1e-6: k = 0.25 / 1e-6 - 1, alpha = 1 + k / 6 > 1e3, so both hit the cap 1e3.
    batch = make_batch(rewards=[1, 0, 1, 0, 0, 1, 1, 0])  # both groups succeed half the time
    alpha, beta = adv_lib.bnpo_fit(jnp.full((B,), 0.5), batch.group_ids)
    np.testing.assert_allclose([alpha, beta], [1e3, 1e3])
    assert np.all(np.isfinite(adv_lib.bnpo_advantage(batch.rewards, batch)))


# ---- Stratified GRPO ------------------------------------------------------------------------------
def test_stratified_advantage_hand_computed():
    # Group 0 (rows 0-5): stratum 0 = r (1, 0, 1): mean 2/3, unbiased std 1/sqrt(3)
    #   -> (1/sqrt3, -2/sqrt3, 1/sqrt3); stratum 1 = r (1, 0, 0) -> (2/sqrt3, -1/sqrt3, -1/sqrt3).
    # Group 6 (rows 6, 7): stratum 0 again, but another cell: r (0, 1) -> (-1/sqrt2, 1/sqrt2).
    r = f32([1, 0, 1, 1, 0, 0, 0, 1])
    strata = (0, 0, 0, 1, 1, 1, 0, 0)
    batch = make_batch(rewards=r, group_ids=(0, 0, 0, 0, 0, 0, 6, 6), strata=strata)
    a = stratified.stratified_advantage(batch.rewards, batch, eps=0.0)
    s3, s2 = 1 / math.sqrt(3), 1 / math.sqrt(2)
    np.testing.assert_allclose(a, [s3, -2 * s3, s3, 2 * s3, -s3, -s3, -s2, s2], rtol=1e-5)
    # A stratum of one response has no peer: A_SAN = 0 (grpo-composer's unbiased std would give NaN).
    batch = make_batch(rewards=r, group_ids=(0, 0, 0, 0, 0, 0, 6, 6), strata=(0, 0, 0, 1, 1, 1, 0, 5))
    a = stratified.stratified_advantage(batch.rewards, batch, eps=1e-6)
    np.testing.assert_array_equal(np.asarray(a)[6:], 0.0)


def test_stratified_reduces_to_grpo_with_one_stratum_or_alpha_zero():
    batch = make_batch(3)
    grpo = adv_lib.grpo_advantage(batch.rewards, batch)
    one_stratum = batch.replace(strata=jnp.zeros((B,), jnp.int32))
    np.testing.assert_allclose(stratified.stratified_advantage(one_stratum.rewards, one_stratum), grpo, atol=1e-6)
    np.testing.assert_allclose(stratified.stratified_advantage(batch.rewards, batch, alpha=0.0), grpo, atol=1e-6)


def test_stratified_advantage_is_invariant_to_positive_affine_rewards():
    r = f32(np.random.default_rng(1).normal(size=B))  # distinct rewards: no degenerate cell
    batch = make_batch(rewards=r, strata=(0, 0, 1, 1, 0, 0, 1, 1))
    a = stratified.stratified_advantage(batch.rewards, batch, alpha=0.5, eps=0.0)
    a2 = stratified.stratified_advantage(3.0 * batch.rewards + 2.0, batch, alpha=0.5, eps=0.0)
    np.testing.assert_allclose(a, a2, rtol=1e-4, atol=1e-5)


# ---- HAPO -----------------------------------------------------------------------------------------
def test_hapo_token_advantage_equals_population_grpo_for_equal_lengths():
    batch = make_batch(4, lengths=[T] * B)
    np.testing.assert_allclose(hapo.hapo_token_advantage(batch.rewards, batch),
                               adv_lib.grpo_advantage(batch.rewards, batch, ddof=0), atol=1e-5)


def test_hapo_token_advantage_hand_computed_with_fallback():
    # Groups of two, r = (1, 0) or (0, 1), lengths L:
    #  g0: L = (5, 1): mu = 5/6, sigma = sqrt(5/36) -> A_1 = -(5/6)/sigma = -2.236 >= 2: GRPO fallback,
    #      unbiased std sqrt(0.5) -> (+-0.7071);
    #  g2: L = (4, 2): mu = 2/3, sigma = sqrt(2)/3 -> (0.7071, -1.4142), below the threshold;
    #  g4: L = (3, 3): equal lengths -> population GRPO (-1, 1);
    #  g6: L = (0, 2): row 6 has no token (0); row 7 alone carries the group's tokens: A = 0.
    batch = make_batch(rewards=[1, 0, 1, 0, 0, 1, 1, 0], group_ids=(0, 0, 2, 2, 4, 4, 6, 6),
                       lengths=[5, 1, 4, 2, 3, 3, 0, 2])
    a = hapo.hapo_token_advantage(batch.rewards, batch, fallback_threshold=2.0)
    s2 = math.sqrt(0.5)
    np.testing.assert_allclose(a, [s2, -s2, s2, -2 * s2, -1, 1, 0, 0], atol=1e-5)


def _entropy_row(values):
    entropy = np.ones((B, T), np.float32)
    entropy[0, :len(values)] = values
    lengths = [len(values)] + [0] * (B - 1)
    return entropy, lengths


def test_hapo_h_hat_hand_computed_signed_and_as_released():
    # log H = (0, 1, 2, 3, 4); pivot 0.8 -> rank round(0.8 x 4) = 3 -> quantile 3; h = (-3, -2, -1, 0, 1)
    # (the RMS rescaling cancels): signed h-hat = h / 3 below, h / 1 above; as released the negative
    # side is divided by min h = -3 < 0, which flips it.
    entropy, lengths = _entropy_row(np.exp([0, 1, 2, 3, 4]))
    mask = jnp.asarray(f32(np.arange(T)[None] < np.asarray(lengths)[:, None]))
    signed = np.asarray(hapo.hapo_h_hat(jnp.asarray(entropy), mask, pivot=0.8))
    released = np.asarray(hapo.hapo_h_hat(jnp.asarray(entropy), mask, pivot=0.8, as_released=True))
    np.testing.assert_allclose(signed[0], [-1, -2 / 3, -1 / 3, 0, 1], atol=1e-5)
    np.testing.assert_allclose(released[0], [1, 2 / 3, 1 / 3, 0, 1], atol=1e-5)
    np.testing.assert_array_equal(signed[1:], 0.0)  # padding


def test_hapo_quantile_rounds_half_to_even_like_the_released_code():
    # 4 valid tokens, pivot 0.5: rank round(1.5) = 2 (torch via Python's round) -> quantile log H = 2,
    # h = (-2, -1, 0, 1) -> signed (-1, -0.5, 0, 1). jnp.nanquantile("nearest") would pick rank 1.
    entropy, lengths = _entropy_row(np.exp([0, 1, 2, 3]))
    mask = jnp.asarray(f32(np.arange(T)[None] < np.asarray(lengths)[:, None]))
    signed = np.asarray(hapo.hapo_h_hat(jnp.asarray(entropy), mask, pivot=0.5))
    np.testing.assert_allclose(signed[0, :4], [-1, -0.5, 0, 1], atol=1e-5)


def test_hapo_clip_and_redistribution_are_identities_for_constant_entropy():
    batch = make_batch(5, entropy=np.full((B, T), 0.7))
    adv = jnp.asarray(f32(np.random.default_rng(0).normal(size=(B, T)))) * batch.mask
    for as_released in (False, True):
        eps_low, eps_high = hapo.hapo_clip(batch, adv, None, as_released=as_released)
        np.testing.assert_allclose(eps_low, np.full((B, T), 0.2), atol=1e-7)
        np.testing.assert_allclose(eps_high, np.full((B, T), 0.2), atol=1e-7)
        np.testing.assert_allclose(hapo.hapo_redistribute(adv, batch, as_released=as_released), adv, atol=1e-7)


def test_released_sign_quirk():
    """Reported problem (catalog A3/C2), confirmed: as released, h-hat >= 0 everywhere, so the
    low-entropy branches are inert and low-entropy tokens are treated as high-entropy ones."""
    batch = make_batch(6, lengths=[T] * B)
    signed = np.asarray(hapo.hapo_h_hat(batch.entropy, batch.mask))
    released = np.asarray(hapo.hapo_h_hat(batch.entropy, batch.mask, as_released=True))
    low = signed < 0  # tokens below the entropy pivot
    assert low.sum() > 20  # pivot 0.8: most tokens
    assert np.all(released >= 0)
    np.testing.assert_allclose(released[low], -signed[low], atol=1e-6)  # the sign flip, nothing else
    assert signed.min() == pytest.approx(-1.0) and signed.max() == pytest.approx(1.0)
    # Clip: the signed version widens the lower range of low-entropy tokens; as released the lower
    # range is never adapted (h-hat <= 0 only where h-hat = 0) and the upper range widens instead.
    lo_s, hi_s = (np.asarray(x) for x in hapo.hapo_clip(batch, None, None))
    lo_r, hi_r = (np.asarray(x) for x in hapo.hapo_clip(batch, None, None, as_released=True))
    np.testing.assert_allclose(lo_s[low], 0.2 * (1 - signed[low]), rtol=1e-6)
    np.testing.assert_allclose(hi_s[low], 0.2, rtol=1e-6)
    np.testing.assert_allclose(lo_r, 0.2, rtol=1e-6)
    np.testing.assert_allclose(hi_r[low], 0.2 * (1 + released[low]), rtol=1e-6)
    # Redistribution in the neutral band (rho = 1): low-entropy tokens get A (1 + h-hat) signed,
    # but A unchanged as released (the high-entropy rule).
    on_policy = batch.replace(old_logp=batch.logp)
    adv = jnp.ones((B, T))
    np.testing.assert_allclose(np.asarray(hapo.hapo_redistribute(adv, on_policy))[low], 1 + signed[low], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(hapo.hapo_redistribute(adv, on_policy, as_released=True))[low], 1.0)


def test_hapo_redistribution_outside_the_band_hand_computed():
    # rho = e^0.5 > 1 + eps_h'/2 for every token: high-entropy tokens (h-hat > 0) get A (1 + h-hat),
    # low-entropy ones keep A.
    batch = make_batch(7, lengths=[T] * B)
    batch = batch.replace(old_logp=batch.logp - 0.5)
    h = np.asarray(hapo.hapo_h_hat(batch.entropy, batch.mask))
    adv = jnp.asarray(f32(np.random.default_rng(1).normal(size=(B, T))))
    out = np.asarray(hapo.hapo_redistribute(adv, batch))
    np.testing.assert_allclose(out, np.where(h > 0, np.asarray(adv) * (1 + h), np.asarray(adv)), rtol=1e-5)


# ---- COPO -----------------------------------------------------------------------------------------
def test_answer_entropy_hand_computed():
    ids = jnp.asarray([0, 0, 0, 0, 4, 4, 4, 4])
    # Answers (1, 1, 2, 3): p = (1/2, 1/4, 1/4), H = 1/2 + 2 x 1/4 x 2 = 1.5 bits; (5, 5, 5, 5): 0 bits.
    np.testing.assert_allclose(copo.answer_entropy(jnp.asarray([1, 1, 2, 3, 5, 5, 5, 5]), ids),
                               [1.5] * 4 + [0.0] * 4, atol=1e-6)
    # All different: log2 4 = 2; the answer id 1 is shared across groups but counted per group.
    np.testing.assert_allclose(copo.answer_entropy(jnp.asarray([1, 2, 3, 4, 1, 1, 2, 2]), ids),
                               [2.0] * 4 + [1.0] * 4, atol=1e-6)


def test_copo_all_correct_group_keeps_a_global_signal():
    # g = (1, 0.25): mean 0.625, unbiased std 0.375 sqrt(2) -> A_global = +-1/sqrt(2); local A of the
    # all-correct group is 0, so GRPO gives its tokens no gradient and COPO does.
    batch = make_batch(8, rewards=[1, 1, 1, 1, 1, 0, 0, 0], answer_ids=[7, 7, 7, 7, 1, 2, 3, 3])
    batch = batch.replace(old_logp=batch.logp)  # on-policy: no token is clipped
    np.testing.assert_array_equal(np.asarray(adv_lib.grpo_advantage(batch.rewards, batch))[:4], 0.0)
    np.testing.assert_allclose(copo.copo_global_advantage(batch.rewards, batch),
                               [2 ** -0.5] * 4 + [-(2 ** -0.5)] * 4, rtol=1e-5)
    _, grad_copo = loss_and_grad(copo.COPO, batch)
    _, grad_grpo = loss_and_grad(copo.make_copo(mode="no-global"), batch)
    valid = np.asarray(batch.mask)[:4] > 0
    assert np.all(np.asarray(grad_grpo)[:4] == 0)
    assert np.all(np.asarray(grad_copo)[:4][valid] != 0)


def test_copo_all_wrong_group_gets_zero_local_weight():
    batch = make_batch(9, rewards=[0, 0, 0, 0, 1, 0, 1, 1], answer_ids=[1, 2, 3, 4, 5, 5, 6, 5])
    w = np.asarray(copo.copo_weight(batch))  # soft-with-zero
    np.testing.assert_array_equal(w[:4], 0.0)  # every answer differs (H = 2) yet w = 0
    # Group 4: answers (5, 5, 6, 5): H = 0.8113 bits; w = sigmoid(5 (H - 1)) on the right answers.
    h = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    soft = 1 / (1 + math.exp(-5 * (h - 1)))
    np.testing.assert_allclose(w[4:], [soft, 0, soft, soft], rtol=1e-5)
    np.testing.assert_allclose(copo.copo_weight(batch, mode="soft-with-forced")[:4], 0.0)  # A_local = 0 there
    np.testing.assert_allclose(copo.copo_weight(batch, mode="only-soft")[:4], 1 / (1 + math.exp(-5)), rtol=1e-5)


def test_wrong_answers_train_on_global_loss_only():
    """Reported problem (catalog A4/C3), confirmed: under soft-with-zero every wrong answer has
    w = 0, also in a mixed group with informative local advantages, so its gradient is exactly
    the global loss's; soft-with-forced keeps the local signal."""
    batch = make_batch(10, rewards=[1, 0, 0, 1, 0, 1, 0, 0], answer_ids=[1, 2, 3, 4, 1, 2, 3, 4])  # H = 2
    wrong = np.asarray(batch.rewards) == 0
    assert np.all(np.asarray(adv_lib.grpo_advantage(batch.rewards, batch))[wrong] < 0)  # informative
    np.testing.assert_array_equal(np.asarray(copo.copo_weight(batch))[wrong], 0.0)
    _, grad_default = loss_and_grad(copo.COPO, batch)
    _, grad_global = loss_and_grad(copo.make_copo(mode="only-global"), batch)
    _, grad_forced = loss_and_grad(copo.COPO_SOFT_FORCED, batch)
    np.testing.assert_allclose(np.asarray(grad_default)[wrong], np.asarray(grad_global)[wrong], atol=1e-7)
    assert not np.allclose(np.asarray(grad_forced)[wrong], np.asarray(grad_global)[wrong])
    assert not np.allclose(np.asarray(grad_default)[~wrong], np.asarray(grad_global)[~wrong])


def test_copo_no_global_equals_grpo():
    batch = make_batch(11)
    dual_clip = functools.partial(ppo_surrogate, dual_clip=copo.COPO_DUAL_CLIP)
    reference = Recipe(name="grpo_dual_clip",
                       terms=(PolicyTerm(surrogate=dual_clip, aggregate=sequence_mean_token_mean),))
    assert_same_loss_and_grad(copo.make_copo(mode="no-global"), reference, batch)


def test_copo_entropy_coefficient_hand_computed():
    # Three prompts: A (4 rows) r = (1, 1, 0, 0), answers all different: H = 2, lambda = (3/4)/2,
    # g = 0.5 (1 - 0.75) = 0.125; B (2 rows) r = (1, 1), H = 0: g = 1; C (2 rows) r = (0, 1),
    # answers differ: H = 1, lambda = (1/2)/1, g = 0.5 x 0.5 = 0.25. Then a z-score (unbiased std).
    batch = make_batch(rewards=[1, 1, 0, 0, 1, 1, 0, 1], group_ids=(0, 0, 0, 0, 4, 4, 6, 6),
                       answer_ids=[1, 2, 3, 4, 7, 7, 1, 2])
    g = np.array([0.125, 1.0, 0.25])
    z = (g - g.mean()) / (g.std(ddof=1) + 1e-6)
    np.testing.assert_allclose(copo.copo_global_advantage(batch.rewards, batch, entropy_coef=True),
                               np.repeat(z, [4, 2, 2]), rtol=1e-5)


# ---- Clip-Cov / KL-Cov ----------------------------------------------------------------------------
def test_covariance_score_token_mean_is_the_covariance():
    batch = make_batch(12)
    adv = jnp.asarray(f32(np.random.default_rng(2).normal(size=(B, T))))
    valid = np.asarray(batch.mask) > 0
    a, lp = np.asarray(adv, np.float64)[valid], np.asarray(batch.logp, np.float64)[valid]
    score = entropy_mechanism.covariance_score(adv, batch.logp, batch.mask)
    np.testing.assert_allclose(token_mean(score, batch.mask), np.mean((a - a.mean()) * (lp - lp.mean())), rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(score)[~valid], 0.0)


def _cov_batch():
    # 30 valid tokens; advantages and log-probs chosen so about half the tokens have cov > 0.
    rng = np.random.default_rng(13)
    batch = make_batch(13, lengths=[5, 5, 5, 5, 5, 5, 0, 0])
    adv = jnp.asarray(f32(rng.normal(size=(B, T)))) * batch.mask
    return batch, adv


def test_clip_cov_zeroes_exactly_max_one_floor_fraction_n_eligible_tokens():
    batch, adv = _cov_batch()
    cov = np.asarray(entropy_mechanism.covariance_score(adv, batch.logp, batch.mask))
    clipped = np.zeros((B, T), bool)
    clipped[0, :] = True  # already clipped by the PPO clip: never selected
    bounds = dict(lower=0.0, upper=1e9)
    eligible = (np.asarray(batch.mask) > 0) & ~clipped & (cov > 0)
    assert eligible.sum() >= 4
    for fraction, expected in ((0.1, 3), (1e-4, 1), (0.0, 1)):  # floor(0.1 x 30) = 3; max(1, 0) = 1
        for seed in range(2):
            w = np.asarray(entropy_mechanism.clip_cov_weight(batch, adv, None, jnp.asarray(clipped),
                                                             jax.random.key(seed), fraction=fraction, **bounds))
            zeroed = w == 0
            assert zeroed.sum() == expected and np.all(eligible[zeroed]) and np.all(w[~zeroed] == 1)
    # Fewer eligible tokens than the count: all of them.
    w = entropy_mechanism.clip_cov_weight(batch, adv, None, jnp.asarray(clipped), jax.random.key(0),
                                          fraction=1.0, **bounds)
    np.testing.assert_array_equal(np.asarray(w) == 0, eligible)
    # The draw is random: different keys pick different tokens.
    picks = {tuple(np.flatnonzero(np.asarray(entropy_mechanism.clip_cov_weight(
        batch, adv, None, jnp.asarray(clipped), jax.random.key(s), fraction=1e-4, **bounds)) == 0)) for s in range(5)}
    assert len(picks) > 1


def test_kl_cov_penalty_hand_computed_and_coef_zero_is_plain_pg():
    batch, _ = _cov_batch()
    batch = batch.replace(rewards=jnp.asarray(BINARY))
    adv = adv_lib.grpo_advantage(batch.rewards, batch)[:, None] * batch.mask
    valid = np.asarray(batch.mask) > 0
    cov = np.asarray(entropy_mechanism.covariance_score(adv, batch.logp, batch.mask))
    # k_percent = 10: max(1, floor(30 x 10 / 100)) = 3 tokens with the largest cov.
    top = np.zeros(B * T, bool)
    top[np.argsort(-np.where(valid, cov, -np.inf).reshape(-1), kind="stable")[:3]] = True
    top = top.reshape(B, T)
    delta = np.asarray(batch.logp - batch.old_logp)
    penalty = functools.partial(entropy_mechanism.kl_cov_penalty, k_percent=10.0)
    value, grad = jax.value_and_grad(lambda lp: penalty(batch.replace(logp=lp), adv, None))(batch.logp)
    np.testing.assert_allclose(value, np.abs(delta[top]).sum() / valid.sum(), rtol=1e-5)
    np.testing.assert_allclose(grad, np.where(top, np.sign(delta), 0.0) / valid.sum(), rtol=1e-5)
    # coef 0 (and k_percent 0): the plain -A rho policy gradient, loss and gradient.
    plain = Recipe(name="pg", terms=entropy_mechanism.KL_COV.terms)
    coef_zero = dataclasses.replace(entropy_mechanism.KL_COV, regularizers=((0.0, penalty),))
    assert_same_loss_and_grad(coef_zero, plain, batch)
    np.testing.assert_array_equal(entropy_mechanism.kl_cov_mask(batch, adv, k_percent=0.0), 0.0)


def test_entropy_change_of_one_step_is_minus_eta_covariance_on_a_softmax_bandit():
    """The paper's lemma, checked with covariance_score: for a softmax policy pi = softmax(z), one
    natural-PG step z += eta A changes the entropy by -eta Cov_pi(log pi, A) + O(eta^2), one
    vanilla-PG step z += eta grad E_pi[A] (E_pi A = 0) by -eta Cov_pi(log pi, pi A)."""
    pi = np.array([0.5, 0.25, 0.125, 0.125])
    arms = np.array([0, 0, 0, 0, 1, 1, 2, 3])  # 8 tokens with the arms in proportion pi
    a_raw = np.array([1.0, -0.5, 2.0, -1.0])
    adv = a_raw - pi @ a_raw  # a true advantage: E_pi A = 0
    z0, eta = np.log(pi), 1e-3
    mask = np.zeros((B, T), np.float32)
    mask[:, 0] = 1

    def batch_cov(per_arm):
        tok = np.zeros((B, T), np.float32)
        tok[:, 0] = per_arm[arms]
        logp = np.zeros((B, T), np.float32)
        logp[:, 0] = np.log(pi)[arms]
        return float(token_mean(entropy_mechanism.covariance_score(jnp.asarray(tok), jnp.asarray(logp),
                                                                   jnp.asarray(mask)), jnp.asarray(mask)))

    natural = softmax_entropy(z0 + eta * adv) - softmax_entropy(z0)  # float64, exact
    vanilla = softmax_entropy(z0 + eta * pi * adv) - softmax_entropy(z0)  # grad_z E_pi[A] = pi A when E_pi A = 0
    np.testing.assert_allclose(natural / eta, -batch_cov(adv), rtol=2e-2)
    np.testing.assert_allclose(vanilla / eta, -batch_cov(pi * adv), rtol=2e-2)


def softmax_entropy(z):
    log_p = z - np.log(np.sum(np.exp(z)))
    return -np.sum(np.exp(log_p) * log_p)


# ---- EMPG -----------------------------------------------------------------------------------------
def test_empg_constant_entropy_gives_unit_scale_and_a_constant_bonus():
    seg = np.tile([0, 0, 1, 1, 2], (B, 1))
    batch = make_batch(14, lengths=[T] * B, entropy=np.full((B, T), 0.9), segment_ids=seg)
    adv = jnp.asarray(f32(np.random.default_rng(3).normal(size=(B, T))))
    out = np.asarray(empg.empg_transform(adv, batch, zeta=0.1))
    # H~ = 0 everywhere: g = 1, f = 1; steps 0 and 1 have a next step (+0.1), step 2 is the last.
    np.testing.assert_allclose(out, np.asarray(adv) + 0.1 * (seg < 2), atol=1e-6)


def test_empg_scale_has_mean_one_over_valid_steps():
    batch = make_batch(15)
    g, _, valid = empg.empg_step_scales(batch.entropy, batch.segment_ids, batch.mask)
    assert np.asarray(valid).sum() > 8
    np.testing.assert_allclose(np.asarray(g)[np.asarray(valid)].mean(), 1.0, rtol=1e-6)


def test_empg_hand_computed_two_steps_and_the_next_valid_step():
    # Row 0: step 0 (entropy 0) then step 2 (entropy 1; id 1 is skipped). H~ = (0, 1), g = (2, 2/e) / (1 + 1/e),
    # f_next = (e^-1, 0).
    entropy = np.ones((B, T), np.float32)
    entropy[0] = [0, 0, 1, 1, 1]
    seg = np.zeros((B, T), np.int32)
    seg[0] = [0, 0, 2, 2, 2]
    batch = make_batch(lengths=[T] + [0] * (B - 1), entropy=entropy, segment_ids=seg)
    adv = jnp.asarray(np.full((B, T), 2.0, np.float32))
    out = np.asarray(empg.empg_transform(adv, batch, zeta=0.1))
    e = math.exp(-1)
    g0, g1 = 2 / (1 + e), 2 * e / (1 + e)
    np.testing.assert_allclose(out[0], [2 * g0 + 0.1 * e] * 2 + [2 * g1] * 3, rtol=1e-5)
    np.testing.assert_array_equal(out[1:], 0.0)
    # A masked environment turn between two agent turns: the bonus skips it.
    seg[0] = [0, 1, 2, 2, 2]
    mask_batch = make_batch(lengths=[T] + [0] * (B - 1), entropy=entropy, segment_ids=seg)
    mask_batch = mask_batch.replace(mask=mask_batch.mask.at[0, 1].set(0.0))
    _, f_next, valid = empg.empg_step_scales(mask_batch.entropy, mask_batch.segment_ids, mask_batch.mask)
    np.testing.assert_array_equal(np.asarray(valid)[0, :3], [True, False, True])
    np.testing.assert_allclose(np.asarray(f_next)[0, 0], e, rtol=1e-5)


# ---- D^3S -----------------------------------------------------------------------------------------
def _variance(values, chosen):
    return np.var(values[chosen])


def test_max_variance_subset_is_the_exact_optimum():
    ids = jnp.asarray([0, 0, 0, 0, 0, 0, 6, 6])
    for seed in range(4):
        values = f32(np.random.default_rng(seed).normal(size=B))
        chosen = np.asarray(down_sampling.max_variance_subset(jnp.asarray(values), ids, 3)) > 0
        assert chosen[:6].sum() == 3 and np.all(chosen[6:])  # a group of 2 <= 3 is kept whole
        best = max(_variance(values[:6], list(c)) for c in itertools.combinations(range(6), 3))
        np.testing.assert_allclose(_variance(values[:6], chosen[:6]), best, rtol=1e-5)
        # ... so it beats random subsets of the same size (the catalog's property test).
        rng = np.random.default_rng(100 + seed)
        for _ in range(5):
            assert _variance(values[:6], chosen[:6]) >= _variance(values[:6], rng.choice(6, 3, replace=False)) - 1e-6


def test_d3s_sample_weight_balances_binary_groups():
    batch = make_batch(rewards=[1, 1, 1, 1, 1, 1, 0, 0], group_ids=(0,) * B)
    w = np.asarray(down_sampling.d3s_sample_weight(batch, keep=4))
    assert w.sum() == 4 and w[6:].sum() == 2  # two right, two wrong: the largest Var(A)


def test_d3s_token_weight_keeps_top_tokens_and_renormalizes():
    batch = make_batch(16, lengths=[T] * 6 + [0, 0])  # 30 valid tokens
    adv = jnp.asarray(f32(np.random.default_rng(4).normal(size=(B, T)))) * batch.mask
    score = np.where(np.asarray(batch.mask) > 0, np.abs(np.asarray(adv)) * np.asarray(batch.entropy), -np.inf)
    top = score >= np.sort(score.reshape(-1))[::-1][8]  # ceil(0.3 x 30) = 9 tokens
    w = np.asarray(down_sampling.d3s_token_weight(batch, adv, None, None, None, keep_frac=0.3))
    np.testing.assert_allclose(w, np.where(top, 30 / 9, 0.0), rtol=1e-6)
    # The scheduled fraction in extras wins: keep_schedule(50 of 100, 0.5 -> 1.0) = 0.75 -> 23 tokens.
    frac = down_sampling.keep_schedule(50, start=0.5, end=1.0, steps=100)
    np.testing.assert_allclose(frac, 0.75)
    np.testing.assert_allclose(down_sampling.keep_schedule(500, steps=100), 1.0)
    scheduled = batch.replace(extras={down_sampling.KEEP_FRACTION_KEY: frac})
    w = np.asarray(down_sampling.d3s_token_weight(scheduled, adv, None, None, None, keep_frac=0.3))
    assert (w > 0).sum() == 23


def test_d3s_at_full_keep_equals_the_base_loss():
    batch = make_batch(17)
    base = Recipe(name="base", terms=(PolicyTerm(aggregate=token_mean),))
    full = Recipe(name="d3s_full", terms=(dataclasses.replace(
        down_sampling.D3S.terms[0],
        sample_weight=functools.partial(down_sampling.d3s_sample_weight, keep=8),
        token_weight=functools.partial(down_sampling.d3s_token_weight, keep_frac=1.0, sample_keep=8)),))
    assert_same_loss_and_grad(full, base, batch)


# ---- HPT ------------------------------------------------------------------------------------------
HPT_LAYOUT = dict(group_ids=(0, 0, 0, 0, 4, 4, 4, 4), is_demo=[0, 0, 0, 1, 0, 0, 0, 1])


def test_hpt_above_the_gate_is_dr_grpo_without_clip_on_the_rollouts():
    batch = make_batch(18, rewards=[1, 0, 1, 0, 0, 1, 0, 1], lengths=[5, 4, 3, 5, 2, 5, 4, 5], **HPT_LAYOUT)
    # Dr.GRPO without clip on the rollouts alone: the demo rows (3, 7) moved to groups of their own
    # and stripped of tokens, so they neither train nor enter the group means; same B T denominator.
    demos = np.asarray(batch.is_demo) > 0
    rollouts_only = batch.replace(group_ids=jnp.asarray([0, 0, 0, 3, 4, 4, 4, 7]),
                                  mask=batch.mask * jnp.asarray(f32(~demos))[:, None])
    reference = DR_GRPO.replace_term(surrogate=reinforce_ratio_surrogate)
    loss, grad = loss_and_grad(hybrid.HPT, batch)
    ref_loss, ref_grad = loss_and_grad(reference, rollouts_only)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-6)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(np.asarray(grad)[demos], 0.0)  # no SFT above the gate
    # ... and the same as the formula: sum over rollout tokens of -(r - rollout mean) rho, / (B T).
    on = f32(~demos)
    r = np.asarray(batch.rewards)
    means = {g: r[(np.asarray(batch.group_ids) == g) & ~demos].mean() for g in (0, 4)}
    a = on * (r - np.array([means[g] for g in np.asarray(batch.group_ids)]))
    ratio = np.exp(np.asarray(batch.logp, np.float64) - np.asarray(batch.old_logp))
    np.testing.assert_allclose(loss, np.sum(np.asarray(batch.mask) * -a[:, None] * ratio) / (B * T), rtol=1e-5)


def test_hpt_at_zero_success_is_sft_on_the_demonstrations():
    batch = make_batch(19, rewards=[0, 0, 0, 1, 0, 0, 0, 1], lengths=[5, 4, 3, 5, 2, 5, 4, 3], **HPT_LAYOUT)
    loss, grad = loss_and_grad(hybrid.HPT, batch)
    demo_mask = np.asarray(batch.mask) * np.asarray(batch.is_demo)[:, None]
    np.testing.assert_allclose(loss, -(np.asarray(batch.logp) * demo_mask).sum() / demo_mask.sum(), rtol=1e-6)
    np.testing.assert_allclose(grad, -demo_mask / demo_mask.sum(), rtol=1e-6)


def test_hpt_gates_each_group_separately():
    # Group 0 has one success (RL on its rollouts), group 4 none (SFT on its demo only).
    batch = make_batch(20, rewards=[1, 0, 0, 0, 0, 0, 0, 1], lengths=[5] * B, **HPT_LAYOUT)
    np.testing.assert_array_equal(hybrid.hpt_rl_weight(batch), [1, 1, 1, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(hybrid.hpt_advantage(batch.rewards, batch), [2 / 3, -1 / 3, -1 / 3, 0, 0, 0, 0, 0],
                               atol=1e-6)
    sft = hybrid.hpt_sft_nll(batch, None, None)
    np.testing.assert_allclose(sft, -np.asarray(batch.logp)[7].mean(), rtol=1e-6)


# ---- RL-Struct ------------------------------------------------------------------------------------
def test_rl_struct_reward_is_linear_in_the_weights_and_the_recipe_is_grpo_on_it():
    comps = f32(np.random.default_rng(5).integers(0, 2, (B, 3)))
    batch = make_batch(21, rewards=comps)
    w1, w2 = np.array([0.2, 0.3, 0.5]), np.array([1.0, -2.0, 0.5])

    def combined(w):
        return np.asarray(weighted_reward(batch.replace(extras={"reward_weights": jnp.asarray(f32(w))})))

    np.testing.assert_allclose(combined(2.0 * w1 - 3.0 * w2), 2.0 * combined(w1) - 3.0 * combined(w2), atol=1e-5)
    np.testing.assert_allclose(weighted_reward(make_batch(rewards=np.tile([1.0, 0.0, 1.0], (B, 1))),
                                               weights=structured.RL_STRUCT_WEIGHTS), 0.7, rtol=1e-6)
    scalar = batch.replace(rewards=jnp.asarray(comps @ f32(structured.RL_STRUCT_WEIGHTS)))
    loss, grad = loss_and_grad(structured.RL_STRUCT, batch)
    ref_loss, ref_grad = loss_and_grad(GRPO, scalar)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-6)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-6, atol=1e-8)


# ---- catalog contract and fuzz --------------------------------------------------------------------
def test_recipes_expose_the_catalog_attributes():
    assert set(RECIPES) == {"stratified_grpo", "hapo", "hapo_released", "copo", "copo_soft_forced", "clip_cov",
                            "kl_cov", "empg", "d3s", "hpt", "rl_struct"}
    for name, recipe in RECIPES.items():
        assert recipe.name == name and "arXiv:" in recipe.paper
        assert isinstance(recipe.requires, tuple) and isinstance(recipe.needs_key, bool)
        assert getattr(recipe, "kind", "group") == "group"
    assert RECIPES["clip_cov"].needs_key
    with pytest.raises(ValueError, match="needs SequenceBatch field"):
        RECIPES["hapo"](make_batch().replace(entropy=None))


def fuzz_batches(name: str) -> list[SequenceBatch]:
    """Random batches with edge cases: all-zero mask rows, a group with equal rewards, groups of one,
    zero entropies (first); none (second); a group whose responses all lack tokens and all rewards 0
    (third); interleaved groups and zero entropy everywhere (fourth)."""
    zero_entropy = np.random.default_rng(35).uniform(0.0, 2.0, (B, T)) * (np.arange(T) % 2)
    cases = [
        make_batch(31, lengths=[5, 0, 3, 5, 1, 2, 0, 4], rewards=[1, 1, 1, 1, 0, 1, 0, 1], entropy=zero_entropy,
                   group_ids=(0, 0, 0, 0, 4, 4, 6, 7), is_demo=[0, 0, 0, 1, 0, 0, 0, 0]),
        make_batch(30, is_demo=[0, 0, 0, 1, 0, 0, 0, 1]),
        make_batch(32, lengths=[0, 0, 5, 5, 2, 3, 4, 5], group_ids=(0, 0, 2, 2, 2, 5, 5, 5), rewards=[0] * B),
        make_batch(33, entropy=np.zeros((B, T)), group_ids=(1, 0, 1, 0, 1, 0, 1, 0), is_demo=[0] * 6 + [1, 1]),
    ]
    if name == "rl_struct":
        rng = np.random.default_rng(34)
        cases = [c.replace(rewards=jnp.asarray(f32(rng.integers(0, 2, (B, 3))))) for c in cases]
    return cases


FUZZ_KEYS = jax.random.split(jax.random.key(0), 4)


def fuzz_value_and_grad(name, logp, batch, key):
    return jax.value_and_grad(lambda lp: RECIPES[name](batch.replace(logp=lp), key)[0])(logp)


EAGER_FUZZ = 1  # eagerly: the first fuzz batch (most edge cases; known-answer tests run eagerly on others)


@functools.cache
def eager_fuzz_results(name):
    return [fuzz_value_and_grad(name, b.logp, b, k) for b, k in zip(fuzz_batches(name)[:EAGER_FUZZ], FUZZ_KEYS)]


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_fuzz_recipe_is_finite_eagerly(name):
    results = eager_fuzz_results(name)
    for i, (loss, grad) in enumerate(results):
        assert np.isfinite(loss) and np.all(np.isfinite(grad)), (name, i)
    assert any(np.any(np.asarray(grad) != 0) for _, grad in results)  # some signal somewhere


def test_fuzz_recipes_under_jit_and_vmap_agree_with_eager():
    # One program for every recipe (one compilation): vmap over the fuzz batches, under jit.
    names = sorted(RECIPES)
    stacked = {n: jax.tree.map(lambda *xs: jnp.stack(xs), *fuzz_batches(n)) for n in names}

    @jax.jit
    def everything(stacked):
        return {n: jax.vmap(functools.partial(fuzz_value_and_grad, n))(stacked[n].logp, stacked[n], FUZZ_KEYS)
                for n in names}

    jitted = everything(stacked)
    for n in names:
        loss, grad = jitted[n]
        assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad)), n
        for i, (e_loss, e_grad) in enumerate(eager_fuzz_results(n)):
            np.testing.assert_allclose(loss[i], e_loss, rtol=1e-4, atol=1e-6, err_msg=n)
            np.testing.assert_allclose(grad[i], e_grad, rtol=1e-4, atol=1e-6, err_msg=n)


def test_fuzz_public_functions_are_finite():
    key = jax.random.key(1)
    for batch in fuzz_batches("any")[:EAGER_FUZZ]:
        r = batch.rewards
        adv = adv_lib.grpo_advantage(r, batch)[:, None] * batch.mask
        outputs = [
            adv_lib.bnpo_advantage(r, batch),
            stratified.stratified_advantage(r, batch),
            hapo.hapo_token_advantage(r, batch),
            hapo.hapo_h_hat(batch.entropy, batch.mask), hapo.hapo_h_hat(batch.entropy, batch.mask, as_released=True),
            *hapo.hapo_clip(batch, adv, None), hapo.hapo_redistribute(adv, batch),
            copo.answer_entropy(batch.answer_ids, batch.group_ids),
            copo.copo_global_advantage(r, batch), copo.copo_global_advantage(r, batch, entropy_coef=True),
            *[copo.copo_weight(batch, mode=m) for m in copo.COPO_MODES],
            entropy_mechanism.covariance_score(adv, batch.logp, batch.mask),
            entropy_mechanism.clip_cov_weight(batch, adv, None, jnp.zeros((B, T), bool), key),
            entropy_mechanism.kl_cov_mask(batch, adv),
            *empg.empg_step_scales(batch.entropy, batch.segment_ids, batch.mask),
            empg.empg_transform(adv, batch),
            down_sampling.d3s_sample_weight(batch), down_sampling.d3s_token_weight(batch, adv, None, None, None),
            hybrid.hpt_advantage(r, batch), hybrid.group_successes(batch), hybrid.hpt_rl_weight(batch),
        ]
        for out in outputs:
            assert np.all(np.isfinite(np.asarray(out, np.float32)))
        for regularizer in (entropy_mechanism.kl_cov_penalty, hybrid.hpt_sft_nll):
            value, grad = jax.value_and_grad(lambda lp: regularizer(batch.replace(logp=lp), adv, None))(batch.logp)
            assert np.isfinite(value) and np.all(np.isfinite(grad))
