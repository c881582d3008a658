"""Known answers for PARL (Chakraborty et al. 2023, arXiv 2308.02585; reference notes A27): the
implicit hypergradient against the dense formula, the closed form and finite differences (bandit
and grid world, float64), the bilevel trainer reaching the bandit's closed-form optimum, grid-world
goal design (and two broken variants that must not reach the goal), input validation and
reproducibility.

The learning criteria come from the spread over keys (measured over 32 bandit keys and 4 grid keys
x 2 wall layouts at the settings below): bandit, ``||pi* - p_target||_1 <= 5.7e-4`` (Phi = I) and
moment-matching residual ``<= 1.2e-3`` (3 features) after 400 outer iterations; grid, the
designed reward gives P(goal at T) = 0.967-0.972 from outer iteration 50 on, while rewards near
nu = 0 give 0.0006-0.016 (0.0006-0.004 with the wall used here) and the flipped sign 0.000. The thresholds leave a margin of about 10x (bandit) and
keep the broken variants far below (grid: designed > 0.9, broken < 0.05).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from jaxpg.algos import parl

NUM_ACTIONS, NUM_FEATURES, TAU = 6, 3, 1.0
BANDIT = dict(num_outer=400, num_inner=10, inner_step_size=2.0, upper_lr=0.5, num_cg_iters=NUM_ACTIONS, tol=1e-6)
GRID = dict(tau=0.3, gamma=0.9, slip=0.05, horizon=12, ridge=1e-3, walls=((2, 0), (2, 1), (2, 2), (2, 3)))
GRID_TRAIN = dict(num_outer=80, num_inner=20, inner_step_size=15.0, num_cg_iters=50)


def _to64(tree):
    return jax.tree.map(lambda x: x.astype(jnp.float64) if isinstance(x, jax.Array) and x.dtype == jnp.float32 else x,
                        tree)


# ---- the hypergradient ------------------------------------------------------------------------
def test_bandit_hypergradient_matches_dense_formula_closed_form_and_finite_differences():
    with jax.enable_x64(True):

        @jax.jit
        def check(features, target, nu):
            lower, upper = parl.bandit_objectives(features, target, TAU, ridge=0.1)
            theta = parl.bandit_optimal_logits(features, nu, TAU)
            cg, info = parl.implicit_hypergradient(lower, upper, theta, nu, num_cg_iters=20, tol=1e-13)
            # The softmax null direction: shifting theta* by a constant changes nothing.
            cg_shifted, _ = parl.implicit_hypergradient(lower, upper, theta + 3.0, nu, num_cg_iters=20, tol=1e-13)
            dense = parl.dense_hypergradient(lower, upper, theta, nu)
            damped, _ = parl.implicit_hypergradient(lower, upper, theta, nu, num_cg_iters=20, tol=1e-13, damping=1e-2)
            dense_damped = parl.dense_hypergradient(lower, upper, theta, nu, damping=1e-2)
            exact = parl.bandit_exact_hypergradient(features, target, nu, TAU, 0.1)

            def total(n):  # nu -> U(theta*(nu), nu) through the closed-form lower solution
                return upper(parl.bandit_optimal_logits(features, n, TAU), n)

            eps = 1e-5
            fd = jax.vmap(lambda e: (total(nu + eps * e) - total(nu - eps * e)) / (2 * eps))(jnp.eye(nu.shape[0]))
            return cg, cg_shifted, dense, damped, dense_damped, exact, fd, info

        for seed, num_features in ((0, None), (1, None), (2, None), (3, NUM_FEATURES), (4, NUM_FEATURES), (5, NUM_FEATURES)):
            features, target, nu = _to64(parl.random_bandit(jax.random.key(seed), NUM_ACTIONS, num_features,
                                                            nu_scale=1.0))
            if num_features is not None:  # zero columns (weights without effect): one compiled shape
                features = jnp.pad(features, ((0, 0), (0, NUM_ACTIONS - num_features)))
                nu = jnp.pad(nu, (0, NUM_ACTIONS - num_features))
            *arrays, info = check(features, target, nu)
            cg, cg_shifted, dense, damped, dense_damped, exact, fd = map(np.asarray, arrays)
            scale = np.abs(exact).max()
            assert float(info.lower_grad_norm) < 1e-12  # theta* is stationary
            np.testing.assert_allclose(cg, dense, atol=1e-10 * scale)
            np.testing.assert_allclose(cg, exact, atol=1e-10 * scale)
            np.testing.assert_allclose(cg, fd, atol=1e-8 * scale)
            np.testing.assert_allclose(cg_shifted, cg, atol=1e-10 * scale)
            # Damping solves the damped system exactly, which is a different (biased) answer.
            np.testing.assert_allclose(damped, dense_damped, atol=1e-10 * scale)
            assert np.abs(damped - exact).max() > 1e-4 * scale


def test_grid_hypergradient_matches_dense_formula_and_finite_differences_through_soft_value_iteration():
    with jax.enable_x64(True):
        design = _to64(parl.grid_design(5, **GRID))
        lower, upper = parl.grid_objectives(design)
        nu = jnp.zeros(25, jnp.float64).at[24].set(1.0).at[17].set(0.3).at[3].set(-0.2)
        theta = parl.grid_soft_optimal_logits(design, nu, num_iters=600)
        flat_theta, unravel = ravel_pytree(theta)
        flat_lower = lambda t, n: lower(unravel(t), n)  # noqa: E731
        flat_upper = lambda t, n: upper(unravel(t), n)  # noqa: E731

        @jax.jit
        def hypergradients(theta, nu):
            cg, info = parl.implicit_hypergradient(lower, upper, theta, nu, num_cg_iters=200, tol=1e-12)
            return cg, info, parl.dense_hypergradient(flat_lower, flat_upper, ravel_pytree(theta)[0], nu)

        cg, info, dense = hypergradients(theta, nu)
        total = jax.jit(lambda n: upper(parl.grid_soft_optimal_logits(design, n, num_iters=600), n))
        eps = 1e-5
        cells = [24, 19, 23, 17, 0, 7]
        fd = np.array([(total(nu.at[c].add(eps)) - total(nu.at[c].add(-eps))) / (2 * eps) for c in cells])
        cg, dense = np.asarray(cg), np.asarray(dense)
        scale = np.abs(cg).max()
        assert float(info.lower_grad_norm) < 1e-10 and float(info.cg_residual) < 1e-8
        np.testing.assert_allclose(cg, dense, atol=1e-8 * scale)
        np.testing.assert_allclose(cg[cells], fd, atol=1e-6 * scale)
        # Wall cells (row 2, columns 0-3) are never visited: their reward weight has no effect.
        assert np.all(np.abs(cg[[10, 11, 12, 13]]) < 1e-12 * scale)


# ---- the bilevel trainer ----------------------------------------------------------------------
@jax.jit
def _bandit_runs(keys):
    """Per key: one Phi = I instance and one with 3 features (zero-padded to 6 columns so both
    share one compiled program; a zero column is a reward weight with no effect)."""

    def one(key, with_features):
        eye = parl.random_bandit(key, NUM_ACTIONS, None)
        feat = parl.random_bandit(key, NUM_ACTIONS, NUM_FEATURES)
        pad = lambda x, axis: jnp.pad(x, [(0, 0)] * axis + [(0, NUM_ACTIONS - NUM_FEATURES)])  # noqa: E731
        features = jnp.where(with_features, pad(feat[0], 1), eye[0])
        target = jnp.where(with_features, feat[1], eye[1])
        nu0 = jnp.where(with_features, pad(feat[2], 0), eye[2])
        lower, upper = parl.bandit_objectives(features, target, TAU)
        state, metrics = parl.train_parl(lower, upper, jnp.zeros(NUM_ACTIONS), nu0, **BANDIT)
        pi_star = jax.nn.softmax(parl.bandit_optimal_logits(features, state.nu, TAU))
        pi_start = jax.nn.softmax(parl.bandit_optimal_logits(features, nu0, TAU))
        return {"l1": jnp.abs(pi_star - target).sum(), "l1_start": jnp.abs(pi_start - target).sum(),
                "moment": jnp.linalg.norm(features.T @ (target - pi_star)),
                "moment_start": jnp.linalg.norm(features.T @ (target - pi_start)),
                "lag": jnp.abs(jax.nn.softmax(state.theta) - pi_star).sum(), "nu": state.nu, "metrics": metrics}

    return jax.vmap(lambda k: jax.vmap(one, in_axes=(None, 0))(k, jnp.array([False, True])))(keys)


def test_train_parl_reaches_the_bandit_bilevel_optimum_from_several_keys():
    out = jax.tree.map(np.asarray, _bandit_runs(jax.random.split(jax.random.key(0), 8)))
    assert out["metrics"]["finite"].all()
    # Phi = I: the designed reward makes the agent's optimal policy the target behaviour.
    assert out["l1"][:, 0].max() < 5e-3, out["l1"][:, 0]
    assert out["l1_start"][:, 0].min() > 0.1  # it had somewhere to go
    # 3 features: moment matching Phi^T (p - pi*) = 0 (pi* itself cannot equal p in general).
    assert out["moment"][:, 1].max() < 1e-2, out["moment"][:, 1]
    assert out["moment_start"][:, 1].min() > 0.05
    # The warm-started lower level tracks the closed form, and the last hypergradients vanish.
    assert out["lag"].max() < 1e-3
    assert out["metrics"]["hypergrad_norm"][..., -1].max() < 1e-2
    assert out["metrics"]["lower_grad_norm"][..., -1].max() < 1e-4


@jax.jit
def _grid_runs(keys, signs, lrs):
    design = parl.grid_design(5, **GRID)

    def one(key, sign, lr):
        nu0 = 0.1 * jax.random.normal(key, (25,))
        # sign = -1 flips the hypergradient fed to Adam (descends U); lr = 0 never moves nu.
        _, metrics, designed = parl.grid_goal_design(design, nu0, optax.chain(optax.scale(sign), optax.adam(lr)),
                                                     **GRID_TRAIN)
        # The designed reward judged by the exact soft-optimal policy, not by the trainer's theta.
        return metrics, designed

    return jax.vmap(lambda s, lr: jax.vmap(one, in_axes=(0, None, None))(keys, s, lr))(signs, lrs)


def test_grid_goal_design_reaches_the_target_and_broken_variants_do_not():
    metrics, oracle = jax.tree.map(np.asarray, _grid_runs(jax.random.split(jax.random.key(1), 3),
                                                          jnp.array([1.0, -1.0, 1.0]), jnp.array([0.05, 0.05, 0.0])))
    designed, flipped, frozen = 0, 1, 2
    assert metrics["finite"].all()
    p = metrics["p"]  # [variant, key, iteration]
    assert p[:, :, 0].max() < 0.05  # near-zero reward: near the uniform policy's level
    assert p[designed, :, -1].min() > 0.9 and oracle[designed].min() > 0.9
    assert p[designed, :, -10:].min() > 0.9  # and it stays there
    assert p[flipped, :, -1].max() < 0.05 and oracle[flipped].max() < 0.05
    assert p[frozen, :, -1].max() < 0.05 and oracle[frozen].max() < 0.05
    np.testing.assert_allclose(p[frozen, :, -1], p[frozen, :, 0], atol=0.02)


# ---- validation and reproducibility -----------------------------------------------------------
def test_bad_inputs_raise_one_line_value_errors_naming_the_valid_range():
    lower, upper = parl.bandit_objectives(jnp.eye(3), jnp.ones(3) / 3, 1.0)
    theta, nu = jnp.zeros(3), jnp.zeros(3)
    train = lambda **kw: parl.train_parl(lower, upper, theta, nu, **{**dict(num_outer=2, num_inner=2,  # noqa: E731
                                                                            inner_step_size=1.0), **kw})
    cases = [
        (lambda: parl.implicit_hypergradient(lower, upper, theta, nu, num_cg_iters=0), "num_cg_iters >= 1 (an integer)"),
        (lambda: parl.implicit_hypergradient(lower, upper, theta, nu, damping=-1.0), "damping >= 0"),
        (lambda: parl.implicit_hypergradient(lower, upper, theta, nu, tol=float("nan")), "tol >= 0"),
        (lambda: parl.solve_lower(lower, theta, nu, num_steps=0, step_size=1.0), "num_steps (K) >= 1 (an integer)"),
        (lambda: parl.solve_lower(lower, theta, nu, num_steps=3, step_size=0.0), "step_size > 0"),
        (lambda: train(num_inner=0), "num_inner (K) >= 1 (an integer)"),
        (lambda: train(num_outer=1.5), "num_outer >= 1 (an integer)"),
        (lambda: train(upper_lr=-0.1), "upper_lr >= 0"),
        (lambda: train(num_cg_iters=0), "num_cg_iters >= 1 (an integer)"),
        (lambda: parl.bandit_objectives(jnp.eye(3), jnp.ones(3) / 3, tau=0.0), "tau > 0"),
        (lambda: parl.grid_design(5, gamma=1.0), "0 <= gamma < 1"),
        (lambda: parl.grid_design(5, slip=1.5), "0 <= slip <= 1"),
        (lambda: parl.grid_design(5, walls=((4, 4),)), "goal (4, 4) must be a free cell"),
    ]
    for call, expected in cases:
        with pytest.raises(ValueError) as err:
            call()
        message = str(err.value)
        assert expected in message and "\n" not in message, message


def test_same_key_gives_the_same_result_and_another_key_does_not():
    keys = jax.random.split(jax.random.key(0), 8)  # the trainer test's keys: reuses its compiled program
    first, second = _bandit_runs(keys), _bandit_runs(keys)
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(second)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    other = _bandit_runs(jax.random.split(jax.random.key(5), 8))
    assert not np.allclose(np.asarray(first["nu"]), np.asarray(other["nu"]))
