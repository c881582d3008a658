"""Save and restore training runs with orbax: the full training state plus the run's settings.

A run directory holds ``run.json`` (algorithm, config, hyperparameters, seeds, iterations done),
``checkpoint/`` (an orbax ``StandardCheckpointer`` tree of the training state) and
``metrics.npz`` (the metrics so far). PRNG keys are stored as their raw ``key_data`` and re-wrapped on restore, because the
target tree built by ``trainer.init`` says where the keys are.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import typing
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _unwrap_keys(tree):
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def config_from_dict(cls, values: dict):
    """Rebuild a frozen config dataclass from JSON (lists back to tuples where the field is a tuple)."""
    kwargs = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        value = values[f.name]
        if isinstance(value, list) or "tuple" in str(hints.get(f.name, "")):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value) if value is not None else None
        kwargs[f.name] = value
    return cls(**kwargs)


def save(directory: str, state: Any, metrics: dict, info: dict) -> None:
    """Write ``state`` and ``metrics`` (pytrees) and ``info`` (JSON-able) into ``directory``."""
    import orbax.checkpoint as ocp

    directory = os.path.abspath(directory)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "checkpoint")
    tmp = path + ".tmp"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp, _unwrap_keys(state))
    checkpointer.wait_until_finished()
    # Replace the old checkpoint only once the new one is complete.
    if os.path.exists(path):
        shutil.rmtree(path)
    os.replace(tmp, path)
    np.savez(os.path.join(directory, "metrics.npz"), **{k: np.asarray(v) for k, v in metrics.items()})
    with open(os.path.join(directory, "run.json"), "w") as f:
        json.dump(info, f, indent=2)


def load_info(directory: str) -> dict:
    path = os.path.join(directory, "run.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{directory} is not a jaxpg run directory (no run.json)")
    with open(path) as f:
        return json.load(f)


def restore(directory: str, state_like: Any) -> tuple[Any, dict]:
    """Restore the state (shaped like ``state_like``, e.g. from ``trainer.init``) and the metrics."""
    import orbax.checkpoint as ocp

    path = os.path.join(os.path.abspath(directory), "checkpoint")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _unwrap_keys(state_like))
    restored = ocp.StandardCheckpointer().restore(path, abstract)
    state = jax.tree.map(
        lambda like, x: jax.random.wrap_key_data(x, impl=jax.random.key_impl(like)) if _is_key(like) else jnp.asarray(x),
        state_like,
        restored,
    )
    with np.load(os.path.join(directory, "metrics.npz")) as data:
        metrics = {k: data[k] for k in data.files}
    return state, metrics
