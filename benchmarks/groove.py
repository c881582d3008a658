"""GROOVE (regret curriculum) against LPG (uniform levels), meta-trained at a CPU scale, and the
learned rules against A2C (Jackson et al. 2023; Oh et al. 2020; reference notes:
shared/reference/algorithms.md, section 5).

    python benchmarks/groove.py [--seeds 3] [--meta-steps 200] [--eval-every 50]

For each curriculum and seed, ``jaxpg.meta.MetaTrainer`` meta-trains a rule on GROOVE's ``small``
grid-world generator (8 agents x 8 workers x 20 steps, K = 5 updates per meta-step, lifetimes of
50 updates, GRU 64). Every ``eval-every`` meta-steps the rule trains fresh tabular agents for a
lifetime on 16 held-out levels (generator draws with a key no training level uses); their mean
evaluation return is the meta-training curve. At the end each rule, and A2C with the same agent and
optimizer, trains fresh agents on the held-out levels, on LPG's ``dense`` and ``sparse`` levels,
and on MinAtar Breakout and SpaceInvaders (an MLP agent with Adam; lifetimes far below the
paper's). Writes groove.json / groove.md / groove.png to benchmarks/results/.

The paper's scale: 5000 meta-steps x 512 agents on a GPU, lifetimes up to 250 updates on
grid-worlds and 100,000 updates on MinAtar; this script's is about 1/10,000 of that.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time

import jax
import numpy as np
import optax

from jaxpg import meta
from jaxpg.envs import VectorEnv, make

RESULTS = os.path.join(os.path.dirname(__file__), "results")
HELD_OUT_KEY = 20231201  # held-out levels: a key no meta-training run draws from
CONFIG = dict(env="gridworld/small", num_agents=8, num_envs=8, num_steps=20, num_updates=5, lifetime=50,
              hidden_size=64, buffer_size=64, eval_horizon=100)
# (env, lifetime in updates, workers, agent hidden sizes, optimizer, evaluation horizon)
TASKS = [("gridworld/dense", 100, 8, (), "sgd", 500), ("gridworld/sparse", 100, 8, (), "sgd", 50),
         ("Breakout-MinAtar", 150, 16, (64, 64), "adam", 1000), ("SpaceInvaders-MinAtar", 150, 16, (64, 64), "adam", 1000)]


def summary(x) -> dict:
    x = np.asarray(x, np.float64)
    return {"mean": float(np.mean(x)), "std": float(np.std(x)), "values": x.round(4).tolist()}


def lifetime_evaluator(env_name: str, lifetime: int, num_envs: int, hidden: tuple, optimizer: str, horizon: int,
                       prediction_dim: int, network: meta.LPGNetwork):
    """``evaluate(eta or None, level, key) -> return`` of a fresh agent trained for ``lifetime``
    updates by the rule ``eta`` (or by A2C when ``eta`` is None), compiled once per task."""
    env = make(env_name)
    venv = VectorEnv(env, num_envs)
    agent = meta.LPGAgent(num_actions=env.action_spec.n, prediction_dim=prediction_dim, hidden_sizes=hidden,
                          obs_ndim=len(env.observation_spec.shape))
    tx = meta.tabular_optimizer() if optimizer == "sgd" else optax.chain(optax.clip_by_global_norm(0.5),
                                                                       optax.adam(5e-4))
    hparams = meta.LPGHParams()

    def run(update, level, key):
        k_train, k_eval = jax.random.split(key)
        state = meta.train_lifetime(update, venv, agent, tx, level, k_train, lifetime, 20)
        return meta.evaluate_agent(venv, agent, state.params, level, k_eval, horizon)

    by_rule = jax.jit(lambda eta, level, key: run(
        meta.rule_update(lambda inputs: network.apply(eta, inputs), agent, tx, hparams), level, key))
    by_a2c = jax.jit(lambda level, key: run(meta.oracle_update(agent, tx, hparams), level, key))
    return env, by_rule, by_a2c


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--meta-steps", type=int, default=200)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--task-scale", type=float, default=1.0, help="multiplies the transfer tasks' lifetimes")
    parser.add_argument("--out", default=RESULTS)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    start = time.perf_counter()
    results = {"date": datetime.date.today().isoformat(), "device": str(jax.devices()[0].device_kind),
               "config": {**CONFIG, "meta_steps": args.meta_steps, "seeds": args.seeds}, "runs": {}, "tasks": {}}

    # Held-out grid-world levels and the evaluator shared by every rule.
    trainer0 = meta.MetaTrainer(meta.MetaConfig(**CONFIG))
    held_env = make(CONFIG["env"])
    held_levels = jax.vmap(held_env.sample_params)(jax.random.split(jax.random.key(HELD_OUT_KEY), 16))
    _, held_rule, held_a2c = lifetime_evaluator(CONFIG["env"], CONFIG["lifetime"], CONFIG["num_envs"], (), "sgd", 100,
                                                8, trainer0.network)
    held_keys = jax.random.split(jax.random.key(1), 16)
    held_rule_batch = jax.jit(jax.vmap(held_rule, in_axes=(None, 0, 0)))
    a2c_held = np.asarray(jax.jit(jax.vmap(held_a2c))(held_levels, held_keys))
    results["a2c_held_out"] = summary(a2c_held)
    print(f"A2C on held-out levels: {a2c_held.mean():.3f}", flush=True)

    rules = {}
    for curriculum in ("uniform", "regret"):
        trainer = meta.MetaTrainer(meta.MetaConfig(**CONFIG, curriculum=curriculum, meta_steps=args.meta_steps))
        init = jax.jit(trainer.init)
        chunk = jax.jit(lambda s, trainer=trainer: trainer.run(s, args.eval_every))
        curves, losses, regrets = [], [], []
        for seed in range(args.seeds):
            state = init(jax.random.key(seed))
            curve = [float(np.mean(held_rule_batch(state.eta, held_levels, held_keys)))]
            for _ in range(args.meta_steps // args.eval_every):
                state, metrics = chunk(state)
                losses.append(np.asarray(metrics["meta_loss"]))
                regrets.append(np.asarray(metrics["regret"]))
                curve.append(float(np.mean(held_rule_batch(state.eta, held_levels, held_keys))))
            curves.append(curve)
            rules[(curriculum, seed)] = state.eta
            print(f"  {curriculum:8s} seed {seed}: held-out return over meta-training "
                  f"{' '.join(f'{c:.3f}' for c in curve)} ({time.perf_counter() - start:.0f} s)", flush=True)
        curves = np.asarray(curves)
        results["runs"][curriculum] = {
            "meta_steps": list(range(0, args.meta_steps + 1, args.eval_every)),
            "held_out_curve_mean": curves.mean(0).tolist(), "held_out_curve_std": curves.std(0).tolist(),
            "held_out_first": summary(curves[:, 0]), "held_out_final": summary(curves[:, -1]),
            "meta_loss_mean_last_tenth": float(np.mean(np.concatenate(losses)[-max(1, args.meta_steps // 10):])),
            "mean_regret_scored": float(np.nanmean(np.concatenate(regrets))) if curriculum == "regret" else None,
        }

    # Transfer: each rule and A2C train fresh agents on LPG levels and MinAtar.
    for env_name, lifetime, workers, hidden, optimizer, horizon in TASKS:
        lifetime = max(1, int(lifetime * args.task_scale))
        env, by_rule, by_a2c = lifetime_evaluator(env_name, lifetime, workers, hidden, optimizer, horizon, 8,
                                                  trainer0.network)
        level = env.default_params
        keys = jax.random.split(jax.random.key(2), args.seeds)
        row = {"lifetime_updates": lifetime, "env_steps": lifetime * workers * 20,
               "a2c": summary([float(by_a2c(level, k)) for k in keys])}
        for curriculum in ("uniform", "regret"):
            row[curriculum] = summary([float(by_rule(rules[(curriculum, s)], level, keys[s])) for s in range(args.seeds)])
        results["tasks"][env_name] = row
        print(f"  {env_name:22s} A2C {row['a2c']['mean']:.3f}  LPG {row['uniform']['mean']:.3f}  "
              f"GROOVE {row['regret']['mean']:.3f}  ({time.perf_counter() - start:.0f} s)", flush=True)
        with open(os.path.join(args.out, "groove.json"), "w") as fh:
            json.dump(results, fh, indent=1)
    results["seconds"] = round(time.perf_counter() - start, 1)
    with open(os.path.join(args.out, "groove.json"), "w") as fh:
        json.dump(results, fh, indent=1)
    write_markdown(results, os.path.join(args.out, "groove.md"))
    plot(results, os.path.join(args.out, "groove.png"))
    print(f"wrote {args.out}/groove.json, groove.md, groove.png ({results['seconds']} s)")


def write_markdown(results: dict, path: str) -> None:
    f = lambda s: f"{s['mean']:.3f} +- {s['std']:.3f}"  # noqa: E731
    lines = ["| held-out grid-worlds (16 levels, return after a 50-update lifetime) | before meta-training | after |",
             "|---|---|---|"]
    for name, label in (("uniform", "LPG (uniform levels)"), ("regret", "GROOVE (regret curriculum)")):
        r = results["runs"][name]
        lines.append(f"| {label} | {f(r['held_out_first'])} | {f(r['held_out_final'])} |")
    lines.append(f"| A2C (sd over the 16 levels; the rules' sd is over meta-training seeds) | - | "
                 f"{f(results['a2c_held_out'])} |")
    lines += ["", "| task | lifetime (updates / env steps) | A2C | LPG rule | GROOVE rule |", "|---|---|---|---|---|"]
    for env, row in results["tasks"].items():
        lines.append(f"| {env} | {row['lifetime_updates']} / {row['env_steps']:,} | {f(row['a2c'])} | "
                     f"{f(row['uniform'])} | {f(row['regret'])} |")
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(results["tasks"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    ax = axes[0]
    for i, (name, label) in enumerate((("uniform", "LPG (uniform)"), ("regret", "GROOVE (regret)"))):
        r = results["runs"][name]
        x, m, s = (np.asarray(r[k]) for k in ("meta_steps", "held_out_curve_mean", "held_out_curve_std"))
        ax.plot(x, m, color=f"C{i}", label=label)
        ax.fill_between(x, m - s, m + s, color=f"C{i}", alpha=0.2, lw=0)
    ax.axhline(results["a2c_held_out"]["mean"], color="0.3", ls="--", lw=1, label="A2C")
    ax.set_xlabel("meta-steps")
    ax.set_ylabel("held-out return (16 levels)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax = axes[1]
    width = 0.27
    for i, (key, label) in enumerate((("a2c", "A2C"), ("uniform", "LPG rule"), ("regret", "GROOVE rule"))):
        means = [results["tasks"][t][key]["mean"] for t in tasks]
        stds = [results["tasks"][t][key]["std"] for t in tasks]
        ax.bar(np.arange(len(tasks)) + (i - 1) * width, means, width, yerr=stds, label=label, color=f"C{i + 2}")
    ax.set_xticks(np.arange(len(tasks)), [t.replace("gridworld/", "") for t in tasks], fontsize=8)
    ax.set_ylabel("return after the lifetime")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
