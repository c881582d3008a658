"""One sweep across several processes (hosts): joining them, and moving a sweep's arrays.

Every process runs the same program with the same arguments::

    import jax, jaxpg
    jaxpg.distributed.initialize("10.0.0.1:1234", num_processes=2, process_id=i)  # first of all
    train = jaxpg.make_train("ppo", env="CartPole-v1", total_steps=500_000)
    hp = jaxpg.sweep.grid(train.default_hparams, learning_rate=[1e-4, 3e-4, 1e-3])
    out = jaxpg.sweep.run(train, seeds=8, hparams=hp)   # [3, 8, ...] on every process

After ``initialize``, ``jax.devices()`` lists every process's devices; ``jaxpg.sweep`` splits its
run axis across all of them, so each process runs the runs that land on its own devices (runs
never talk to each other), and then gathers the whole Result onto every process. Each process
builds the same full inputs (keys, hparams) itself and hands over only its own slices, so nothing
but the results crosses the network. ``jax.distributed.initialize`` called directly works the
same; :func:`initialize` adds one-line errors and sets CPU collectives to gloo.

This module imports nothing of jaxpg (and JAX's backend must not start before ``initialize``),
so ``jaxpg.distributed.initialize`` can run before the algorithms are imported.
"""

from __future__ import annotations

import re
import zlib
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, **kwargs) -> int:
    """Join this process to a multi-process run: ``jax.distributed.initialize``, arguments checked.

    Call it once in every process, before anything runs on JAX (computations, ``jax.devices()``);
    then make the same sweep calls in every process.

    Args:
      coordinator_address: ``"host:port"`` of process 0, reachable from every process (e.g.
        ``"10.0.0.1:1234"``; ``"127.0.0.1:1234"`` for processes on one machine).
      num_processes: how many processes take part.
      process_id: this process's index, ``0 .. num_processes - 1``.
      **kwargs: passed on to ``jax.distributed.initialize`` (``local_device_ids``,
        ``initialization_timeout``, ...).

    Leave all three None on Cloud TPU, SLURM or Open MPI, where JAX detects them.

    Returns this process's index (``jax.process_index()``).
    """
    _check_arguments(coordinator_address, num_processes, process_id)
    if jax.distributed.is_initialized():
        raise RuntimeError("jaxpg.distributed.initialize: this process already joined a distributed run; call it once")
    # CPU processes exchange results through gloo (JAX's default in 0.10; stated, not assumed).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address, num_processes, process_id, **kwargs)
    return jax.process_index()


def _check_arguments(coordinator_address, num_processes, process_id) -> None:
    """One-line errors for what ``jax.distributed.initialize`` would refuse late or less clearly."""
    is_int = lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, bool)
    if num_processes is not None and (not is_int(num_processes) or num_processes < 1):
        raise ValueError(f"num_processes must be a positive integer, got {num_processes!r}")
    if process_id is not None:
        valid = f"0 .. {num_processes - 1}" if num_processes is not None else "0 .. num_processes - 1"
        if not is_int(process_id) or process_id < 0 or (num_processes is not None and process_id >= num_processes):
            raise ValueError(f"process_id must be one of {valid}, got {process_id!r}")
    if coordinator_address is not None:
        match = re.fullmatch(r"(.+):(\d+)", coordinator_address) if isinstance(coordinator_address, str) else None
        if not match or not 0 < int(match.group(2)) < 65536:
            raise ValueError(f"coordinator_address must be 'host:port' (port 1-65535), got {coordinator_address!r}")


def _is_key(x) -> bool:
    return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def global_array(x, sharding: NamedSharding) -> jax.Array:
    """A global array (over every process's devices) from the full array ``x``, which every process
    holds alike: each process hands over only the slices its own devices keep."""
    if _is_key(x):  # host transfers take the key's raw data; the key type is restored on the devices
        data = global_array(jax.random.key_data(x), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def gather(tree: Any) -> Any:
    """``tree`` with every leaf whole on this process, as if it had been computed here.

    Leaves spread over several processes are all-gathered in one program for the whole tree and
    kept on this process's first device. Unchanged when every leaf is already here (one process).
    """
    if all(x.is_fully_addressable for x in jax.tree.leaves(tree)):
        return tree
    everywhere = NamedSharding(Mesh(np.asarray(jax.devices()), ("sweep",)), PartitionSpec())
    # jax.experimental.multihost_utils.process_allgather does the same one leaf (one program) at a
    # time, and refuses PRNG-key leaves (a training state holds keys).
    replicated = jax.jit(lambda t: t, out_shardings=everywhere)(tree)
    return jax.tree.map(lambda x: x.addressable_data(0), replicated)


def fingerprint(tree: Any) -> int:
    """A CRC-32 of the values, shapes and dtypes of every leaf of ``tree`` (keys by their data)."""
    crc = 0
    for x in jax.tree.leaves(tree):
        host = np.asarray(jax.random.key_data(x) if _is_key(x) else x)
        crc = zlib.crc32(f"{host.shape}{host.dtype}".encode() + host.tobytes(), crc)
    return crc


def check_same_on_every_process(tree: Any, what: str) -> None:
    """Refuse, on every process alike, a ``tree`` that differs between processes.

    Each process builds a sweep's inputs itself and contributes the slices its devices run, so
    different arguments on different processes would silently mix two sweeps into one Result.
    One 4-byte all-gather; nothing at all with one process.
    """
    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils  # only multi-process runs need it

    prints = multihost_utils.process_allgather(np.uint32(fingerprint(tree))).tolist()
    if len(set(prints)) > 1:
        raise ValueError(f"the {what} differ between processes (CRC-32 per process: {prints}); "
                         "every process must make the same sweep call with the same arguments")
