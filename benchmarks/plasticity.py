"""Plasticity with and without NaP (Lyle et al., NeurIPS 2024): two experiments, three arms.

    python benchmarks/plasticity.py [--quick] [--only supervised|rl]

Arms: "none" (plain MLP), "norm" (LayerNorm before every nonlinearity), "nap" (LayerNorm +
projection of the normalized kernels to their initial norm after every step). Constant learning
rates throughout, so any decay of the effective learning rate is the implicit one.

(a) supervised: 2048 fixed Gaussian inputs in R^64, 10 classes; labels redrawn at random every
    500 steps (a new memorization task), 40 tasks; MLP 3x128 ReLU + linear head, Adam 1e-3,
    batch 128; train accuracy on all 2048 inputs at the end of each task. 3 seeds, vmapped.
(b) rl: PPO on CartPole-v1 whose observation coordinates are re-permuted at random every task
    (the permutation is an environment parameter), one network across 10 tasks of 100k steps,
    constant lr 2.5e-4; mean episode return over the last 20 iterations of each task. 3 seeds.

Writes plasticity.json and plasticity.png (per-task performance, weight norms, effective LR).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time

import flax.linen as nn
import jax
import numpy as np
import optax

import jaxpg
from jaxpg import optim
from jaxpg.algos.trainer import weight_diagnostics
from jaxpg.nets import MLP

ARMS = {"none": ("none", False), "norm": ("layer_norm", False), "nap": ("layer_norm", True)}


# ---- (a) supervised random-label memorization --------------------------------------------
class Classifier(nn.Module):
    normalization: str

    @nn.compact
    def __call__(self, x):
        return nn.Dense(10)(MLP((128, 128, 128), "relu", self.normalization)(x))


def supervised(seed_keys, arm: str, tasks: int, steps_per_task: int) -> dict:
    normalization, use_nap = ARMS[arm]
    net = Classifier(normalization)
    inputs = jax.random.normal(jax.random.key(1234), (2048, 64))

    def run(key):
        key_init, key_run = jax.random.split(key)
        params = net.init(key_init, inputs[:1])
        tx = optax.adam(1e-3)
        tx = optim.nap(tx, mask=jaxpg.nets.normalized_kernels_mask) if use_nap else tx
        opt_state = tx.init(params)

        def loss_fn(p, x, y):
            return optax.softmax_cross_entropy_with_integer_labels(net.apply(p, x), y).mean()

        def step(carry, key):
            params, opt_state, labels = carry
            idx = jax.random.randint(key, (128,), 0, inputs.shape[0])
            grads = jax.grad(loss_fn)(params, inputs[idx], labels[idx])
            updates, opt_state = tx.update(grads, opt_state, params)
            new_params = optax.apply_updates(params, updates)
            diag = weight_diagnostics({"": params}, {"": new_params})
            return (new_params, opt_state, labels), diag

        def task(carry, key):
            params, opt_state = carry
            key_labels, key_steps = jax.random.split(key)
            labels = jax.random.randint(key_labels, (inputs.shape[0],), 0, 10)
            (params, opt_state, _), diag = jax.lax.scan(
                step, (params, opt_state, labels), jax.random.split(key_steps, steps_per_task)
            )
            accuracy = (net.apply(params, inputs).argmax(-1) == labels).mean()
            diag = jax.tree.map(lambda d: d[-1], diag)  # end-of-task values
            return (params, opt_state), {"accuracy": accuracy, **diag}

        _, out = jax.lax.scan(task, (params, opt_state), jax.random.split(key_run, tasks))
        return out

    return jax.jit(jax.vmap(run))(seed_keys)


# ---- (b) RL: PPO under observation permutations ------------------------------------------
def rl(seed_keys, arm: str, tasks: int, steps_per_task: int) -> dict:
    normalization, use_nap = ARMS[arm]
    train = jaxpg.make_train(
        "ppo", env="permuted/CartPole-v1", total_steps=tasks * steps_per_task, lr_schedule="constant",
        normalization=normalization, nap=use_nap,
    )
    env = train.env
    iterations = steps_per_task // train.steps_per_iteration
    hparams = jaxpg.sweep.stack([train.default_hparams] * len(seed_keys))
    state = jax.jit(jax.vmap(train.init))(seed_keys, hparams)
    run = jax.jit(jax.vmap(lambda s, h: train.run(s, h, iterations)))
    new_permutation = jax.jit(jax.vmap(lambda k: env.sample_params(k)))
    per_task = []
    for t in range(tasks):
        keys = jax.vmap(lambda k: jax.random.fold_in(k, t))(seed_keys)
        state = state.replace(env_params=new_permutation(keys))  # a new task, same network
        result = run(state, hparams)
        state = result.state
        m = jax.tree.map(np.asarray, result.metrics)
        per_task.append({
            "return": m["episode_return"][:, -20:].mean(-1),
            **{k: v[:, -1] for k, v in m.items() if k.startswith(("weight_norm/", "effective_lr/"))},
        })
    return {k: np.stack([p[k] for p in per_task], axis=1) for k in per_task[0]}  # [seeds, tasks]


def summarize(name: str, out: dict, score: str) -> dict:
    out = jax.tree.map(np.asarray, out)
    per_task = out[score]  # [seeds, tasks]
    norms = {k[len("weight_norm/"):]: out[k].mean(0).tolist() for k in out if k.startswith("weight_norm/")}
    elrs = {k[len("effective_lr/"):]: out[k].mean(0).tolist() for k in out if k.startswith("effective_lr/")}
    return {
        "per_task_mean": per_task.mean(0).tolist(),
        "per_task_std": per_task.std(0).tolist(),
        "first_task": float(per_task[:, 0].mean()),
        "last_5_tasks": float(per_task[:, -5:].mean()),
        "weight_norms": norms,
        "effective_lr": elrs,
    }


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    experiments = [e for e in ("supervised", "rl") if e in results]
    fig, axes = plt.subplots(len(experiments), 3, figsize=(15, 3.8 * len(experiments)), squeeze=False)
    labels = {"supervised": "train accuracy at task end", "rl": "return at task end"}
    for row, experiment in zip(axes, experiments):
        for i, (arm, r) in enumerate(results[experiment]["arms"].items()):
            tasks = np.arange(1, len(r["per_task_mean"]) + 1)
            mean, std = np.asarray(r["per_task_mean"]), np.asarray(r["per_task_std"])
            row[0].plot(tasks, mean, color=f"C{i}", label=arm)
            row[0].fill_between(tasks, mean - std, mean + std, color=f"C{i}", alpha=0.2, lw=0)
            hidden = [k for k in r["weight_norms"] if "Dense" in k and "kernel" in k and "head" not in k]
            layer = sorted(hidden)[len(hidden) // 2] if hidden else next(iter(r["weight_norms"]))
            row[1].plot(tasks, r["weight_norms"][layer], color=f"C{i}", label=f"{arm}: {layer}")
            row[2].plot(tasks, r["effective_lr"][layer], color=f"C{i}", label=f"{arm}: {layer}")
        row[0].set_title(f"{experiment}: {labels[experiment]}")
        row[1].set_title("weight norm of a hidden layer")
        row[2].set_title("effective LR |dW|/|W| (last step of task)")
        row[2].set_yscale("log")
        for ax in row:
            ax.set_xlabel("task")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budgets (smoke check)")
    parser.add_argument("--only", choices=["supervised", "rl"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    stem = "plasticity-quick" if args.quick else "plasticity"
    path = os.path.join(args.out, f"{stem}.json")
    results = json.load(open(path)) if os.path.exists(path) else {}
    seed_keys = jax.random.split(jax.random.key(0), args.seeds)
    settings = {
        "supervised": (4, 50) if args.quick else (40, 500),
        "rl": (2, 4096) if args.quick else (10, 100_352),
    }
    experiments = {"supervised": (supervised, "accuracy"), "rl": (rl, "return")}
    for name, (fn, score) in experiments.items():
        if args.only and name != args.only:
            continue
        tasks, steps = settings[name]
        arms = {}
        for arm in ARMS:
            start = time.perf_counter()
            arms[arm] = summarize(name, fn(seed_keys, arm, tasks, steps), score)
            arms[arm]["seconds"] = time.perf_counter() - start
            print(f"{name} {arm}: first task {arms[arm]['first_task']:.3f}, last 5 tasks "
                  f"{arms[arm]['last_5_tasks']:.3f} ({arms[arm]['seconds']:.0f} s)", flush=True)
        results[name] = {"tasks": tasks, "steps_per_task": steps, "seeds": args.seeds, "arms": arms,
                         "date": datetime.date.today().isoformat(), "jax": jax.__version__}
        with open(path, "w") as f:
            json.dump(results, f, indent=1)
    plot(results, os.path.join(args.out, f"{stem}.png"))


if __name__ == "__main__":
    main()
