"""GoRL against Gaussian PPO at the same env-step budget ("GoRL: An Algorithm-Agnostic Framework
for Online Reinforcement Learning with Generative Policies", 2025; reference notes:
shared/reference/algorithms.md, section 4), on the CPU.

    python benchmarks/gorl.py [--tasks bandit control brax] [--seeds 5] [--scale 1.0]

* ``bandit``: the bimodal contextual bandit (``bandit/bimodal``: reward peaks at a = +-0.6). Per
  seed: the mean reward of the final policy and its executed actions at 5 contexts (256 samples
  each): the share near each peak (|a -+ 0.6| < 0.2) and whether the policy uses both (each peak
  >= 10% of the samples at a context). Histograms in gorl.png.
* ``control``: gymnax Pendulum-v1.
* ``brax``: brax hopper and walker2d. These stand in for the paper's DeepMind Control tasks
  (MuJoCo Playground), which need a GPU at the paper's 180M steps.
* ``dmc_cpu``: Playground's CartpoleSwingup (a DMC task cheap enough for a CPU).
* ``dmc`` (GPU): Playground's CheetahRun at 6M steps (the paper: 180M), 1024 envs.

GoRL runs 3 stages; PPO gets the same number of environment steps, GoRL's data-collection
steps for its decoders included. Reported per run: AUC (mean of the binned learning curve),
final return (last 10% of iterations) and the deterministic evaluation return (10 episodes),
mean and standard deviation over seeds. Writes gorl.json / gorl.md / gorl.png to
benchmarks/results/ (each part's rows are replaced when it is re-run).
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
from jaxpg.envs.bandit import bimodal_reward

RESULTS = os.path.join(os.path.dirname(__file__), "results")
BINS = 20
CONTEXTS = (-0.8, -0.4, 0.0, 0.4, 0.8)

# PPO settings for continuous control shared by both methods (the co-author PMOE/GoRL-style
# continuous PPO: 10 epochs of minibatches of 64 at 2,048 steps per iteration).
CONTROL = dict(num_envs=16, num_steps=128, update_epochs=10, num_minibatches=32, learning_rate=3e-4,
               normalize_obs=True, lr_schedule="constant", ent_coef=0.0)
GORL = dict(num_stages=3, decoder_rollouts=8, decoder_train_steps=2000, decoder_batch_size=512)
BANDIT = dict(num_envs=64, num_steps=8, update_epochs=4, num_minibatches=4, hidden_sizes=(32, 32),
              learning_rate=3e-3, lr_schedule="constant", ent_coef=0.0)
TASKS = {
    "bandit": [("bandit/bimodal", 3 * 40 * 512, BANDIT, dict(GORL, decoder_train_steps=1500,
                                                              decoder_batch_size=256, decoder_learning_rate=3e-3))],
    "control": [("Pendulum-v1", 600_000, CONTROL, GORL)],
    "brax": [("brax/hopper", 600_000, CONTROL, GORL), ("brax/walker2d", 600_000, CONTROL, GORL)],
    # A DeepMind Control task through MuJoCo Playground that a CPU can run (MJX's cartpole has no
    # contacts: about 0.01 ms a step here); the paper's tasks (CheetahRun, ...) need a GPU.
    "dmc_cpu": [("playground/CartpoleSwingup", 600_000, CONTROL, GORL)],
    # GPU only (MuJoCo Playground, the paper's suite; pip install -e ".[playground]"): the batch
    # shape of Playground's DMC PPO config at a smaller scale (1024 envs x 32 steps, lr 1e-3, gamma 0.995).
    "dmc": [("playground/CheetahRun", 6_000_000,
             dict(num_envs=1024, num_steps=32, update_epochs=8, num_minibatches=16, learning_rate=1e-3, gamma=0.995,
                  normalize_obs=True, lr_schedule="constant", ent_coef=1e-2, hidden_sizes=(256, 256),
                  activation="silu"),
             dict(GORL, decoder_rollouts=2, decoder_train_steps=3000, decoder_batch_size=4096))],
    # The base algorithm as a parameter: GoRL on SAC against SAC (SAC's defaults at 64x64 networks,
    # for CPU time; 5,000 steps of the best encoder's data per decoder).
    "control_sac": [("Pendulum-v1", 30_000, dict(hidden_sizes=(64, 64)), dict(GORL, decoder_rollouts=5000), "sac")],
}
BASE_LABELS = {"ppo": "Gaussian PPO", "sac": "SAC"}


def action_modes(train, result, seeds: int) -> dict:
    """Executed actions of the final policies at fixed contexts: the share near each peak."""
    contexts = jnp.asarray(CONTEXTS)[:, None]

    def sample(state, key):
        keys = jax.random.split(key, 256)
        return jax.vmap(lambda k: train.policy(state, contexts).sample_and_log_prob(k).action[..., 0])(keys)  # [256, C]

    actions = np.asarray(jax.jit(jax.vmap(sample))(result.state, jax.random.split(jax.random.key(9), seeds)))
    near_plus = (np.abs(actions - 0.6) < 0.2).mean(1)  # [seeds, C]
    near_minus = (np.abs(actions + 0.6) < 0.2).mean(1)
    both = (np.minimum(near_plus, near_minus) >= 0.1)
    overall = np.minimum((np.abs(actions - 0.6) < 0.2).mean((1, 2)), (np.abs(actions + 0.6) < 0.2).mean((1, 2)))
    rewards = np.asarray(bimodal_reward(jnp.asarray(actions)[..., None])).mean((1, 2))
    return {"contexts": list(CONTEXTS), "share_near_plus": near_plus.round(3).tolist(),
            "share_near_minus": near_minus.round(3).tolist(),
            "contexts_using_both_peaks": summary(both.sum(1)), "mean_reward": summary(rewards),
            # Both peaks over all contexts together (a context-dependent choice of peak counts here).
            "seeds_using_both_peaks_overall": int((overall >= 0.1).sum()),
            "histogram_edges": np.linspace(-1, 1, 41).tolist(),
            "histogram": np.histogram(actions.ravel(), np.linspace(-1, 1, 41))[0].tolist()}


def run(env: str, budget: int, label: str, algo: str, overrides: dict, seeds: int) -> dict:
    train = jaxpg.make_train(algo, env=env, total_steps=budget, **overrides)
    keys = jax.random.split(jax.random.key(0), seeds)
    start = time.perf_counter()
    result = jax.block_until_ready(jax.jit(jax.vmap(lambda k: train(k)))(keys))
    seconds = time.perf_counter() - start
    jaxpg.check_finite(result)
    returns = np.asarray(result.metrics["episode_return"], np.float64)
    steps = np.asarray(result.metrics["env_steps"], np.float64)[0]
    curve, curve_steps = binned(returns, steps, BINS)
    tail = max(1, returns.shape[1] // 10)
    evaluation = np.asarray(jaxpg.evaluate(result, jax.random.key(1), num_episodes=10)).mean(-1)
    base = overrides.get("base", algo if algo in BASE_LABELS else "ppo")
    out = {"label": label, "algo": train.algo, "base": base, "env": env, "env_steps": int(steps[-1]), "seeds": seeds,
           "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()},
           "seconds_with_compile": round(seconds, 1), "auc": summary(np.nanmean(curve, 1)),
           "final_return": summary(np.nanmean(returns[:, -tail:], 1)), "eval_return": summary(evaluation),
           "curve_steps": curve_steps.tolist(),
           "curve_mean": np.nanmean(curve, 0).tolist(), "curve_std": np.nanstd(curve, 0).tolist()}
    if algo.startswith("gorl"):
        stage = np.asarray(result.metrics["stage"])[0]
        out["stage_start_steps"] = [float(steps[i]) for i in np.flatnonzero(np.diff(stage)) + 1]
        # Return just before and just after each switch: per seed, the last return reported before it
        # and the first one after it (SAC reports none until the new stage's first episode ends).
        def first_finite(rows):
            return np.asarray([row[np.isfinite(row)][0] if np.isfinite(row).any() else np.nan for row in rows])

        out["return_around_switch"] = [[float(np.nanmean(first_finite(returns[:, i - 1::-1]))),
                                        float(np.nanmean(first_finite(returns[:, i + 1:])))]
                                       for i in np.flatnonzero(np.diff(stage)) + 1]
        out["decoder_loss_end"] = float(np.asarray(result.metrics["decoder_loss"])[:, -1].mean())
    if env == "bandit/bimodal":
        out["modes"] = action_modes(train, result, seeds)
    print(f"  {label:12s} {env:18s} {out['env_steps']:>9,} steps  AUC {out['auc']['mean']:9.2f} +- "
          f"{out['auc']['std']:6.2f}  final {out['final_return']['mean']:9.2f} +- {out['final_return']['std']:6.2f}  "
          f"eval {out['eval_return']['mean']:9.2f}  ({seconds:.0f} s)", flush=True)
    return out


def write_markdown(results: dict, path: str) -> None:
    f = lambda s: f"{s['mean']:.2f} +- {s['std']:.2f}"  # noqa: E731
    lines = ["| task | env steps | method | AUC | final return | eval return (mode) | seconds |",
             "|---|---|---|---|---|---|---|"]
    for r in results["runs"]:
        lines.append(f"| {r['env']} | {r['env_steps']:,} | {r['label']} | {f(r['auc'])} | {f(r['final_return'])} | "
                     f"{f(r['eval_return'])} | {r['seconds_with_compile']} |")
    modes = [r for r in results["runs"] if "modes" in r]
    if modes:
        lines += ["", "| bimodal bandit | mean reward of sampled actions | contexts (of 5) where both peaks get "
                  ">= 10% | seeds using both peaks over all contexts |", "|---|---|---|---|"]
        lines += [f"| {r['label']} | {f(r['modes']['mean_reward'])} | {f(r['modes']['contexts_using_both_peaks'])} | "
                  f"{r['modes']['seeds_using_both_peaks_overall']} of {r['seeds']} |" for r in modes]
    switches = [r for r in results["runs"] if "return_around_switch" in r]
    if switches:
        lines += ["", "| GoRL run | return before -> after each stage switch (mean over seeds) |", "|---|---|"]
        lines += [f"| {r['env']} ({r['label']}) | " + "; ".join(f"{a:.1f} -> {b:.1f}" for a, b in r["return_around_switch"])
                  + " |" for r in switches]
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(dict.fromkeys((r["env"], r.get("base", "ppo")) for r in results["runs"]))
    modes = [r for r in results["runs"] if "modes" in r]
    count = len(panels) + (1 if modes else 0)
    fig, axes = plt.subplots(1, count, figsize=(4.4 * count, 3.4), squeeze=False)
    for ax, (env, base) in zip(axes[0], panels):
        for i, r in enumerate(r for r in results["runs"] if (r["env"], r.get("base", "ppo")) == (env, base)):
            x, m, s = (np.asarray(r[k]) for k in ("curve_steps", "curve_mean", "curve_std"))
            ax.plot(x, m, color=f"C{i}", label=r["label"])
            ax.fill_between(x, m - s, m + s, color=f"C{i}", alpha=0.2, lw=0)
            for start in r.get("stage_start_steps", []):
                ax.axvline(start, color="0.4", ls="--", lw=0.8)
        ax.set_title(env if base == "ppo" else f"{env} (base: {base.upper()})", fontsize=9)
        ax.set_xlabel("environment steps")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if modes:
        ax = axes[0, -1]
        for i, r in enumerate(modes):
            edges = np.asarray(r["modes"]["histogram_edges"])
            ax.stairs(np.asarray(r["modes"]["histogram"]) / np.sum(r["modes"]["histogram"]), edges, color=f"C{i}",
                      label=r["label"])
        ax.set_title("bimodal bandit: executed actions (all seeds, 5 contexts)", fontsize=8)
        ax.set_xlabel("action")
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("episode return (mean +- sd over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save(results: dict, run_result: dict, path: str) -> None:
    results["runs"].append(run_result)
    with open(path, "w") as fh:
        json.dump(results, fh, indent=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["bandit", "control", "dmc_cpu", "brax"], choices=list(TASKS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every env-step budget")
    parser.add_argument("--out", default=RESULTS)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    json_path = os.path.join(args.out, "gorl.json")
    previous = json.load(open(json_path)) if os.path.exists(json_path) else {"runs": []}
    rerun = {(env, (algo or ["ppo"])[0]) for task in args.tasks for env, _, _, _, *algo in TASKS[task]}
    results = {"date": datetime.date.today().isoformat(), "device": str(jax.devices()[0].device_kind),
               "runs": [r for r in previous["runs"] if (r["env"], r.get("base", "ppo")) not in rerun]}
    for task in args.tasks:
        print(f"== {task}", flush=True)
        for env, budget, base, gorl, *algo in TASKS[task]:
            algo = algo[0] if algo else "ppo"
            budget = int(budget * args.scale)
            label = "GoRL" if algo == "ppo" else f"GoRL ({algo.upper()})"
            gorl_run = run(env, budget, label, "gorl", {**base, **gorl, "base": algo}, args.seeds)
            save(results, gorl_run, json_path)  # each run as soon as it ends (a run may be cut short)
            # The base gets the same env steps: GoRL's iterations plus its decoders' data collection.
            save(results, run(env, gorl_run["env_steps"], BASE_LABELS[algo], algo, base, args.seeds), json_path)
    write_markdown(results, os.path.join(args.out, "gorl.md"))
    plot(results, os.path.join(args.out, "gorl.png"))
    print(f"wrote {json_path}, gorl.md, gorl.png")


if __name__ == "__main__":
    main()
