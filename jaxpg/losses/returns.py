"""Return and advantage estimators over time-major trajectories.

All arrays are ``[T, ...]``: axis 0 is time, any trailing axes are batch axes. Both functions take
their arguments in one order, ``rewards, [values,] next_values`` positionally and the boundary
flags by keyword (``terminated=``, ``truncated=``): every argument has the same shape, so a swap
would pass any shape check; keywords make it impossible. Episode boundaries inside a segment are
given by two separate flags:

* ``terminated[t]``: the transition at ``t`` entered an absorbing state; its successor is worth 0.
* ``truncated[t]``: a time limit cut the episode at ``t``; its successor (``final_obs``) still has
  value ``next_values[t]`` and is bootstrapped.

Either flag stops credit flowing from ``t + 1`` (which belongs to the next episode) back to ``t``.
``gamma`` and ``lam`` may be traced scalars (e.g. from a vmapped hyperparameter pytree); nothing
here branches on them in Python.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

Array = chex.Array
Numeric = chex.Numeric


def _check_time_major(name: str, x: Array) -> None:
    if jnp.ndim(x) < 1:
        raise ValueError(f"{name} must have a leading time axis, got shape {jnp.shape(x)}.")


def gae(
    rewards: Array,
    values: Array,
    next_values: Array,
    *,
    terminated: Array,
    truncated: Array,
    gamma: Numeric,
    lam: Numeric,
) -> tuple[Array, Array]:
    r"""Generalized advantage estimation with separate termination and truncation.

    .. math::

       \delta_t &= r_t + \gamma (1 - \mathrm{term}_t)\, V(s'_t) - V(s_t) \\
       A_t &= \delta_t + \gamma\lambda (1 - \mathrm{done}_t) A_{t+1}, \qquad A_T = 0 \\
       G^\lambda_t &= A_t + V(s_t)

    with :math:`\mathrm{done}_t = \mathrm{term}_t \lor \mathrm{trunc}_t`.

    ``next_values[t]`` is the value of the observation the transition at ``t`` actually reached:
    ``V(final_obs)`` where the episode was truncated, ``V`` of the next observation at the segment's
    last step, and normally ``values[t + 1]`` elsewhere. Using it (rather than ``values[t + 1]``) is
    what lets truncated episodes be bootstrapped correctly under auto-reset.

    ``lam = 0`` gives the one-step TD error; ``lam = 1`` gives the bootstrapped Monte-Carlo return
    (:func:`discounted_returns`) minus ``values``.

    Reference: Schulman, Moritz, Levine, Jordan, Abbeel (2016), "High-Dimensional Continuous Control
    Using Generalized Advantage Estimation", ICLR, arXiv:1506.02438.

    Args:
      rewards: ``[T, ...]`` rewards :math:`r_t`.
      values: ``[T, ...]`` :math:`V(s_t)`.
      next_values: ``[T, ...]`` :math:`V(s'_t)`.
      terminated: ``[T, ...]`` bool/float termination flags.
      truncated: ``[T, ...]`` bool/float truncation flags.
      gamma: discount, a Python or traced scalar.
      lam: GAE :math:`\lambda`, a Python or traced scalar.

    Returns:
      ``(advantages, returns)``, both ``[T, ...]``; ``returns`` are the λ-return critic targets.
    """
    _check_time_major("rewards", rewards)
    chex.assert_equal_shape([rewards, values, next_values, terminated, truncated])
    dtype = jnp.result_type(float, rewards, values, next_values)
    rewards, values, next_values = (
        jnp.asarray(x).astype(dtype) for x in (rewards, values, next_values))
    term = jnp.asarray(terminated) != 0
    done = jnp.logical_or(term, jnp.asarray(truncated) != 0)

    deltas = rewards + gamma * jnp.where(term, 0.0, next_values) - values
    decay = gamma * lam * (1.0 - done.astype(dtype))

    def backward(next_advantage, xs):
        delta, d = xs
        advantage = delta + d * next_advantage
        return advantage, advantage

    _, advantages = jax.lax.scan(
        backward, jnp.zeros_like(deltas[0]), (deltas, decay), reverse=True)
    return advantages, advantages + values


def discounted_returns(
    rewards: Array,
    next_values: Array,
    *,
    terminated: Array,
    truncated: Array,
    gamma: Numeric,
) -> Array:
    r"""Discounted return-to-go that restarts at episode boundaries.

    .. math::

       G_t = r_t + \gamma \begin{cases}
         (1 - \mathrm{term}_t)\, V(s'_t) & \text{if } \mathrm{done}_t \text{ or } t = T - 1 \\
         G_{t+1} & \text{otherwise}
       \end{cases}

    Truncated episodes and the segment end are bootstrapped from ``next_values``; terminated ones
    are not. With ``next_values = 0`` this is the plain (truncated-horizon) Monte-Carlo return used
    by REINFORCE (Williams 1992, "Simple statistical gradient-following algorithms for
    connectionist reinforcement learning", Machine Learning 8) and GPOMDP (Baxter & Bartlett 2001,
    "Infinite-Horizon Policy-Gradient Estimation", JAIR 15).

    Equals the ``returns`` of :func:`gae` with ``lam = 1`` whenever
    ``next_values[t] == values[t + 1]`` on every step that is neither a boundary nor the last (the
    usual, consistent case).

    Args:
      rewards: ``[T, ...]`` rewards.
      terminated: ``[T, ...]`` bool/float termination flags.
      truncated: ``[T, ...]`` bool/float truncation flags.
      next_values: ``[T, ...]`` :math:`V(s'_t)`; only read where a bootstrap happens.
      gamma: discount, a Python or traced scalar.

    Returns:
      ``[T, ...]`` returns.
    """
    _check_time_major("rewards", rewards)
    chex.assert_equal_shape([rewards, terminated, truncated, next_values])
    dtype = jnp.result_type(float, rewards, next_values)
    rewards = jnp.asarray(rewards).astype(dtype)
    next_values = jnp.asarray(next_values).astype(dtype)
    term = jnp.asarray(terminated) != 0
    done = jnp.logical_or(term, jnp.asarray(truncated) != 0)
    # The segment end behaves like a boundary: the next step is not in the data, so bootstrap there.
    bootstrap = done.at[-1].set(True)
    bootstrap_values = jnp.where(term, 0.0, next_values)

    def backward(next_return, xs):
        r, b, bv = xs
        ret = r + gamma * jnp.where(b, bv, next_return)
        return ret, ret

    _, returns = jax.lax.scan(
        backward, jnp.zeros_like(rewards[0]), (rewards, bootstrap, bootstrap_values), reverse=True)
    return returns
