"""N2N layer removal on sklearn's digits (Ashok et al. 2018, arXiv:1709.06030; reference notes:
shared/reference/loss-catalog.md, A28): a REINFORCE controller compresses a 64 -> 6 x 64 -> 10
ReLU teacher by removing hidden layers (a removed layer is the identity).

    python benchmarks/beyond_n2n.py [--seeds 3] [--epochs 60]

Teacher: cross-entropy, Adam 1e-3, on a fixed 75/25 split of the 1797 images (pixels / 16).
Controller (jaxpg.algos.n2n, the official code's rules): bidirectional 2 x 30 LSTM, N = 5 students
per epoch, every sequence reinforced with mean R - b (b = sum of the previous epochs' averages /
(e + 1)), one Adam step (lr 3e-3) per sequence. Students: fresh initialization, distilled from the
teacher's logits (L2) with Adam for a fixed number of steps, scored on the held-out quarter;
reward (acc / acc_t) C (2 - C), C = 1 - params / params_t; a student with no hidden layer is
invalid (-1). Reported per seed: the best student seen (highest reward) and the final policy's
most likely student. ``--out PATH`` writes the result as JSON.
"""

from __future__ import annotations

import argparse
import datetime
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxpg.algos import n2n
from jaxpg.algos.trainer import compiler_options

WIDTH, NUM_LAYERS, NUM_CLASSES = 64, 6, 10
DISTILL = {"num_steps": 300, "batch_size": 64, "learning_rate": 3e-3}


def digits_split(seed: int = 0, test_fraction: float = 0.25):
    """The digits images (pixels / 16) and labels, split once by a fixed permutation."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x, y = (data.data / 16.0).astype(np.float32), data.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    test, train = order[:n_test], order[n_test:]
    return jnp.asarray(x[train]), jnp.asarray(y[train]), jnp.asarray(x[test]), jnp.asarray(y[test])


def run(seeds: int = 3, epochs: int = 60) -> dict:
    """Teacher, then the controller for ``epochs`` epochs per seed (seeds vmapped); JSON-ready."""
    t0 = time.perf_counter()
    x_train, y_train, x_test, y_test = digits_split()
    teacher = jax.jit(lambda k: n2n.train_teacher(k, x_train, y_train, width=WIDTH, num_layers=NUM_LAYERS,
                                                  num_classes=NUM_CLASSES, num_steps=2000))(jax.random.key(0))
    task = n2n.make_distillation_task(teacher, x_train, x_test, y_test)
    teacher_seconds = time.perf_counter() - t0

    ctrl = n2n.N2NController(n2n.N2NConfig(num_epochs=epochs), n2n.distillation_reward(**DISTILL),
                             n2n.layer_embeddings(NUM_LAYERS))

    def one(key):
        state, metrics = ctrl(key, n2n.N2NHParams(), task)
        return ctrl.keep_probabilities(state.params), metrics

    t1 = time.perf_counter()
    keep_prob, metrics = jax.jit(jax.vmap(one), compiler_options=compiler_options())(
        jax.random.split(jax.random.key(1), seeds))
    keep_prob, metrics = np.asarray(keep_prob), jax.tree.map(np.asarray, metrics)
    controller_seconds = time.perf_counter() - t1

    teacher_params = int(task.teacher_params)
    teacher_acc = float(task.teacher_accuracy)
    per_seed = []
    for s in range(seeds):
        rewards = metrics["rewards"][s].reshape(-1)
        best = int(np.argmax(rewards))
        mask = metrics["masks"][s].reshape(-1, NUM_LAYERS)[best]
        params = int(metrics["params"][s].reshape(-1)[best])
        acc = float(metrics["accuracy"][s].reshape(-1)[best])
        greedy = (keep_prob[s] > 0.5).astype(int)
        per_seed.append({
            "best_mask": mask.tolist(),
            "best_reward": float(rewards[best]),
            "best_epoch": best // ctrl.config.num_rollouts,
            "best_params": params,
            "best_accuracy": acc,
            "best_accuracy_ratio": acc / teacher_acc,
            "best_compression": teacher_params / params,
            "final_keep_prob": keep_prob[s].round(4).tolist(),
            "final_greedy_mask": greedy.tolist(),
            "final_greedy_params": int(n2n.student_params(greedy, WIDTH, NUM_CLASSES)),
            "finite": bool(metrics["finite"][s].all()),
        })
    return {
        "benchmark": "beyond_n2n",
        "date": datetime.date.today().isoformat(),
        "setting": {"teacher": f"{WIDTH} -> {NUM_LAYERS} x {WIDTH} -> {NUM_CLASSES} ReLU MLP", "epochs": epochs,
                    "rollouts": ctrl.config.num_rollouts, "distillation": DISTILL, "split": "75/25, fixed",
                    "controller": "BiLSTM 2 x 30, Adam 3e-3, code rules (sequential, mean advantage, n2n baseline)"},
        "teacher_accuracy": teacher_acc,
        "teacher_params": teacher_params,
        "per_seed": per_seed,
        "mean_reward": metrics["mean_reward"].tolist(),  # [seeds, epochs]
        "best_reward_per_epoch": metrics["best_reward"].tolist(),
        "mean_kept": metrics["mean_kept"].tolist(),
        "mean_accuracy": metrics["mean_accuracy"].tolist(),
        "seconds": {"teacher": teacher_seconds, "controller": controller_seconds},
    }


def plot(ax, result: dict) -> None:
    """Mean reward per epoch: each seed, and the mean over seeds."""
    curves = np.asarray(result["mean_reward"])
    epochs = np.arange(curves.shape[1])
    for curve in curves:
        ax.plot(epochs, curve, color="tab:blue", alpha=0.3, lw=1)
    ax.plot(epochs, curves.mean(0), color="tab:blue", lw=2, label=f"mean of {len(curves)} seeds")
    ax.set_xlabel("controller epoch")
    ax.set_ylabel("mean reward of the 5 students")
    ax.set_title(f"N2N layer removal, digits (teacher acc {result['teacher_accuracy']:.3f})")
    ax.legend()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--out", default=None, help="write the result as JSON here (default: print only)")
    args = parser.parse_args()
    result = run(args.seeds, args.epochs)
    print(f"teacher: accuracy {result['teacher_accuracy']:.4f}, {result['teacher_params']} parameters "
          f"({result['seconds']['teacher']:.0f} s); controller {result['seconds']['controller']:.0f} s")
    for s, r in enumerate(result["per_seed"]):
        print(f"seed {s}: best student {r['best_mask']} (epoch {r['best_epoch']}): {r['best_params']} params, "
              f"compression {r['best_compression']:.2f}x, accuracy {r['best_accuracy']:.4f} "
              f"(ratio {r['best_accuracy_ratio']:.3f}), reward {r['best_reward']:.3f}; final policy "
              f"{r['final_greedy_mask']} keep p {r['final_keep_prob']}")
    curve = np.asarray(result["mean_reward"]).mean(0)
    print("mean reward, first 5 / last 5 epochs:", np.round(curve[:5], 3).tolist(), np.round(curve[-5:], 3).tolist())
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
