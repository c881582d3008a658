"""SinkGD: stateless gradient descent on Sinkhorn-normalized gradients (Scetbon, Ma, Gong, Meeds,
"Gradient Multi-Normalization for Stateless and Scalable LLM Training", arXiv 2502.06742, 2025).

The paper normalizes each matrix gradient with respect to two norms at once, alternately
(its SR-Sinkhorn procedure, Algorithm 3). For a gradient ``G`` in R^{m x n}, with
``Q(X) = diag(||X_{1,:}||, ..., ||X_{m,:}||)`` (row l2 norms) and
``R(X) = diag(||X_{:,1}||, ..., ||X_{:,n}||)`` (column l2 norms), starting from ``X_0 = G``,
for l = 1..L (L = ``num_iters``, 5 by default):

    Y_l = sqrt(n) Q(X_{l-1})^{-1} X_{l-1}          rows first: every row norm becomes sqrt(n)
    X_l = sqrt(m) Y_l R(Y_l)^{-1}                  then columns: every column norm becomes sqrt(m)

and the step is ``W <- W - eta X_L``; no moments, no state. The alternation is Sinkhorn-Knopp
scaling of the nonnegative matrix ``X * X`` to row sums n and column sums m (both total mn), so
for a gradient without zero entries it converges to the unique diagonal rescaling
``D_1 G D_2`` with every row norm sqrt(n), every column norm sqrt(m) and Frobenius norm
sqrt(mn), i.e. unit root-mean-square entries. After any number of iterations the column norms
are exactly sqrt(m) (the column step comes last); the row norms approach sqrt(n).

Because the result has unit RMS whatever the gradient's scale, the learning rate sets the
per-entry step size as in Adam (Adam's update also has entries of order 1), not as in SGD, and a
global-norm clip placed before SinkGD leaves the step unchanged (kept only for a uniform
interface: a clip cannot change a scale-free normalization).

Leaves that are not matrices. The paper defines the normalization for matrices only and gives no
rule for vectors or scalars. Here:

* leaves with more than two axes are reshaped to ``[prod(leading axes), last axis]``;
* leaves with fewer than two axes of size > 1 (biases, log-std vectors, scalars, and kernels
  shaped ``[n, 1]`` or ``[1, n]`` such as a value head's) follow ``nonmatrix``:

  - ``"rms"`` (default): ``x sqrt(size) / ||x||``, unit RMS, i.e. the row step alone. It keeps the
    gradient's direction (a descent direction) while giving the same per-entry scale as the
    matrix leaves, and keeps the optimizer stateless (an Adam fallback would not).
  - ``"sign"``: ``sign(x)``, which is what SR-Sinkhorn itself converges to on a 1 x n matrix
    (each column is one entry, normalized to magnitude 1): signSGD for those leaves.

A zero gradient (or a zero row/column) stays zero: norms are floored at ``eps`` instead of being
added to it, so the fixed point is exact and an all-zero row does not become NaN.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax

NONMATRIX_RULES = ("rms", "sign")


def _check(num_iters, nonmatrix) -> None:
    if not isinstance(num_iters, int) or isinstance(num_iters, bool) or num_iters < 1:
        raise ValueError(f"num_iters must be an integer >= 1 (SR-Sinkhorn iterations), got {num_iters!r}")
    if nonmatrix not in NONMATRIX_RULES:
        raise ValueError(f"unknown nonmatrix rule {nonmatrix!r}; valid choices: {', '.join(NONMATRIX_RULES)}")


def sinkhorn_normalize(matrix: jax.Array, num_iters: int = 5, eps: float = 1e-8) -> jax.Array:
    """SR-Sinkhorn on one matrix [m, n]: ``num_iters`` times, rows to l2 norm sqrt(n), then columns
    to l2 norm sqrt(m) (Scetbon et al. 2025, Algorithm 3). Computed in float32 at least, returned
    in the input's dtype."""
    _check(num_iters, "rms")
    if matrix.ndim != 2:
        raise ValueError(f"sinkhorn_normalize needs a matrix [m, n], got shape {matrix.shape}")
    m, n = matrix.shape
    x = matrix.astype(jnp.promote_types(matrix.dtype, jnp.float32))
    sqrt_m, sqrt_n = math.sqrt(m), math.sqrt(n)

    def one_pass(_, x):
        rows = jnp.sqrt(jnp.sum(jnp.square(x), axis=1, keepdims=True))
        x = x * (sqrt_n / jnp.maximum(rows, eps))
        cols = jnp.sqrt(jnp.sum(jnp.square(x), axis=0, keepdims=True))
        return x * (sqrt_m / jnp.maximum(cols, eps))

    # fori_loop with a static trip count lowers to a scan: jittable and reverse-differentiable
    # (a meta-gradient through a trainer's step may pass through the optimizer).
    return jax.lax.fori_loop(0, num_iters, one_pass, x).astype(matrix.dtype)


def _is_matrix(shape) -> bool:
    """At least two axes of size > 1 once the leading axes are merged."""
    return len(shape) >= 2 and math.prod(shape[:-1]) > 1 and shape[-1] > 1


def normalize_leaf(x: jax.Array, num_iters: int = 5, eps: float = 1e-8, nonmatrix: str = "rms") -> jax.Array:
    """One gradient leaf as SinkGD moves it (before the learning rate): SR-Sinkhorn for matrices
    (more than two axes: reshaped to [prod(leading), last]), the ``nonmatrix`` rule otherwise."""
    _check(num_iters, nonmatrix)
    if _is_matrix(x.shape):
        matrix = x.reshape(math.prod(x.shape[:-1]), x.shape[-1])
        return sinkhorn_normalize(matrix, num_iters, eps).reshape(x.shape)
    if nonmatrix == "sign":
        return jnp.sign(x)
    xf = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    norm = jnp.sqrt(jnp.sum(jnp.square(xf)))
    return (xf * (math.sqrt(max(x.size, 1)) / jnp.maximum(norm, eps))).astype(x.dtype)


def scale_by_sinkhorn(num_iters: int = 5, eps: float = 1e-8, nonmatrix: str = "rms") -> optax.GradientTransformation:
    """The SinkGD normalization alone (no learning rate, no sign flip): every matrix leaf through
    ``num_iters`` SR-Sinkhorn passes, other leaves by ``nonmatrix`` ("rms" or "sign"); see the
    module docstring. Stateless (``optax.EmptyState``)."""
    _check(num_iters, nonmatrix)

    def init(params):
        del params
        return optax.EmptyState()

    def update(updates, state, params=None):
        del params
        return jax.tree.map(lambda g: normalize_leaf(g, num_iters, eps, nonmatrix), updates), state

    return optax.GradientTransformation(init, update)


def sinkgd(learning_rate: optax.ScalarOrSchedule, num_iters: int = 5, eps: float = 1e-8,
           nonmatrix: str = "rms") -> optax.GradientTransformation:
    """SinkGD (Scetbon et al. 2025): ``W <- W - eta_t SR-Sinkhorn(G)``.

    Args:
      learning_rate: a float or an optax schedule ``count -> eta`` (the only state, the step
        count, then belongs to the schedule; the normalization itself keeps none).
      num_iters: SR-Sinkhorn passes L (the paper's default 5).
      eps: floor of the row, column and vector norms.
      nonmatrix: rule for leaves that are not matrices, ``"rms"`` (unit RMS) or ``"sign"``.

    Compose it like any optax optimizer, e.g.
    ``optax.chain(optax.clip_by_global_norm(0.5), sinkgd(optax.linear_schedule(1e-3, 0.0, 1000)))``.
    """
    return optax.chain(scale_by_sinkhorn(num_iters, eps, nonmatrix), optax.scale_by_learning_rate(learning_rate))
