"""Orthogonal initialization without LAPACK, so that vmapped (seed-swept) inits cannot deadlock.

flax's ``orthogonal`` draws ``Z ~ N(0, 1)^{max(n,m) x min(n,m)}``, takes ``Z = QR`` with LAPACK
and returns ``Q diag(sign(diag R))`` (Mezzadri 2007), transposed when the matrix is wide. Under
``vmap`` that QR becomes a batched LAPACK custom call that XLA:CPU runs with a parallel batch map
on its intra-op thread pool; on a 2-core machine we saw it deadlock the whole program (all
threads idle, the QR kernel waiting on a ``BlockingCounter``) in roughly half of the runs of a
4-seed sweep.

Here the same Q is computed with classical Gram-Schmidt applied twice ("twice is enough",
Giraud et al. 2005), in plain jnp ops inside a ``lax.scan`` over columns. Gram-Schmidt yields the
QR factor whose R has a positive diagonal, which is exactly ``Q diag(sign(diag R))``, so for the
same key the result equals flax's to float precision, and vmaps into ordinary batched matmuls.
Cost: O(n m^2) per matrix, once, at initialization.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


def gram_schmidt(matrix: jax.Array) -> jax.Array:
    """Orthonormalize the columns of a tall ``[n, k]`` matrix (n >= k), left to right."""

    def add_column(q, j):
        v = jax.lax.dynamic_index_in_dim(matrix, j, axis=1, keepdims=False)
        for _ in range(2):  # the second pass removes what rounding left of earlier directions
            v = v - q @ (q.T @ v)
        q = jax.lax.dynamic_update_index_in_dim(q, v / jnp.linalg.norm(v), j, axis=1)
        return q, None

    q, _ = jax.lax.scan(add_column, jnp.zeros_like(matrix), jnp.arange(matrix.shape[1]))
    return q


def orthogonal(scale: float = 1.0, column_axis: int = -1):
    """Drop-in for ``flax.linen.initializers.orthogonal`` (same distribution, same values per key)."""

    def init(key, shape, dtype=jnp.float32):
        if len(shape) < 2:
            raise ValueError(f"orthogonal initializer needs at least a 2-D shape, got {shape}")
        n_rows, n_cols = math.prod(shape) // shape[column_axis], shape[column_axis]
        tall = (max(n_rows, n_cols), min(n_rows, n_cols))
        q = gram_schmidt(jax.random.normal(key, tall, dtype))
        if n_rows < n_cols:
            q = q.T
        q = jnp.reshape(q, tuple(np.delete(shape, column_axis)) + (shape[column_axis],))
        q = jnp.moveaxis(q, -1, column_axis)
        return jnp.asarray(scale, dtype) * q

    return init
