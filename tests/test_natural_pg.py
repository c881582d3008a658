"""Natural REINFORCE (optimizer="gns") and plain PG (optimizer="sgd"): one trainer step against a
dense, independently built answer, the reductions of the GNS step, and the config errors.

The GNS step (Semenov, Jaggi & Doikov 2025, arXiv 2506.13710; Kakade 2001 for the natural PG):
``theta <- theta - lr (G + lambda I)^{-1} clip(g)``, ``lambda = ||clip(g)|| / gns_gamma``, with G
the empirical Fisher of the sampled actions plus ``vf_coef`` times the value Gauss-Newton matrix,
both averaged over the batch's valid steps. Here G is formed densely from ``jax.jacobian`` of the
per-step log-probabilities and values of the flattened parameters and the system is solved by
``numpy.linalg.solve`` in float64.
"""

import dataclasses

import jax
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import jaxpg
from jaxpg.algos import common
from jaxpg.algos.ppo import PPOConfig
from jaxpg.algos.reinforce import Reinforce, ReinforceConfig, ReinforceHParams

# CartPole: 4 observations, 2 actions; 40 steps outlast most random episodes (padding); hidden
# (4,): 30 actor + 25 critic = 55 parameters, so 64 CG iterations exceed the dimension (exact up
# to rounding).
TINY = dict(env="CartPole-v1", num_envs=2, horizon=40, hidden_sizes=(4,), total_steps=2 * 40 * 2)


def _trainer(optimizer, **config):
    return Reinforce(ReinforceConfig(optimizer=optimizer, **{**TINY, **config}))


def _one_update(trainer):
    """A jitted ``(state, hparams) -> (old params, new params, batch, net_batch, returns, info)``:
    the batch of the first iteration and the optimizer step :meth:`Reinforce.update` takes on it."""

    @jax.jit
    def run(key, hparams):
        state = trainer.init(key, hparams)
        batch, net_batch, returns, _ = trainer.collect(state, hparams)
        params, _, _, info = trainer.update(state.params, state.opt_state, hparams, net_batch, returns)
        return state.params, params, batch, net_batch, returns, info

    return run


def _clipped_gradient(trainer, params, hparams, net_batch, returns):
    grads = jax.grad(lambda p: trainer.loss(p, hparams, net_batch, returns)[0])(params)
    flat = np.asarray(ravel_pytree(grads)[0], np.float64)
    return flat * min(1.0, float(hparams.max_grad_norm) / np.linalg.norm(flat))


def _dense_curvature(trainer, params, hparams, net_batch):
    """``G = J_pi^T W J_pi + vf_coef J_V^T W J_V``, ``W = diag(mask / sum mask)``, in float64."""
    flat, unravel = ravel_pytree(params)
    obs, latent = net_batch.transitions.obs, net_batch.transitions.latent

    def log_probs(theta):
        policy = trainer.network.apply(unravel(theta), obs, method="policy")
        return policy.log_prob(latent).reshape(-1)

    def values(theta):
        return trainer.network.apply(unravel(theta), obs, method="value").reshape(-1)

    j_pi = np.asarray(jax.jacobian(log_probs)(flat), np.float64)  # [H*B, P]
    j_v = np.asarray(jax.jacobian(values)(flat), np.float64)
    mask = np.asarray(net_batch.mask, np.float64).reshape(-1)
    w = mask / mask.sum()
    return j_pi.T @ (w[:, None] * j_pi) + float(hparams.vf_coef) * j_v.T @ (w[:, None] * j_v)


@pytest.fixture(scope="module")
def gns_step():
    trainer = _trainer("gns", gns_cg_iters=64)
    return trainer, _one_update(trainer)


def _step(gns_step, **hparams):
    trainer, run = gns_step
    hp = ReinforceHParams(**hparams)
    old, new, batch, net_batch, returns, info = run(jax.random.key(3), hp)
    update = np.asarray(ravel_pytree(new)[0], np.float64) - np.asarray(ravel_pytree(old)[0], np.float64)
    g = _clipped_gradient(trainer, old, hp, net_batch, returns)
    return trainer, hp, old, batch, net_batch, update, g, info


def test_gns_step_equals_the_dense_regularized_natural_gradient_step(gns_step):
    trainer, hp, old, batch, net_batch, update, g, info = _step(gns_step, learning_rate=0.5, gns_gamma=20.0)
    assert 0 < float(batch.mask.sum()) < batch.mask.size  # some episodes ended: padding is masked out
    assert np.linalg.norm(g) == pytest.approx(1.0, rel=1e-5)  # the gradient was clipped (||g|| > 1)
    lam = np.linalg.norm(g) / 20.0
    curvature = _dense_curvature(trainer, old, hp, net_batch)
    # G dominates lambda in its top directions (largest eigenvalue about 0.86 here vs 0.05).
    assert np.linalg.eigvalsh(curvature).max() > 5 * lam
    expected = -0.5 * np.linalg.solve(curvature + lam * np.eye(len(g)), g)
    np.testing.assert_allclose(update, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    assert float(info["gns_lambda"]) == pytest.approx(lam, rel=1e-5)
    assert float(info["cg_residual"]) < 1e-3
    # Not the plain step: the preconditioning changes the direction.
    cosine = update @ -g / (np.linalg.norm(update) * np.linalg.norm(g))
    assert cosine < 0.9


def test_gns_with_a_tiny_gamma_is_the_normalized_gradient_step(gns_step):
    """lambda = ||g|| / gamma >> ||G|| (about 1 here): (G + lambda I)^{-1} g = g / lambda (1 + O(||G|| / lambda)),
    the step ``-lr gamma g / ||g||`` of length lr gamma; lr is raised with 1/gamma so that the step
    stays far above float32 rounding of the parameters."""
    gamma, lr = 1e-6, 1e5
    *_, update, g, info = _step(gns_step, learning_rate=lr, gns_gamma=gamma)
    lam = np.linalg.norm(g) / gamma
    np.testing.assert_allclose(update, -lr * g / lam, rtol=1e-3, atol=1e-3 * lr * gamma * np.abs(g).max())
    assert np.linalg.norm(update) == pytest.approx(lr * gamma, rel=1e-4)
    assert float(info["gns_lambda"]) == pytest.approx(lam, rel=1e-4)


def test_sgd_step_is_minus_lr_times_the_clipped_gradient():
    trainer = _trainer("sgd")
    hp = ReinforceHParams(learning_rate=0.3, max_grad_norm=0.5)
    old, new, _, net_batch, returns, info = _one_update(trainer)(jax.random.key(4), hp)
    g = _clipped_gradient(trainer, old, hp, net_batch, returns)
    assert np.linalg.norm(g) == pytest.approx(0.5, rel=1e-5)
    update = np.asarray(ravel_pytree(new)[0], np.float64) - np.asarray(ravel_pytree(old)[0], np.float64)
    np.testing.assert_allclose(update, -0.3 * g, rtol=1e-4, atol=1e-7)
    assert "gns_lambda" not in info and "cg_residual" not in info


def test_gns_train_is_vmappable_over_hparams_and_reports_its_metrics():
    """Shapes only (``jax.eval_shape``: traced, not compiled), also with NaP's projection, whose
    wrapper forwards no extra update arguments (the curvature is closed over)."""
    for extra in ({}, dict(normalization="layer_norm", nap=True)):
        train = jaxpg.make_train("reinforce", optimizer="gns", **{**TINY, **extra})
        hp = jaxpg.sweep.grid(train.default_hparams, gns_gamma=[0.5, 2.0, 8.0])
        keys = jax.random.split(jax.random.key(0), 3)
        out = jax.eval_shape(jax.vmap(train), keys, hp)
        iterations = train.num_iterations
        assert out.metrics["gns_lambda"].shape == (3, iterations)
        assert out.metrics["cg_residual"].shape == (3, iterations)
        assert out.metrics["episode_return"].shape == (3, iterations)


def test_optimizer_choices_and_gns_ranges_fail_with_one_line_naming_the_valid_values():
    with pytest.raises(ValueError, match=r"^unknown optimizer 'natural'; valid choices: adam, sinkgd, sgd, gns$"):
        jaxpg.make_train("reinforce", env="CartPole-v1", optimizer="natural")
    # PPO builds its optimizer with common.make_optimizer, which has no curvature: it refuses both.
    for name in ("gns", "sgd"):
        with pytest.raises(ValueError, match=rf"^unknown optimizer '{name}'; valid choices: adam, sinkgd$"):
            common.check_config(PPOConfig(optimizer=name))
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match=r"^gns_gamma = .* is out of range; valid: gns_gamma > 0$"):
            jaxpg.make_train("reinforce", env="CartPole-v1", optimizer="gns", gns_gamma=bad)
    with pytest.raises(ValueError, match=r"gns_gamma = -1 \(sweep entry 1\) is out of range; valid: gns_gamma > 0"):
        jaxpg.sweep.grid(ReinforceHParams(), gns_gamma=[1.0, -1.0])
    with pytest.raises(ValueError, match=r"^gns_cg_iters = 0 is out of range; valid: gns_cg_iters >= 1 "):
        common.check_config(ReinforceConfig(optimizer="gns", gns_cg_iters=0))
    # Every choice builds: the new ones and the shared ones.
    for name in ReinforceConfig.OPTIMIZERS:
        common.check_config(dataclasses.replace(ReinforceConfig(), optimizer=name))
    assert ReinforceHParams().gns_gamma > 0 and ReinforceConfig().gns_cg_iters == 10
