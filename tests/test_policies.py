"""Policy objects (latent sampling and scoring, decoding, mode, entropy), mixtures and decoded
policies, and the policy heads.

The tanh-Gaussian log-density is checked three independent ways: against the change-of-variables
formula written out with scipy, against distrax's own ``log_prob`` of the decoded action (where
the action is not saturated), and by integrating its density over the action box.
"""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats

import jaxpg.nets
from jaxpg import policies
from jaxpg.envs import Box, Discrete
from jaxpg.policies import CategoricalHead, GaussianHead, policy_head


def tanh_gaussian(mu, std, low, high) -> policies.SquashedGaussian:
    f32 = lambda x: jnp.asarray(x, jnp.float32)
    return policies.SquashedGaussian(f32(mu), f32(std), f32(low), f32(high))


def _log_det_tanh(u):
    """log(1 - tanh(u)^2) in float64, stable for large |u|: 2 * (log 2 - |u| - log1p(exp(-2|u|)))."""
    u = np.abs(np.asarray(u, np.float64))
    return 2.0 * (np.log(2.0) - u - np.log1p(np.exp(-2.0 * u)))


def _hand_log_prob(u, mu, std, low, high):
    """Change of variables for a = shift + scale * tanh(u), summed over the last axis."""
    u, mu, std, low, high = (np.asarray(x, np.float64) for x in (u, mu, std, low, high))
    scale = (high - low) / 2.0
    per_dim = scipy.stats.norm.logpdf(u, mu, std) - (np.log(scale) + _log_det_tanh(u))
    return per_dim.sum(-1)


@jax.jit
def _tg_log_prob(mu, std, low, high, u):
    """log_prob of each row of ``u`` under one tanh-Gaussian (one compile per shape)."""
    dist = tanh_gaussian(mu, std, low, high)
    return jax.vmap(lambda x: dist.log_prob(x))(u)


@jax.jit
def _tg_decode_and_distrax_log_prob(mu, std, low, high, u):
    dist = tanh_gaussian(mu, std, low, high)
    actions = jax.vmap(dist.decode)(u)
    # An independent route: distrax's own Transformed distribution, scoring the *action* (it
    # inverts the squash), where jaxpg scores the latent.
    squash = distrax.Block(distrax.Chain([distrax.ScalarAffine(shift=(high + low) / 2, scale=(high - low) / 2),
                                          distrax.Tanh()]), 1)
    transformed = distrax.Transformed(distrax.MultivariateNormalDiag(mu, std), squash)
    return actions, jax.vmap(transformed.log_prob)(actions)


def _f32(*xs):
    return tuple(jnp.asarray(x, jnp.float32).reshape(-1) if np.ndim(x) <= 1 else jnp.asarray(x, jnp.float32) for x in xs)


# --------------------------------------------------------------------------------------------
# Closed forms against distrax (an independent implementation of the same distributions).


def test_categorical_matches_distrax():
    logits = jax.random.normal(jax.random.key(0), (6, 4)) * 2.0
    ours, theirs = policies.Categorical(logits), distrax.Categorical(logits=logits)
    actions = jnp.arange(6) % 4
    np.testing.assert_allclose(ours.log_prob(actions), theirs.log_prob(actions), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ours.entropy(), theirs.entropy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(ours.mode(), theirs.mode())
    key = jax.random.key(3)
    np.testing.assert_array_equal(ours.sample_latent(key), theirs.sample(seed=key))  # same draws
    # Frequencies follow softmax(logits) (an independent check of sampling).
    draws = policies.Categorical(jnp.broadcast_to(logits[0], (40_000, 4))).sample_latent(key)
    freq = np.bincount(np.asarray(draws), minlength=4) / draws.size
    np.testing.assert_allclose(freq, jax.nn.softmax(logits[0]), atol=0.01)


def test_gaussian_matches_distrax():
    mean = jnp.array([[0.3, -1.0, 2.0], [0.0, 0.5, -0.5]])
    std = jnp.array([[0.5, 1.0, 2.0], [1.5, 0.2, 1.0]])
    ours, theirs = policies.Gaussian(mean, std), distrax.MultivariateNormalDiag(mean, std)
    x = jnp.array([[0.0, 0.0, 1.0], [1.0, 0.4, -2.0]])
    np.testing.assert_allclose(ours.log_prob(x), theirs.log_prob(x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ours.entropy(), theirs.entropy(), rtol=1e-6, atol=1e-6)
    key = jax.random.key(5)
    np.testing.assert_allclose(ours.sample_latent(key), theirs.sample(seed=key), rtol=1e-6, atol=1e-6)


# (low, high, mu, std): not centred in the box, and one asymmetric box.
CASES_1D = [
    (-2.0, 2.0, 0.7, 0.6),
    (-2.0, 2.0, -1.1, 1.4),
    (0.0, 3.0, -0.4, 1.3),
]


# --------------------------------------------------------------------------------------------
# tanh-Gaussian log-density.


@pytest.mark.parametrize("low,high,mu,std", CASES_1D)
def test_tanh_gaussian_log_prob_matches_change_of_variables(low, high, mu, std):
    args = _f32(mu, std, low, high)
    u = np.linspace(-3.0, 3.0, 13, dtype=np.float32)[:, None]
    got = _tg_log_prob(*args, u)
    expected = _hand_log_prob(u, mu, std, low, high)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # distrax's route inverts the squash at the action (atanh); fine away from saturation.
    actions, via_distrax = _tg_decode_and_distrax_log_prob(*args, u)
    np.testing.assert_allclose(actions[:, 0], (high + low) / 2 + (high - low) / 2 * np.tanh(u[:, 0]), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got, via_distrax, rtol=1e-3, atol=1e-3)


def test_tanh_gaussian_log_prob_is_finite_at_saturated_actions():
    args = _f32(0.5, 2.0, -2.0, 2.0)
    # tanh rounds to +-1 in float32 here under every XLA:CPU emitter (the older loop emitters'
    # tanh, which the test suite compiles with, reaches exactly 1 only from about 20 on).
    u = np.array([[20.0], [-25.0], [30.0]], np.float32)
    actions, _ = _tg_decode_and_distrax_log_prob(*args, u)
    np.testing.assert_array_equal(actions[:, 0], [2.0, -2.0, 2.0])
    got = _tg_log_prob(*args, u)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, _hand_log_prob(u, 0.5, 2.0, -2.0, 2.0), rtol=1e-5)


@pytest.mark.parametrize("low,high,mu,std", CASES_1D)
def test_tanh_gaussian_density_integrates_to_one_over_the_box(low, high, mu, std):
    shift, scale = (high + low) / 2.0, (high - low) / 2.0
    # A fine grid in *action* space, open at the ends; u = atanh((a - shift) / scale).
    a = np.linspace(low, high, 100_001)[1:-1]
    u = np.arctanh((a - shift) / scale).astype(np.float32)[:, None]
    density = np.exp(np.asarray(_tg_log_prob(*_f32(mu, std, low, high), u), np.float64))
    np.testing.assert_allclose(np.trapezoid(density, a), 1.0, atol=2e-3)
    # The first moment agrees with sampling (independent of the density code).
    quad_mean = np.trapezoid(a * density, a)
    samples = jax.jit(
        lambda key, mu, std, low, high: tanh_gaussian(
            jnp.full((20_000, 1), mu), jnp.full((20_000, 1), std), low, high
        ).sample_and_log_prob(key).action[:, 0]
    )(jax.random.PRNGKey(0), *_f32(mu, std, low, high))
    stderr = np.std(samples) / np.sqrt(samples.size)
    assert abs(float(np.mean(samples)) - quad_mean) < 4 * stderr + 1e-3


def test_tanh_gaussian_2d_sums_per_dimension_terms():
    mu, std = np.array([0.3, -0.5]), np.array([0.5, 1.2])
    low, high = np.array([-1.0, 0.0]), np.array([1.0, 4.0])
    u = np.array([[0.1, -0.7], [1.5, 2.0], [-2.2, 0.0]], np.float32)
    got = _tg_log_prob(*_f32(mu, std, low, high), u)
    assert got.shape == (3,)
    per_dim = [_hand_log_prob(u[:, i : i + 1], mu[i], std[i], low[i], high[i]) for i in range(2)]
    np.testing.assert_allclose(got, per_dim[0] + per_dim[1], rtol=1e-5, atol=1e-5)
    # Same answer through two 1-D tanh-Gaussians of the library.
    one_d = [_tg_log_prob(*_f32(mu[i], std[i], low[i], high[i]), u[:, i : i + 1]) for i in range(2)]
    np.testing.assert_allclose(got, one_d[0] + one_d[1], rtol=1e-5, atol=1e-5)


def test_tanh_gaussian_batched_parameters():
    mu = jnp.array([[0.0, 1.0], [-1.0, 0.5], [2.0, -2.0]])
    std = jnp.array([[1.0, 0.5], [0.3, 2.0], [1.0, 1.0]])
    u = jnp.array([[0.2, -0.1], [0.0, 3.0], [-1.0, 1.0]])
    got = jax.jit(lambda mu, std, u: tanh_gaussian(mu, std, [-1.0, -3.0], [1.0, 3.0]).log_prob(u))(
        mu, std, u
    )
    assert got.shape == (3,)
    np.testing.assert_allclose(got, _hand_log_prob(u, mu, std, [-1.0, -3.0], [1.0, 3.0]), rtol=1e-5)


# --------------------------------------------------------------------------------------------
# sample / mode / entropy.


def test_tanh_gaussian_sample_in_box_and_scored_from_latent():
    low, high = np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32)
    mu = jnp.tile(jnp.array([0.5, -1.0]), (4096, 1))
    std = jnp.tile(jnp.array([3.0, 4.0]), (4096, 1))  # wide: many actions saturate

    @jax.jit
    def sample_and_rescore(key):
        dist = tanh_gaussian(mu, std, low, high)
        s = dist.sample_and_log_prob(key)
        return s, dist.log_prob(s.latent)

    s, rescored = sample_and_rescore(jax.random.PRNGKey(1))
    assert s.latent.shape == s.action.shape == (4096, 2) and s.log_prob.shape == (4096,)
    assert np.all(s.action >= low) and np.all(s.action <= high)
    assert np.any(np.isclose(s.action, high, atol=1e-3)) and np.any(np.isclose(s.action, low, atol=1e-3))
    np.testing.assert_allclose(s.action, (high + low) / 2 + (high - low) / 2 * np.tanh(s.latent), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s.log_prob, rescored, rtol=1e-6)
    assert np.all(np.isfinite(s.log_prob))
    np.testing.assert_allclose(s.log_prob, _hand_log_prob(s.latent, mu, std, low, high), rtol=1e-4, atol=1e-4)
    # The latent is the unsquashed Gaussian draw.
    np.testing.assert_allclose(np.mean(s.latent, 0), [0.5, -1.0], atol=4 * 4.0 / np.sqrt(4096))
    np.testing.assert_allclose(np.std(s.latent, 0), [3.0, 4.0], rtol=0.05)


def test_mode_is_decoded_mean():
    mu, std = jnp.array([0.4, -2.0]), jnp.array([0.1, 5.0])
    low, high = np.array([-2.0, 1.0]), np.array([2.0, 5.0])
    dist = tanh_gaussian(mu, std, low, high)
    expected = (high + low) / 2 + (high - low) / 2 * np.tanh(np.asarray(mu))
    np.testing.assert_allclose(dist.mode(), expected, rtol=1e-6)
    m = dist.mode_sample()
    np.testing.assert_allclose(m.latent, mu)
    np.testing.assert_allclose(m.action, expected, rtol=1e-6)
    np.testing.assert_allclose(m.log_prob, _hand_log_prob(mu, mu, std, low, high), rtol=1e-5)
    # Unsquashed Gaussian: the mode is the mean itself.
    np.testing.assert_allclose(policies.Gaussian(mu, std).mode(), mu)


# A plain Gaussian is not squashed: its latent is the action, re-scoring under new parameters sees
# the new mean, and its entropy is its own.
MU = np.array([0.3, -1.0, 4.0], np.float32)
STD = np.array([0.5, 2.0, 1.5], np.float32)


def test_unsquashed_gaussian_sample_is_scored_correctly_under_its_own_parameters():
    dist = policies.Gaussian(jnp.asarray(MU), jnp.asarray(STD))
    s = dist.sample_and_log_prob(jax.random.PRNGKey(0))
    np.testing.assert_allclose(s.log_prob, scipy.stats.norm.logpdf(s.action, MU, STD).sum(), rtol=1e-5)
    np.testing.assert_allclose(dist.decode(s.latent), s.action, rtol=1e-6)


def test_unsquashed_gaussian_latent_is_action():
    dist = policies.Gaussian(jnp.asarray(MU), jnp.asarray(STD))
    s = dist.sample_and_log_prob(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(s.latent, s.action)


def test_unsquashed_gaussian_rescoring_uses_new_parameters():
    """What PPO / REINFORCE do: score the stored latent under the updated policy."""
    old = policies.Gaussian(jnp.asarray(MU), jnp.asarray(STD))
    s = old.sample_and_log_prob(jax.random.PRNGKey(0))
    new_mu = MU + np.array([1.0, -0.5, 0.25], np.float32)
    new = policies.Gaussian(jnp.asarray(new_mu), jnp.asarray(STD))
    np.testing.assert_allclose(
        new.log_prob(s.latent), scipy.stats.norm.logpdf(s.action, new_mu, STD).sum(), rtol=1e-5
    )
    # The policy gradient w.r.t. the mean is (a - mu) / std^2, not zero.
    grad = jax.grad(lambda m: policies.Gaussian(m, jnp.asarray(STD)).log_prob(s.latent))(
        jnp.asarray(MU)
    )
    np.testing.assert_allclose(grad, (np.asarray(s.action) - MU) / STD**2, rtol=1e-4)


def test_unsquashed_gaussian_entropy():
    dist = policies.Gaussian(jnp.asarray(MU), jnp.asarray(STD))
    np.testing.assert_allclose(dist.entropy(), scipy.stats.norm(MU, STD).entropy().sum(), rtol=1e-5)


def test_categorical_latent_is_action_and_log_prob_is_log_softmax():
    logits = np.array([1.0, -0.5, 2.0, 0.0], np.float32)
    n = 20_000
    dist = policies.Categorical(jnp.tile(logits, (n, 1)))
    s = jax.jit(lambda d, k: d.sample_and_log_prob(k))(dist, jax.random.PRNGKey(3))
    np.testing.assert_array_equal(s.latent, s.action)
    assert s.action.shape == (n,) and jnp.issubdtype(s.action.dtype, jnp.integer)
    log_softmax = scipy.special.log_softmax(logits.astype(np.float64))
    np.testing.assert_allclose(s.log_prob, log_softmax[np.asarray(s.action)], rtol=1e-5)
    freq = np.bincount(np.asarray(s.action), minlength=4) / n
    np.testing.assert_allclose(freq, np.exp(log_softmax), atol=0.015)
    assert int(policies.Categorical(logits).mode()) == 2
    m = policies.Categorical(logits).mode_sample()
    assert int(m.latent) == int(m.action) == 2
    np.testing.assert_allclose(m.log_prob, log_softmax[2], rtol=1e-5)


def test_entropy():
    logits = np.array([1.0, -0.5, 2.0])
    p = scipy.special.softmax(logits)
    np.testing.assert_allclose(policies.Categorical(logits).entropy(), -(p * np.log(p)).sum(), rtol=1e-5)
    std = np.array([0.5, 2.0])
    latent_entropy = (0.5 * np.log(2 * np.pi * np.e * std**2)).sum()
    np.testing.assert_allclose(
        tanh_gaussian(jnp.zeros(2), jnp.asarray(std), [-1, -1], [1, 1]).entropy(), latent_entropy, rtol=1e-5
    )


# --------------------------------------------------------------------------------------------
# Heads.


def _features(batch=6, dim=16, seed=0):
    x = jax.random.normal(jax.random.PRNGKey(seed), (batch, dim))
    return x / jnp.linalg.norm(x, axis=-1, keepdims=True)


def test_categorical_head_is_near_uniform_at_init():
    head = policy_head(Discrete(3))
    assert isinstance(head, CategoricalHead)
    x = _features()
    params = jax.jit(head.init)(jax.random.PRNGKey(0), x)
    assert isinstance(head.apply(params, x[:1]), policies.Categorical)
    probs = np.asarray(jax.jit(lambda p, x: jax.nn.softmax(head.apply(p, x).logits))(params, x))
    assert probs.shape == (6, 3)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(probs, 1.0 / 3.0, atol=0.01)
    assert not np.allclose(probs, 1.0 / 3.0, atol=1e-7)  # not degenerate: logits depend on features


def test_bounded_box_head_is_tanh_gaussian():
    spec = Box.make([-2.0, 0.0], [2.0, 1.0], (2,))
    head = policy_head(spec, init_log_std=-0.5)
    assert isinstance(head, GaussianHead)
    x = _features()
    params = jax.jit(head.init)(jax.random.PRNGKey(0), x)
    np.testing.assert_allclose(params["params"]["log_std"], [-0.5, -0.5])
    assert type(head.apply(params, x[:1])) is policies.SquashedGaussian

    @jax.jit
    def run(params, x, key):
        dist = head.apply(params, x)
        return dist.std, dist.sample_and_log_prob(key), dist.mode()

    stddev, s, mode = run(params, x, jax.random.PRNGKey(1))
    np.testing.assert_allclose(stddev, np.exp(-0.5), rtol=1e-6)
    assert s.action.shape == (6, 2) and s.log_prob.shape == (6,)
    assert np.all(s.action >= spec.low) and np.all(s.action <= spec.high)
    # Mean starts near 0 (gain-0.01 layer): the mode sits near the middle of the box.
    np.testing.assert_allclose(mode, np.tile([0.0, 0.5], (6, 1)), atol=0.02)


@pytest.mark.parametrize("low,high", [(-np.inf, np.inf), (0.0, np.inf)])
def test_unbounded_box_head_is_plain_gaussian(low, high):
    spec = Box.make(low, high, (3,))
    assert not spec.bounded
    head = policy_head(spec)
    x = _features()
    dist = head.apply(head.init(jax.random.PRNGKey(0), x), x)
    assert type(dist) is policies.Gaussian
    assert dist.mean.shape == (6, 3) and dist.log_prob(dist.mean).shape == (6,)
    np.testing.assert_allclose(dist.std, 1.0)


def test_invalid_std_mode_raises():
    spec = Box.make(-1.0, 1.0, (2,))
    with pytest.raises(ValueError) as err:
        policy_head(spec, std_mode="learned")
    assert "state_independent" in str(err.value) and "state_dependent" in str(err.value)
    with pytest.raises(ValueError, match="state_independent.*state_dependent"):
        GaussianHead(spec, std_mode="learned").init(jax.random.PRNGKey(0), _features())


def test_invalid_specs_raise():
    with pytest.raises(ValueError, match="vector"):
        policy_head(Box.make(-1.0, 1.0, (2, 2)))
    with pytest.raises(TypeError, match="Discrete, Box"):
        policy_head("discrete")


@pytest.mark.parametrize("init_log_std", [0.0, -1.0, 1.5])
def test_state_dependent_std_starts_at_init_and_stays_in_range(init_log_std):
    spec = Box.make(-1.0, 1.0, (2,))
    head = policy_head(spec, std_mode="state_dependent", init_log_std=init_log_std)
    x = _features()
    params = head.init(jax.random.PRNGKey(0), x)
    assert "log_std" not in params["params"]
    std = lambda feats: np.asarray(head.apply(params, feats).std)
    # Zero features: the log-std layer outputs exactly 0 (zero bias), mapped to init_log_std.
    np.testing.assert_allclose(std(jnp.zeros((1, 16))), np.exp(init_log_std), rtol=1e-5)
    # Unit-norm features: the gain-0.01 layer barely moves it.
    np.testing.assert_allclose(std(x), np.exp(init_log_std), rtol=0.05)
    # Huge inputs saturate smoothly at the bounds, never beyond, never NaN.
    big = 1e6 * x
    lo, hi = std(big), std(-big)
    for s in (lo, hi):
        assert np.all(np.isfinite(s))
        assert np.all(s >= np.exp(-5.0) * (1 - 1e-5)) and np.all(s <= np.exp(2.0) * (1 + 1e-5))
    # +x and -x push each dimension to opposite ends of [-5, 2].
    log_std = np.sort(np.log(np.stack([lo, hi])), axis=0)
    np.testing.assert_allclose(log_std[0], -5.0, atol=1e-3)
    np.testing.assert_allclose(log_std[1], 2.0, atol=1e-3)


# --------------------------------------------------------------------------------------------
# The actor-critic network on grid observations.


def test_actor_critic_flattens_grid_observations():
    net = jaxpg.nets.ActorCritic(head=policy_head(Discrete(3)), obs_ndim=3, hidden_sizes=(32,))
    obs = jax.random.bernoulli(jax.random.PRNGKey(0), 0.2, (5, 10, 10, 4)).astype(jnp.float32)
    params = jax.jit(net.init)(jax.random.PRNGKey(1), obs)

    @jax.jit
    def forward(params, obs):
        dist, values = net.apply(params, obs)
        single_dist, single_value = net.apply(params, obs[2])
        tb_values = net.apply(params, obs.reshape((1,) + obs.shape), method="value")
        policy_logits = net.apply(params, obs, method="policy").logits
        return dist.logits, values, single_dist.logits, single_value, tb_values, policy_logits

    logits, values, single_logits, single_value, tb_values, policy_logits = forward(params, obs)
    assert values.shape == (5,)
    assert logits.shape == (5, 3)
    assert params["params"]["actor_torso"]["Dense_0"]["kernel"].shape == (400, 32)
    # Leading dims are batch dims: one observation, and a [T, B] batch, agree with the [B] batch.
    assert single_value.shape == () and single_logits.shape == (3,)
    np.testing.assert_allclose(single_value, values[2], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(single_logits, logits[2], rtol=1e-5, atol=1e-6)
    assert tb_values.shape == (1, 5)
    np.testing.assert_allclose(tb_values[0], values, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(policy_logits, logits, rtol=1e-6)
    assert np.std(values) > 0  # values depend on the observation
    # Actor and critic have separate torsos.
    a = params["params"]["actor_torso"]["Dense_0"]["kernel"]
    c = params["params"]["critic_torso"]["Dense_0"]["kernel"]
    assert not np.allclose(a, c)


# --------------------------------------------------------------------------------------------
# New policy classes without touching the algorithms: a mixture and a decoded latent policy.


def _two_gaussians():
    # Two 2-D components (component axis before the event axis), weights softmax([0.3, -0.4]).
    mean = jnp.array([[0.5, -1.0], [-2.0, 1.5]])
    std = jnp.array([[0.4, 1.2], [0.8, 0.3]])
    return policies.Mixture(policies.Gaussian(mean, std), jnp.array([0.3, -0.4]))


def test_mixture_log_prob_is_a_manual_logsumexp():
    mixture = _two_gaussians()
    x = np.array([0.1, 0.7], np.float32)
    w = scipy.special.softmax([0.3, -0.4])
    mean, std = np.asarray(mixture.components.mean, np.float64), np.asarray(mixture.components.std, np.float64)
    per_component = scipy.stats.norm.logpdf(x, mean, std).sum(-1)
    expected = scipy.special.logsumexp(np.log(w) + per_component)
    np.testing.assert_allclose(mixture.log_prob(x), expected, rtol=1e-5)
    # Batched latents against batched mixtures (leading axes are batch axes).
    batched = jax.tree.map(lambda a: jnp.stack([a, a, a]), mixture)
    xs = jnp.stack([x, x + 1.0, x - 1.0])
    got = jax.jit(lambda m, v: m.log_prob(v))(batched, xs)
    for i in range(3):
        per = scipy.stats.norm.logpdf(np.asarray(xs[i], np.float64), mean, std).sum(-1)
        np.testing.assert_allclose(got[i], scipy.special.logsumexp(np.log(w) + per), rtol=1e-5)


def test_mixture_of_squashed_experts_scores_latents_with_one_jacobian():
    mean = jnp.array([[0.2], [-1.0]])
    std = jnp.array([[0.5], [0.7]])
    low, high = jnp.array([-2.0]), jnp.array([2.0])
    mixture = policies.Mixture(policies.SquashedGaussian(mean, std, low, high), jnp.array([0.0, 1.0]))
    u = np.array([0.4], np.float32)
    w = scipy.special.softmax([0.0, 1.0])
    per = [_hand_log_prob(u, np.asarray(mean[k]), np.asarray(std[k]), [-2.0], [2.0]) for k in range(2)]
    np.testing.assert_allclose(mixture.log_prob(u), scipy.special.logsumexp(np.log(w) + np.array(per)), rtol=1e-5)
    np.testing.assert_allclose(mixture.decode(u), 2.0 * np.tanh(0.4), rtol=1e-6)


def test_mixture_sampling_mode_and_entropy():
    mixture = _two_gaussians()
    n = 40_000
    batched = jax.tree.map(lambda a: jnp.broadcast_to(a, (n,) + a.shape), mixture)
    s = jax.jit(lambda m, k: m.sample_and_log_prob(k))(batched, jax.random.key(0))
    w = scipy.special.softmax([0.3, -0.4])
    # The mixture mean and the first component's share (points nearer its mean).
    expected_mean = w @ np.asarray(mixture.components.mean)
    np.testing.assert_allclose(np.mean(s.latent, 0), expected_mean, atol=0.05)
    np.testing.assert_allclose(s.log_prob, jax.vmap(mixture.log_prob)(s.latent), rtol=1e-5)
    # Mode: the most probable component's mode (the PMOE paper's evaluation action).
    np.testing.assert_allclose(mixture.mode(), mixture.components.mean[0])
    # Entropy: the documented upper bound H(w) + sum_k w_k H_k, above the Monte-Carlo entropy.
    component_entropy = scipy.stats.norm(np.asarray(mixture.components.std) * 0, np.asarray(mixture.components.std)).entropy().sum(-1)
    np.testing.assert_allclose(mixture.entropy(), -(w * np.log(w)).sum() + (w * component_entropy).sum(), rtol=1e-5)
    assert float(mixture.entropy()) >= float(-np.mean(s.log_prob)) - 0.02


def test_mixture_of_categoricals():
    logits = jnp.log(jnp.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]))
    mixture = policies.Mixture(policies.Categorical(logits), jnp.log(jnp.array([0.25, 0.75])))
    marginal = 0.25 * np.array([0.7, 0.2, 0.1]) + 0.75 * np.array([0.1, 0.1, 0.8])
    for a in range(3):
        np.testing.assert_allclose(mixture.log_prob(jnp.int32(a)), np.log(marginal[a]), rtol=1e-5)
    assert int(mixture.mode()) == 2  # the mode of the heavier component


def test_decoded_policy_scores_the_latent_and_decodes_with_any_function():
    latent_policy = policies.Gaussian(jnp.array([0.5, -0.5]), jnp.array([1.0, 2.0]))
    decoded = policies.DecodedPolicy(latent_policy, lambda z: jnp.tanh(3.0 * z) + 1.0)
    s = decoded.sample_and_log_prob(jax.random.key(4))
    np.testing.assert_allclose(s.action, np.tanh(3.0 * np.asarray(s.latent)) + 1.0, rtol=1e-6)
    np.testing.assert_allclose(s.log_prob, latent_policy.log_prob(s.latent), rtol=1e-6)
    np.testing.assert_allclose(decoded.mode(), np.tanh(3.0 * np.array([0.5, -0.5])) + 1.0, rtol=1e-6)
    np.testing.assert_allclose(decoded.entropy(), latent_policy.entropy(), rtol=1e-6)


def test_a_mixture_policy_trains_in_ppo_without_touching_the_algorithm():
    """A head that returns a two-expert mixture plugs into PPO as is (the PMOE shape)."""
    import flax.linen as nn

    import jaxpg

    class MixtureHead(nn.Module):
        num_actions: int

        @nn.compact
        def __call__(self, features):
            logits = nn.Dense(2 * self.num_actions)(features).reshape(features.shape[:-1] + (2, self.num_actions))
            return policies.Mixture(policies.Categorical(logits), nn.Dense(2)(features))

    train = jaxpg.make_train("ppo", env="CartPole-v1", total_steps=512)
    train.network = train.network.clone(head=MixtureHead(2))
    result = jax.jit(train)(jax.random.key(0))
    jaxpg.check_finite(result)
    assert "head" in result.params["params"] and result.params["params"]["head"]["Dense_1"]["kernel"].shape == (64, 2)



# --------------------------------------------------------------------------------------------
# PMOE's mixture-of-experts head.


def _moe(k, std_mode="state_independent", detach_gate=True, low=(-2.0, -1.0), high=(2.0, 1.0)):
    spec = Box.make(np.array(low), np.array(high), (2,))
    head = policies.MixtureOfExpertsHead(spec, num_experts=k, std_mode=std_mode, detach_gate=detach_gate)
    features = jax.random.normal(jax.random.key(0), (5, 8))
    params = head.init(jax.random.key(1), features)
    return head, params, features


@pytest.mark.parametrize("std_mode", policies.STD_MODES)
def test_moe_head_shapes_and_box(std_mode):
    head, params, features = _moe(3, std_mode)
    mixture = head.apply(params, features)
    assert mixture.components.mean.shape == (5, 3, 2) and mixture.logits.shape == (5, 3)
    sample = mixture.sample_and_log_prob(jax.random.key(2))
    assert sample.action.shape == (5, 2) and sample.log_prob.shape == (5,)
    assert np.all(np.abs(np.asarray(sample.action)) <= np.array([2.0, 1.0]))
    experts = mixture.components.sample_and_log_prob(jax.random.key(3))  # every expert's candidate
    assert experts.action.shape == (5, 3, 2) and experts.log_prob.shape == (5, 3)
    assert mixture.components.entropy().shape == (5, 3)  # per-expert entropy
    np.testing.assert_allclose(mixture.weights().sum(-1), 1.0, rtol=1e-6)
    # The evaluation action is the most probable expert's mean, squashed.
    best = np.argmax(np.asarray(mixture.logits), -1)
    expected = np.tanh(np.asarray(mixture.components.mean)[np.arange(5), best]) * np.array([2.0, 1.0])
    np.testing.assert_allclose(mixture.mode(), expected, rtol=1e-5, atol=1e-6)


def test_moe_with_one_expert_scores_like_the_unimodal_policy():
    head, params, features = _moe(1)
    mixture = head.apply(params, features)
    single = policies.SquashedGaussian(mixture.components.mean[:, 0], mixture.components.std[:, 0],
                                       mixture.components.low, mixture.components.high)
    u = jax.random.normal(jax.random.key(4), (5, 2))
    np.testing.assert_allclose(mixture.log_prob(u), single.log_prob(u), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(mixture.decode(u), single.decode(u), rtol=1e-6)


def test_moe_log_prob_is_a_logsumexp_over_experts_with_their_tanh_correction():
    head, params, features = _moe(3)
    mixture = head.apply(params, features)
    u = jax.random.normal(jax.random.key(5), (5, 2))
    c = mixture.components
    per_expert = np.stack([np.asarray(_hand_log_prob(u, c.mean[:, k], c.std[:, k], c.low, c.high)) for k in range(3)], -1)
    log_w = np.asarray(jax.nn.log_softmax(mixture.logits, -1), np.float64)
    expected = scipy.special.logsumexp(log_w + per_expert, axis=-1)
    np.testing.assert_allclose(mixture.log_prob(u), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("detach_gate", [True, False])
def test_moe_gate_is_detached_from_the_features_when_asked(detach_gate):
    head, params, features = _moe(3, detach_gate=detach_gate)
    gate_grad = jax.grad(lambda f: head.apply(params, f).logits.sum())(features)
    assert (np.abs(np.asarray(gate_grad)).max() == 0.0) == detach_gate
    expert_grad = jax.grad(lambda f: head.apply(params, f).components.mean.sum())(features)
    assert np.abs(np.asarray(expert_grad)).max() > 0.0


def test_moe_head_rejects_zero_experts():
    with pytest.raises(ValueError, match="num_experts must be a positive integer"):
        _moe(0)
