"""PPO throughput on an accelerator: 1, 8 and 1024 vmapped CartPole seeds, and brax PPO.

    python benchmarks/gpu.py [--quick] [--out benchmarks/results]

One prepared script for a machine with a GPU (it runs anywhere JAX runs; on a CPU it measures the
CPU). For each case: compile time (trace + lower + XLA compile, no persistent cache) and the best
of ``--repeats`` run times of the compiled program, reported as total environment steps per
second, with the device's name (``jax.devices()[0].device_kind``). Cases:

* PPO on gymnax CartPole-v1 at the default settings (4 envs x 128 steps, 4 epochs x 4
  minibatches, 64x64 tanh): ``jax.jit(jax.vmap(train))`` over 1, 8 and 1024 seeds;
* PPO on ``brax/inverted_pendulum`` and ``brax/hopper`` with 2048 environments x 32 steps (the
  batch shape accelerators want; brax's own PPO examples use thousands of environments).

``--quick`` shrinks every budget to a smoke test (and the 1024 seeds to 16). Writes
``gpu.json`` / ``gpu.md`` (``gpu-quick.*`` with ``--quick``). Nothing in jaxpg depends on it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import time

import jax

import jaxpg


def _timed_cases(train, keys, repeats: int) -> dict:
    fn = jax.vmap(train, in_axes=(0, None))
    hparams = train.default_hparams
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(keys, hparams).compile()
    compile_s = time.perf_counter() - start
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = jax.block_until_ready(compiled(keys, hparams))
        times.append(time.perf_counter() - start)
    jaxpg.check_finite(result)
    seeds = keys.shape[0]
    steps = seeds * train.num_iterations * train.steps_per_iteration
    return {
        "seeds": seeds,
        "env_steps": steps,
        "compile_s": compile_s,
        "run_times_s": times,
        "steps_per_s": steps / min(times),
        "final_return_mean": float(result.metrics["episode_return"][:, -1].mean()),
    }


def cases(quick: bool) -> list[dict]:
    cartpole_steps = 16_384 if quick else 524_288
    brax_steps = 2048 * 32 * (2 if quick else 30)
    brax_envs = 64 if quick else 2048
    # Cheapest first: a run cut short by its time limit still reports the cases it finished.
    out = [{"name": f"PPO CartPole-v1, {n} vmapped seed(s)", "algo": "ppo", "env": "CartPole-v1", "seeds": n,
            "kwargs": {"total_steps": cartpole_steps}} for n in (1, 8)]
    for env in ("brax/inverted_pendulum", "brax/hopper"):
        out.append({"name": f"PPO {env}, {brax_envs} envs x 32 steps, 1 seed", "algo": "ppo", "env": env,
                    "seeds": 1, "kwargs": {"total_steps": brax_steps if not quick else brax_envs * 32 * 2,
                                           "num_envs": brax_envs, "num_steps": 32, "num_minibatches": 32}})
    seeds = 16 if quick else 1024
    out.append({"name": f"PPO CartPole-v1, {seeds} vmapped seed(s)", "algo": "ppo", "env": "CartPole-v1",
                "seeds": seeds, "kwargs": {"total_steps": cartpole_steps}})
    return out


def markdown(results: dict) -> str:
    lines = [
        f"# jaxpg PPO on {results['device_kind']} ({results['backend']})" + (" (--quick)" if results["quick"] else ""),
        "",
        f"{results['date']} · jax {results['jax']} · {results['device_count']} device(s); "
        "`python benchmarks/gpu.py`",
        "",
        "| Case | Compile | Env steps/s (total) | Final return (mean) |",
        "|---|---|---|---|",
    ]
    for case in results["cases"]:
        r = case["result"]
        lines.append(f"| {case['name']} | {r['compile_s']:.1f} s | {r['steps_per_s']:,.0f} | {r['final_return_mean']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budgets: a smoke test")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(pathlib.Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_compilation_cache", False)
    device = jax.devices()[0]
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "jax": jax.__version__, "backend": jax.default_backend(), "device_kind": device.device_kind,
        "device_count": jax.device_count(), "quick": args.quick, "cases": [],
    }
    print(f"device: {device.device_kind} ({jax.default_backend()})", flush=True)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "gpu-quick" if args.quick else "gpu"
    for case in cases(args.quick):
        train = jaxpg.make_train(case["algo"], env=case["env"], **case["kwargs"])
        keys = jax.random.split(jax.random.key(0), case["seeds"])
        case["result"] = _timed_cases(train, keys, args.repeats)
        print(f"  {case['name']}: compile {case['result']['compile_s']:.1f} s, "
              f"{case['result']['steps_per_s']:,.0f} steps/s", flush=True)
        results["cases"].append(case)
        (out / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")  # after every case
        (out / f"{stem}.md").write_text(markdown(results))
    print(markdown(results))
    return results


if __name__ == "__main__":
    main()
