"""Learning results that the README reports: each experiment is one vmapped sweep over seeds.

    python benchmarks/learning.py [--only NAME ...] [--out benchmarks/results]

Experiments (budgets per seed):
* ppo_cartpole: PPO, default CartPole settings, 500k steps, 10 seeds; deterministic evaluation
  (10 episodes per seed); the claim is >= 475 for at least 8 of 10 seeds.
* reinforce_cartpole: REINFORCE with a learned baseline, 8 episodes x 500 steps per iteration,
  1M simulated steps, 5 seeds.
* ppo_pendulum: PPO with a tanh-squashed Gaussian policy on gymnax Pendulum-v1, 5 seeds.
* ppo_inverted_pendulum: PPO on brax inverted_pendulum (generalized backend), 3 seeds.

Writes learning.json, learning.md and one learning-curve PNG per experiment.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time

import jax
import numpy as np

import jaxpg
from jaxpg.plotting import plot_learning_curves

EXPERIMENTS = {
    "ppo_cartpole": dict(algo="ppo", env="CartPole-v1", seeds=10, threshold=475.0, overrides=dict(total_steps=500_000)),
    "reinforce_cartpole": dict(
        algo="reinforce", env="CartPole-v1", seeds=5, threshold=475.0, overrides=dict(total_steps=1_000_000)
    ),
    "ppo_pendulum": dict(
        algo="ppo",
        env="Pendulum-v1",
        seeds=5,
        threshold=-400.0,
        overrides=dict(
            total_steps=1_000_000, num_envs=16, num_steps=64, update_epochs=10, num_minibatches=8,
            normalize_obs=True, init_log_std=-0.5, ent_coef=0.0, learning_rate=1e-3,
        ),
    ),
    "ppo_inverted_pendulum": dict(
        algo="ppo",
        env="brax/inverted_pendulum",
        seeds=3,
        threshold=950.0,
        overrides=dict(
            total_steps=300_000, num_envs=32, num_steps=64, update_epochs=4, num_minibatches=4,
            normalize_obs=True, ent_coef=0.0, learning_rate=1e-3,
        ),
    ),
}


def run_experiment(name: str, spec: dict, out_dir: str) -> dict:
    train = jaxpg.make_train(spec["algo"], env=spec["env"], **spec["overrides"])
    key = jax.random.key(0)
    start = time.perf_counter()
    result = jaxpg.sweep.run(train, seeds=spec["seeds"], key=key)
    jax.block_until_ready(result.metrics)
    train_seconds = time.perf_counter() - start
    jaxpg.check_finite(result)
    evals = np.asarray(jaxpg.evaluate(result, jax.random.key(1), num_episodes=10)).mean(-1)
    returns = np.asarray(result.metrics["episode_return"])
    steps = np.asarray(result.metrics["env_steps"])[0]
    # First step where the training return, averaged over the last 10 iterations, reaches the
    # threshold (one lucky long episode in a single iteration does not count).
    window = min(10, returns.shape[-1])
    smoothed = np.stack([np.convolve(r, np.ones(window) / window, mode="valid") for r in returns])
    reached = [
        int(steps[window - 1 + np.argmax(r >= spec["threshold"])]) if np.any(r >= spec["threshold"]) else None
        for r in smoothed
    ]
    plot_learning_curves(jax.tree.map(np.asarray, result.metrics), os.path.join(out_dir, f"learning-{name}.png"),
                         f"{spec['algo']} on {spec['env']}")
    return {
        "algo": spec["algo"],
        "env": spec["env"],
        "seeds": spec["seeds"],
        "overrides": spec["overrides"],
        "env_steps_per_seed": int(steps[-1]),
        "threshold": spec["threshold"],
        "eval_return_per_seed": evals.round(2).tolist(),
        "eval_mean": float(evals.mean()),
        "seeds_eval_at_threshold": int((evals >= spec["threshold"]).sum()),
        # first iteration in which an episode ended (the metric is NaN before that)
        "initial_return_mean": float(np.mean([r[np.isfinite(r)][0] for r in returns])),
        "final_train_return_mean": float(returns[:, -1].mean()),
        "steps_to_threshold_per_seed (10-iteration mean)": reached,
        "wall_seconds_including_compile": train_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(EXPERIMENTS), help="run only these experiments")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "learning.json")
    results = json.load(open(path)) if os.path.exists(path) else {}
    for name in args.only or list(EXPERIMENTS):
        print(f"== {name}", flush=True)
        results[name] = run_experiment(name, EXPERIMENTS[name], args.out)
        results[name]["date"] = datetime.date.today().isoformat()
        results[name]["jax"] = jax.__version__
        print(json.dumps(results[name], indent=1), flush=True)
        with open(path, "w") as f:
            json.dump(results, f, indent=2)
    lines = [
        "| experiment | env steps / seed | seeds | eval return (mean, per seed) | seeds >= threshold | wall (incl. compile) |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        per_seed = ", ".join(f"{v:.0f}" for v in r["eval_return_per_seed"])
        lines.append(
            f"| {r['algo']} on {r['env']} | {r['env_steps_per_seed']:,} | {r['seeds']} | {r['eval_mean']:.1f} ({per_seed}) "
            f"| {r['seeds_eval_at_threshold']}/{r['seeds']} (>= {r['threshold']:g}) | {r['wall_seconds_including_compile']:.0f} s |"
        )
    with open(os.path.join(args.out, "learning.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
