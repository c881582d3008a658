"""PARL: bilevel policy alignment with implicit hypergradients (Chakraborty, Bedi, Koppel, Wang,
Huang, Manocha, "PARL: A Unified Framework for Policy Alignment in Reinforcement Learning from
Human Feedback", arXiv 2308.02585, 2023; reference notes: shared/reference/loss-catalog.md, A27).

The designer (upper level) chooses reward parameters ``nu``; the agent (lower level) answers with
the entropy-regularized optimal policy for the reward ``r_nu``:

    max_nu  U(theta*(nu), nu)        s.t.   theta*(nu) = argmax_theta L(theta, nu),
    L(theta, nu) = V_{r_nu}(pi_theta) + tau * (discounted) entropy of pi_theta.

The lower level is solved approximately by K steps of exact policy-gradient ascent
(:func:`solve_lower`, warm-started from the previous outer iteration's theta); the upper level
steps along the hypergradient dU/dnu obtained by implicit differentiation of the lower level's
optimality condition ``grad_theta L(theta*(nu), nu) = 0`` (:func:`implicit_hypergradient`):

    d theta*/d nu = [H]^{-1} d^2 L / (d theta d nu),        H = -d^2 L / d theta^2  (PSD at a max),
    dU/dnu        = d_nu U + (d^2 L / d nu d theta) H^{-1} d_theta U.

The inverse-Hessian-vector product ``w = H^{-1} d_theta U`` is a conjugate-gradient solve on
Hessian-vector products (forward-over-reverse ``jax.jvp`` of ``jax.grad``; no matrix is formed),
and the cross term is one vector-Jacobian product of ``nu -> grad_theta L(theta*, nu)`` with w.
The paper's A-PARL writes the same hypergradient for trajectory objectives,
``grad_nu U = E_{tau ~ pi*}[grad U + U grad_nu log pi*(tau)]``, where ``grad_nu log pi*`` is the
implicit derivative above; here the objectives are exact (tabular), so the expectation is a sum.

:func:`train_parl` runs the whole bilevel loop in one ``lax.scan`` (jittable, vmappable over
problem instances, initial parameters and hyperparameters). Two known-answer problems come with
the module:

* a softmax bandit with linear reward ``r_nu(a) = phi(a)^T nu`` (:func:`bandit_objectives`), whose
  lower optimum is ``softmax(Phi nu / tau)`` and whose upper optimum (cross-entropy to a target
  behaviour) is moment matching ``Phi^T (p_target - pi*) / tau = ridge nu``;
* grid-world goal design (:func:`grid_design`): one reward weight per cell, the designer wants the
  agent to be in a target cell at a horizon T.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxpg.algos.trainer import all_finite
from jaxpg.algos.validation import NONNEGATIVE, POSITIVE, POSITIVE_INT, UNIT, Interval, check_value
from jaxpg.envs.tabular import TabularParams
from jaxpg.optim.gns import conjugate_gradient

# objective(theta, nu) -> scalar to maximize; theta and nu are pytrees.
Objective = Callable[[Any, Any], jax.Array]


# ---- the hypergradient ------------------------------------------------------------------------
class HypergradientInfo(NamedTuple):
    cg_iterations: jax.Array  # CG iterations that changed the solution
    cg_residual: jax.Array  # ||b - (H + damping I) w|| / ||b||, b = d_theta U
    lower_grad_norm: jax.Array  # ||grad_theta L(theta_star, nu)||: how stationary theta_star is


def implicit_hypergradient(lower_objective: Objective, upper_objective: Objective, theta_star: Any, nu: Any, *,
                           num_cg_iters: int = 50, damping: float = 0.0,
                           tol: float = 1e-6) -> tuple[Any, HypergradientInfo]:
    """``dU/dnu`` at the lower solution ``theta_star`` by the implicit function theorem.

    With ``L`` the lower objective (maximized over theta) and ``U`` the upper one (maximized over
    nu), differentiating ``grad_theta L(theta*(nu), nu) = 0`` in nu gives
    ``d theta*/d nu = H^{-1} d^2 L / (d theta d nu)`` with ``H = -d^2 L / d theta^2`` (the
    Hessian of the *negative* lower objective: positive semi-definite at a maximum, as CG needs),
    hence

        dU/dnu = d_nu U + (d^2 L / d nu d theta) w,      (H + damping I) w = d_theta U.

    ``w`` comes from ``num_cg_iters`` iterations of :func:`jaxpg.optim.gns.conjugate_gradient` on
    the products ``v -> H v + damping v`` (``H v`` = minus a forward-over-reverse ``jax.jvp`` of
    ``jax.grad``), stopped early once the relative residual is below ``tol``. The cross term is one
    ``jax.vjp`` of ``nu -> grad_theta L(theta_star, nu)`` applied to w. Both objectives see the
    same ``(theta_star, nu)``; the result is a pytree shaped like ``nu``. All derivatives are taken
    at ``theta_star`` as given: if it is not stationary (``info.lower_grad_norm``), the result is
    the implicit gradient at an approximate solution, which the paper's analysis bounds by the
    lower-level error.

    **The singular directions of softmax policies.** ``pi = softmax(theta)`` (per state) is unchanged
    by adding a constant to the logits, so ``H`` is singular along those directions (one per state)
    and no plain inverse exists. ``damping = 0`` (the default) is still exact, for two reasons that
    hold whenever both objectives depend on theta only through the policy: (i) the right-hand side
    ``d_theta U`` is orthogonal to the null space (U is invariant along it), so the system is
    consistent and CG from ``w = 0`` stays in the range of H (its Krylov space) and converges to
    the minimum-norm solution ``H^+ d_theta U``; (ii) the cross term annihilates the null space:
    for a null direction n, ``n^T d^2 L / (d theta d nu) = d_nu (n . grad_theta L) = 0`` because L
    is invariant along n for every nu, so whatever component rounding leaves along n does not
    reach the hypergradient. (Checked in tests/test_parl.py against the dense formula with the
    pseudo-inverse, against the logits shifted by a constant, and against finite differences.)
    ``damping > 0`` solves ``(H + damping I) w = b`` instead: a bias of order
    ``damping / lambda_min``, where ``lambda_min`` (H's smallest nonzero eigenvalue) is about
    ``tau * occupancy(s) * min_a pi(a|s)`` and so tiny for peaked policies: on the 6-armed bandit with
    tau = 1 a damping of 1e-3 already changed the hypergradient by up to twice its size. Damping is
    for iterates far from stationary, where H may be indefinite (CG freezes at the first
    non-positive curvature). ``info.cg_residual`` is relative to ``||d_theta U||``, which vanishes
    at the bilevel optimum, so late in training it can read large while the solve is harmless.
    """
    check_value("num_cg_iters", num_cg_iters, POSITIVE_INT)
    check_value("damping", damping, NONNEGATIVE)
    check_value("tol", tol, NONNEGATIVE)

    def lower_grad(theta, nu_):
        return jax.grad(lower_objective)(theta, nu_)

    g_theta_u, g_nu_u = jax.grad(upper_objective, argnums=(0, 1))(theta_star, nu)
    # Linearize grad_theta L once in theta: every CG iteration is then one (cheap) jvp.
    g_lower, hvp_lower = jax.linearize(lambda t: lower_grad(t, nu), theta_star)

    def matvec(v):
        return jax.tree.map(lambda hv, vi: -hv + damping * vi, hvp_lower(v), v)

    w, cg_info = conjugate_gradient(matvec, g_theta_u, num_cg_iters, tol)
    _, cross_vjp = jax.vjp(lambda n: lower_grad(theta_star, n), nu)
    (cross,) = cross_vjp(w)
    hypergrad = jax.tree.map(jnp.add, g_nu_u, cross)
    return hypergrad, HypergradientInfo(cg_info.iterations, cg_info.relative_residual, optax.tree.norm(g_lower))


def dense_hypergradient(lower_objective: Objective, upper_objective: Objective, theta_star: jax.Array,
                        nu: jax.Array, damping: float = 0.0) -> jax.Array:
    """The same formula with dense matrices (``jax.hessian``, ``jax.jacobian``), for tests and for
    tiny problems: ``d_nu U + C^T pinv(H + damping I) d_theta U`` with ``C = d^2 L/(d theta d nu)``.
    Flat arrays only. The pseudo-inverse gives the minimum-norm solution on softmax's null space."""
    h = -jax.hessian(lower_objective, argnums=0)(theta_star, nu)
    h = h + damping * jnp.eye(h.shape[0], dtype=h.dtype)
    cross = jax.jacobian(jax.grad(lower_objective, argnums=0), argnums=1)(theta_star, nu)  # [theta, nu]
    g_theta_u, g_nu_u = jax.grad(upper_objective, argnums=(0, 1))(theta_star, nu)
    return g_nu_u + cross.T @ (jnp.linalg.pinv(h, hermitian=True) @ g_theta_u)


# ---- the lower level --------------------------------------------------------------------------
class LowerInfo(NamedTuple):
    objective: jax.Array  # L(theta_K, nu)
    grad_norm: jax.Array  # ||grad_theta L(theta_K, nu)||


def solve_lower(lower_objective: Objective, theta0: Any, nu: Any, *, num_steps: int,
                step_size: float) -> tuple[Any, LowerInfo]:
    """K = ``num_steps`` steps of exact policy-gradient ascent ``theta <- theta + eta grad_theta L``
    in one ``lax.scan``, from ``theta0`` (warm start: pass the previous solution).

    For entropy-regularized softmax policies this converges linearly to the unique regularized
    optimum (Mei, Xiao, Szepesvari, Schuurmans, ICML 2020) for ``eta`` below the inverse
    smoothness constant.
    """
    check_value("num_steps (K)", num_steps, POSITIVE_INT)
    check_value("step_size", step_size, POSITIVE)
    grad_fn = jax.grad(lower_objective)

    def step(theta, _):
        g = grad_fn(theta, nu)
        return jax.tree.map(lambda t, gi: t + step_size * gi, theta, g), None

    theta, _ = jax.lax.scan(step, theta0, None, length=num_steps)
    value, g = jax.value_and_grad(lower_objective)(theta, nu)
    return theta, LowerInfo(value, optax.tree.norm(g))


# ---- the bilevel trainer ----------------------------------------------------------------------
class PARLState(NamedTuple):
    theta: Any  # the lower solution for nu (re-solved after the last upper step)
    nu: Any
    opt_state: Any


def train_parl(lower_objective: Objective, upper_objective: Objective, theta0: Any, nu0: Any, *,
               num_outer: int, num_inner: int, inner_step_size: float, upper_lr: float = 0.1,
               upper_optimizer: optax.GradientTransformation | None = None, num_cg_iters: int = 50,
               damping: float = 0.0, tol: float = 1e-6,
               metrics_fn: Callable[[Any, Any], dict] | None = None) -> tuple[PARLState, dict]:
    """The bilevel loop, ``num_outer`` iterations in one ``lax.scan``. Iteration i:

    1. ``theta_i = solve_lower(L, theta_{i-1}, nu_i, K = num_inner)``  (warm start);
    2. ``h_i = implicit_hypergradient(L, U, theta_i, nu_i)``;
    3. ``nu_{i+1} = nu_i + upper_lr h_i`` (gradient *ascent* on U), or, with an optax
       ``upper_optimizer`` (which minimizes), its update of ``-h_i``.

    Returns the final state (theta re-solved by K more steps for the last nu, so that the pair is
    consistent) and per-iteration metrics, arrays [num_outer], measured at ``(theta_i, nu_i)``:
    ``upper`` (U), ``lower`` (L), ``hypergrad_norm``, ``cg_residual``, ``cg_iterations``,
    ``lower_grad_norm`` (stationarity of theta_i), ``finite`` (theta, nu, h, U and L all finite),
    plus whatever ``metrics_fn(theta_i, nu_i)`` returns (a dict of scalars). Deterministic (the
    objectives are exact); jit it with the objectives closed over, vmap it over problem data,
    ``theta0``, ``nu0`` or ``upper_lr``.
    """
    check_value("num_outer", num_outer, POSITIVE_INT)
    check_value("num_inner (K)", num_inner, POSITIVE_INT)
    check_value("inner_step_size", inner_step_size, POSITIVE)
    check_value("upper_lr", upper_lr, NONNEGATIVE)
    check_value("num_cg_iters", num_cg_iters, POSITIVE_INT)
    check_value("damping", damping, NONNEGATIVE)
    check_value("tol", tol, NONNEGATIVE)
    if upper_optimizer is None:
        upper_optimizer = optax.sgd(upper_lr)

    def outer(state: PARLState, _):
        theta, lower_info = solve_lower(lower_objective, state.theta, state.nu, num_steps=num_inner,
                                        step_size=inner_step_size)
        hypergrad, info = implicit_hypergradient(lower_objective, upper_objective, theta, state.nu,
                                                 num_cg_iters=num_cg_iters, damping=damping, tol=tol)
        upper = upper_objective(theta, state.nu)
        # optax minimizes: feed it -dU/dnu so that its step ascends U.
        updates, opt_state = upper_optimizer.update(jax.tree.map(jnp.negative, hypergrad), state.opt_state, state.nu)
        nu = optax.apply_updates(state.nu, updates)
        metrics = {"upper": upper, "lower": lower_info.objective, "hypergrad_norm": optax.tree.norm(hypergrad),
                   "cg_residual": info.cg_residual, "cg_iterations": info.cg_iterations,
                   "lower_grad_norm": lower_info.grad_norm,
                   "finite": all_finite((theta, state.nu, hypergrad, upper, lower_info.objective))}
        if metrics_fn is not None:
            metrics.update(metrics_fn(theta, state.nu))
        return PARLState(theta, nu, opt_state), metrics

    state = PARLState(theta0, nu0, upper_optimizer.init(nu0))
    state, metrics = jax.lax.scan(outer, state, None, length=num_outer)
    theta, _ = solve_lower(lower_objective, state.theta, state.nu, num_steps=num_inner, step_size=inner_step_size)
    return state._replace(theta=theta), metrics


# ---- known answer 1: the softmax bandit with a linear reward ----------------------------------
def bandit_objectives(features: jax.Array, target: jax.Array, tau: float,
                      ridge: float = 0.0) -> tuple[Objective, Objective]:
    """``(L, U)`` of the bandit: ``theta`` in R^A (logits), ``nu`` in R^d, ``Phi = features`` [A, d].

        L(theta, nu) = pi^T Phi nu + tau H(pi),                      pi = softmax(theta),
        U(theta, nu) = sum_a p_target(a) log pi(a) - (ridge / 2) ||nu||^2.

    The lower optimum is ``pi*(nu) = softmax(Phi nu / tau)`` (:func:`bandit_optimal_logits`); then
    ``dU/dnu = Phi^T (p_target - pi*) / tau - ridge nu`` (:func:`bandit_exact_hypergradient`), and U
    is concave in nu (a log-partition is convex), so the bilevel optimum is moment matching
    ``Phi^T (p_target - pi*) = tau ridge nu``; with ``Phi = I`` and no ridge, ``pi* = p_target``,
    i.e. ``nu* = tau log p_target + c 1``.
    """
    check_value("tau", tau, POSITIVE)
    check_value("ridge", ridge, NONNEGATIVE)

    def lower(theta, nu):
        log_pi = jax.nn.log_softmax(theta)
        pi = jnp.exp(log_pi)
        return pi @ (features @ nu) - tau * (pi @ log_pi)

    def upper(theta, nu):
        return target @ jax.nn.log_softmax(theta) - 0.5 * ridge * (nu @ nu)

    return lower, upper


def random_bandit(key: jax.Array, num_actions: int = 6, num_features: int | None = None, *,
                  concentration: float = 3.0, nu_scale: float = 0.5) -> tuple[jax.Array, jax.Array, jax.Array]:
    """A random bandit instance ``(features [A, d], target [A], nu0 [d])``: ``Phi = I`` when
    ``num_features`` is None (then ``d = A``), else ``N(0, 1/d)`` features; a Dirichlet(concentration)
    target behaviour; ``nu0 ~ N(0, nu_scale^2)`` (the designer's starting reward)."""
    check_value("num_actions", num_actions, Interval(2, integer=True))
    k_phi, k_target, k_nu = jax.random.split(key, 3)
    if num_features is None:
        features = jnp.eye(num_actions)
    else:
        check_value("num_features", num_features, POSITIVE_INT)
        features = jax.random.normal(k_phi, (num_actions, num_features)) / np.sqrt(num_features)
    target = jax.random.dirichlet(k_target, jnp.full((num_actions,), concentration))
    nu0 = nu_scale * jax.random.normal(k_nu, (features.shape[1],))
    return features, target, nu0


def bandit_optimal_logits(features: jax.Array, nu: jax.Array, tau: float) -> jax.Array:
    """The lower level's closed form: ``theta*(nu) = Phi nu / tau`` (up to a constant)."""
    return features @ nu / tau


def bandit_exact_hypergradient(features, target, nu, tau, ridge=0.0) -> jax.Array:
    """``d/dnu U(theta*(nu), nu) = Phi^T (p_target - softmax(Phi nu / tau)) / tau - ridge nu``;
    zero exactly at the bilevel optimum."""
    pi = jax.nn.softmax(bandit_optimal_logits(features, nu, tau))
    return features.T @ (target - pi) / tau - ridge * nu


# ---- known answer 2: grid-world goal design ---------------------------------------------------
MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))  # up, down, left, right; into a wall or the edge: stay


@struct.dataclass
class GridDesign:
    """A designer's grid: the agent's reward is ``nu[s]`` per step spent in cell s.

    ``mdp.transitions[s, a, s']`` are the (slippery) moves, ``mdp.initial`` is the start of the
    target behaviour and ``mdp.max_steps_in_episode`` its horizon T (``mdp.rewards`` is unused:
    the designer's ``nu`` is the reward). The lower level maximizes the entropy-regularized
    discounted value from ``rho`` (uniform over the free cells: the soft-optimal policy does not
    depend on a full-support rho, and a full-support rho keeps every cell's gradient alive).
    """

    mdp: TabularParams
    rho: jax.Array  # [S], the lower objective's initial distribution
    goal: jax.Array  # [S] one-hot target cell
    free: jax.Array  # [S] 1 for free cells, 0 for walls
    gamma: float
    tau: float
    ridge: float
    horizon: int = struct.field(pytree_node=False)
    size: int = struct.field(pytree_node=False)


def grid_design(size: int = 5, *, walls: tuple = (), start: tuple = (0, 0), goal: tuple | None = None,
                slip: float = 0.1, gamma: float = 0.9, tau: float = 0.1, horizon: int = 12,
                ridge: float = 1e-3) -> GridDesign:
    """A ``size x size`` grid, 4 moves; with probability ``slip`` the move is uniformly random.

    ``walls``: cells ``(row, col)`` the agent cannot enter. ``goal`` defaults to the corner
    opposite to ``start``.
    """
    check_value("size", size, Interval(2, integer=True))
    check_value("horizon", horizon, POSITIVE_INT)
    check_value("slip", slip, UNIT)
    check_value("gamma", gamma, Interval(0.0, 1.0, high_open=True))
    check_value("tau", tau, POSITIVE)
    check_value("ridge", ridge, NONNEGATIVE)
    goal = (size - 1, size - 1) if goal is None else tuple(goal)
    wall_set = {tuple(w) for w in walls}
    for name, cell in (("start", tuple(start)), ("goal", goal)):
        if not (0 <= cell[0] < size and 0 <= cell[1] < size) or cell in wall_set:
            raise ValueError(f"{name} {cell} must be a free cell of the {size}x{size} grid (0 <= row, col < {size})")
    num = size * size
    index = lambda r, c: r * size + c  # noqa: E731
    deterministic = np.zeros((num, len(MOVES), num))
    for r in range(size):
        for c in range(size):
            for a, (dr, dc) in enumerate(MOVES):
                nr, nc = r + dr, c + dc
                blocked = not (0 <= nr < size and 0 <= nc < size) or (nr, nc) in wall_set
                deterministic[index(r, c), a, index(r, c) if blocked else index(nr, nc)] = 1.0
    transitions = (1.0 - slip) * deterministic + slip * deterministic.mean(1, keepdims=True)
    free = np.ones(num)
    for w in wall_set:
        free[index(*w)] = 0.0
    initial = np.zeros(num)
    initial[index(*start)] = 1.0
    goal_vec = np.zeros(num)
    goal_vec[index(*goal)] = 1.0
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    mdp = TabularParams(f32(transitions), jnp.zeros((num, len(MOVES)), jnp.float32), f32(initial),
                        jnp.asarray(horizon, jnp.int32))
    return GridDesign(mdp, f32(free / free.sum()), f32(goal_vec), f32(free), gamma, tau, ridge, horizon, size)


def _policy(theta: jax.Array) -> tuple[jax.Array, jax.Array]:
    log_pi = jax.nn.log_softmax(theta, axis=-1)
    return jnp.exp(log_pi), log_pi


def grid_soft_value(design: GridDesign, theta: jax.Array, nu: jax.Array) -> jax.Array:
    """``L(theta, nu) = (1 - gamma) rho^T V``, ``V = (I - gamma P_pi)^{-1} (nu + tau H(pi(.|s)))``:
    the exact entropy-regularized discounted value (normalized to reward units) by a linear solve.
    ``theta`` [S, 4] logits, ``nu`` [S] reward per cell (wall cells are never visited)."""
    pi, log_pi = _policy(theta)
    p_pi = jnp.einsum("sa,sap->sp", pi, design.mdp.transitions)
    reward = nu - design.tau * (pi * log_pi).sum(-1)
    eye = jnp.eye(p_pi.shape[0], dtype=p_pi.dtype)
    values = jnp.linalg.solve(eye - design.gamma * p_pi, reward)
    return (1.0 - design.gamma) * design.rho @ values


def grid_target_probability(design: GridDesign, theta: jax.Array) -> jax.Array:
    """``P(s_T = goal)`` from the start cell under ``pi_theta``: T steps of ``d <- d P_pi``."""
    pi, _ = _policy(theta)
    p_pi = jnp.einsum("sa,sap->sp", pi, design.mdp.transitions)
    d = jax.lax.fori_loop(0, design.horizon, lambda _, d: d @ p_pi, design.mdp.initial.astype(p_pi.dtype))
    return d @ design.goal


def grid_objectives(design: GridDesign) -> tuple[Objective, Objective]:
    """``(L, U)`` of goal design: L the soft value (:func:`grid_soft_value`),
    ``U(theta, nu) = P(s_T = goal) - (ridge / 2) ||nu||^2`` (the ridge keeps the designed reward
    finite: the probability alone saturates only as the rewards diverge)."""

    def lower(theta, nu):
        return grid_soft_value(design, theta, nu)

    def upper(theta, nu):
        return grid_target_probability(design, theta) - 0.5 * design.ridge * (nu @ nu)

    return lower, upper


def grid_soft_optimal_logits(design: GridDesign, nu: jax.Array, num_iters: int = 400) -> jax.Array:
    """The lower optimum by soft value iteration (a gamma-contraction): ``theta* = Q_soft / tau``
    with ``Q(s, a) = nu[s] + gamma sum_s' P(s'|s, a) V(s')``, ``V(s) = tau logsumexp_a Q(s, a)/tau``.
    An oracle for tests (error ~ gamma^num_iters), independent of the PG solver."""
    check_value("num_iters", num_iters, POSITIVE_INT)

    def q_of(v):
        return nu[:, None] + design.gamma * jnp.einsum("sap,p->sa", design.mdp.transitions, v)

    def body(_, v):
        return design.tau * jax.nn.logsumexp(q_of(v) / design.tau, axis=-1)

    v = jax.lax.fori_loop(0, num_iters, body, jnp.zeros_like(nu))
    return q_of(v) / design.tau


def grid_goal_design(design: GridDesign, nu0: jax.Array, upper_optimizer: optax.GradientTransformation,
                     **train_kwargs) -> tuple[PARLState, dict, jax.Array]:
    """Goal design on ``design`` from reward weights ``nu0`` [cells], by :func:`train_parl` with
    ``upper_optimizer`` (other options: ``train_kwargs``): ``(state, metrics, designed)``.

    The lower level starts from the uniform policy (zero logits); ``metrics["p"]`` is the target
    probability of the trained policy per outer iteration; ``designed`` judges the final reward
    by the exact soft-optimal policy for it (:func:`grid_soft_optimal_logits`), not by the
    trainer's own lower iterate.
    """
    lower, upper = grid_objectives(design)
    theta0 = jnp.zeros(design.mdp.rewards.shape)  # [S, A] logits
    state, metrics = train_parl(lower, upper, theta0, nu0, upper_optimizer=upper_optimizer,
                                metrics_fn=lambda th, nu: {"p": grid_target_probability(design, th)}, **train_kwargs)
    designed = grid_target_probability(design, grid_soft_optimal_logits(design, state.nu))
    return state, metrics, designed
