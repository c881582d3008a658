"""Known answers for the optimizers beyond Adam (issue 14): SinkGD's Sinkhorn fixed point, its
non-matrix rule and composition with schedules and clipping, its selection in the algorithms'
config; GNS's regularized Newton step (one Newton step on a quadratic as lambda -> 0), its CG
solve, the Fisher-vector product, and natural PG with the GNS step on a softmax bandit."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from jaxpg import optim
from jaxpg.algos import common
from jaxpg.algos.lpg import LPGConfig
from jaxpg.algos.ppo import PPO, PPOConfig


def _row_col_norms(x):
    x = np.asarray(x, np.float64)
    return np.linalg.norm(x, axis=1), np.linalg.norm(x, axis=0), np.linalg.norm(x)


# ---- SinkGD: the normalization ---------------------------------------------------------------
@pytest.mark.parametrize("shape", [(7, 5), (3, 12), (16, 16)])
def test_sinkhorn_fixed_point_has_the_target_row_column_and_frobenius_norms(shape):
    m, n = shape
    g = jax.random.normal(jax.random.key(m * n), shape) * 3.0 + 0.5
    x = optim.sinkhorn_normalize(g, num_iters=500)
    rows, cols, frob = _row_col_norms(x)
    np.testing.assert_allclose(rows, math.sqrt(n), atol=1e-4)
    np.testing.assert_allclose(cols, math.sqrt(m), atol=1e-4)
    assert frob == pytest.approx(math.sqrt(m * n), abs=1e-4)
    # A fixed point: one more pass changes nothing; the result is a diagonal rescaling of g,
    # so every entry keeps its sign.
    np.testing.assert_allclose(optim.sinkhorn_normalize(x, num_iters=1), x, atol=1e-5)
    assert np.all(np.sign(np.asarray(x)) == np.sign(np.asarray(g)))


def test_five_iterations_are_close_to_the_fixed_point_and_end_on_exact_columns():
    m, n = 16, 8
    g = jax.random.normal(jax.random.key(1), (m, n))
    five, converged = optim.sinkhorn_normalize(g), optim.sinkhorn_normalize(g, num_iters=500)
    rows, cols, _ = _row_col_norms(five)
    np.testing.assert_allclose(cols, math.sqrt(m), rtol=1e-5)  # the column step comes last
    np.testing.assert_allclose(rows, math.sqrt(n), rtol=0.05)
    assert np.linalg.norm(five - converged) / np.linalg.norm(converged) < 0.05


def test_normalization_ignores_the_gradient_scale_and_reshapes_higher_rank_leaves():
    g = jax.random.normal(jax.random.key(2), (2, 3, 4))
    out = optim.normalize_leaf(g)
    np.testing.assert_allclose(out, optim.sinkhorn_normalize(g.reshape(6, 4)).reshape(2, 3, 4), atol=1e-6)
    for c in (1e-3, 1e3):  # scale-free: a global-norm clip before it cannot change the step
        np.testing.assert_allclose(optim.normalize_leaf(c * g), out, rtol=1e-5, atol=1e-6)


def test_non_matrix_leaves_follow_the_stated_rule():
    bias = jnp.array([3.0, -4.0, 0.0, 1e-3])
    rms = optim.normalize_leaf(bias)
    np.testing.assert_allclose(rms, bias * 2.0 / np.linalg.norm(bias), rtol=1e-6)  # x sqrt(4) / ||x||
    assert float(jnp.sqrt(jnp.mean(rms**2))) == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_array_equal(optim.normalize_leaf(bias, nonmatrix="sign"), jnp.sign(bias))
    # A kernel with one non-trivial axis (a value head's [n, 1]) is a vector for this rule; the
    # literal SR-Sinkhorn of an [n, 1] matrix would be its sign, the "sign" rule.
    column = bias.reshape(4, 1)
    np.testing.assert_allclose(optim.normalize_leaf(column), rms.reshape(4, 1), rtol=1e-6)
    no_zeros = jnp.array([[3.0], [-4.0], [0.5], [-1e-3]])
    np.testing.assert_allclose(optim.sinkhorn_normalize(no_zeros), jnp.sign(no_zeros), atol=1e-6)
    assert float(optim.normalize_leaf(jnp.asarray(-0.2))) == pytest.approx(-1.0)
    # Zeros stay zero, without NaN: a zero leaf, and a zero row of a matrix.
    np.testing.assert_array_equal(optim.normalize_leaf(jnp.zeros(3)), jnp.zeros(3))
    np.testing.assert_array_equal(optim.normalize_leaf(jnp.zeros((3, 2))), jnp.zeros((3, 2)))
    g = jax.random.normal(jax.random.key(3), (4, 3)).at[1].set(0.0)
    out = np.asarray(optim.normalize_leaf(g))
    assert np.all(np.isfinite(out)) and np.all(out[1] == 0.0)


def test_sinkgd_composes_with_a_schedule_and_clipping():
    params = {"w": jnp.ones((5, 3)), "b": jnp.ones(3)}
    schedule = optax.linear_schedule(1e-2, 0.0, 4)
    tx = optax.chain(optax.clip_by_global_norm(0.5), optim.sinkgd(schedule))
    state = tx.init(params)
    assert optim.scale_by_sinkhorn().init(params) == optax.EmptyState()  # the normalization keeps no state
    update = jax.jit(tx.update)
    for count, seed in enumerate((4, 5)):
        grads = jax.tree.map(lambda p, k: 10.0 * jax.random.normal(k, p.shape), params,
                             {"w": jax.random.key(seed), "b": jax.random.key(seed + 10)})
        updates, state = update(grads, state, params)
        lr = float(schedule(count))  # 1e-2, then 7.5e-3: the schedule scales the step
        for name in params:
            np.testing.assert_allclose(updates[name], -lr * optim.normalize_leaf(grads[name]), rtol=1e-5, atol=1e-8)
    # A plain float learning rate works too, and SGD-like sign: the step descends.
    g = {"w": jnp.arange(15.0).reshape(5, 3) - 7.0, "b": jnp.array([1.0, -2.0, 3.0])}
    updates, _ = optim.sinkgd(0.1).update(g, optim.sinkgd(0.1).init(params))
    assert float(optax.tree.vdot(updates, g)) < 0


def test_sinkgd_rejects_bad_settings_naming_valid_values():
    with pytest.raises(ValueError, match="valid choices: rms, sign"):
        optim.sinkgd(1e-3, nonmatrix="adam")
    with pytest.raises(ValueError, match="num_iters must be an integer >= 1"):
        optim.scale_by_sinkhorn(num_iters=0)


# ---- SinkGD as the algorithms' optimizer -----------------------------------------------------
def test_config_optimizer_is_checked_with_the_valid_choices():
    with pytest.raises(ValueError, match=r"^unknown optimizer 'sgdd'; valid choices: adam, sinkgd$"):
        common.check_config(PPOConfig(optimizer="sgdd"))
    common.check_config(PPOConfig(optimizer="sinkgd"))
    # LPG redeclares the field with its own choices ("sgd" | "adam") and checks them itself.
    common.check_config(LPGConfig())
    common.check_config(LPGConfig(optimizer="adam"))
    with pytest.raises(ValueError, match="valid choices: adam, sinkgd"):
        common.make_optimizer(LPGConfig(), 1e-3, 0.5)

    # A config class may narrow the choices (an algorithm that builds its own optimizer).
    @dataclasses.dataclass(frozen=True)
    class AdamOnly(PPOConfig):
        OPTIMIZERS = ("adam",)

    common.check_config(AdamOnly())
    with pytest.raises(ValueError, match=r"unknown optimizer 'sinkgd'; valid choices: adam$"):
        common.check_config(AdamOnly(optimizer="sinkgd"))


@pytest.fixture(scope="module")
def sinkgd_ppo():
    """A PPO trainer with optimizer="sinkgd" (a layer-normalized network, so that the same
    parameters also take NaP's projection), its network's parameters and random gradients."""
    config = PPOConfig(env="multigoal", optimizer="sinkgd", normalization="layer_norm", total_steps=4096)
    trainer = PPO(config)
    obs = jnp.zeros(trainer.env.observation_spec.shape, jnp.float32)
    params = jax.jit(trainer.network.init)(jax.random.key(0), obs)  # one compile beats eager flax init
    leaves, treedef = jax.tree.flatten(params)
    rng = np.random.default_rng(1)
    grads = jax.tree.unflatten(treedef, [jnp.asarray(rng.normal(size=x.shape), x.dtype) for x in leaves])
    return trainer, params, grads


def _check_sinkgd_updates(updates, grads, lr):
    for u, g in zip(jax.tree.leaves(updates), jax.tree.leaves(grads)):
        assert np.all(np.isfinite(np.asarray(u)))
        np.testing.assert_allclose(u, -lr * optim.normalize_leaf(g), rtol=1e-4, atol=1e-7)


def test_make_optimizer_builds_clip_then_sinkgd_on_a_ppo_network(sinkgd_ppo):
    trainer, params, grads = sinkgd_ppo
    tx = common.make_optimizer(trainer.config, 1e-3, 0.5)
    updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
    _check_sinkgd_updates(updates, grads, 1e-3)
    # With nap=True the projection follows SinkGD's step; the updates stay finite.
    tx = common.make_optimizer(dataclasses.replace(trainer.config, nap=True), 1e-3, 0.5)
    updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
    assert all(np.all(np.isfinite(np.asarray(u))) for u in jax.tree.leaves(updates))


def test_ppo_trainer_with_optimizer_sinkgd_steps_with_sinkgd(sinkgd_ppo):
    """Needs ppo.py's ``optimizer`` to call ``common.make_optimizer(self.config, ...)``."""
    trainer, params, grads = sinkgd_ppo
    hparams = trainer.default_hparams
    tx = trainer.optimizer(hparams)
    updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
    # The linear schedule starts at the learning rate.
    _check_sinkgd_updates(updates, grads, hparams.learning_rate)


def _random_like(params, seed):
    leaves, treedef = jax.tree.flatten(params)
    rng = np.random.default_rng(seed)
    return jax.tree.unflatten(treedef, [jnp.asarray(rng.normal(size=x.shape), x.dtype) for x in leaves])


def test_sac_sequence_and_hdpo_trainers_step_their_networks_with_sinkgd():
    """optimizer="sinkgd" reaches every trainer that builds its own optimizers: SAC's actor and
    critics (its temperature keeps Adam: a scalar's SinkGD step is only its sign), the sequence
    trainer's policy and critic, HDPO's policy, LPG's agent. Each update is -lr SinkGD(g) of random gradients;
    with "adam" SAC's optimizer is still optax's Adam (eps 1e-8) after clipping."""
    from jaxpg.algos import make_train

    # The optimizers are what is tested: a small parameter tree (a kernel, a bias) stands in for
    # each trainer's network (building and initializing those costs compiles, not checks).
    actor = {"kernel": jnp.ones((5, 3)), "bias": jnp.ones(3)}
    grads = _random_like(actor, 2)
    sac = make_train("sac", env="Pendulum-v1", optimizer="sinkgd", hidden_sizes=(8, 8))
    hp = sac.default_hparams
    tx = sac._optimizer(hp)
    _check_sinkgd_updates(jax.jit(tx.update)(grads, tx.init(actor), actor)[0], grads, hp.learning_rate)
    t_tx = sac._temperature_optimizer(hp)
    step, _ = t_tx.update(jnp.float32(0.3), t_tx.init(jnp.float32(0.0)), jnp.float32(0.0))
    np.testing.assert_allclose(step, -hp.learning_rate, rtol=1e-4)  # Adam's first step: -lr sign(g)
    adam = make_train("sac", env="Pendulum-v1", hidden_sizes=(8, 8))._optimizer(hp)
    reference = optax.chain(optax.clip_by_global_norm(hp.max_grad_norm), optax.adam(hp.learning_rate))
    for a, b in zip(jax.tree.leaves(adam.update(grads, adam.init(actor), actor)[0]),
                    jax.tree.leaves(reference.update(grads, reference.init(actor), actor)[0])):
        np.testing.assert_array_equal(a, b)

    hdpo = make_train("hdpo", optimizer="sinkgd", hidden_sizes=(8, 8), lr_schedule="constant")
    seq = make_train("grpo", optimizer="sinkgd", width=16, num_heads=2, num_layers=1)
    for tx, lr in ((hdpo.optimizer(hdpo.default_hparams), hdpo.default_hparams.learning_rate),
                   (seq.optimizer(seq.default_hparams), seq.default_hparams.learning_rate),
                   (seq.value_optimizer(seq.default_hparams), seq.default_hparams.value_learning_rate)):
        _check_sinkgd_updates(jax.jit(tx.update)(grads, tx.init(actor), actor)[0], grads, lr)

    # LPG's agent (the trainer needs a saved rule to be built; its optimizer reads only the config).
    from types import SimpleNamespace

    from jaxpg.algos.lpg import LPG, LPGTrainHParams

    lpg_hp = LPGTrainHParams()
    tx = LPG.optimizer(SimpleNamespace(config=LPGConfig(optimizer="sinkgd")), lpg_hp)
    _check_sinkgd_updates(jax.jit(tx.update)(grads, tx.init(actor), actor)[0], grads, lpg_hp.learning_rate)


@pytest.mark.parametrize("algo", ["sac", "grpo", "hdpo"])
def test_every_trainer_refuses_an_unknown_optimizer_in_one_line(algo):
    from jaxpg.algos import make_train

    with pytest.raises(ValueError, match=r"^unknown optimizer 'adamw'; valid choices: adam, sinkgd$"):
        make_train(algo, optimizer="adamw")


# ---- GNS: regularized Newton by CG -----------------------------------------------------------
# Test data and references in NumPy: only the library's own code runs in JAX (fewer compiles).
def _spd(seed, n, shift=1.0):
    m = np.random.default_rng(seed).normal(size=(n, n)) / math.sqrt(n)
    return (m @ m.T + shift * np.eye(n)).astype(np.float32)


def _normal(seed, *shape):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def test_cg_matches_a_direct_solve_of_the_regularized_system():
    a = _spd(0, 6, shift=0.0)  # PSD, possibly near-singular: lambda regularizes
    g = _normal(1, 6)
    for lam in (0.3, 2.0):
        d = optim.gns_direction(g, lambda v: a @ v, lam, num_cg_iters=12, tol=1e-8)
        np.testing.assert_allclose(d, np.linalg.solve(a + lam * np.eye(6), g), rtol=1e-4, atol=1e-5)
    # Pytrees: the same system split into two leaves.
    split = lambda v: {"x": v[:4], "y": v[4:].reshape(2, 1)}
    join = lambda t: jnp.concatenate([t["x"], t["y"].reshape(-1)])
    x, info = optim.conjugate_gradient(lambda t: split((a + 0.3 * np.eye(6, dtype=np.float32)) @ join(t)), split(g),
                                       num_iters=12, tol=1e-8)
    np.testing.assert_allclose(join(x), np.linalg.solve(a + 0.3 * np.eye(6), g), rtol=1e-4, atol=1e-5)
    assert float(info.relative_residual) < 1e-4 and int(info.iterations) <= 12
    # b = 0: zero solution, no NaN.
    zero, info = optim.conjugate_gradient(lambda v: a @ v, jnp.zeros(6))
    np.testing.assert_array_equal(zero, np.zeros(6))
    assert int(info.iterations) == 0


def test_gns_step_with_the_exact_hessian_and_vanishing_lambda_is_one_newton_step():
    a, b, x = _spd(2, 5), _normal(3, 5), _normal(4, 5)
    newton = np.linalg.solve(a, b)  # the minimizer of 1/2 x^T A x - b^T x
    d = optim.gns_direction(a @ x - b, lambda v: a @ v, 0.0, num_cg_iters=10, tol=1e-9)
    np.testing.assert_allclose(x - d, newton, atol=1e-5)
    # As an optax transformation: gamma -> infinity is lambda = ||g|| / gamma -> 0; the curvature
    # comes from the constructor's function here and from a per-step hvp below.
    params = {"head": jnp.asarray(x[:2]), "tail": jnp.asarray(x[2:])}
    flat = lambda t: jnp.concatenate([t["head"], t["tail"]])
    unflat = lambda v: {"head": v[:2], "tail": v[2:]}
    grads = unflat(jnp.asarray(a @ x - b))
    for tx, extra in (
        (optim.scale_by_gns(lambda p, v: unflat(a @ flat(v)), gamma=1e12, tol=1e-9), {}),
        (optim.scale_by_gns(gamma=1e12, tol=1e-9), {"hvp": lambda v: unflat(a @ flat(v))}),
    ):
        tx = optax.chain(tx, optax.scale_by_learning_rate(1.0))
        updates, state = tx.update(grads, tx.init(params), params, **extra)
        np.testing.assert_allclose(flat(optax.apply_updates(params, updates)), newton, atol=1e-5)
        assert float(state[0].lam) == pytest.approx(float(np.linalg.norm(a @ x - b)) / 1e12, rel=1e-5)


def test_gns_rejects_bad_input():
    with pytest.raises(ValueError, match="needs the curvature"):
        optim.scale_by_gns().update({"w": jnp.ones(2)}, optim.scale_by_gns().init(None), None)
    with pytest.raises(ValueError, match="gamma must be > 0"):
        optim.scale_by_gns(gamma=0.0)
    with pytest.raises(ValueError, match="lam must be >= 0"):
        optim.gns_direction(jnp.ones(2), lambda v: v, -1.0)


def test_adaptive_search_accepts_a_good_step_and_rejects_an_overshoot():
    a, b = _spd(5, 4), _normal(6, 4)
    f = lambda x: 0.5 * x @ a @ x - b @ x
    x = np.zeros(4, np.float32)
    g = a @ x - b
    lam = float(optim.gns_lambda(g, 1.0))
    assert lam == pytest.approx(float(np.linalg.norm(g)), rel=1e-6)
    good = x - np.asarray(optim.gns_direction(g, lambda v: a @ v, lam))
    assert bool(optim.gns_accepts(f(x), f(good), a @ good - b, lam))
    # A curvature 100x too small with a tiny lambda overshoots far past the minimizer.
    tiny = 1e-3
    bad = x - np.asarray(optim.gns_direction(g, lambda v: 0.01 * (a @ v), tiny))
    assert not bool(optim.gns_accepts(f(x), f(bad), a @ bad - b, tiny))
    assert float(optim.gns_adapt_gamma(1.0, True)) == 2.0 and float(optim.gns_adapt_gamma(1.0, False)) == 0.5


def _linear_softmax_params(seed, obs_dim=3, num_actions=4):
    return {"w": _normal(seed, obs_dim, num_actions), "b": 0.1 * _normal(seed + 1, num_actions)}


def _log_softmax_policy(params, states):
    return jax.nn.log_softmax(states @ params["w"] + params["b"])


def test_fisher_vector_product_equals_the_explicit_fisher_times_v():
    """Against the closed-form scores of a linear softmax policy pi(a|s) = softmax(s W + b):
    d log pi(a|s) / dW_ij = s_i (1[a = j] - pi_j), d log pi(a|s) / db_j = 1[a = j] - pi_j."""
    params, v = _linear_softmax_params(7), _linear_softmax_params(9)
    states = _normal(8, 5, 3)
    logits = states @ params["w"] + params["b"]
    pi = np.exp(logits - logits.max(1, keepdims=True))
    pi /= pi.sum(1, keepdims=True)

    def scores(s, a):  # [16]: W (row-major, as ravel_pytree orders it: "b" then "w") and b
        onehot = np.eye(4)[a] - pi[s]
        return np.concatenate([onehot, np.outer(states[s], onehot).reshape(-1)])

    flat_v = np.concatenate([v["b"], v["w"].reshape(-1)])
    assert np.allclose(ravel_pytree(v)[0], flat_v)

    # Exact expectation over actions: weights pi(a|s) / num_states.
    fisher = sum(pi[s, a] / 5 * np.outer(scores(s, a), scores(s, a)) for s in range(5) for a in range(4))
    fvp = jax.jit(lambda p, v: optim.fisher_vector_product(_log_softmax_policy, p, (states,),
                                                           weights=jnp.exp(_log_softmax_policy(p, states)) / 5)(v))
    np.testing.assert_allclose(ravel_pytree(fvp(params, v))[0], fisher @ flat_v, rtol=1e-4, atol=1e-5)

    # Empirical Fisher of sampled actions: default weights 1/N.
    actions = np.array([0, 3, 1, 1, 2])
    sampled = lambda p, s, a: jnp.take_along_axis(_log_softmax_policy(p, s), a[:, None], axis=1)[:, 0]
    empirical = sum(np.outer(scores(s, a), scores(s, a)) for s, a in enumerate(actions)) / 5
    fvp_s = jax.jit(lambda p, v: optim.fisher_vector_product(sampled, p, (states, actions))(v))
    np.testing.assert_allclose(ravel_pytree(fvp_s(params, v))[0], empirical @ flat_v, rtol=1e-4, atol=1e-5)


def test_natural_pg_with_the_gns_step_beats_plain_pg_on_a_softmax_bandit():
    """Exact gradients of J(theta) = sum_a pi_theta(a) r_a from a policy stuck on the worst arm;
    both ascend with step size 1: plain PG along grad J, natural PG along
    (F + lambda I)^{-1} grad J with the exact Fisher and lambda = ||grad J|| / gamma."""
    rewards = jnp.array([1.0, 0.8, 0.0])
    value = lambda theta: jax.nn.softmax(theta) @ rewards

    @jax.jit
    def plain(theta):
        return theta + jax.grad(value)(theta)

    @jax.jit
    def natural(theta):
        g = jax.grad(value)(theta)
        fvp = optim.fisher_vector_product(lambda t: jax.nn.log_softmax(t), theta, weights=jax.nn.softmax(theta))
        return theta + optim.gns_direction(g, fvp, optim.gns_lambda(g, 10.0), num_cg_iters=3)

    def iterations_to(step, threshold=0.95, limit=500):
        theta = jnp.array([0.0, 0.0, 4.0])
        for i in range(limit):
            if float(value(theta)) >= threshold:
                return i
            theta = step(theta)
        return limit

    pg, npg = iterations_to(plain), iterations_to(natural)
    assert npg < 15 and pg > 3 * npg, (npg, pg)


def test_scale_by_gns_is_a_natural_gradient_preconditioner_under_jit():
    params = _linear_softmax_params(10)
    states = _normal(11, 6, 3)
    tx = optax.chain(optim.scale_by_gns(gamma=10.0), optax.scale_by_learning_rate(0.5))

    @jax.jit
    def step(params, opt_state):
        loss = lambda p: -jnp.mean(jnp.exp(_log_softmax_policy(p, states))[:, 0])  # push action 0
        grads = jax.grad(loss)(params)
        weights = jnp.exp(_log_softmax_policy(params, states)) / states.shape[0]
        hvp = optim.fisher_vector_product(_log_softmax_policy, params, (states,), weights=weights)
        updates, opt_state = tx.update(grads, opt_state, params, hvp=hvp)
        return optax.apply_updates(params, updates), opt_state, loss(params)

    opt_state = tx.init(params)
    losses = []
    for _ in range(5):
        params, opt_state, loss = step(params, opt_state)
        losses.append(float(loss))
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert np.isfinite(float(opt_state[0].lam)) and float(opt_state[0].cg_residual) < 1.0
