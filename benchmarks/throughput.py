"""Throughput of jaxpg's PPO on CartPole-v1 on the current machine.

    python benchmarks/throughput.py [--quick] [--out benchmarks/results]

Measures, at the default PPO configuration (4 envs x 128 steps, 4 epochs x 4 minibatches, 64x64
tanh, 500k environment steps):

* one run: trace+lower and XLA compile time (``jax.jit(train).lower(...).compile(...)`` with
  jaxpg's compiler options, what ``train.jit()`` uses) apart from
  run time (best of ``--repeats`` calls of the compiled function), and env steps/s;
* 8 vmapped seeds (``jax.jit(jax.vmap(train))``): total env steps/s and the time per seed relative
  to one separate run (``t_vmap / (8 * t_single)``; below 1 means the sweep is cheaper per seed);
* the ceiling: the same ``VectorEnv(env, 4)`` stepped with uniformly random actions in one
  jitted ``lax.scan`` over the same number of steps (no network, no learning);
* the first call in a fresh process: ``import jaxpg`` time, then the first
  ``train.jit()(key, hparams)`` (compile + full run) with an empty persistent compilation
  cache, and again in a second fresh process once that cache is warm.

Writes ``throughput.json`` and ``throughput.md`` to ``--out`` (``throughput-quick.*`` with
``--quick``, so a smoke check does not overwrite the full-size figures).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import textwrap
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxpg
from jaxpg.algos.trainer import compiler_options
from machine import cpu_model, cpus_available  # benchmarks/machine.py (this script's folder)

ENV = "CartPole-v1"
NUM_SEEDS = 8


def _timed(fn, *args):
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return time.perf_counter() - start, out


def _compile(fn, *args) -> dict:
    """Trace+lower and compile ``jax.jit(fn)`` for ``args``; returns timings and the executable."""
    start = time.perf_counter()
    lowered = jax.jit(fn).lower(*args)
    lowered_at = time.perf_counter()
    compiled = lowered.compile(compiler_options=compiler_options() or None)  # what train.jit() uses
    done = time.perf_counter()
    return {
        "lower_s": lowered_at - start,
        "compile_s": done - lowered_at,
        "total_s": done - start,
        "executable": compiled,
    }


def _best_of(compiled, args, repeats: int) -> tuple[float, list[float], object]:
    times, out = [], None
    for _ in range(repeats):
        t, out = _timed(compiled, *args)
        times.append(t)
    return min(times), times, out


def bench_single(total_steps: int, repeats: int) -> dict:
    train = jaxpg.make_train("ppo", env=ENV, total_steps=total_steps)
    key, hparams = jax.random.key(0), train.default_hparams
    c = _compile(train, key, hparams)
    best, times, result = _best_of(c["executable"], (key, hparams), repeats)
    jaxpg.check_finite(result)
    steps = train.num_iterations * train.steps_per_iteration
    return {
        "env_steps": steps,
        "iterations": train.num_iterations,
        "lower_s": c["lower_s"],
        "compile_s": c["compile_s"],
        "run_s": best,
        "run_times_s": times,
        "steps_per_s": steps / best,
        "final_episode_return": float(result.metrics["episode_return"][-1]),
    }


def bench_vmap(total_steps: int, repeats: int, seeds: int) -> dict:
    train = jaxpg.make_train("ppo", env=ENV, total_steps=total_steps)
    keys = jax.random.split(jax.random.key(0), seeds)
    hparams = jax.tree.map(lambda x: jnp.full((seeds,), x, jnp.float32), train.default_hparams)
    c = _compile(jax.vmap(train), keys, hparams)
    best, times, result = _best_of(c["executable"], (keys, hparams), repeats)
    jaxpg.check_finite(result)
    steps = seeds * train.num_iterations * train.steps_per_iteration
    return {
        "seeds": seeds,
        "env_steps": steps,
        "lower_s": c["lower_s"],
        "compile_s": c["compile_s"],
        "run_s": best,
        "run_times_s": times,
        "steps_per_s": steps / best,
        "run_s_per_seed": best / seeds,
        "final_episode_return_mean": float(np.mean(result.metrics["episode_return"][:, -1])),
    }


def bench_ceiling(total_steps: int, repeats: int, num_envs: int = 4) -> dict:
    """The vectorized environment alone, stepped with uniformly random actions."""
    env = jaxpg.envs.make(ENV)
    venv = jaxpg.envs.VectorEnv(env, num_envs)
    spec = env.action_spec
    num_steps = total_steps // num_envs

    def random_action(key):
        if isinstance(spec, jaxpg.envs.Discrete):
            return jax.random.randint(key, (num_envs,) + spec.shape, 0, spec.n)
        return jax.random.uniform(key, (num_envs,) + spec.shape, minval=spec.low, maxval=spec.high)

    def rollout(key):
        key_reset, key_run = jax.random.split(key)
        state, obs = venv.reset(key_reset)

        def step(carry, key):
            state, total_reward = carry
            key_act, key_env = jax.random.split(key)
            state, ts = venv.step(key_env, state, random_action(key_act))
            return (state, total_reward + ts.reward.sum()), None

        (state, total_reward), _ = jax.lax.scan(
            step, (state, jnp.zeros((), jnp.float32)), jax.random.split(key_run, num_steps)
        )
        return total_reward

    key = jax.random.key(0)
    c = _compile(rollout, key)
    best, times, _ = _best_of(c["executable"], (key,), repeats)
    steps = num_steps * num_envs
    return {
        "num_envs": num_envs,
        "env_steps": steps,
        "lower_s": c["lower_s"],
        "compile_s": c["compile_s"],
        "run_s": best,
        "run_times_s": times,
        "steps_per_s": steps / best,
    }


FRESH_PROCESS_SNIPPET = textwrap.dedent(
    """
    import json, time
    t0 = time.perf_counter()
    import jax
    t1 = time.perf_counter()
    import jaxpg
    t2 = time.perf_counter()
    train = jaxpg.make_train("ppo", env={env!r}, total_steps={total_steps})
    key = jax.random.key(0)
    t3 = time.perf_counter()
    jax.block_until_ready(train.jit()(key, train.default_hparams))
    t4 = time.perf_counter()
    jax.block_until_ready(train.jit()(key, train.default_hparams))
    t5 = time.perf_counter()
    print("RESULT " + json.dumps({{
        "import_jax_s": t1 - t0,
        "import_jaxpg_s": t2 - t0,
        "make_train_s": t3 - t2,
        "first_call_s": t4 - t3,
        "second_call_s": t5 - t4,
    }}))
    """
)


def _cache_size(path: pathlib.Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def bench_fresh_process(total_steps: int) -> dict:
    """First call in a fresh interpreter: cold, then warm persistent compilation cache."""
    code = FRESH_PROCESS_SNIPPET.format(env=ENV, total_steps=total_steps)
    out = {}
    with tempfile.TemporaryDirectory(prefix="jaxpg-bench-cache-") as cache_dir:
        env = dict(os.environ)
        env["JAX_COMPILATION_CACHE_DIR"] = cache_dir
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
        env.pop("JAX_ENABLE_COMPILATION_CACHE", None)
        for label in ("cold_cache", "warm_cache"):
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
            )
            wall = time.perf_counter() - start
            if proc.returncode != 0:
                raise RuntimeError(f"fresh-process benchmark failed ({label}):\n{proc.stderr[-4000:]}")
            line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
            figures = json.loads(line[len("RESULT "):])
            figures["process_wall_s"] = wall
            files, size = _cache_size(pathlib.Path(cache_dir))
            figures["cache_files_after"], figures["cache_bytes_after"] = files, size
            out[label] = figures
    return out


def machine_info() -> dict:
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "jax_version": jax.__version__,
        "jaxlib_version": getattr(__import__("jaxlib"), "__version__", None),
        "jaxpg_version": jaxpg.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_available": cpus_available(),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
    }


def _fmt(x, unit="", digits=2):
    if isinstance(x, float):
        if abs(x) >= 1e4:
            return f"{x:,.0f}{unit}"
        return f"{x:.{digits}f}{unit}"
    return f"{x}{unit}"


def markdown(results: dict) -> str:
    m, s, v, c, f = (results[k] for k in ("machine", "single", "vmap", "ceiling", "fresh_process"))
    n = v["seeds"]
    rows = [
        ("PPO, 1 run: trace + lower", _fmt(s["lower_s"], " s")),
        ("PPO, 1 run: XLA compile", _fmt(s["compile_s"], " s")),
        (f"PPO, 1 run: run time (best of {len(s['run_times_s'])})", _fmt(s["run_s"], " s")),
        ("PPO, 1 run: env steps/s", _fmt(s["steps_per_s"])),
        (f"PPO, {n} vmapped seeds: trace + lower + compile", _fmt(v["lower_s"] + v["compile_s"], " s")),
        (f"PPO, {n} vmapped seeds: run time (best of {len(v['run_times_s'])})", _fmt(v["run_s"], " s")),
        (f"PPO, {n} vmapped seeds: total env steps/s", _fmt(v["steps_per_s"])),
        (f"PPO, {n} vmapped seeds: time per seed / one separate run", _fmt(results["vmap_per_seed_ratio"], "", 3)),
        (f"Ceiling: VectorEnv({c['num_envs']}) random actions, one scan: env steps/s", _fmt(c["steps_per_s"])),
        ("PPO (1 run) steps/s / ceiling", _fmt(results["ppo_over_ceiling"], "", 3)),
        (f"PPO ({n} seeds) total steps/s / ceiling", _fmt(results["sweep_over_ceiling"], "", 3)),
    ]
    if f is not None:
        cold, warm = f["cold_cache"], f["warm_cache"]
        rows += [
        ("Fresh process: `import jaxpg` (incl. jax)", _fmt(cold["import_jaxpg_s"], " s")),
        ("Fresh process: `import jax` alone", _fmt(cold["import_jax_s"], " s")),
        ("Fresh process, empty cache: first `train.jit()(key, hp)` (compile + run)", _fmt(cold["first_call_s"], " s")),
        ("Fresh process, empty cache: second call (run only)", _fmt(cold["second_call_s"], " s")),
        ("Fresh process, empty cache: compile overhead (first - second call)", _fmt(cold["first_call_s"] - cold["second_call_s"], " s")),
        ("Fresh process, warm cache: first `train.jit()(key, hp)`", _fmt(warm["first_call_s"], " s")),
        ("Fresh process, warm cache: compile overhead (first - second call)", _fmt(warm["first_call_s"] - warm["second_call_s"], " s")),
        ("Fresh process, warm cache: `import jaxpg`", _fmt(warm["import_jaxpg_s"], " s")),
        ("Persistent cache after first process", f"{cold['cache_files_after']} files, {cold['cache_bytes_after'] / 1e6:.1f} MB"),
        ]
    lines = [
        f"# jaxpg throughput: PPO on {ENV}" + (" (--quick)" if results["quick"] else ""),
        "",
        f"{m['date']} · jax {m['jax_version']} ({m['backend']}) · {m['cpu_model'] or m['processor']} · "
        f"{m['cpus_available']} of {m['cpu_count']} CPUs · Python {m['python']}",
        "",
        f"Default PPO config: 4 envs x 128 steps, 4 epochs x 4 minibatches, 64x64 tanh; "
        f"{s['env_steps']:,} env steps per run ({s['iterations']} iterations). "
        f"Load average before/after: {results['loadavg_before']} / {results['loadavg_after']} "
        "(a load above the CPU count means other processes competed for the cores; every run time "
        "is in the JSON file).",
        "",
        "| Measurement | Value |",
        "|---|---|",
        *[f"| {k} | {val} |" for k, val in rows],
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small budgets (50k steps, 1 repeat) for a smoke check")
    parser.add_argument("--out", default="benchmarks/results", help="directory for the result files")
    parser.add_argument("--total-steps", type=int, default=None, help="override the env-step budget")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per measurement (best is kept)")
    parser.add_argument("--skip-fresh-process", action="store_true", help="skip the subprocess measurements")
    args = parser.parse_args(argv)

    total_steps = args.total_steps or (50_000 if args.quick else 500_000)
    repeats = args.repeats or (1 if args.quick else 3)
    # Compile times must not be served from a persistent cache the user happens to have set up.
    jax.config.update("jax_enable_compilation_cache", False)

    loadavg_before = [round(x, 2) for x in os.getloadavg()]
    print(f"jaxpg throughput benchmark: {total_steps} env steps, best of {repeats}", flush=True)
    results = {"quick": args.quick, "total_steps": total_steps, "repeats": repeats, "machine": machine_info()}

    results["single"] = single = bench_single(total_steps, repeats)
    print(f"  single: compile {single['compile_s']:.1f} s, run {single['run_s']:.2f} s, "
          f"{single['steps_per_s']:,.0f} steps/s", flush=True)
    results["vmap"] = vm = bench_vmap(total_steps, repeats, NUM_SEEDS)
    results["vmap_per_seed_ratio"] = vm["run_s"] / (NUM_SEEDS * single["run_s"])
    print(f"  vmap x{NUM_SEEDS}: compile {vm['compile_s']:.1f} s, run {vm['run_s']:.2f} s, "
          f"{vm['steps_per_s']:,.0f} steps/s, per-seed ratio {results['vmap_per_seed_ratio']:.3f}", flush=True)
    results["ceiling"] = ceil = bench_ceiling(total_steps, repeats)
    results["ppo_over_ceiling"] = single["steps_per_s"] / ceil["steps_per_s"]
    results["sweep_over_ceiling"] = vm["steps_per_s"] / ceil["steps_per_s"]
    print(f"  ceiling: {ceil['steps_per_s']:,.0f} steps/s; PPO/ceiling {results['ppo_over_ceiling']:.3f}", flush=True)
    if args.skip_fresh_process:
        results["fresh_process"] = None
    else:
        results["fresh_process"] = fresh = bench_fresh_process(total_steps)
        print(f"  fresh process: import {fresh['cold_cache']['import_jaxpg_s']:.1f} s, first call cold "
              f"{fresh['cold_cache']['first_call_s']:.1f} s, warm {fresh['warm_cache']['first_call_s']:.1f} s", flush=True)
    results["loadavg_before"] = loadavg_before
    results["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "throughput-quick" if args.quick else "throughput"
    (out / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (out / f"{stem}.md").write_text(table)
    print(table)
    print(f"wrote {out / stem}.json", flush=True)
    return results


if __name__ == "__main__":
    main()
