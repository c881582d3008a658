"""jaxpg's side of benchmarks/peers.py, run in a fresh process with the jaxpg venv's Python.

    python benchmarks/peers/jaxpg_worker.py '{"env": "CartPole-v1", "overrides": {...}, "seeds": 8,
                                              "repeats": 2, "eval_episodes": 128}'

In this order: the import times, the first ``train.jit()(key, hparams)`` of the process
(compile + full run; jaxpg's documented call, ``jax.jit`` with jaxpg's XLA options), then with
freshly built trainers (so no in-memory cache is hit) the compile and best-of-``repeats`` run time
of one seed and of ``seeds`` vmapped seeds (``jax.jit(jax.vmap(train))`` on one device, as a peer
is called), the same seeds through ``jaxpg.sweep.run`` (which splits the runs across the CPU
devices that ``jaxpg.use_all_cpu_cores()`` exposes, one per core), and the final policies' returns
(``eval_episodes`` sampled episodes per seed, outside every timed region). Prints one
``RESULT {json}`` line.
"""

import time

T0 = time.perf_counter()  # before jax: the import times below are the process's own

import jax  # noqa: E402

T_JAX = time.perf_counter()
import jaxpg  # noqa: E402  (a lazy facade: the algorithms load on first attribute access)

T_JAXPG_FACADE = time.perf_counter()
NUM_CPU_DEVICES = jaxpg.use_all_cpu_cores()  # the documented opt-in; must precede any computation
make_train = jaxpg.make_train  # what a user's first line needs: jaxpg.algos and its imports
T_JAXPG = time.perf_counter()

import numpy as np  # noqa: E402

from _common import (best_of, compile_timed, disable_compilation_cache, emit, run_figures, spec_from_argv, timed,  # noqa: E402
                     versions)


def build(spec):
    """A new trainer: a new object for jax's caches, so every compile below starts from scratch."""
    overrides = {k: tuple(map(tuple, v)) if k == "env_kwargs" else (tuple(v) if isinstance(v, list) else v)
                 for k, v in spec["overrides"].items()}
    return make_train("ppo", env=spec["env"], **overrides)


def evaluate(result, episodes: int) -> np.ndarray:
    """Mean return of ``episodes`` fresh episodes with actions sampled from the final policy, per
    seed (the protocol the peers' own evaluations use); ``[seeds]`` or a scalar."""
    # Not under jax.jit: jaxpg.evaluate rebuilds the environment, and the brax adapter's time
    # limit then becomes a tracer (ConcretizationTypeError); its episodes run in one lax.scan anyway.
    return np.asarray(jaxpg.evaluate(result, jax.random.key(1), episodes, deterministic=False)).mean(-1)


def measure(spec, train, key, hparams, vmapped: bool) -> dict:
    fn = jax.vmap(train, in_axes=(0, None)) if vmapped else train
    from jaxpg.algos.trainer import compiler_options

    figures, executable = compile_timed(jax, fn, key, hparams, compiler_options=compiler_options())
    times, result = best_of(jax, executable, (key, hparams), spec["repeats"])
    return summarize(spec, train, result, times, figures, key.shape[0] if vmapped else 1)


def measure_sweep(spec, train, seeds: int) -> dict:
    """``jaxpg.sweep.run(train, seeds)``: the first call compiles (timed apart), later calls reuse
    the program; the runs are split across the CPU devices."""
    start = time.perf_counter()
    jax.block_until_ready(jaxpg.sweep.run(train, seeds=seeds))
    first = time.perf_counter() - start
    times, result = best_of(jax, lambda: jaxpg.sweep.run(train, seeds=seeds), (), spec["repeats"])
    out = summarize(spec, train, result, times, {}, seeds)
    out["first_call_s"] = first
    out["devices"] = len(jax.devices())
    return out


def summarize(spec, train, result, times, figures, seeds: int) -> dict:
    jaxpg.check_finite(result)
    steps = seeds * train.num_iterations * train.steps_per_iteration
    returns = np.asarray(result.metrics["episode_return"])[..., -1]
    out = run_figures(figures, seeds, steps, times, np.atleast_1d(evaluate(result, spec["eval_episodes"])))
    # the mean return of the episodes that ended in the last iteration (training metric)
    out["final_train_return_per_seed"] = np.atleast_1d(returns).tolist()
    return out


def main() -> None:
    spec = spec_from_argv()
    disable_compilation_cache(jax)
    start = time.perf_counter()
    train = build(spec)
    built = time.perf_counter()
    key = jax.random.key(0)
    first_call_s, _ = timed(jax, train.jit(), key, train.default_hparams)
    out = {
        "library": "jaxpg",
        "versions": versions("jaxpg", "jax", "jaxlib", "flax", "optax", "gymnax", "brax", "numpy"),
        "backend": jax.default_backend(),
        "cpu_devices": NUM_CPU_DEVICES,
        "env_steps_per_run": train.num_iterations * train.steps_per_iteration,
        "iterations": train.num_iterations,
        "config": repr(train.config),
        "import_jax_s": T_JAX - T0,
        "import_lib_facade_s": T_JAXPG_FACADE - T0,  # `import jaxpg` alone (lazy): includes jax
        "import_lib_s": T_JAXPG - T0,  # `import jaxpg; jaxpg.make_train`: includes jax
        "build_s": built - start,
        "first_call_s": first_call_s,
        "imports_build_first_call_s": time.perf_counter() - T0,
    }
    print(f"  jaxpg first call {first_call_s:.1f} s", flush=True)
    out["single"] = measure(spec, build(spec), key, train.default_hparams, vmapped=False)
    if spec["seeds"]:
        keys = jax.random.split(jax.random.key(0), spec["seeds"])
        out["vmap"] = measure(spec, build(spec), keys, train.default_hparams, vmapped=True)
        out["sweep"] = measure_sweep(spec, build(spec), spec["seeds"])
    emit(out)


if __name__ == "__main__":
    main()
