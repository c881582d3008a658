"""Network building blocks: the running observation normalizer and the activation registry.

Running statistics are checked against numpy's mean / variance (ddof=0) of every masked-in sample
concatenated, after merges of batches of different sizes and shapes, with and without masks.
"""

from __future__ import annotations

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpg.nets import ACTIVATIONS, MLP, RunningStats, get_activation, running_norm
from jaxpg.nets.initializers import orthogonal

LOC = np.array([[1.0, -2.0, 5.0], [0.0, 3.0, -0.5]], np.float32)  # per-feature means, shape (2, 3)
SCALE = np.array([[0.5, 2.0, 10.0], [1.0, 0.1, 3.0]], np.float32)

update = jax.jit(running_norm.update)
normalize = jax.jit(running_norm.normalize)


def _batches(seed=0):
    """(batch, mask) pairs of different sizes and leading shapes; mask None = all samples count."""
    rng = np.random.default_rng(seed)
    draw = lambda *lead: (LOC + SCALE * rng.standard_normal(lead + LOC.shape)).astype(np.float32)
    return [
        (draw(1), None),  # a single sample: zero within-batch variance
        (draw(7), None),
        (draw(4, 5), rng.random((4, 5)) < 0.6),  # [T, B] with a boolean mask
        (draw(50), None),
        (draw(3, 2), np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]], np.float32)),  # float mask
        (draw(13), np.ones(13, bool)),
    ]


def _reference(batches):
    kept = []
    for batch, mask in batches:
        flat = batch.reshape((-1,) + LOC.shape)
        kept.append(flat if mask is None else flat[np.asarray(mask, bool).reshape(-1)])
    return np.concatenate(kept).astype(np.float64)


def _merge(stats, batches):
    for batch, mask in batches:
        stats = update(stats, jnp.asarray(batch), None if mask is None else jnp.asarray(mask))
    return stats


def test_fresh_stats():
    stats = RunningStats.create(LOC.shape)
    np.testing.assert_array_equal(stats.mean, np.zeros(LOC.shape))
    np.testing.assert_array_equal(stats.var, np.ones(LOC.shape))
    assert float(stats.count) == 0.0


def test_running_stats_match_numpy_of_all_kept_samples():
    batches = _batches()
    stats = _merge(RunningStats.create(LOC.shape), batches)
    data = _reference(batches)
    assert data.shape[0] == 1 + 7 + 50 + 13 + 3 + int(np.sum(batches[2][1]))
    assert float(stats.count) == data.shape[0]
    np.testing.assert_allclose(stats.mean, data.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats.var, data.var(0), rtol=1e-4)
    # Sanity of the data itself: the masked samples were really dropped (would change the answer).
    all_data = np.concatenate([b.reshape((-1,) + LOC.shape) for b, _ in batches])
    assert not np.allclose(all_data.mean(0), data.mean(0), rtol=1e-3)


def test_merge_order_does_not_matter():
    batches = _batches(seed=1)
    forward = _merge(RunningStats.create(LOC.shape), batches)
    backward = _merge(RunningStats.create(LOC.shape), batches[::-1])
    chex.assert_trees_all_close(forward, backward, rtol=1e-4, atol=1e-5)


def test_first_batch_sets_stats_exactly():
    batch = LOC + SCALE * np.random.default_rng(2).standard_normal((9,) + LOC.shape).astype(np.float32)
    stats = update(RunningStats.create(LOC.shape), jnp.asarray(batch))
    np.testing.assert_allclose(stats.mean, batch.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats.var, batch.var(0), rtol=1e-4)  # the prior var of 1 is ignored


@pytest.mark.parametrize("filled", [False, True])
def test_all_zero_mask_leaves_stats_unchanged(filled):
    stats = RunningStats.create(LOC.shape)
    if filled:
        stats = _merge(stats, _batches()[:3])
    batch = jnp.asarray(100.0 + np.random.default_rng(3).standard_normal((4, 6) + LOC.shape), jnp.float32)
    after = update(stats, batch, jnp.zeros((4, 6), bool))
    chex.assert_trees_all_equal(after, stats)


def test_normalize_whitens_the_data():
    batches = _batches(seed=4)
    stats = _merge(RunningStats.create(LOC.shape), batches)
    data = _reference(batches).astype(np.float32)
    z = np.asarray(normalize(stats, jnp.asarray(data)), np.float64)
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.std(0), 1.0, rtol=1e-4)
    # Known answer on one point: (x - mean) / sqrt(var + eps).
    x = data[0]
    np.testing.assert_allclose(z[0], (x - stats.mean) / np.sqrt(stats.var + 1e-8), rtol=1e-5)


def test_update_inside_scan_matches_sequential_updates():
    rng = np.random.default_rng(5)
    chunks = (LOC + SCALE * rng.standard_normal((4, 8) + LOC.shape)).astype(np.float32)
    masks = rng.random((4, 8)) < 0.5

    @jax.jit
    def scanned(stats):
        return jax.lax.scan(lambda s, xm: (running_norm.update(s, *xm), None), stats, (chunks, masks))[0]

    stats = scanned(RunningStats.create(LOC.shape))
    data = chunks[masks].astype(np.float64)
    assert float(stats.count) == data.shape[0]
    np.testing.assert_allclose(stats.mean, data.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats.var, data.var(0), rtol=1e-4)


# --------------------------------------------------------------------------------------------
# Activations and the MLP torso.


def test_get_activation_known_names():
    x = jnp.array([-2.0, 0.5])
    np.testing.assert_allclose(get_activation("relu")(x), [0.0, 0.5])
    np.testing.assert_allclose(get_activation("tanh")(x), np.tanh([-2.0, 0.5]), rtol=1e-6)
    assert set(ACTIVATIONS) >= {"tanh", "relu", "gelu", "silu", "elu"}


@pytest.mark.parametrize("name", ["swish2", "Tanh", ""])
def test_get_activation_unknown_name_lists_valid_names(name):
    with pytest.raises(ValueError) as err:
        get_activation(name)
    message = str(err.value)
    assert repr(name) in message
    for valid in ACTIVATIONS:
        assert valid in message


def test_mlp_unknown_activation_raises_at_init():
    with pytest.raises(ValueError, match="relu"):
        MLP((4,), activation="sigmoidish").init(jax.random.PRNGKey(0), jnp.ones((1, 3)))


def test_mlp_shapes_and_activation():
    mlp = MLP((8, 5), activation="relu")
    x = jax.random.normal(jax.random.PRNGKey(0), (6, 3))
    params = mlp.init(jax.random.PRNGKey(1), x)
    y = mlp.apply(params, x)
    assert y.shape == (6, 5)
    assert np.all(np.asarray(y) >= 0.0)  # relu output
    # Same computation by hand.
    h = x
    for layer in ("Dense_0", "Dense_1"):
        p = params["params"][layer]
        np.testing.assert_array_equal(p["bias"], 0.0)  # zero-bias init
        h = np.maximum(h @ p["kernel"] + p["bias"], 0.0)
    np.testing.assert_allclose(y, h, rtol=1e-5, atol=1e-6)
    # Orthogonal init with gain sqrt(2): the rows of the (3, 8) kernel are orthogonal, norm sqrt(2).
    k = np.asarray(params["params"]["Dense_0"]["kernel"])
    np.testing.assert_allclose(k @ k.T, 2.0 * np.eye(3), atol=1e-5)


# ---- orthogonal initializer without LAPACK -----------------------------------------------------
@pytest.mark.parametrize("shape", [(4, 64), (64, 64), (64, 2), (3, 5, 7)])
def test_orthogonal_matches_flax_for_the_same_key(shape):
    key = jax.random.key(11)
    ours = orthogonal(1.7)(key, shape)
    theirs = nn.initializers.orthogonal(1.7)(key, shape)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    flat = np.asarray(ours).reshape(-1, shape[-1]) / 1.7
    gram = flat.T @ flat if flat.shape[0] >= flat.shape[1] else flat @ flat.T
    np.testing.assert_allclose(gram, np.eye(gram.shape[0]), atol=1e-5)


def test_vmapped_network_init_has_no_lapack_call():
    """Batched LAPACK QR under vmap deadlocked XLA:CPU sweeps; the init must not emit it."""
    import jaxpg

    train = jaxpg.make_train("ppo", env="CartPole-v1", total_steps=512)
    keys = jax.random.split(jax.random.key(0), 3)
    hparams = jaxpg.sweep.stack([train.default_hparams] * 3)
    hlo = jax.jit(jax.vmap(train.init)).lower(keys, hparams).as_text()
    assert "lapack" not in hlo.lower()
