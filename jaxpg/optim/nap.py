"""NaP: normalize-and-project (Lyle et al., NeurIPS 2024, arXiv 2407.01800).

When a layer's output feeds a normalization, the loss is invariant to the scale of its kernel W:
``Norm(c W x) = Norm(W x)``. Then ``grad L(cW) = grad L(W) / c`` and the gradient is orthogonal
to W, so every update grows the norm, ``|W_{t+1}|^2 = |W_t|^2 + |u_t|^2``, and the *effective*
learning rate, the angular step size (about lr/|W|^2 for SGD, lr/|W| for Adam), decays on its
own. NaP removes that implicit decay: after every optimizer step each projected kernel is put
back on the sphere of its initial Frobenius norm,

    W <- W * |W_0|_F / |W|_F        (one norm per weight matrix, i.e. per layer),

so the learning-rate schedule you choose *is* the effective learning-rate schedule.

Choices (reference notes, section 2.2):
* Projected: the kernels of layers that feed a normalization. jaxpg's normalized MLP layers
  (``jaxpg.nets.MLP(normalization=...)``) have no bias (the normalization's centring removes it)
  and normalizations without learnable scale/offset, so those kernels are the only
  scale-invariant parameters and nothing else needs a joint projection.
* Not projected: output layers (policy logits/means, value heads) and their biases, which are
  not followed by a normalization: their scale sets the output scale, and a value head must stay
  free to represent large returns. Also zero-initialized leaves (initial norm 0) are never projected.
* Optimizer state (Adam moments) is left as it is.

``nap(inner, mask)`` wraps any optax GradientTransformation (with any schedule): its updates are
the inner updates corrected so that ``optax.apply_updates(params, updates)`` lands on the
projected parameters.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

class NaPState(NamedTuple):
    inner_state: Any
    target_norms: Any  # per leaf: initial Frobenius norm where projected, 0 elsewhere


def _resolve_mask(mask, params):
    mask = mask(params) if callable(mask) else mask
    return jax.tree.map(bool, mask)


def _project_leaf(p, r):
    # Leaves with target 0 (zero-initialized) keep their value: their direction is undefined.
    norm = jnp.sqrt(jnp.sum(jnp.square(p)))
    return jnp.where(r > 0, p * (r / jnp.maximum(norm, 1e-12)), p)


def project(params: Any, target_norms: Any, mask: Any) -> Any:
    """``W * r / |W|`` on the masked leaves (``r`` = target norm), identity elsewhere."""
    return jax.tree.map(lambda p, r, m: _project_leaf(p, r) if m else p, params, target_norms, mask)


def initial_norms(params: Any, mask: Any | Callable) -> Any:
    """Target norms for :func:`project`: each masked leaf's current Frobenius norm, 0 elsewhere."""
    leaf_mask = _resolve_mask(mask, params)
    return jax.tree.map(
        lambda p, m: jnp.sqrt(jnp.sum(jnp.square(p))) if m else jnp.zeros((), p.dtype), params, leaf_mask
    )


def nap(inner: optax.GradientTransformation, mask: Any | Callable) -> optax.GradientTransformation:
    """Wrap ``inner`` so that every step ends with NaP's projection.

    Args:
      inner: any optax transformation (sgd, adam, a chain with clipping and a schedule, ...).
      mask: pytree of bools shaped like the params (True = project), or a callable
        ``params -> mask``. The network knows which of its kernels feed a normalization: for
        jaxpg's networks pass ``jaxpg.nets.normalized_kernels_mask``. Leaves whose initial norm is
        0 are never projected.
    """

    def init(params):
        leaf_mask = _resolve_mask(mask, params)
        if not any(jax.tree.leaves(leaf_mask)):
            raise ValueError(
                "nap found no leaf to project: the mask selects nothing (for jaxpg networks build them "
                "with normalization='layer_norm' or 'rms_norm' and pass jaxpg.nets.normalized_kernels_mask)"
            )
        return NaPState(inner.init(params), initial_norms(params, leaf_mask))

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("nap needs params in update(updates, state, params) to project them")
        inner_updates, inner_state = inner.update(updates, state.inner_state, params)
        stepped = optax.apply_updates(params, inner_updates)
        projected = project(stepped, state.target_norms, _resolve_mask(mask, params))
        new_updates = jax.tree.map(lambda new, old: (new - old).astype(old.dtype), projected, params)
        return new_updates, NaPState(inner_state, state.target_norms)

    return optax.GradientTransformation(init, update)


def _path_name(path) -> str:
    names = [str(getattr(k, "key", getattr(k, "name", k))) for k in path]
    return "/".join(names[1:] if names and names[0] == "params" else names)


def weight_norms(params: Any) -> dict:
    """``{"layer/kernel": |W|_F}`` for every weight matrix (leaf with ndim >= 2)."""
    return {
        _path_name(path): jnp.sqrt(jnp.sum(jnp.square(leaf)))
        for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]
        if leaf.ndim >= 2
    }


def effective_learning_rates(old_params: Any, new_params: Any) -> dict:
    """Realized angular step of every weight matrix: ``|W_{t+1} - W_t|_F / |W_t|_F``.

    Measured, so it needs no assumption about the optimizer; for a scale-invariant layer it is
    the effective learning rate of Lyle et al. (about lr/|W| per step with Adam, lr |g|/|W|^2
    with SGD) and shows the implicit decay as |W| grows.
    """
    old = jax.tree_util.tree_flatten_with_path(old_params)[0]
    new = jax.tree.leaves(new_params)
    return {
        _path_name(path): jnp.sqrt(jnp.sum(jnp.square(b - a))) / jnp.maximum(jnp.sqrt(jnp.sum(jnp.square(a))), 1e-12)
        for (path, a), b in zip(old, new)
        if a.ndim >= 2
    }
