"""``jaxpg.prng.unrolled``: a re-typed Threefry key draws exactly the bits the original would.

The rollouts re-type their keys, so these identities are what keeps training results unchanged.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpg import prng

SAMPLERS = {
    "split": lambda k: jax.random.key_data(jax.random.split(k, 5)),
    "split_2d": lambda k: jax.random.key_data(jax.random.split(k, (3, 4))),
    "fold_in": lambda k: jax.random.key_data(jax.random.fold_in(k, 7)),
    "bits_8": lambda k: jax.random.bits(k, (5,), jnp.uint8),
    "bits_32": lambda k: jax.random.bits(k, (3, 3), jnp.uint32),
    "uniform": lambda k: jax.random.uniform(k, (7, 3)),
    "normal": lambda k: jax.random.normal(k, (5,)),
    "randint": lambda k: jax.random.randint(k, (9,), 0, 5),
    "categorical": lambda k: jax.random.categorical(k, jnp.zeros((4, 3))),
    "permutation": lambda k: jax.random.permutation(k, 512),
}


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_unrolled_key_draws_the_same_bits(name):
    sample = SAMPLERS[name]
    key = jax.random.key(42)
    fast = prng.unrolled(key)
    assert str(jax.random.key_impl(fast)) != str(jax.random.key_impl(key))
    np.testing.assert_array_equal(sample(fast), sample(key))
    np.testing.assert_array_equal(jax.jit(sample)(fast), jax.jit(sample)(key))
    keys = jax.random.split(jax.random.key(7), 4)
    np.testing.assert_array_equal(jax.jit(jax.vmap(sample))(prng.unrolled(keys)), jax.vmap(sample)(keys))


def test_hash_matches_the_published_test_vector():
    # Threefry-2x32, 20 rounds, key = counter = 0: the Random123 known-answer test (kat_vectors),
    # also used by JAX's own tests.
    x1, x2 = prng.threefry2x32(*(jnp.zeros((), jnp.uint32),) * 2, jnp.zeros((1,), jnp.uint32), jnp.zeros((1,), jnp.uint32))
    assert (int(x1[0]), int(x2[0])) == (0x6B200159, 0x99BA4EFE)


def test_other_key_implementations_pass_through_unchanged():
    key = jax.random.key(0, impl="rbg")
    assert prng.unrolled(key) is key


def test_rollouts_are_unchanged_by_the_retyping(monkeypatch):
    """A rollout (policy sampling, environment resets) gives the same transitions with and
    without the re-typing it does on entry."""
    from jaxpg.algos.rollout import rollout, sampling
    from jaxpg.envs import VectorEnv, make
    from jaxpg.policies import Categorical

    venv = VectorEnv(make("CartPole-v1"), 3)
    act = sampling(lambda obs: Categorical(jnp.zeros(obs.shape[:-1] + (2,))))

    def transitions(key):  # a fresh function per call, so jit traces it anew
        state, obs = venv.reset(key)
        return rollout(venv, act, key, state, obs, 40, venv.default_params)[2]

    with_unrolled = jax.jit(lambda key: transitions(key))(jax.random.key(1))
    monkeypatch.setattr(prng, "unrolled", lambda key: key)
    plain = jax.jit(lambda key: transitions(key))(jax.random.key(1))
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(with_unrolled)):
        np.testing.assert_array_equal(a, b)


def test_arrays_of_2_to_the_32_elements_or_more_are_refused_in_one_line():
    from jaxpg.prng import _counters

    with pytest.raises(ValueError, match=r"fewer than 2\*\*32 elements; shape \(65536, 65536\)") as info:
        _counters((2**16, 2**16))  # checked before anything is allocated
    assert "\n" not in str(info.value)
