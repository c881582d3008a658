"""Helpers the peer-benchmark workers share; they run in the jaxpg venv *and* in a peer's venv.

Only the standard library is imported at module level: a worker times ``import jax`` itself, so
importing this module first must not import jax (the functions take what they need or import it
when called, by which time it is loaded).
"""

from __future__ import annotations

import json
import os
import sys
import time
from importlib import metadata

RESULT_PREFIX = "RESULT "


def spec_from_argv() -> dict:
    """The worker's settings: one JSON object as the only command-line argument."""
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: {sys.argv[0]} '<json spec>'")
    return json.loads(sys.argv[1])


def emit(result: dict) -> None:
    """Hand the result to the orchestrator: one line on stdout, prefixed so that anything the
    libraries print (brax and mujoco print warnings to stdout) cannot be mistaken for it."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def disable_compilation_cache(jax) -> None:
    """Every compile is measured from scratch: no persistent cache, whatever the user set up.

    The orchestrator already removes the cache variables from the environment; this also covers
    a cache configured some other way (e.g. a jax config file)."""
    jax.config.update("jax_enable_compilation_cache", False)
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        raise RuntimeError("JAX_COMPILATION_CACHE_DIR is set; the benchmark must run without a compilation cache")


def versions(*packages: str) -> dict:
    out = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def timed(jax, fn, *args):
    """``(seconds, output)`` of ``fn(*args)`` including the wait for its results."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return time.perf_counter() - start, out


def compile_timed(jax, fn, *args, compiler_options=None) -> tuple[dict, object]:
    """Trace + lower and XLA-compile ``jax.jit(fn)`` for ``args`` (with the library's own XLA
    ``compiler_options``, if it sets any); timings and the executable.

    ``fn`` must be an object not jitted before in this process (a freshly built trainer), or
    jax's in-memory tracing and compilation caches would make the figures meaningless."""
    start = time.perf_counter()
    lowered = jax.jit(fn).lower(*args)
    lowered_at = time.perf_counter()
    executable = lowered.compile(compiler_options=compiler_options) if compiler_options else lowered.compile()
    done = time.perf_counter()
    return {"lower_s": lowered_at - start, "compile_s": done - lowered_at, "lower_compile_s": done - start}, executable


def best_of(jax, executable, args, repeats: int) -> tuple[list[float], object]:
    """Run times of ``repeats`` calls of a compiled function, and the last call's output (every
    call computes the same thing: same key, same arguments)."""
    times, out = [], None
    for _ in range(repeats):
        t, out = timed(jax, executable, *args)
        times.append(t)
    return times, out


def run_figures(figures: dict, seeds: int, env_steps: int, times: list[float], eval_returns) -> dict:
    """The per-measurement record both libraries' workers report: compile figures, steps/s from
    the best of ``times``, and the final policies' evaluation returns (one per seed)."""
    evals = [float(x) for x in (eval_returns if hasattr(eval_returns, "__len__") else [eval_returns])]
    return {
        **figures,
        "seeds": seeds,
        "env_steps": env_steps,
        "run_times_s": times,
        "run_s": min(times),
        "steps_per_s": env_steps / min(times),
        "final_eval_return_per_seed": evals,
        "final_eval_return": sum(evals) / len(evals),
    }
