"""Sweeps: seeds x hyperparameters as one compiled program, sharded over devices when several.

>>> hp = jaxpg.sweep.grid(train.default_hparams, learning_rate=[1e-4, 3e-4, 1e-3])
>>> out = jaxpg.sweep.run(train, seeds=8, hparams=hp)   # metrics shaped [3, 8, iterations]

The ``H x S`` runs are flattened into one axis and ``jax.vmap``-ed; with more than one device the
axis is split across a 1-D mesh (``jax.sharding.NamedSharding``), padded to a multiple of the
device count with copies of the last run, which are dropped afterwards.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxpg.algos.validation import validate


def grid(hparams: Any, **values) -> Any:
    """Cartesian product of the listed values; other fields keep their value from ``hparams``.

    Returns an HParams whose every leaf has a leading axis of size ``prod(len(v))``, in
    ``itertools.product`` order of the keyword arguments.
    """
    names = {f.name for f in dataclasses.fields(hparams)}
    for key, options in values.items():
        if key not in names:
            raise ValueError(f"unknown hyperparameter {key!r}; valid choices: {', '.join(sorted(names))}")
        if np.ndim(options) != 1:
            raise TypeError(
                f"sweep.grid: {key} needs a list of values, got {options!r} "
                f"(one value: {key}=[{options!r}], or set it in the base hparams)"
            )
        if len(options) == 0:
            raise ValueError(f"hyperparameter {key!r} needs at least one value")
    combos = list(itertools.product(*values.values()))
    columns = {k: np.asarray([c[i] for c in combos], np.float32) for i, k in enumerate(values)}
    size = len(combos)
    fields = {
        f.name: jnp.asarray(columns[f.name]) if f.name in columns
        else jnp.full((size,), getattr(hparams, f.name), jnp.float32)
        for f in dataclasses.fields(hparams)
    }
    grid_hparams = type(hparams)(**fields)
    validate(grid_hparams)
    return grid_hparams


def stack(hparams_list: list) -> Any:
    """Stack a list of HParams into one batched HParams (leading axis = list index)."""
    return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x, jnp.float32) for x in xs]), *hparams_list)


def _num_configs(hparams) -> int:
    sizes = {jnp.shape(x)[0] if jnp.ndim(x) else None for x in jax.tree.leaves(hparams)}
    if sizes == {None}:
        return 0
    if None in sizes or len(sizes) != 1:
        raise ValueError("every hyperparameter of a sweep needs the same leading axis; build it with sweep.grid")
    return sizes.pop()


def _typed_key(key) -> jax.Array:
    """A typed PRNG key; old-style ``jax.random.PRNGKey`` (uint32[2]) keys are wrapped."""
    if hasattr(key, "dtype") and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"key must be a single PRNG key, got a batch of shape {key.shape}; seeds are split from it")
        return key
    raw = np.asarray(key) if not isinstance(key, jax.Array) else key
    if raw.dtype == np.uint32 and raw.shape == (2,):
        return jax.random.wrap_key_data(raw)
    raise ValueError(f"key must be jax.random.key(seed) or jax.random.PRNGKey(seed), got {type(key).__name__} {getattr(key, 'shape', '')}")


def run(train, seeds: int = 1, hparams: Any = None, key: jax.Array | None = None, shard: bool = True):
    """Run ``train`` for every (hyperparameter, seed) pair in one jitted, vmapped program.

    Args:
      train: a trainer from ``make_train``.
      seeds: number of seeds (keys split from ``key``).
      hparams: None (``train.default_hparams``), a single HParams, or a batched one from ``grid``.
      key: base PRNG key (default ``jax.random.key(0)``).
      shard: split the runs across ``jax.devices()`` when there are several.

    Returns the Result with leading axes ``[H, S]`` for batched hparams, else ``[S]``.
    """
    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer, got {seeds!r}")
    key = _typed_key(jax.random.key(0) if key is None else key)
    hparams = train.default_hparams if hparams is None else hparams
    validate(hparams)
    num_configs = _num_configs(hparams)
    seed_keys = jax.random.split(key, seeds)
    if num_configs:
        flat_hparams = jax.tree.map(lambda x: jnp.repeat(jnp.asarray(x, jnp.float32), seeds, axis=0), hparams)
        flat_keys = seed_keys[jnp.tile(jnp.arange(seeds), num_configs)]
        lead = (num_configs, seeds)
    else:
        flat_hparams = jax.tree.map(lambda x: jnp.full((seeds,), x, jnp.float32), hparams)
        flat_keys = seed_keys
        lead = (seeds,)
    total = flat_keys.shape[0]

    devices = jax.devices()
    if shard and len(devices) > 1:
        padded = -(-total // len(devices)) * len(devices)
        pad = lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], padded - total, axis=0)]) if padded > total else x
        flat_keys, flat_hparams = pad(flat_keys), jax.tree.map(pad, flat_hparams)
        sharding = NamedSharding(Mesh(np.asarray(devices), ("sweep",)), PartitionSpec("sweep"))
        flat_keys, flat_hparams = jax.device_put((flat_keys, flat_hparams), sharding)

    def sweep(keys, hparams):
        result = jax.vmap(train)(keys, hparams)
        return jax.tree.map(lambda x: x[:total].reshape(lead + x.shape[1:]), result)

    # Trim and reshape inside the same program rather than one eager slice per output leaf.
    return jax.jit(sweep)(flat_keys, flat_hparams)
