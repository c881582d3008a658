"""PMOE against unimodal SAC and PPO (Ren et al. 2021; reference notes: shared/reference/algorithms.md,
section 3), on the CPU.

    python benchmarks/pmoe.py [--tasks multigoal pendulum brax] [--seeds 5] [--scale 1.0]

Three parts, each written to benchmarks/results/pmoe.json as soon as it finishes:

* ``multigoal``: the multimodal task (``jaxpg.envs.multigoal``; four equally good goals). SAC and
  PMOE-SAC (K = 4) for the same budget. Per seed: the goals the K experts' deterministic
  rollouts from the origin reach (PMOE) or the mode's (SAC), and the goals 200 sampled episodes
  reach (a goal counts if at least 5% of them end there), with the gate's weights at the origin.
* ``pendulum``: gymnax Pendulum-v1. SAC, PMOE-SAC and its two comparison gates (Gumbel-softmax,
  score function); PPO and PMOE-PPO.
* ``brax``: brax inverted_pendulum and inverted_double_pendulum, SAC vs PMOE-SAC and PPO vs PMOE-PPO.

For every run: the learning curve (episode return against env steps, mean over 20 bins), the
area under it (the mean of the binned curve, the paper's AUC up to the budget's scale) and the
final return (mean of the last 10% of iterations), as mean and standard deviation over seeds, and
the deterministic evaluation return of the final policy (10 episodes per seed). Plots in
pmoe.png, a table in pmoe.md. ``--scale`` multiplies every budget (e.g. 4 on a GPU).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxpg
from _curves import binned, summary  # benchmarks/ is on sys.path when a script here runs
from jaxpg.envs.multigoal import MultiGoalParams, goal_reached, mode_rollout_goals

RESULTS = os.path.join(os.path.dirname(__file__), "results")
BINS = 20

SAC_SMALL = dict(hidden_sizes=(64, 64), batch_size=128, learning_starts=1000)
# The co-author PPO settings (reference notes 3.3) at a smaller rollout: 10 epochs of minibatches
# of 64, lr 3e-4, observation normalization; 5 experts.
PPO_CONTROL = dict(num_envs=8, num_steps=256, update_epochs=10, num_minibatches=32, learning_rate=3e-4,
                   normalize_obs=True, lr_schedule="constant", ent_coef=0.0)

# task -> env, budgets and the runs: (label, algorithm, overrides)
TASKS = {
    "multigoal": [
        ("multigoal", 30_000, [("SAC", "sac", SAC_SMALL),
                               ("PMOE-SAC (K=4)", "pmoe_sac", {**SAC_SMALL, "num_experts": 4})]),
    ],
    "pendulum": [
        ("Pendulum-v1", 15_000, [
            ("SAC", "sac", SAC_SMALL),
            ("PMOE-SAC (K=4)", "pmoe_sac", {**SAC_SMALL, "num_experts": 4}),
            ("MoE-SAC, Gumbel-softmax gate", "pmoe_sac", {**SAC_SMALL, "num_experts": 4,
                                                          "gate_estimator": "gumbel_softmax"}),
            ("MoE-SAC, score-function gate", "pmoe_sac", {**SAC_SMALL, "num_experts": 4,
                                                          "gate_estimator": "score_function"}),
        ]),
        ("Pendulum-v1", 500_000, [("PPO", "ppo", PPO_CONTROL),
                                  ("PMOE-PPO (K=5)", "pmoe_ppo", {**PPO_CONTROL, "num_experts": 5})]),
    ],
    "brax": [
        (f"brax/{name}", budget, [("SAC", "sac", SAC_SMALL),
                                  ("PMOE-SAC (K=4)", "pmoe_sac", {**SAC_SMALL, "num_experts": 4})])
        for name, budget in (("inverted_pendulum", 20_000), ("inverted_double_pendulum", 20_000))
    ] + [
        (f"brax/{name}", budget, [("PPO", "ppo", PPO_CONTROL),
                                  ("PMOE-PPO (K=5)", "pmoe_ppo", {**PPO_CONTROL, "num_experts": 5})])
        for name, budget in (("inverted_pendulum", 300_000), ("inverted_double_pendulum", 300_000))
    ],
}


def sampled_goals(train, params, key, episodes: int = 200) -> np.ndarray:
    """How many of ``episodes`` sampled episodes from the origin end at each goal (and at none: last)."""
    env_params = MultiGoalParams()

    def episode(key):
        def step(carry, key):
            position, done = carry
            action = train.network.apply(params, position).sample_and_log_prob(key).action
            moved = jnp.clip(position + action, -env_params.bound, env_params.bound)
            position = jnp.where(done, position, moved)
            return (position, done | (goal_reached(position, env_params) >= 0)), None

        keys = jax.random.split(key, env_params.max_steps_in_episode)
        (position, _), _ = jax.lax.scan(step, (jnp.zeros(2), jnp.zeros((), bool)), keys)
        return goal_reached(position, env_params)

    goals = np.asarray(jax.jit(jax.vmap(episode))(jax.random.split(key, episodes)))
    return np.bincount(np.where(goals < 0, 4, goals), minlength=5)


def multigoal_analysis(train, algo: str, params, seeds: int) -> dict:
    per_seed = []
    for s in range(seeds):
        p = jax.tree.map(lambda x: x[s], params)
        policy = train.network.apply(p, jnp.zeros(2))
        if algo == "pmoe_sac":
            experts = [int(mode_rollout_goals(lambda o, k=k: train.network.apply(p, o).components.mode()[k]))
                       for k in range(policy.logits.shape[-1])]
            weights = [round(float(w), 3) for w in policy.weights()]
        else:
            experts, weights = [int(mode_rollout_goals(lambda o: train.network.apply(p, o).mode()))], None
        counts = sampled_goals(train, p, jax.random.key(100 + s))
        per_seed.append({
            "mode_goals": experts,
            "distinct_mode_goals": len({g for g in experts if g >= 0}),
            "gate_weights_at_origin": weights,
            "sampled_goal_counts": counts.tolist(),  # goals 0..3, then none
            "distinct_sampled_goals": int((counts[:4] >= 0.05 * counts.sum()).sum()),
        })
    return {"per_seed": per_seed,
            "distinct_mode_goals": summary(np.array([r["distinct_mode_goals"] for r in per_seed])),
            "distinct_sampled_goals": summary(np.array([r["distinct_sampled_goals"] for r in per_seed]))}


def run(env: str, budget: int, label: str, algo: str, overrides: dict, seeds: int, scale: float) -> dict:
    train = jaxpg.make_train(algo, env=env, total_steps=int(budget * scale), **overrides)
    keys = jax.random.split(jax.random.key(0), seeds)
    program = jax.jit(jax.vmap(lambda k: train(k)))
    start = time.perf_counter()
    result = jax.block_until_ready(program(keys))
    seconds = time.perf_counter() - start
    jaxpg.check_finite(result)
    returns = np.asarray(result.metrics["episode_return"], np.float64)
    steps = np.asarray(result.metrics["env_steps"], np.float64)[0]
    curve, curve_steps = binned(returns, steps, BINS)
    tail = max(1, returns.shape[1] // 10)
    evaluation = np.asarray(jaxpg.evaluate(result, jax.random.key(1), num_episodes=10)).mean(-1)
    out = {
        "label": label, "algo": algo, "env": env, "env_steps": int(steps[-1]), "seeds": seeds,
        "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()},
        "seconds_with_compile": round(seconds, 1),
        "auc": summary(np.nanmean(curve, axis=1)),
        "final_return": summary(np.nanmean(returns[:, -tail:], axis=1)),
        "eval_return": summary(evaluation),
        "curve_steps": curve_steps.tolist(), "curve_mean": np.nanmean(curve, 0).tolist(),
        "curve_std": np.nanstd(curve, 0).tolist(),
    }
    experts = sorted(k for k in result.metrics if k.startswith("selection_frequency/"))
    if experts:  # the last tenth's mean selection frequency per expert: collapse shows here
        out["selection_frequency_end"] = [round(float(np.asarray(result.metrics[k])[:, -tail:].mean()), 3)
                                          for k in experts]
    if env == "multigoal":
        out["multigoal"] = multigoal_analysis(train, algo, result.params, seeds)
    print(f"  {label:32s} {env:34s} AUC {out['auc']['mean']:9.1f} +- {out['auc']['std']:6.1f}   final "
          f"{out['final_return']['mean']:9.1f} +- {out['final_return']['std']:6.1f}   eval "
          f"{out['eval_return']['mean']:9.1f}   ({seconds:.0f} s)", flush=True)
    return out


def write_markdown(results: dict, path: str) -> None:
    lines = ["| task | env steps | method | AUC (mean +- sd) | final return | eval return (mode) | seconds |",
             "|---|---|---|---|---|---|---|"]
    for r in results["runs"]:
        f = lambda s: f"{s['mean']:.1f} +- {s['std']:.1f}"  # noqa: E731
        lines.append(f"| {r['env']} | {r['env_steps']:,} | {r['label']} | {f(r['auc'])} | {f(r['final_return'])} | "
                     f"{f(r['eval_return'])} | {r['seconds_with_compile']} |")
    goal_runs = [r for r in results["runs"] if "multigoal" in r]
    if goal_runs:
        lines += ["", "| multigoal | distinct goals of the mode rollouts (per expert for PMOE) | distinct goals of "
                  "200 sampled episodes (>= 5%) | per seed (mode goals) |", "|---|---|---|---|"]
        for r in goal_runs:
            m = r["multigoal"]
            lines.append(f"| {r['label']} | {m['distinct_mode_goals']['mean']:.2f} | "
                         f"{m['distinct_sampled_goals']['mean']:.2f} | "
                         f"{'; '.join(str(s['mode_goals']) for s in m['per_seed'])} |")
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {}
    for r in results["runs"]:
        groups.setdefault((r["env"], r["algo"].endswith("ppo")), []).append(r)
    fig, axes = plt.subplots(1, len(groups), figsize=(4.4 * len(groups), 3.4), squeeze=False)
    for ax, ((env, ppo), runs) in zip(axes[0], groups.items()):
        for i, r in enumerate(runs):
            x, m, s = (np.asarray(r[k]) for k in ("curve_steps", "curve_mean", "curve_std"))
            ax.plot(x, m, color=f"C{i}", label=r["label"])
            ax.fill_between(x, m - s, m + s, color=f"C{i}", alpha=0.2, lw=0)
        ax.set_title(f"{env} ({'PPO' if ppo else 'SAC'} family)", fontsize=9)
        ax.set_xlabel("environment steps")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel(f"episode return (mean +- sd, {results['runs'][0]['seeds']} seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every env-step budget")
    parser.add_argument("--out", default=RESULTS)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    json_path = os.path.join(args.out, "pmoe.json")
    previous = json.load(open(json_path)) if os.path.exists(json_path) else {"runs": []}
    # A part that is re-run replaces its old rows; the other parts' rows are kept.
    envs_rerun = {env for task in args.tasks for env, _, _ in TASKS[task]}
    results = {"date": datetime.date.today().isoformat(), "device": str(jax.devices()[0].device_kind),
               "command": "python benchmarks/pmoe.py " + " ".join(f"--tasks {t}" for t in args.tasks),
               "runs": [r for r in previous["runs"] if r["env"] not in envs_rerun]}
    for task in args.tasks:
        print(f"== {task}", flush=True)
        for env, budget, runs in TASKS[task]:
            for label, algo, overrides in runs:
                results["runs"].append(run(env, budget, label, algo, overrides, args.seeds, args.scale))
                with open(json_path, "w") as fh:
                    json.dump(results, fh, indent=1)
    write_markdown(results, os.path.join(args.out, "pmoe.md"))
    plot(results, os.path.join(args.out, "pmoe.png"))
    print(f"wrote {json_path}, pmoe.md, pmoe.png")


if __name__ == "__main__":
    main()
