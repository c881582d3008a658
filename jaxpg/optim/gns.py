"""Gradient-regularized Newton steps with the regularization of gradient-normalized smoothness
(Semenov, Jaggi, Doikov, "Gradient-Normalized Smoothness for Optimization with Approximate
Hessians", arXiv 2506.13710, 2025; ICLR 2026; code: github.com/epfml/grad-norm-smooth).

The method (the paper's Algorithm 1) steps with an approximate Hessian ``H_k`` (exact, Fisher,
Gauss-Newton, ...) regularized in proportion to the gradient norm:

    x_{k+1} = x_k - d_k,    d_k = (H_k + lambda_k I)^{-1} g_k,    lambda_k = ||g_k|| / gamma_k,

where ``gamma_k`` estimates the gradient-normalized smoothness at x_k: the radius of the ball
around x_k in which the linearization ``g_k + H_k (y - x_k)`` approximates the gradient field
``grad f(y)`` to within a fixed fraction of ``||g_k||``. The paper finds ``gamma_k`` by an
adaptive search: a trial step is accepted when

    f(x_k) - f(x_k - d_k) >= ||grad f(x_k - d_k)||^2 / (8 lambda_k)          (:func:`gns_accepts`)

and then ``gamma`` doubles for the next iteration; otherwise ``gamma`` halves and the step is
recomputed (:func:`gns_adapt_gamma`). For a Hessian that is L-Lipschitz, gamma is of order
``sqrt(||g|| / L)``, so ``lambda_k = sqrt(L ||g_k||)``: the gradient-regularized Newton method of
Mishchenko (2023) and Doikov & Nesterov (2024), the ``lambda ~ ||g||^{1/2}`` of the reference notes
(A36). With the exact Hessian of a quadratic gamma is unbounded (the linearization is exact),
lambda -> 0 and the step is one Newton step.

Here the linear system is solved by conjugate gradient on curvature-vector products supplied by
the caller (no matrix is formed), so ``H`` may be a Hessian-vector product
(``jaxpg.estimators.hessian_vector_product``) or a Fisher-vector product
(:func:`fisher_vector_product`); with the Fisher the step is a damped natural gradient (Kakade
2001) whose damping follows the gradient norm. CG needs ``H + lambda I`` positive definite:
Fisher and Gauss-Newton matrices are positive semi-definite, so any ``lambda > 0`` works; on an
indefinite Hessian CG stops at the first direction of non-positive curvature.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

# v -> H v on parameter pytrees.
CurvatureVectorProduct = Callable[[Any], Any]


def _vdot(a: Any, b: Any) -> jax.Array:
    return sum((jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))), jnp.zeros((), jnp.float32))


def _axpy(alpha, x: Any, y: Any) -> Any:
    """``alpha x + y`` leafwise."""
    return jax.tree.map(lambda a, b: (alpha * a + b).astype(b.dtype), x, y)


def _where(cond, a: Any, b: Any) -> Any:
    return jax.tree.map(lambda x, y: jnp.where(cond, x, y), a, b)


class CGInfo(NamedTuple):
    iterations: jax.Array  # iterations that changed the solution
    relative_residual: jax.Array  # ||b - A x|| / ||b|| (0 when b = 0)


def conjugate_gradient(matvec: CurvatureVectorProduct, b: Any, num_iters: int = 10, tol: float = 1e-6,
                       x0: Any = None) -> tuple[Any, CGInfo]:
    """Solve ``A x = b`` for symmetric positive definite ``A`` given as ``matvec`` on pytrees.

    Hestenes-Stiefel CG for a fixed ``num_iters`` iterations (``lax.fori_loop``: jittable and
    reverse-differentiable, unlike a data-dependent while loop); once the residual falls below
    ``tol * ||b||``, or a direction of non-positive curvature appears, the iterate is frozen, so
    the remaining iterations cost a product each but change nothing. In exact arithmetic CG is
    exact after ``dim`` iterations.
    """
    if not isinstance(num_iters, int) or isinstance(num_iters, bool) or num_iters < 1:
        raise ValueError(f"num_iters must be an integer >= 1 (CG iterations), got {num_iters!r}")
    if x0 is None:
        x = jax.tree.map(jnp.zeros_like, b)
        r = b
    else:
        x = x0
        r = jax.tree.map(lambda bi, ai: bi - ai, b, matvec(x0))
    rs = _vdot(r, r)
    threshold = jnp.square(tol) * _vdot(b, b)

    def body(_, carry):
        x, r, p, rs, done, count = carry
        ap = matvec(p)
        curvature = _vdot(p, ap)
        done = done | (rs <= threshold) | (curvature <= 0)
        # Guarded divisions: a frozen iteration must not produce inf/NaN (nor NaN gradients).
        alpha = jnp.where(done, 0.0, rs / jnp.where(done, 1.0, curvature))
        x = _axpy(alpha, p, x)
        r = _axpy(-alpha, ap, r)
        rs_new = _vdot(r, r)
        beta = jnp.where(done, 0.0, rs_new / jnp.where(rs > 0, rs, 1.0))
        p = _where(done, p, _axpy(beta, p, r))
        return x, r, p, jnp.where(done, rs, rs_new), done, count + jnp.where(done, 0, 1)

    carry = (x, r, r, rs, jnp.zeros((), bool), jnp.zeros((), jnp.int32))
    x, r, _, rs, _, count = jax.lax.fori_loop(0, num_iters, body, carry)
    b_norm2 = _vdot(b, b)
    residual = jnp.sqrt(_vdot(r, r) / jnp.where(b_norm2 > 0, b_norm2, 1.0))
    return x, CGInfo(count, residual)


def _check_lam(lam) -> None:
    if isinstance(lam, (int, float)) and not lam >= 0:
        raise ValueError(f"lam must be >= 0 (the regularization of H + lam I), got {lam!r}")


def gns_lambda(grad: Any, gamma) -> jax.Array:
    """The paper's regularization ``lambda = ||g|| / gamma`` (``gamma``: the gradient-normalized
    smoothness radius, or its current estimate); ``gamma = sqrt(||g|| / L)`` gives ``sqrt(L ||g||)``."""
    if isinstance(gamma, (int, float)) and not gamma > 0:
        raise ValueError(f"gamma must be > 0 (a radius), got {gamma!r}")
    return optax.tree.norm(grad) / gamma


def gns_direction(grad: Any, curvature_vector_product: CurvatureVectorProduct, lam, num_cg_iters: int = 10,
                  tol: float = 1e-6) -> Any:
    """``d = (H + lam I)^{-1} g`` by CG on ``v -> H v`` (pytrees shaped like ``grad``).

    The step of a minimizer is ``x - d`` (for a step size ``eta``, ``x - eta d``). ``lam = 0`` is a
    plain Newton step and needs ``H`` positive definite.
    """
    _check_lam(lam)

    def matvec(v):
        return jax.tree.map(lambda hv, vi: hv + lam * vi, curvature_vector_product(v), v)

    return conjugate_gradient(matvec, grad, num_cg_iters, tol)[0]


def gns_accepts(loss, new_loss, new_grad: Any, lam) -> jax.Array:
    """Algorithm 1's acceptance test of a trial step:
    ``f(x) - f(x_new) >= ||grad f(x_new)||^2 / (8 lambda)``."""
    return loss - new_loss >= _vdot(new_grad, new_grad) / (8.0 * lam)


def gns_adapt_gamma(gamma, accepted):
    """Algorithm 1's search on gamma: double it after an accepted step (try a larger radius next
    time), halve it after a rejected one (and recompute the step with the larger lambda)."""
    return jnp.where(accepted, 2.0 * gamma, 0.5 * gamma)


class ScaleByGNSState(NamedTuple):
    lam: jax.Array  # the last step's lambda
    cg_residual: jax.Array  # the last solve's relative residual


def scale_by_gns(curvature_vector_product_fn: Callable[..., Any] | None = None, gamma: float = 1.0,
                 num_cg_iters: int = 10, tol: float = 1e-6) -> optax.GradientTransformationExtraArgs:
    """Precondition the updates ``g`` into ``(H + lambda I)^{-1} g`` with ``lambda = ||g|| / gamma``.

    The curvature comes per step: ``tx.update(grads, state, params, hvp=fn)`` with ``fn(v) = H v``
    (e.g. :func:`fisher_vector_product` on this step's batch: natural policy gradient), or, when
    no ``hvp`` is passed, ``curvature_vector_product_fn(params, v, **extra_args)`` with the other
    extra arguments of the update. ``optax.chain`` forwards the extra arguments, so
    ``optax.chain(scale_by_gns(...), optax.scale_by_learning_rate(eta))`` is the damped step
    ``x <- x - eta d`` (``eta = 1``: the paper's step). ``gamma`` is fixed here (an optax update
    cannot evaluate the loss at a trial point); the adaptive search of the paper is
    :func:`gns_accepts` / :func:`gns_adapt_gamma` in a caller's loop. The state records the last
    lambda and CG residual for diagnostics.
    """
    if isinstance(gamma, (int, float)) and not gamma > 0:
        raise ValueError(f"gamma must be > 0 (a radius), got {gamma!r}")

    def init(params):
        del params
        return ScaleByGNSState(jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32))

    def update(updates, state, params=None, *, hvp=None, **extra_args):
        del state
        if hvp is None:
            if curvature_vector_product_fn is None:
                raise ValueError("scale_by_gns needs the curvature: pass update(..., hvp=fn) or "
                                 "scale_by_gns(curvature_vector_product_fn=fn) (valid: one of them)")
            if params is None:
                raise ValueError("scale_by_gns with curvature_vector_product_fn needs params: "
                                 "update(updates, state, params)")

            def hvp(v):
                return curvature_vector_product_fn(params, v, **extra_args)

        lam = gns_lambda(updates, gamma)

        def matvec(v):
            return jax.tree.map(lambda hv, vi: hv + lam * vi, hvp(v), v)

        direction, info = conjugate_gradient(matvec, updates, num_cg_iters, tol)
        return direction, ScaleByGNSState(lam.astype(jnp.float32), info.relative_residual.astype(jnp.float32))

    return optax.GradientTransformationExtraArgs(init, update)


def fisher_vector_product(log_prob_fn: Callable[..., jax.Array], params: Any, batch_args: tuple = (),
                          weights: jax.Array | None = None) -> CurvatureVectorProduct:
    """``v -> F v`` with ``F = sum_i w_i grad log pi_i grad log pi_i^T``, never forming F.

    ``log_prob_fn(params, *batch_args)`` returns log-probabilities ``log pi_i`` of any shape (e.g.
    ``log pi(a_t | s_t)`` of sampled actions, or of every action of a softmax policy). With
    ``J = d log pi / d params`` (one row per entry), ``F v = J^T (w * (J v))``: one forward
    product through the linearization and its transpose. ``weights`` default to ``1/N`` (the
    empirical Fisher of N actions sampled from pi); pass ``pi(a|s) / num_states`` over all actions
    for the exact expectation ``E_s E_{a ~ pi}[grad log pi grad log pi^T]``. Weights are constants.
    The parameters are linearized once, so each product costs one jvp and one transposed jvp.
    """
    if not isinstance(batch_args, tuple):
        raise ValueError("batch_args must be a tuple of positional arguments of log_prob_fn, "
                         f"got {type(batch_args).__name__}")

    def flat_log_probs(p):
        return log_prob_fn(p, *batch_args).reshape(-1)

    log_probs, jvp_fn = jax.linearize(flat_log_probs, params)
    vjp_fn = jax.linear_transpose(jvp_fn, params)
    if weights is None:
        w = jnp.full(log_probs.shape, 1.0 / max(log_probs.size, 1), log_probs.dtype)
    else:
        w = jax.lax.stop_gradient(jnp.asarray(weights, log_probs.dtype)).reshape(-1)
        if w.shape != log_probs.shape:
            raise ValueError(f"weights have {w.size} entries but log_prob_fn returns {log_probs.size}")

    def fvp(v):
        return vjp_fn(w * jvp_fn(v))[0]

    return fvp
