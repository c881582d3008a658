"""Threefry-2x32 keys whose hash compiles unrolled: the same random numbers, fewer CPU ops.

JAX lowers its Threefry-2x32 hash (20 rounds, Salmon et al. 2011, "Parallel random numbers: as
easy as 1, 2, 3") as a 5-iteration ``while`` loop on CPU, to keep compile times short. Inside a
rollout that steps 4 environments, every random call (policy sampling, environment resets) then
runs that loop on a handful of words, and on XLA:CPU the loop's bookkeeping (16 thunks an
iteration, 80 a call) costs far more than its arithmetic: about 40% of a random-policy CartPole
rollout (``benchmarks/ppo_profile.py`` measures it).

:func:`unrolled` re-types a key as ``threefry2x32_unrolled``, a PRNG implementation registered
with ``jax.extend.random.define_prng_impl`` whose ``split``, ``fold_in`` and ``random_bits`` follow
JAX's (partitionable) Threefry scheme exactly but compute the hash as straight-line code. Every
sampler (``uniform``, ``normal``, ``categorical``, ``permutation``, ...) therefore draws the same
bits from a re-typed key as from the original; ``tests/test_prng.py`` checks this bit for bit,
under ``jit`` and ``vmap``. Rollouts re-type their key on entry, so results do not change.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import random as jex_random

# Threefry-2x32 rotation constants (two alternating groups of four rounds) and the key-schedule
# parity constant, from Salmon et al. (2011), Table 4 / Section 4.
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def _rotate_left(x: jax.Array, bits: int) -> jax.Array:
    return jax.lax.shift_left(x, np.uint32(bits)) | jax.lax.shift_right_logical(x, np.uint32(32 - bits))


def threefry2x32(key1: jax.Array, key2: jax.Array, x1: jax.Array, x2: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The Threefry-2x32 block cipher (20 rounds) of the counter pairs ``(x1, x2)`` under the
    key ``(key1, key2)``, unrolled: five groups of four rounds, each group followed by a key
    injection ``x1 += k[s+1]``, ``x2 += k[s+2] + s + 1`` with ``k = (key1, key2, key1^key2^C)``."""
    schedule = (key1, key2, key1 ^ key2 ^ _PARITY)
    x1 = x1 + schedule[0]
    x2 = x2 + schedule[1]
    for group in range(5):
        for rotation in _ROTATIONS[group % 2]:
            x1 = x1 + x2
            x2 = _rotate_left(x2, rotation) ^ x1
        x1 = x1 + schedule[(group + 1) % 3]
        x2 = x2 + schedule[(group + 2) % 3] + np.uint32(group + 1)
    return x1, x2


def _counters(shape) -> tuple[jax.Array, jax.Array]:
    """The row-major index of every element of ``shape`` as (high, low) 32-bit words."""
    size = int(np.prod(shape, dtype=np.int64))
    if size >= 2**32:
        # The counter's high word stays zero: one 32-bit counter word covers the arrays rollouts draw.
        raise ValueError(f"unrolled keys draw arrays of fewer than 2**32 elements; shape {shape} has {size} "
                         "(valid: size < 2**32; use a standard jax.random key for larger arrays)")
    low = jax.lax.iota(np.uint32, size).reshape(shape)
    return jnp.zeros(shape, np.uint32), low


def _seed(seed: jax.Array) -> jax.Array:
    """A key from an integer seed: its (high, low) 32-bit words (high = 0 for 32-bit seeds)."""
    seed = jnp.asarray(seed)
    if seed.dtype.itemsize == 8:
        high = jax.lax.shift_right_logical(seed, jnp.asarray(32, seed.dtype)).astype(np.uint32)
        low = (seed & jnp.asarray(0xFFFFFFFF, seed.dtype)).astype(np.uint32)
    else:
        high, low = jnp.zeros((), np.uint32), seed.astype(np.uint32)
    return jnp.stack([high, low])


def _split(key: jax.Array, shape) -> jax.Array:
    high, low = threefry2x32(key[0], key[1], *_counters(tuple(shape)))
    return jnp.stack([high, low], axis=-1)


def _fold_in(key: jax.Array, data: jax.Array) -> jax.Array:
    counter = _seed(jnp.asarray(data, np.uint32))
    high, low = threefry2x32(key[0], key[1], counter[:1], counter[1:])
    return jnp.concatenate([high, low])


def _random_bits(key: jax.Array, bit_width: int, shape) -> jax.Array:
    high, low = threefry2x32(key[0], key[1], *_counters(tuple(shape)))
    if bit_width == 64:
        return jax.lax.shift_left(high.astype(np.uint64), np.uint64(32)) | low.astype(np.uint64)
    if bit_width not in (8, 16, 32):
        raise TypeError(f"random bits of width {bit_width}; valid: 8, 16, 32, 64")
    return (high ^ low).astype(f"uint{bit_width}")


UNROLLED_THREEFRY = jex_random.define_prng_impl(
    key_shape=(2,), seed=_seed, split=_split, random_bits=_random_bits, fold_in=_fold_in,
    name="threefry2x32_unrolled", tag="fru",
)


def unrolled(key: jax.Array) -> jax.Array:
    """``key`` (a typed Threefry key, any shape) re-typed to draw the same bits through the
    unrolled hash. Keys of another implementation (``rbg``, a user's own) are returned unchanged:
    only Threefry's numbers can be reproduced, and only in JAX's default partitionable scheme."""
    # Compared by name: building a reference key here would start JAX's backend at import time,
    # which jax.distributed.initialize forbids.
    if str(jax.random.key_impl(key)) != "threefry2x32" or not jax.config.jax_threefry_partitionable:
        return key
    return jax.random.wrap_key_data(jax.random.key_data(key), impl=UNROLLED_THREEFRY)
