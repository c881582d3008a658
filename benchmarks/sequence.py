"""Every recipe of the sequence-loss catalog on the addition task from the same SFT start
(reference notes: shared/reference/loss-catalog.md), plus the bandit checks behind the tests.

    python benchmarks/sequence.py [--seeds 3] [--iterations 60] [--recipes grpo,rloo] [--env seq/addition]
    python benchmarks/sequence.py --bandit      # learning-test spread, BNPO's weight cap

Recipes: one supervised warm start (SFT on demonstrations half of which are right) is shared by
every recipe and seed; each recipe then trains ``--seeds`` seeds (vmapped, one program) for the
same sample budget (``iterations x 16 prompts x 8 responses``). Recorded: held-out greedy accuracy
over training (a fixed set of 128 prompts, every 5 iterations), the final accuracy on 512 fresh
prompts, and tokens sampled per second (all seeds; compile excluded). Writes sequence.json /
sequence.md / sequence.png to benchmarks/results/ (the JSON after every recipe).

A recipe "beats GRPO" here when its final-accuracy mean exceeds GRPO's by more than twice the
standard error of the difference (sd over seeds); "behind" likewise; otherwise "tied".
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxpg.algos import make_train
from jaxpg.algos.sequence_bandit import bandit_means, train_bandit
from jaxpg.losses import sequence as seq
from jaxpg.losses.sequence import advantages as adv

RESULTS = os.path.join(os.path.dirname(__file__), "results")
SFT_SEED, FINAL_EVAL_SEED = 7, 99


def summary(x) -> dict:
    x = np.asarray(x, np.float64)
    return {"mean": float(np.mean(x)), "std": float(np.std(x)), "values": x.round(4).tolist()}


def compare(a: dict, b: dict, n: int) -> str:
    diff = a["mean"] - b["mean"]
    se = np.sqrt((a["std"] ** 2 + b["std"] ** 2) / max(n - 1, 1))
    return "beats" if diff > 2 * se else "behind" if diff < -2 * se else "tied"


def run_recipe(name: str, env: str, seeds: int, iterations: int, sft_params, overrides: dict) -> dict:
    train = make_train("grpo", env=env, recipe=name, total_steps=iterations * 128, eval_every=5, **overrides)
    keys = jax.random.split(jax.random.key(1000), seeds)
    prompts = train.task.sample_prompts(jax.random.key(FINAL_EVAL_SEED), 512)
    hparams = train.default_hparams

    def one_seed(key):  # init from the shared SFT start, train, evaluate: one program per recipe
        result = train.run(train.init_from(sft_params, key), hparams)
        return result.metrics, train.evaluate_params(result.state.params, prompts)

    t0 = time.perf_counter()
    program = jax.jit(jax.vmap(one_seed)).lower(keys).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    metrics, final = jax.tree.map(np.asarray, program(keys))
    run_s = time.perf_counter() - t0
    return {
        "recipe": name,
        "kind": getattr(train.recipe, "kind", "group"),
        "paper": getattr(train.recipe, "paper", ""),
        "final_accuracy": summary(final),
        "eval_curve": metrics["eval_accuracy"].mean(0).round(4).tolist(),
        "eval_curve_std": metrics["eval_accuracy"].std(0).round(4).tolist(),
        "train_reward_last10": summary(metrics["episode_return"][:, -10:].mean(1)),
        "responses": int(metrics["env_steps"][0, -1]),
        # Sampled tokens over the wall time of training (and the final evaluation), all seeds.
        "tokens_per_second": float(metrics["tokens"][:, -1].sum() / run_s),
        "compile_seconds": compile_s,
        "run_seconds": run_s,
        "finite": bool(metrics["finite"].all()),
    }


def recipes_benchmark(args) -> None:
    names = args.recipes.split(",") if args.recipes else sorted(seq.RECIPES)
    if "grpo" in names:  # GRPO first: every other recipe is compared with it
        names = ["grpo"] + [n for n in names if n != "grpo"]
    base = make_train("grpo", env=args.env, sft_steps=args.sft_steps)
    t0 = time.perf_counter()
    sft_params, sft_losses = jax.jit(base.warm_start)(jax.random.key(SFT_SEED))
    sft_accuracy = float(jax.jit(base.evaluate_params)(sft_params))
    print(f"SFT start ({args.sft_steps} steps, {time.perf_counter() - t0:.0f} s): held-out accuracy {sft_accuracy:.3f}, "
          f"final SFT loss {float(sft_losses[-1]):.3f}", flush=True)
    out = {
        "date": datetime.date.today().isoformat(), "machine": os.uname().nodename, "env": args.env,
        "seeds": args.seeds, "iterations": args.iterations, "sft_steps": args.sft_steps,
        "sft_accuracy": sft_accuracy, "recipes": {},
        "command": f"python benchmarks/sequence.py --seeds {args.seeds} --iterations {args.iterations} --env {args.env}",
    }
    path = os.path.join(RESULTS, "sequence.json" if not args.tag else f"sequence-{args.tag}.json")
    for name in names:
        try:
            row = run_recipe(name, args.env, args.seeds, args.iterations, sft_params, {})
        except Exception as e:  # a recipe that cannot run here is reported, not hidden
            row = {"recipe": name, "error": f"{type(e).__name__}: {str(e).splitlines()[0]}"}
        out["recipes"][name] = row
        if "error" in row:
            print(f"{name:24s} ERROR {row['error']}", flush=True)
        else:
            f = row["final_accuracy"]
            print(f"{name:24s} final {f['mean']:.3f} +- {f['std']:.3f}  tokens/s {row['tokens_per_second']:,.0f}  "
                  f"compile {row['compile_seconds']:.0f} s run {row['run_seconds']:.1f} s", flush=True)
        with open(path, "w") as fh:
            json.dump(out, fh, indent=1)
    write_table(out, path.replace(".json", ".md"))
    plot(out, path.replace(".json", ".png"))


def write_table(out: dict, path: str) -> None:
    rows = out["recipes"]
    grpo = rows.get("grpo", {}).get("final_accuracy")
    lines = [f"{out['env']}, {out['seeds']} seeds, {out['iterations']} iterations x 128 responses, "
             f"SFT start accuracy {out['sft_accuracy']:.3f}", "",
             "| recipe | kind | final accuracy | vs GRPO | tokens/s |", "|---|---|---|---|---|"]
    for name, row in rows.items():
        if "error" in row:
            lines.append(f"| {name} | | error: {row['error']} | | |")
            continue
        f = row["final_accuracy"]
        verdict = "" if name == "grpo" or grpo is None else compare(f, grpo, out["seeds"])
        lines.append(f"| {name} | {row['kind']} | {f['mean']:.3f} +- {f['std']:.3f} | {verdict} | "
                     f"{row['tokens_per_second']:,.0f} |")
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")


def plot(out: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {k: v for k, v in out["recipes"].items() if "error" not in v}
    fig, (ax_curve, ax_bar) = plt.subplots(1, 2, figsize=(15, 6))
    cmap = plt.get_cmap("tab20")
    for i, (name, row) in enumerate(rows.items()):
        curve = np.asarray(row["eval_curve"])
        x = np.arange(1, len(curve) + 1) * 128
        ax_curve.plot(x, curve, color=cmap(i % 20), lw=2.5 if name == "grpo" else 1.0,
                      ls="-" if i < 20 else "--", label=name)
    ax_curve.axhline(out["sft_accuracy"], color="k", ls=":", lw=1, label="SFT start")
    ax_curve.set(xlabel="responses sampled", ylabel="held-out greedy accuracy", title=f"{out['env']}: accuracy over training")
    ax_curve.legend(fontsize=7, ncol=2)
    order = sorted(rows, key=lambda n: rows[n]["final_accuracy"]["mean"])
    means = [rows[n]["final_accuracy"]["mean"] for n in order]
    stds = [rows[n]["final_accuracy"]["std"] for n in order]
    ax_bar.barh(order, means, xerr=stds, color=["C3" if n == "grpo" else "C0" for n in order])
    ax_bar.axvline(out["sft_accuracy"], color="k", ls=":", lw=1)
    ax_bar.set(xlabel=f"final accuracy (512 prompts; mean +- sd over {out['seeds']} seeds)", title="final accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def bandit_benchmark(args) -> None:
    """The spread behind tests/test_sequence_bandit.py and the BNPO weight-cap check."""
    keys = jax.random.split(jax.random.key(1), 16)
    report = {"learning_test": {}, "bnpo_cap": {}}
    means16 = bandit_means(jax.random.key(0), 16)
    for name in ("grpo", "dr_grpo", "rloo", "bnpo"):
        run = jax.jit(jax.vmap(lambda k, r=seq.get_recipe(name): train_bandit(r, k, means16, num_steps=150)[0][-1]))
        p = np.asarray(run(keys))
        report["learning_test"][name] = summary(p) | {"min": float(p.min())}
        print(f"bandit {name:8s} p_best after 150 its over 16 keys: mean {p.mean():.3f} sd {p.std():.3f} min {p.min():.3f}")
    for prompts in (4, 16):
        means = bandit_means(jax.random.key(0), prompts)
        for cap in (1e6, 10.0):
            recipe = seq.get_recipe("bnpo").replace_term(advantage=functools.partial(adv.bnpo_advantage, cap=cap))
            run = jax.jit(jax.vmap(lambda k: train_bandit(recipe, k, means, num_steps=300)[0][-1]))
            p = np.asarray(run(keys))
            big = np.asarray(jax.vmap(lambda k: _max_bnpo_weight(k, means, cap))(jax.random.split(jax.random.key(5), 4000)))
            entry = {"p_best": summary(p), "min": float(p.min()), "collapsed": int((p < 0.1).sum()),
                     "batches_with_max_abs_advantage_over_10": float((big > 10).mean()), "max_abs_advantage": float(big.max())}
            report["bnpo_cap"][f"{prompts}_prompts_cap_{cap:g}"] = entry
            print(f"BNPO {prompts:2d} prompts cap {cap:g}: p_best mean {p.mean():.3f} min {p.min():.3f}; "
                  f"batches (uniform policy) with max|A| > 10: {entry['batches_with_max_abs_advantage_over_10']:.4f}, "
                  f"largest |A| {entry['max_abs_advantage']:.3g}")
    with open(os.path.join(RESULTS, "sequence-bandit.json"), "w") as fh:
        json.dump(report, fh, indent=1)


def _max_bnpo_weight(key, means, cap):
    """Largest |A| BNPO gives one batch drawn from the uniform policy (8 samples per prompt)."""
    prompts = means.shape[0]
    ids = jnp.repeat(jnp.arange(prompts), 8)
    arms = jax.random.randint(key, (prompts * 8,), 0, means.shape[1])
    rewards = jax.random.bernoulli(jax.random.fold_in(key, 1), means[ids, arms]).astype(jnp.float32)
    zeros = jnp.zeros((prompts * 8, 1))
    batch = seq.SequenceBatch(logp=zeros, old_logp=zeros, mask=zeros + 1, rewards=rewards, group_ids=ids)
    return jnp.max(jnp.abs(adv.bnpo_advantage(rewards, batch, cap=cap)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--sft-steps", type=int, default=400)
    parser.add_argument("--env", default="seq/addition")
    parser.add_argument("--recipes", help="comma-separated names (default: the whole catalog)")
    parser.add_argument("--tag", help="suffix of the output files")
    parser.add_argument("--bandit", action="store_true", help="the bandit checks instead of the recipes")
    args = parser.parse_args()
    os.makedirs(RESULTS, exist_ok=True)
    bandit_benchmark(args) if args.bandit else recipes_benchmark(args)


if __name__ == "__main__":
    main()
