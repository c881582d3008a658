"""Save and restore training runs: the full training state, the metrics so far and the run's settings,
written as one atomic set.

A run directory holds::

    run.json                      settings (algorithm, config, hparams, seeds, iterations done) and
                                  the name of the current checkpoint: the commit record
    checkpoints/iteration-NNNNNNNN/
        state/                    an orbax ``StandardCheckpointer`` tree of the training state
        metrics.npz               the metrics up to that iteration
        run.json                  the settings as of that iteration

A save writes a complete new ``iteration-N`` folder under a staging name, renames it into place,
and only then replaces ``run.json`` (write to a temporary file, ``fsync``, ``os.replace``: atomic
on POSIX), which is the moment the new checkpoint counts. Older checkpoints are removed after that.
A process killed at any point of a save therefore leaves ``run.json`` naming the previous complete
checkpoint; leftover staging folders are ignored and cleaned up by the next save.

PRNG keys are stored as their raw ``key_data`` and re-wrapped on restore, because the target tree
built by ``trainer.init`` says where the keys are. Anything unreadable raises
:class:`CheckpointError` with a one-line message.
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

CHECKPOINTS = "checkpoints"
STAGING_PREFIX = ".staging-"
REQUIRED_INFO = ("algo", "config", "hparams", "seeds", "seed", "iterations_done", "num_iterations", "checkpoint")


class CheckpointError(Exception):
    """A run directory that cannot be read: missing, truncated or not written by jaxpg."""


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _unwrap_keys(tree):
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


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
    unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise CheckpointError(f"the saved config has fields this version of {cls.__name__} does not know: {sorted(unknown)}")
    return cls(**kwargs)


def _write_json_atomically(path: str, data: dict) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_directory(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(directory: str, state: Any, metrics: dict, info: dict) -> str:
    """Write ``state`` and ``metrics`` (pytrees) and ``info`` (JSON-able) as the run's new checkpoint.

    Returns the checkpoint's folder. The previous checkpoint stays valid until the new one is
    complete (see the module docstring).
    """
    import orbax.checkpoint as ocp

    directory = os.path.abspath(directory)
    root = os.path.join(directory, CHECKPOINTS)
    os.makedirs(root, exist_ok=True)
    name = f"iteration-{int(info['iterations_done']):08d}"
    staging = os.path.join(root, f"{STAGING_PREFIX}{name}-{os.getpid()}")
    if os.path.exists(staging):
        shutil.rmtree(staging)
    os.makedirs(staging)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(os.path.join(staging, "state"), _unwrap_keys(state))
    checkpointer.wait_until_finished()
    info = {**info, "checkpoint": f"{CHECKPOINTS}/{name}"}
    np.savez(os.path.join(staging, "metrics.npz"), **{k: np.asarray(v) for k, v in metrics.items()})
    _write_json_atomically(os.path.join(staging, "run.json"), info)

    final = os.path.join(root, name)
    if os.path.exists(final):  # the same iteration saved again (e.g. a resumed run's first save)
        shutil.rmtree(final)
    os.rename(staging, final)
    _fsync_directory(root)
    _commit(directory, info)
    for entry in os.listdir(root):  # older checkpoints and staging leftovers of killed saves
        if entry != name:
            shutil.rmtree(os.path.join(root, entry), ignore_errors=True)
    return final


def _commit(directory: str, info: dict) -> None:
    """The atomic step: from here on ``run.json`` names the new checkpoint."""
    _write_json_atomically(os.path.join(directory, "run.json"), info)
    _fsync_directory(directory)


def load_info(directory: str) -> dict:
    """The settings of the run in ``directory`` (its ``run.json``)."""
    if not os.path.isdir(directory):
        raise CheckpointError(f"{directory} does not exist or is not a directory")
    path = os.path.join(directory, "run.json")
    if not os.path.exists(path):
        raise CheckpointError(f"{directory} is not a jaxpg run directory (no run.json)")
    try:
        with open(path) as f:
            info = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path} is unreadable (truncated or edited?): {_first_line(e)}") from None
    missing = [k for k in REQUIRED_INFO if not isinstance(info, dict) or k not in info]
    if missing:
        raise CheckpointError(f"{path} is not a jaxpg run record (missing {', '.join(missing)})")
    return info


def restore(directory: str, state_like: Any, info: dict | None = None) -> tuple[Any, dict]:
    """Restore the state (shaped like ``state_like``, e.g. from ``trainer.init``) and the metrics."""
    import orbax.checkpoint as ocp

    info = load_info(directory) if info is None else info
    path = os.path.join(os.path.abspath(directory), info["checkpoint"])
    if not os.path.isdir(path):
        raise CheckpointError(f"the checkpoint {path} named by run.json is missing")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _unwrap_keys(state_like))
    try:
        restored = ocp.StandardCheckpointer().restore(os.path.join(path, "state"), abstract)
        with np.load(os.path.join(path, "metrics.npz")) as data:
            metrics = {k: data[k] for k in data.files}
    except Exception as e:  # orbax raises many kinds; the caller needs one line and no trace
        raise CheckpointError(f"the checkpoint in {path} is unreadable: {_first_line(e)}") from None
    state = jax.tree.map(
        lambda like, x: jax.random.wrap_key_data(x, impl=jax.random.key_impl(like)) if _is_key(like) else jnp.asarray(x),
        state_like,
        restored,
    )
    return state, metrics
