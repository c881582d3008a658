"""NaP (normalize-and-project): projection invariants, scale invariance, hand-computed steps."""

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxpg
from jaxpg import optim
from jaxpg.nets import MLP


def _norm(x):
    return float(np.sqrt(np.sum(np.square(np.asarray(x)))))


@st.composite
def pytrees_with_masks(draw):
    n = draw(st.integers(1, 4))
    tree, mask = {}, {}
    for i in range(n):
        shape = draw(st.tuples(st.integers(1, 5), st.integers(1, 5)))
        leaf = draw(hnp.arrays(np.float32, shape, elements=st.floats(-3, 3, width=32)))
        if _norm(leaf) < 1e-2:  # a zero leaf has no direction to project; tested separately
            leaf = leaf + 1.0
        tree[f"w{i}"] = jnp.asarray(leaf)
        mask[f"w{i}"] = draw(st.booleans())
    return tree, mask


@settings(max_examples=30, deadline=None, derandomize=True)
@given(pytrees_with_masks(), st.integers(0, 2**31 - 1))
def test_projection_keeps_each_projected_leaf_at_its_initial_norm(tree_and_mask, seed):
    params, mask = tree_and_mask
    if not any(mask.values()):
        with pytest.raises(ValueError, match="no leaf to project"):
            optim.nap(optax.sgd(0.5), mask=mask).init(params)
        return
    tx = optim.nap(optax.sgd(0.5), mask=mask)
    plain = optax.sgd(0.5)
    state, plain_state = tx.init(params), plain.init(params)
    reference = params
    keys = jax.random.split(jax.random.key(seed), 3)
    for key in keys:
        grads = jax.tree.map(lambda p: 3.0 * jax.random.normal(key, p.shape), params)
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        plain_updates, plain_state = plain.update(grads, plain_state, reference)
        reference = optax.apply_updates(reference, plain_updates)
    for name, projected in mask.items():
        if projected:
            assert _norm(params[name]) == pytest.approx(_norm(tree_and_mask[0][name]), rel=1e-4)
        else:  # unprojected leaves follow the inner optimizer exactly
            np.testing.assert_allclose(params[name], reference[name], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("normalization", ["layer_norm", "rms_norm"])
def test_normalized_layer_output_is_invariant_to_rescaling_its_weights(normalization):
    net = MLP((8, 8), "relu", normalization)
    x = jax.random.normal(jax.random.key(0), (5, 3))
    params = net.init(jax.random.key(1), x)
    scaled = jax.tree_util.tree_map_with_path(
        lambda path, p: p * 7.5 if "NormalizedDense_0" in jax.tree_util.keystr(path) else p, params
    )
    np.testing.assert_allclose(net.apply(params, x), net.apply(scaled, x), rtol=1e-4, atol=1e-5)
    plain = MLP((8, 8), "relu", "none")
    pp = plain.init(jax.random.key(1), x)
    pp_scaled = jax.tree.map(lambda p: p * 7.5, pp)
    assert not np.allclose(plain.apply(pp, x), plain.apply(pp_scaled, x))  # the control


def test_one_nap_sgd_step_equals_hand_computation():
    W = jnp.array([[3.0, 0.0], [0.0, 4.0]])  # |W|_F = 5
    b = jnp.array([1.0, -1.0])
    params = {"NormalizedDense_0": {"kernel": W}, "Dense_1": {"bias": b}}
    grads = {"NormalizedDense_0": {"kernel": jnp.array([[1.0, 2.0], [0.0, -2.0]])}, "Dense_1": {"bias": jnp.array([0.5, 0.5])}}
    tx = optim.nap(optax.sgd(0.5), mask=jaxpg.nets.normalized_kernels_mask)  # the network supplies the mask
    updates, _ = tx.update(grads, tx.init(params), params)
    new = optax.apply_updates(params, updates)
    # W - 0.5 g = [[2.5, -1], [0, 5]], norm sqrt(6.25 + 1 + 25) = sqrt(32.25); rescaled to norm 5.
    stepped = np.array([[2.5, -1.0], [0.0, 5.0]])
    np.testing.assert_allclose(new["NormalizedDense_0"]["kernel"], stepped * 5.0 / np.sqrt(32.25), rtol=1e-6)
    np.testing.assert_allclose(new["Dense_1"]["bias"], [0.75, -1.25], rtol=1e-6)  # not projected


@pytest.mark.parametrize(
    "inner",
    [
        optax.sgd(optax.cosine_decay_schedule(0.01, 10)),
        optax.chain(optax.clip_by_global_norm(1.0), optax.adam(optax.linear_schedule(1e-2, 0.0, 10))),
        optax.adamw(1e-2, weight_decay=1e-3),
    ],
)
def test_nap_composes_with_optimizers_and_schedules(inner):
    net = jaxpg.nets.ActorCritic(head=jaxpg.policies.policy_head(jaxpg.envs.Discrete(3)), normalization="layer_norm")
    x = jax.random.normal(jax.random.key(0), (16, 4))
    params = net.init(jax.random.key(1), x)

    def loss(p):
        dist, value = net.apply(p, x)
        return -dist.log_prob(jnp.zeros(16, jnp.int32)).mean() + ((value - 10.0) ** 2).mean()

    mask = jaxpg.nets.normalized_kernels_mask
    tx = jax.jit(lambda g, s, p: optim.nap(inner, mask).update(g, s, p))
    state = optim.nap(inner, mask).init(params)
    initial = optim.weight_norms(params)
    first_loss = float(loss(params))
    for _ in range(10):
        updates, state = tx(jax.grad(loss)(params), state, params)
        params = optax.apply_updates(params, updates)
    final = optim.weight_norms(params)
    for name, value in final.items():
        if "NormalizedDense" in name:
            assert float(value) == pytest.approx(float(initial[name]), rel=1e-5), name
    assert any(abs(float(final[k]) - float(initial[k])) > 1e-4 for k in final if "value_head" in k)  # free
    assert float(loss(params)) < first_loss


def test_without_projection_sgd_grows_scale_invariant_weights():
    """The mechanism NaP removes: for a kernel feeding a normalization the gradient is orthogonal
    to W, so plain SGD gives |W_{t+1}|^2 = |W_t|^2 + lr^2 |g_t|^2 (norm grows, ELR decays)."""
    net = MLP((6,), "tanh", "layer_norm")
    x = jax.random.normal(jax.random.key(0), (32, 3))
    params = net.init(jax.random.key(1), x)
    loss = lambda p: jnp.sum(jnp.sin(net.apply(p, x)) * jnp.arange(6.0))
    grads = jax.grad(loss)(params)
    W = params["params"]["NormalizedDense_0"]["kernel"]
    g = grads["params"]["NormalizedDense_0"]["kernel"]
    assert abs(float(jnp.sum(W * g))) < 1e-4 * _norm(W) * _norm(g)  # orthogonal
    lr = 0.3
    np.testing.assert_allclose(_norm(W - lr * g) ** 2, _norm(W) ** 2 + lr**2 * _norm(g) ** 2, rtol=1e-5)


def test_effective_learning_rate_is_the_relative_step():
    old = {"params": {"layer": {"kernel": jnp.array([[3.0, 4.0]])}, "bias": jnp.array([1.0])}}
    new = {"params": {"layer": {"kernel": jnp.array([[3.0, 4.5]])}, "bias": jnp.array([2.0])}}
    rates = optim.effective_learning_rates(old, new)
    assert list(rates) == ["layer/kernel"]  # matrices only
    assert float(rates["layer/kernel"]) == pytest.approx(0.5 / 5.0)
    assert float(optim.weight_norms(new)["layer/kernel"]) == pytest.approx(np.sqrt(9 + 20.25))


def test_nap_errors_and_metrics_in_training():
    with pytest.raises(ValueError, match="nap=True needs normalization"):
        jaxpg.make_train("ppo", env="CartPole-v1", nap=True)
    with pytest.raises(ValueError, match="valid choices: none, layer_norm, rms_norm"):
        jaxpg.make_train("ppo", env="CartPole-v1", normalization="batch_norm")
    with pytest.raises(ValueError, match="no leaf to project"):
        optim.nap(optax.sgd(0.1), jaxpg.nets.normalized_kernels_mask).init({"Dense_0": {"kernel": jnp.ones((2, 2))}})
    with pytest.raises(ValueError, match="needs params"):
        tx = optim.nap(optax.sgd(0.1), jaxpg.nets.normalized_kernels_mask)
        tx.update({"NormalizedDense_0": {"kernel": jnp.ones((2, 2))}},
                  tx.init({"NormalizedDense_0": {"kernel": jnp.ones((2, 2))}}))
    train = jaxpg.make_train("ppo", env="CartPole-v1", total_steps=3 * 512, normalization="layer_norm", nap=True)
    result = jax.jit(train)(jax.random.key(0))
    key = "weight_norm/actor_torso/NormalizedDense_1/kernel"
    norms = np.asarray(result.metrics[key])
    np.testing.assert_allclose(norms, norms[0], rtol=1e-5)  # held fixed by the projection
    assert np.all(np.asarray(result.metrics["effective_lr/actor_torso/NormalizedDense_1/kernel"]) > 0)
