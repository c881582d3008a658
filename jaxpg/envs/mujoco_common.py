"""What the MuJoCo-based backends (brax, MuJoCo Playground) share: quiet imports and one
canonical form of their states, so reset and step states can be selected between.

Quiet imports: brax warns that it is unmaintained (a UserWarning from ``mjcf.load``, i.e. every time an
environment is built), its import pulls in jaxopt (a DeprecationWarning), and ``mujoco.mjx``
*prints* "Failed to import warp/mujoco_warp" when the optional GPU package ``warp-lang`` is
absent. None of it is actionable for jaxpg users; any other output is passed on.
"""

from __future__ import annotations

import contextlib
import io
import sys
import warnings
from typing import Any

import jax
import jax.numpy as jnp

QUIET_MESSAGES = (
    r"Brax System, piplines and environments are not actively",
    r"JAXopt is no longer maintained",
)
QUIET_PRINTS = ("Failed to import warp", "Failed to import mujoco_warp")


@contextlib.contextmanager
def quiet_mujoco_backends():
    """Within the block: the warnings above are ignored and printed lines that start with
    ``QUIET_PRINTS`` are dropped; every other printed line is written out at the end."""
    buffer = io.StringIO()
    with warnings.catch_warnings():
        for message in QUIET_MESSAGES:
            warnings.filterwarnings("ignore", message=message)
        try:
            with contextlib.redirect_stdout(buffer):
                yield
        finally:
            kept = [line for line in buffer.getvalue().splitlines() if not line.startswith(QUIET_PRINTS)]
            if kept:
                sys.stdout.write("\n".join(kept) + "\n")


def _strong(x: Any) -> jax.Array:
    """``x`` as an array of its own dtype, never weakly typed (so reset and step leaves agree)."""
    x = jnp.asarray(x)
    return jnp.asarray(x, dtype=x.dtype)


def _like(new: Any, like: Any) -> Any:
    """``new`` cast to the pytree structure and dtypes of ``like``.

    Dict entries (``metrics``/``info``) that ``like`` lacks are dropped, so reset and step states
    have identical structure and dtypes for ``tree_select`` and ``lax.scan`` carries (brax and
    several DMC tasks return weakly typed rewards or metrics from ``step`` but not from ``reset``).
    """
    if isinstance(like, dict):
        return {k: _like(new[k], v) for k, v in like.items()}
    return jax.tree.map(lambda a, b: jnp.asarray(a, dtype=jnp.asarray(b).dtype), new, like)


def canonical_state(state: Any, physics: str, like: Any = None) -> Any:
    """A brax-style ``State`` (``obs``, ``reward``, ``done``, ``metrics``, ``info`` and the physics
    field named ``physics``: ``"pipeline_state"`` for brax, ``"data"`` for Playground) with
    obs/reward/done as float32 and no weak types; with ``like``, matched to ``like``."""
    state = state.replace(
        obs=jnp.asarray(state.obs, jnp.float32),
        reward=jnp.asarray(state.reward, jnp.float32),
        done=jnp.asarray(state.done, jnp.float32),
    )
    if like is None:
        return jax.tree.map(_strong, state)
    return state.replace(**{physics: _like(getattr(state, physics), getattr(like, physics)),
                            "metrics": _like(state.metrics, like.metrics), "info": _like(state.info, like.info)})
