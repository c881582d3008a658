"""Score-function estimators against the exact objective of a tabular MDP, and the update rules
against hand computations."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpg import envs, estimators, optim, policies
from jaxpg.algos.harpg import HARPG, NHARPG, NMPG, NPGIGT, PG
from jaxpg.algos.rollout import collect_episodes, sampling
from jaxpg.envs.tabular import exact_return

GAMMA, HORIZON = 0.9, 4
ENV = envs.make("tabular/random", num_states=3, num_actions=2, horizon=HORIZON, seed=0)
MDP = ENV.default_params
THETA = jax.random.normal(jax.random.key(1), (3, 2)) * 1.5
VECTOR = jax.random.normal(jax.random.key(2), (3, 2))


def exact_objective(theta):
    return exact_return(MDP, jax.nn.softmax(theta, -1), GAMMA, HORIZON)


def _score_fn(batch, baseline):
    traj = batch.transitions

    def score_fn(theta):
        log_probs = jnp.take_along_axis(jax.nn.log_softmax(traj.obs @ theta), traj.latent[..., None], -1)[..., 0]
        b = None
        if baseline:
            b = estimators.leave_one_out_baseline(
                estimators.discounted_rewards_to_go(traj.reward, batch.mask, GAMMA), batch.mask
            )
        return estimators.gpomdp_surrogate(log_probs, traj.reward, batch.mask, GAMMA, baseline=b)

    return score_fn


def _flipped_score_hvp(score_fn, theta, v):
    """The sign error of the official code: hess Phi v - grad Phi (grad log p . v)."""

    def weighted(p):
        _, log_p = score_fn(p)
        w = jnp.exp(-(log_p - jax.lax.stop_gradient(log_p)))
        return jax.grad(lambda inner: (score_fn(inner)[0] * w).mean())(p)

    return jax.jvp(weighted, (theta,), (v,))[1]


@partial(jax.jit, static_argnums=1)
def _estimates(key, baseline_flag):
    batch = collect_episodes(
        envs.VectorEnv(ENV, 20_000), sampling(lambda obs: policies.Categorical(obs @ THETA)), key, HORIZON, MDP
    )
    score_fn = _score_fn(batch, baseline_flag)
    g, hv = estimators.gradient_and_hessian_vector_product(score_fn, THETA, VECTOR)
    hv_only_hessian = jax.jvp(lambda p: estimators.policy_gradient(score_fn, p), (THETA,), (VECTOR,))[1]
    return {
        "g": g,
        "hv": hv,
        "hv_separate": estimators.hessian_vector_product(score_fn, THETA, VECTOR),
        "hv_no_score": hv_only_hessian,
        "hv_flipped": _flipped_score_hvp(score_fn, THETA, VECTOR),
    }


@pytest.fixture(scope="module")
def monte_carlo():
    """16 independent batches of 20k trajectories: batch means and their standard errors."""
    out = {}
    for baseline in (False, True):
        runs = [_estimates(k, baseline) for k in jax.random.split(jax.random.key(3), 16)]
        stacked = jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *runs)
        out[baseline] = {
            k: (v.mean(0), v.std(0, ddof=1) / np.sqrt(v.shape[0])) for k, v in stacked.items()
        }
    return out


@pytest.mark.parametrize("baseline", [False, True])
def test_gradient_estimator_is_unbiased_for_exact_gradient(monte_carlo, baseline):
    mean, se = monte_carlo[baseline]["g"]
    exact = np.asarray(jax.grad(exact_objective)(THETA))
    z = np.abs(mean - exact) / se
    assert z.max() < 4.5, (mean, exact, se)


@pytest.mark.parametrize("baseline", [False, True])
def test_hessian_vector_estimator_matches_exact_hessian_vector_product(monte_carlo, baseline):
    """Mean of B v over 320k trajectories vs jvp(grad J_exact), within 4.5 standard errors;
    dropping the score term or flipping its sign is rejected by > 10 standard errors."""
    exact = np.asarray(jax.jvp(jax.grad(exact_objective), (THETA,), (VECTOR,))[1])
    # Cross-check the exact route itself: jvp of grad == Hessian (jax.hessian) times v.
    dense = jax.hessian(exact_objective)(THETA).reshape(6, 6) @ VECTOR.reshape(6)
    np.testing.assert_allclose(exact.reshape(6), dense, atol=1e-6)

    stats = monte_carlo[baseline]
    mean, se = stats["hv"]
    assert (np.abs(mean - exact) / se).max() < 4.5, (mean, exact, se)
    np.testing.assert_allclose(stats["hv_separate"][0], mean, rtol=1e-5, atol=1e-7)
    for wrong in ("hv_no_score", "hv_flipped"):
        wrong_mean, wrong_se = stats[wrong]
        assert (np.abs(wrong_mean - exact) / np.maximum(wrong_se, se)).max() > 10, wrong


def test_hessian_vector_product_on_pytrees_and_masks():
    """A deterministic check of the formula on a nested pytree with a padded trajectory:
    B v = hess Phi v + grad Phi (grad log p . v) computed by hand from jax.hessian."""
    params = {"w": jnp.array([0.3, -0.2]), "b": {"c": jnp.array(0.1)}}
    vector = {"w": jnp.array([1.0, 2.0]), "b": {"c": jnp.array(-1.0)}}
    x = jnp.array([[1.0, 0.5], [0.2, -1.0], [3.0, 3.0]])  # last step is padding
    mask = jnp.array([1.0, 1.0, 0.0])
    rewards = jnp.array([1.0, 2.0, 100.0])

    def log_probs(p):  # a smooth stand-in for log pi(a_t|s_t), one trajectory [H, 1]
        return (jnp.tanh(x @ p["w"] + p["b"]["c"]) - jnp.exp(0.1 * x @ p["w"]))[:, None]

    score_fn = lambda p: estimators.gpomdp_surrogate(log_probs(p), rewards[:, None], mask[:, None], 0.5)
    got = estimators.hessian_vector_product(score_fn, params, vector)

    flat = lambda p: jnp.concatenate([p["w"], p["b"]["c"][None]])
    unflat = lambda z: {"w": z[:2], "b": {"c": z[2]}}
    phi = lambda z: score_fn(unflat(z))[0][0]
    logp = lambda z: score_fn(unflat(z))[1][0]
    z, vz = flat(params), flat(vector)
    expected = jax.hessian(phi)(z) @ vz + jax.grad(phi)(z) * (jax.grad(logp)(z) @ vz)
    np.testing.assert_allclose(flat(got), expected, rtol=1e-5, atol=1e-6)
    # Phi by hand: R_0 = 1 + 0.5 * 2 = 2, R_1 = 0.5 * 2 = 1 (padding ignored).
    lp = log_probs(params)[:, 0]
    np.testing.assert_allclose(score_fn(params)[0][0], 2.0 * lp[0] + 1.0 * lp[1], rtol=1e-6)


def test_leave_one_out_baseline_by_hand():
    returns = jnp.array([[1.0, 3.0, 5.0], [2.0, 4.0, 0.0]])
    mask = jnp.array([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    b = estimators.leave_one_out_baseline(returns, mask)
    np.testing.assert_allclose(b, [[4.0, 3.0, 2.0], [4.0, 2.0, 3.0]])  # row 2, col 2: others = {2, 4}
    single = estimators.leave_one_out_baseline(returns[:, :1], mask[:, :1])
    np.testing.assert_array_equal(single, 0.0)


# ---- update rules -------------------------------------------------------------------------------
def test_normalized_step_uses_global_norm():
    tree = {"a": jnp.array([3.0]), "b": jnp.array([[4.0]])}
    step = optim.normalized_step(tree, 0.5)
    np.testing.assert_allclose(step["a"], [0.3])
    np.testing.assert_allclose(step["b"], [[0.4]])
    zero = optim.normalized_step({"a": jnp.zeros(2)}, 1.0)
    np.testing.assert_array_equal(zero["a"], 0.0)


def test_schedules_follow_the_paper_table():
    t = 6  # r_t = 2 / 8 = 0.25
    assert float(NHARPG.step_size(0.1, t)) == pytest.approx(0.025)
    assert float(HARPG.step_size(0.1, t)) == pytest.approx(0.05)
    assert float(PG.step_size(1.0, t)) == pytest.approx(0.25 ** (2 / 3))
    assert float(NPGIGT.momentum_weight(1.0, t)) == pytest.approx(0.25**0.8)
    assert float(NMPG.momentum_weight(1.0, t)) == pytest.approx(0.25 ** (2 / 3))
    assert float(NHARPG.momentum_weight(1.0, 0)) == 1.0  # eta_0 = 1: no extrapolation
    assert float(NHARPG.momentum_weight(10.0, 3)) == 1.0  # capped at 1
    assert float(PG.momentum_weight(1.0, t)) == 1.0
    assert float(estimators.power_schedule(3.0, 2, 1.0)) == pytest.approx(1.5)


def test_igt_two_steps_by_hand():
    """N-PG-IGT on a linear objective J(theta) = c . theta: gradient c everywhere."""
    # t = 0: eta_0 = 1, theta~ = theta_0, d_0 = g, theta_1 = theta_0 + gamma_0 d/|d|.
    theta0, c, gamma0 = jnp.array([0.0, 0.0]), jnp.array([3.0, 4.0]), 0.1
    eta = 1.0
    point = estimators.igt_extrapolation(theta0, theta0, eta)
    np.testing.assert_allclose(point, theta0)
    d0 = estimators.momentum(jnp.zeros(2), c, eta)
    theta1 = theta0 + optim.normalized_step(d0, gamma0)
    np.testing.assert_allclose(theta1, [0.06, 0.08], rtol=1e-6)
    # t = 1: eta_1 = 0.5 -> theta~ = theta1 + 1 * (theta1 - theta0) = [0.12, 0.16].
    point = estimators.igt_extrapolation(theta1, theta0, 0.5)
    np.testing.assert_allclose(point, [0.12, 0.16], rtol=1e-6)
    g1 = jnp.array([1.0, 0.0])  # pretend gradient at the extrapolated point
    d1 = estimators.momentum(d0, g1, 0.5)
    np.testing.assert_allclose(d1, [2.0, 2.0])
    theta2 = theta1 + optim.normalized_step(d1, 0.05)
    np.testing.assert_allclose(theta2, [0.06 + 0.05 / np.sqrt(2), 0.08 + 0.05 / np.sqrt(2)], rtol=1e-6)


def test_harpg_recursive_momentum_two_steps_by_hand():
    """On J(theta) = -theta^T A theta / 2 the Hessian is -A: v_t = -A (theta_t - theta_{t-1})."""
    A = jnp.array([[2.0, 0.0], [0.0, 1.0]])
    grad = lambda th: -A @ th
    theta0 = jnp.array([1.0, 1.0])
    d0 = grad(theta0)  # [-2, -1]
    theta1 = theta0 + optim.normalized_step(d0, 0.5)  # |d0| = sqrt(5)
    np.testing.assert_allclose(theta1, [1 - 1 / np.sqrt(5), 1 - 0.5 / np.sqrt(5)], rtol=1e-6)
    q = 0.25
    point = estimators.interpolation_point(theta1, theta0, q)
    np.testing.assert_allclose(point, 0.25 * theta1 + 0.75 * theta0, rtol=1e-6)
    v1 = -A @ estimators.difference(theta1, theta0)  # = grad(theta1) - grad(theta0) exactly here
    np.testing.assert_allclose(v1, grad(theta1) - grad(theta0), rtol=1e-6)
    eta = 0.5
    d1 = estimators.harpg_momentum(d0, v1, grad(theta1), eta)
    # (1 - eta) (d0 + v1) + eta g1 with d0 = g0 exact: the recursion tracks grad(theta1) exactly.
    np.testing.assert_allclose(d1, grad(theta1), rtol=1e-6)
