"""Process-wide JAX settings that speed jaxpg up, as explicit one-line opt-ins.

A library should not change how the user's whole process runs JAX, so jaxpg leaves both to the
caller (the ``jaxpg`` command line turns both on for its own process):

>>> import jaxpg
>>> jaxpg.use_all_cpu_cores()          # before the first JAX computation: one CPU device per core
>>> jaxpg.enable_compilation_cache()   # ~/.cache/jaxpg/xla, or $JAXPG_CACHE_DIR

* :func:`use_all_cpu_cores`: XLA:CPU runs one program on essentially one core. With one JAX
  device per core, :func:`jaxpg.sweep.run` splits the runs of a sweep across the devices, which
  then execute in parallel: 8 PPO CartPole seeds on 2 cores ran at about 3x the total
  steps/s of the same sweep on one device (``benchmarks/throughput.py``). A single run is
  unaffected (it lives on one device).
* :func:`enable_compilation_cache`: compiled programs are written to disk and found again by
  later processes that compile the same program (same function, shapes, jax version and
  options), so a notebook kernel restart or a second script skips the compile. Programs with
  host callbacks (a live progress bar) are not cached by JAX.
"""

from __future__ import annotations

import os


def default_cache_dir() -> str:
    return os.environ.get("JAXPG_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "jaxpg", "xla"))


def enable_compilation_cache(path: str | os.PathLike | None = None, min_compile_time_secs: float = 0.5) -> str:
    """Store compiled programs under ``path`` (default :func:`default_cache_dir`) when compiling
    takes at least ``min_compile_time_secs``; returns the directory. Call it before the first
    ``jit`` call it should cover."""
    import jax

    if min_compile_time_secs < 0:
        raise ValueError(f"min_compile_time_secs must be >= 0, got {min_compile_time_secs}")
    path = os.fspath(path) if path is not None else default_cache_dir()
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_secs))
    return path


def use_all_cpu_cores(num_devices: int | None = None) -> int:
    """Expose ``num_devices`` CPU devices (default: the cores this process may use), so that
    sweeps run their runs in parallel across them; returns the number of CPU devices.

    Must run before JAX's first computation in the process (JAX fixes its devices then); a later
    call raises ``RuntimeError``. Only the CPU platform is affected; on a machine whose default
    backend is a GPU or TPU it changes nothing there.
    """
    import jax

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    wanted = cores if num_devices is None else num_devices
    if isinstance(wanted, bool) or not isinstance(wanted, int) or wanted < 1:
        raise ValueError(f"num_devices must be a positive integer, got {num_devices!r}")
    try:
        jax.config.update("jax_num_cpu_devices", wanted)
    except RuntimeError:  # JAX refuses once its backends exist
        pass
    have = len(jax.devices("cpu"))
    if have != wanted:
        raise RuntimeError(
            f"use_all_cpu_cores must run before the first JAX computation: JAX already has {have} CPU "
            f"device(s); call it right after the imports"
        )
    return have
