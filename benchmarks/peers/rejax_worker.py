"""rejax's side of benchmarks/peers.py, run in a fresh process with the peer venv's Python
(benchmarks/.peer-venvs/rejax-<version>/, built by peers.py; rejax needs an older gymnax than jaxpg).

    python benchmarks/peers/rejax_worker.py '{"config": {...PPO.create kwargs...}, "seeds": 8,
                                              "repeats": 2, "eval_episodes": 128}'

The same measurements as jaxpg_worker.py, in the same order. rejax's ``train`` calls an
evaluation callback (by default 128 episodes of up to 500 steps every ``eval_freq`` steps); it is
replaced by a no-op so that only training is timed, and the final policies are evaluated
afterwards with rejax's own ``rejax.evaluate.evaluate`` (sampled actions, as in its callback).
Prints one ``RESULT {json}`` line.
"""

import time

T0 = time.perf_counter()  # before jax: the import times below are the process's own

import jax  # noqa: E402

T_JAX = time.perf_counter()
import rejax  # noqa: E402

T_REJAX = time.perf_counter()

import numpy as np  # noqa: E402
from rejax.evaluate import evaluate as rejax_evaluate  # noqa: E402

from _common import (best_of, compile_timed, disable_compilation_cache, emit, run_figures, spec_from_argv,  # noqa: E402
                     timed, versions)


def build(spec):
    """``(algo, train)``: a new PPO and a new function, so no jax cache is hit across builds.

    ``train(rng) -> train state``, rejax's ``algo.train`` with the evaluation callback disabled
    (its output, an empty tuple per evaluation, is dropped)."""
    algo = rejax.get_algo("ppo").create(**spec["config"])  # create() deep-copies the config
    algo = algo.replace(eval_callback=lambda algo, ts, rng: ())

    def train(rng):
        ts, _ = algo.train(rng)
        return ts

    return algo, train


def iterations(algo) -> int:
    """Training iterations rejax runs: ``ceil(eval_freq / batch)`` per evaluation period, times
    ``ceil(total_timesteps / eval_freq)`` periods (OnPolicyMixin.train)."""
    batch = algo.num_envs * algo.num_steps
    return int(np.ceil(algo.eval_freq / batch)) * int(np.ceil(algo.total_timesteps / algo.eval_freq))


def evaluate(algo, ts, episodes: int, vmapped: bool) -> np.ndarray:
    """Mean return of ``episodes`` episodes with sampled actions, per seed (rejax's evaluation)."""
    max_steps = algo.env_params.max_steps_in_episode

    def one(ts, rng):
        _, returns = rejax_evaluate(algo.make_act(ts), rng, algo.env, algo.env_params, episodes, max_steps)
        return returns.mean()

    if vmapped:
        seeds = jax.tree.leaves(ts)[0].shape[0]
        return np.asarray(jax.jit(jax.vmap(one))(ts, jax.random.split(jax.random.PRNGKey(1), seeds)))
    return np.asarray(jax.jit(one)(ts, jax.random.PRNGKey(1)))


def measure(spec, vmapped: bool) -> dict:
    algo, train = build(spec)
    seeds = spec["seeds"] if vmapped else 1
    key = jax.random.split(jax.random.PRNGKey(0), seeds) if vmapped else jax.random.PRNGKey(0)
    figures, executable = compile_timed(jax, jax.vmap(train) if vmapped else train, key)
    times, ts = best_of(jax, executable, (key,), spec["repeats"])
    steps = seeds * iterations(algo) * algo.num_envs * algo.num_steps
    counted = int(np.sum(np.asarray(ts.global_step)))
    if counted != steps:  # guards the step count the throughput is computed from
        raise RuntimeError(f"rejax took {counted} env steps, expected {steps}")
    return run_figures(figures, seeds, steps, times, np.atleast_1d(evaluate(algo, ts, spec["eval_episodes"], vmapped)))


def main() -> None:
    spec = spec_from_argv()
    disable_compilation_cache(jax)
    start = time.perf_counter()
    algo, train = build(spec)
    built = time.perf_counter()
    first_call_s, _ = timed(jax, jax.jit(train), jax.random.PRNGKey(0))
    out = {
        "library": "rejax",
        "versions": versions("rejax", "jax", "jaxlib", "flax", "optax", "chex", "distrax", "gymnax", "numpy"),
        "backend": jax.default_backend(),
        "env_steps_per_run": iterations(algo) * algo.num_envs * algo.num_steps,
        "iterations": iterations(algo),
        "config": spec["config"],
        "import_jax_s": T_JAX - T0,
        "import_lib_s": T_REJAX - T0,  # `import rejax`: includes jax
        "build_s": built - start,
        "first_call_s": first_call_s,
        "imports_build_first_call_s": time.perf_counter() - T0,
    }
    print(f"  rejax first call {first_call_s:.1f} s", flush=True)
    out["single"] = measure(spec, vmapped=False)
    if spec["seeds"]:
        out["vmap"] = measure(spec, vmapped=True)
    emit(out)


if __name__ == "__main__":
    main()
