"""Sweeps: seeds x hyperparameters as one compiled program, sharded over devices when several.

>>> hp = jaxpg.sweep.grid(train.default_hparams, learning_rate=[1e-4, 3e-4, 1e-3])
>>> out = jaxpg.sweep.run(train, seeds=8, hparams=hp)   # metrics shaped [3, 8, iterations]

The ``H x S`` runs are flattened into one axis and ``jax.vmap``-ed; with more than one device the
axis is split across a 1-D mesh (``jax.sharding.NamedSharding``), padded to a multiple of the
device count with copies of the last run, which are dropped afterwards.

Long runs in chunks (what the CLI does for checkpoints and progress)::

    state, hp = jaxpg.sweep.init(train, seeds=8)             # batched states, [8, ...]
    chunk = jaxpg.sweep.runner(train, num_iterations=10)      # compiled once, reused
    result = chunk(state, hp)                                 # then chunk(result.state, hp), ...

Hyperparameters may hold arrays or pytrees (a learned objective's parameters): a leaf is batched
when it has one more axis than the same leaf of ``train.default_hparams``.

Across several processes (hosts): call ``jaxpg.distributed.initialize`` (or
``jax.distributed.initialize``) first in each, then make the same calls with the same arguments.
The run axis is then split across every process's devices, each process runs its own slice, and
``run`` and the runner return the whole Result on every process, shaped as in one process.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxpg import distributed
from jaxpg.algos.trainer import compiler_options
from jaxpg.algos.validation import validate


def grid(hparams: Any, **values) -> Any:
    """Cartesian product of the listed values; other fields keep their value from ``hparams``.

    Returns an HParams whose every leaf has a leading axis of size ``prod(len(v))``, in
    ``itertools.product`` order of the keyword arguments (fields that are not swept, arrays
    included, are repeated along it).
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
    repeat = lambda x: jnp.broadcast_to(jnp.asarray(x, jnp.result_type(x, jnp.float32)), (size,) + jnp.shape(x))
    fields = {
        f.name: jnp.asarray(columns[f.name]) if f.name in columns else jax.tree.map(repeat, getattr(hparams, f.name))
        for f in dataclasses.fields(hparams)
    }
    grid_hparams = hparams.replace(**fields)
    validate(grid_hparams)
    return grid_hparams


def stack(hparams_list: list) -> Any:
    """Stack a list of HParams into one batched HParams (leading axis = list index)."""
    return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x, jnp.float32) for x in xs]), *hparams_list)


def _num_configs(hparams) -> int:
    """0 for one set of hparams, else the size of the leading (sweep) axis.

    The scalar fields (those that declare a range with ``validation.bounded``) tell: batched
    hparams carry them as vectors. Every other leaf (arrays, pytrees) must then share that axis.
    """
    scalars = [getattr(hparams, f.name) for f in dataclasses.fields(hparams) if "interval" in f.metadata]
    if not scalars or all(jnp.ndim(x) == 0 for x in scalars):
        return 0
    size = {jnp.shape(x)[0] if jnp.ndim(x) == 1 else None for x in scalars}
    leading = {jnp.shape(x)[0] if jnp.ndim(x) else None for x in jax.tree.leaves(hparams)}
    if len(size) != 1 or None in size or leading != size:
        raise ValueError("every hyperparameter of a sweep needs the same leading axis; build it with sweep.grid")
    return size.pop()


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


def _flatten(train, seeds, hparams, key):
    """Per-run keys and hparams on one flat axis, and the ``[H, S]`` (or ``[S]``) shape it unflattens to."""
    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer, got {seeds!r}")
    key = _typed_key(jax.random.key(0) if key is None else key)
    hparams = train.default_hparams if hparams is None else hparams
    validate(hparams)
    num_configs = _num_configs(hparams)
    seed_keys = jax.random.split(key, seeds)
    as_float = lambda x: jnp.asarray(x, jnp.result_type(x, jnp.float32))
    if num_configs:
        flat_hparams = jax.tree.map(lambda x: jnp.repeat(as_float(x), seeds, axis=0), hparams)
        return seed_keys[jnp.tile(jnp.arange(seeds), num_configs)], flat_hparams, (num_configs, seeds)
    flat_hparams = jax.tree.map(lambda x: jnp.broadcast_to(as_float(x), (seeds,) + jnp.shape(x)), hparams)
    return seed_keys, flat_hparams, (seeds,)


def _sharded(tree, shard: bool):
    """``tree`` (leading run axis) padded to a multiple of the device count and split across devices.

    The devices are ``jax.devices()``: those of every process after ``jax.distributed.initialize``,
    each process then running only the runs that land on its own devices.
    """
    devices = jax.devices()
    total = jax.tree.leaves(tree)[0].shape[0]
    if not shard or len(devices) == 1:
        return tree, total
    padded = -(-total // len(devices)) * len(devices)
    pad = lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], padded - total, axis=0)]) if padded > total else x
    sharding = NamedSharding(Mesh(np.asarray(devices), ("sweep",)), PartitionSpec("sweep"))
    if jax.process_count() == 1:
        return jax.device_put(jax.tree.map(pad, tree), sharding), total
    return jax.tree.map(lambda x: distributed.global_array(pad(x), sharding), tree), total


def run(train, seeds: int = 1, hparams: Any = None, key: jax.Array | None = None, shard: bool = True,
        progress: Callable | None = None, progress_every: int = 1):
    """Run ``train`` for every (hyperparameter, seed) pair in one jitted, vmapped program.

    Args:
      train: a trainer from ``make_train``.
      seeds: number of seeds (keys split from ``key``).
      hparams: None (``train.default_hparams``), a single HParams, or a batched one from ``grid``.
      key: base PRNG key (default ``jax.random.key(0)``); old-style ``PRNGKey`` keys work too.
      shard: split the runs across ``jax.devices()`` when there are several (every process's
        devices after ``jaxpg.distributed.initialize``; with ``shard=False`` each process runs
        them all).
      progress, progress_every: a host callback ``progress(iteration, episode_return)`` (e.g.
        ``jaxpg.progress.Bar.update``) called every ``progress_every`` iterations.

    Returns the Result with leading axes ``[H, S]`` for batched hparams, else ``[S]``, whole on
    every process of a multi-process run. Progress callbacks run in process 0.
    """
    flat_keys, flat_hparams, lead = _flatten(train, seeds, hparams, key)
    distributed.check_same_on_every_process((flat_keys, flat_hparams), "seeds, hparams or key")
    (flat_keys, flat_hparams), total = _sharded((flat_keys, flat_hparams), shard)
    program = _sweep_program(train, total, lead, progress, progress_every)
    return distributed.gather(program(flat_keys, flat_hparams))


@functools.lru_cache(maxsize=32)
def _sweep_program(train, total: int, lead: tuple, progress, progress_every: int):
    """The jitted sweep, one per (trainer, shape, callback): a second ``run`` of the same sweep
    reuses the compiled program instead of tracing and compiling a new closure."""

    def sweep(keys, hparams):
        result = jax.vmap(lambda k, h: train(k, h, progress=progress, progress_every=progress_every))(keys, hparams)
        # Trim and reshape inside the same program rather than one eager slice per output leaf.
        return jax.tree.map(lambda x: x[:total].reshape(lead + x.shape[1:]), result)

    return jax.jit(sweep, compiler_options=compiler_options())


def init(train, seeds: int = 1, hparams: Any = None, key: jax.Array | None = None, env_params: Any = None):
    """Initial states of ``seeds`` runs (keys split from ``key`` as ``run`` does) and the matching
    per-run hparams, both with a leading run axis: the inputs of a :func:`runner`."""
    flat_keys, flat_hparams, lead = _flatten(train, seeds, hparams, key)
    if len(lead) != 1:
        raise ValueError("sweep.init takes one set of hparams (a seeds-only sweep)")
    states = jax.jit(jax.vmap(lambda k, h: train.init(k, h, env_params)),
                     compiler_options=compiler_options())(flat_keys, flat_hparams)
    return states, flat_hparams


class Runner:
    """A compiled ``(states, hparams) -> Result`` that continues every run of a batch by
    ``num_iterations`` (states from :func:`init` or a previous Result's ``state``), sharded over
    devices like :func:`run` (every process's, each process getting the whole Result, after
    ``jaxpg.distributed.initialize``). ``compile(states, hparams)`` compiles ahead of the first
    call."""

    def __init__(self, train, num_iterations: int, shard: bool = True, progress: Callable | None = None,
                 progress_every: int = 1):
        def chunk(states, hparams):
            return jax.vmap(lambda s, h: train.run(s, h, num_iterations, progress=progress,
                                                   progress_every=progress_every))(states, hparams)

        self.shard = shard
        self._jitted = jax.jit(chunk, compiler_options=compiler_options())
        self._compiled = None

    def compile(self, states, hparams) -> "Runner":
        (states, hparams), _ = _sharded((states, hparams), self.shard)
        self._compiled = self._jitted.lower(states, hparams).compile()
        return self

    def __call__(self, states, hparams):
        # Only the hparams must agree exactly: each run's state comes from one process's copy.
        distributed.check_same_on_every_process(hparams, "hparams")
        (states, hparams), total = _sharded((states, hparams), self.shard)
        result = distributed.gather((self._compiled or self._jitted)(states, hparams))
        padded = jax.tree.leaves(result.state)[0].shape[0]
        return result if padded == total else jax.tree.map(lambda x: x[:total], result)


runner = Runner
