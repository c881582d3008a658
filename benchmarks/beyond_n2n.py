"""N2N layer removal on sklearn's digits (Ashok et al. 2018, arXiv:1709.06030; reference notes:
shared/reference/loss-catalog.md, A28): a REINFORCE controller compresses a 64 -> 6 x 64 -> 10
ReLU teacher by removing hidden layers (a removed layer is the identity), compared with random
search at the same number of student evaluations.

    python benchmarks/beyond_n2n.py [--seeds 3] [--epochs 60] [--rules code|tuned] [--out PATH]

Teacher: cross-entropy, Adam 1e-3, on a fixed 75/25 split of the 1797 images (pixels / 16).
Students: fresh initialization, distilled from the teacher's logits (L2) with Adam (300 steps of
64, lr 3e-3), scored on the held-out quarter; reward (acc / acc_t) C (2 - C), C = 1 -
params / params_t; a student with no hidden layer is invalid (-1).

Controller (jaxpg.algos.n2n): bidirectional LSTM of 30 units, N = 5 students per epoch, 60 epochs.
``--rules code`` (the default): the official code's rules, the module's defaults (2 LSTM layers,
every sequence reinforced with mean R - b, b = sum of the previous epochs' averages / (e + 1),
one Adam step per sequence, lr 3e-3). ``--rules tuned``: the best of the sweep below (ONE LSTM
layer, per-rollout advantage R_i - b, the code's baseline, sequential update, lr 3e-2).

Does the controller learn? Not clearly, at this budget. The reward here is almost a function of
the number of kept layers alone (measured once, mean over 2 distillations of each of the 64 masks:
0 kept -1, 1 kept 0.91, 2 kept 0.86, 3 kept 0.73, 4 kept 0.54, 5 kept 0.29, 6 kept 0; distillation
noise ~0.004), so uniform random masks score 0.65 on average, the best policy that keeps every
layer independently with one common probability (p = 0.42) 0.676, and the optimum (keep one given
layer) 0.91. The symmetric policy is a saddle of the expected reward (curvature ~0.017 in the
symmetry-breaking directions) that REINFORCE leaves only slowly, and a step large enough to leave
it also drives some seeds into "remove everything" (-1) or "keep almost everything".

Sweep of the module's options on that measured reward table (12 seeds, 60 epochs x 5 rollouts;
mean reward first 10 -> last 10 epochs; random search 0.65): the code's rules 0.62 -> 0.67 (lr
3e-3), 0.48 -> 0.65 (lr 1e-2), collapse to -1 at lr 3e-2; batch updates and the corrected
running-mean baseline, with either advantage, 1 or 2 LSTM layers, lr 3e-3..5e-2, and 100 epochs
or 10 rollouts, end at 0.52-0.69 (at best the symmetric saddle); per-rollout advantage, n2n
baseline, sequential update, 1 LSTM layer, lr 3e-2 was the best, 0.46 -> 0.72 (11 of 12 seeds up,
final policies' expected reward 0.71, min 0.63), and its rise partly recovers the dip its large
step causes (the first epochs are below random search). With real distillation and this
benchmark's 3 seeds, though, the tuned rules gave 0.31 -> 0.51 (seeds 0.50 -> 0.61, 0.40 -> 0.63,
0.03 -> 0.30; one final policy keeps 5 of 6 layers) against random search's 0.647: below random
search. The best student found is the same for every method (a one-layer student, 5.3x, reward
~0.92: random search draws ~28 of them in 300). So: at equal budget the controller does not beat
random search here; the default reports the code's rules, the stable ones: with real distillation
(3 seeds, this file's default run) 0.63 -> 0.65 (seeds 0.62 -> 0.66,
0.59 -> 0.71, 0.68 -> 0.58; all epochs 0.666) against random search's 0.647 (all epochs;
0.62 over the last 10 epochs' draws): on a par with random search, and the final policies stay
near the symmetric saddle (keep p 0.42-0.49 for every layer) or drift to keeping more layers.
``run()`` takes about 3.5 minutes on 2 shared CPU cores (teacher 10 s, controller ~110 s, random
search ~90 s).

Reported per seed: the best student seen (highest reward), the final policy's most likely student,
the mean reward of the first and last 10 epochs, and the same for random search (uniform masks,
N x epochs students, same distillation). ``--out PATH`` writes the result as JSON.
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


RULES = {
    "tuned": {"config": {"num_lstm_layers": 1, "advantage": "per_rollout", "baseline": "n2n", "update": "sequential"},
              "learning_rate": 3e-2,
              "label": "BiLSTM 1 x 30, Adam 3e-2, per-rollout advantage R_i - b, n2n baseline, sequential update"},
    "code": {"config": {}, "learning_rate": 3e-3,
             "label": "BiLSTM 2 x 30, Adam 3e-3, code rules (sequential, mean advantage, n2n baseline)"},
}
WINDOW = 10  # epochs averaged for "first" and "last"


def _best(rewards, masks, params, acc, teacher_params, teacher_acc, rollouts):
    rewards = rewards.reshape(-1)
    best = int(np.argmax(rewards))
    p = int(params.reshape(-1)[best])
    a = float(acc.reshape(-1)[best])
    return {"best_mask": masks.reshape(-1, NUM_LAYERS)[best].tolist(), "best_reward": float(rewards[best]),
            "best_epoch": best // rollouts, "best_params": p, "best_accuracy": a,
            "best_accuracy_ratio": a / teacher_acc, "best_compression": teacher_params / p}


def run(seeds: int = 3, epochs: int = 60, rules: str = "code") -> dict:
    """Teacher, then per seed (vmapped) the controller for ``epochs`` epochs and random search with
    the same number of students (uniform masks, same distillation); JSON-ready."""
    t0 = time.perf_counter()
    x_train, y_train, x_test, y_test = digits_split()
    teacher = jax.jit(lambda k: n2n.train_teacher(k, x_train, y_train, width=WIDTH, num_layers=NUM_LAYERS,
                                                  num_classes=NUM_CLASSES, num_steps=2000))(jax.random.key(0))
    task = n2n.make_distillation_task(teacher, x_train, x_test, y_test)
    teacher_seconds = time.perf_counter() - t0

    rule = RULES[rules]
    reward_fn = n2n.distillation_reward(**DISTILL)
    ctrl = n2n.N2NController(n2n.N2NConfig(num_epochs=epochs, **rule["config"]), reward_fn,
                             n2n.layer_embeddings(NUM_LAYERS))
    hparams = n2n.N2NHParams(learning_rate=rule["learning_rate"])
    rollouts = ctrl.config.num_rollouts

    def one(key):
        state, metrics = ctrl(key, hparams, task)
        return ctrl.keep_probabilities(state.params), metrics

    t1 = time.perf_counter()
    keep_prob, metrics = jax.jit(jax.vmap(one), compiler_options=compiler_options())(
        jax.random.split(jax.random.key(1), seeds))
    keep_prob, metrics = np.asarray(keep_prob), jax.tree.map(np.asarray, metrics)
    controller_seconds = time.perf_counter() - t1

    def random_search(key):
        def epoch(_, inputs):
            e, k = inputs
            k_mask, k_reward = jax.random.split(k)
            masks = jax.random.bernoulli(k_mask, 0.5, (rollouts, NUM_LAYERS)).astype(jnp.int32)
            rewards, info = reward_fn(task, masks, e, k_reward)
            return None, {"masks": masks, "rewards": rewards, "accuracy": info["accuracy"], "params": info["params"]}

        _, out = jax.lax.scan(epoch, None, (jnp.arange(epochs), jax.random.split(key, epochs)))
        return out

    t2 = time.perf_counter()
    rs = jax.jit(jax.vmap(random_search), compiler_options=compiler_options())(
        jax.random.split(jax.random.key(2), seeds))
    rs = jax.tree.map(np.asarray, rs)
    random_seconds = time.perf_counter() - t2

    teacher_params = int(task.teacher_params)
    teacher_acc = float(task.teacher_accuracy)
    window = min(WINDOW, epochs)
    per_seed, random_per_seed = [], []
    for s in range(seeds):
        greedy = (keep_prob[s] > 0.5).astype(int)
        curve = metrics["mean_reward"][s]
        per_seed.append({
            **_best(metrics["rewards"][s], metrics["masks"][s], metrics["params"][s], metrics["accuracy"][s],
                    teacher_params, teacher_acc, rollouts),
            "mean_reward_first": float(curve[:window].mean()),
            "mean_reward_last": float(curve[-window:].mean()),
            "mean_reward_all": float(curve.mean()),
            "final_keep_prob": keep_prob[s].round(4).tolist(),
            "final_greedy_mask": greedy.tolist(),
            "final_greedy_params": int(n2n.student_params(greedy, WIDTH, NUM_CLASSES)),
            "finite": bool(metrics["finite"][s].all()),
        })
        rcurve = rs["rewards"][s].mean(-1)
        random_per_seed.append({
            **_best(rs["rewards"][s], rs["masks"][s], rs["params"][s], rs["accuracy"][s],
                    teacher_params, teacher_acc, rollouts),
            "mean_reward_first": float(rcurve[:window].mean()),
            "mean_reward_last": float(rcurve[-window:].mean()),
            "mean_reward_all": float(rcurve.mean()),
        })
    return {
        "benchmark": "beyond_n2n",
        "date": datetime.date.today().isoformat(),
        "setting": {"teacher": f"{WIDTH} -> {NUM_LAYERS} x {WIDTH} -> {NUM_CLASSES} ReLU MLP", "epochs": epochs,
                    "rollouts": rollouts, "distillation": DISTILL, "split": "75/25, fixed", "rules": rules,
                    "controller": rule["label"], "window": window,
                    "random_search": f"uniform masks (keep p = 0.5), {rollouts} x {epochs} students per seed"},
        "seeds": seeds,
        "teacher_accuracy": teacher_acc,
        "teacher_params": teacher_params,
        "per_seed": per_seed,
        "random_per_seed": random_per_seed,
        "mean_reward": metrics["mean_reward"].tolist(),  # [seeds, epochs]
        "best_reward_per_epoch": metrics["best_reward"].tolist(),
        "mean_kept": metrics["mean_kept"].tolist(),
        "mean_accuracy": metrics["mean_accuracy"].tolist(),
        "random_mean_reward": rs["rewards"].mean(-1).tolist(),  # [seeds, epochs]
        "seconds": {"teacher": teacher_seconds, "controller": controller_seconds, "random_search": random_seconds},
    }


def plot(ax, result: dict) -> None:
    """Mean reward per epoch: the controller (mean over seeds, band min..max over seeds) and random
    search's mean reward over all its students (horizontal line)."""
    curves = np.asarray(result["mean_reward"])
    epochs = np.arange(curves.shape[1])
    ax.fill_between(epochs, curves.min(0), curves.max(0), color="tab:blue", alpha=0.2, lw=0)
    ax.plot(epochs, curves.mean(0), color="tab:blue", lw=2, label=f"controller, mean of {len(curves)} seeds")
    if "random_mean_reward" in result:
        rnd = float(np.mean(result["random_mean_reward"]))
        ax.axhline(rnd, color="tab:orange", lw=1.5, ls="--", label=f"random search mean ({rnd:.3f})")
    rollouts = result.get("setting", {}).get("rollouts", 5)
    ax.set_xlabel("controller epoch")
    ax.set_ylabel(f"mean reward of the {rollouts} students")
    ax.set_title(f"N2N layer removal, digits (teacher acc {result['teacher_accuracy']:.3f})", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")


def _ms(values, fmt=".3f") -> str:
    values = np.asarray(values, np.float64)
    return f"{values.mean():{fmt}} +- {values.std():.2g}"


def table_rows(result: dict) -> list[str]:
    """Markdown rows ``| method | setting | result |``: the controller and random search."""
    st = result["setting"]
    c, r = result["per_seed"], result.get("random_per_seed", [])
    n = len(c)
    teacher = (f"digits, teacher {WIDTH}-{NUM_LAYERS}x{WIDTH}-{NUM_CLASSES} (acc {result['teacher_accuracy']:.4f}, "
               f"{result['teacher_params']:,} params)")
    w = st.get("window", WINDOW)

    def best(rows):
        return (f"best student: compression {_ms([x['best_compression'] for x in rows], '.2f')}x, accuracy "
                f"{_ms([x['best_accuracy'] for x in rows], '.4f')} (ratio {_ms([x['best_accuracy_ratio'] for x in rows])}), "
                f"reward {_ms([x['best_reward'] for x in rows])}")

    greedy = "; ".join("".join(map(str, x["final_greedy_mask"])) for x in c)
    rows = [f"| N2N controller | {teacher}, {st['epochs']} epochs x {st['rollouts']} rollouts, {n} seeds, "
            f"{st['controller']} | {best(c)}; mean reward first/last {w} epochs "
            f"{_ms([x['mean_reward_first'] for x in c])} -> {_ms([x['mean_reward_last'] for x in c])} "
            f"(all epochs {_ms([x['mean_reward_all'] for x in c])}); final greedy masks {greedy} |"]
    if r:
        rows.append(f"| random search | same teacher, {st['epochs'] * st['rollouts']} uniform random masks per seed "
                    f"(same budget), {n} seeds | {best(r)}; mean reward {_ms([x['mean_reward_all'] for x in r])} "
                    f"(last {w} epochs' draws {_ms([x['mean_reward_last'] for x in r])}) |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--rules", choices=tuple(RULES), default="code")
    parser.add_argument("--out", default=None, help="write the result as JSON here (default: print only)")
    args = parser.parse_args()
    t0 = time.perf_counter()
    result = run(args.seeds, args.epochs, args.rules)
    sec = result["seconds"]
    print(f"teacher: accuracy {result['teacher_accuracy']:.4f}, {result['teacher_params']} parameters "
          f"({sec['teacher']:.0f} s); controller {sec['controller']:.0f} s; random search {sec['random_search']:.0f} s; "
          f"run() {time.perf_counter() - t0:.0f} s")
    print(f"controller: {result['setting']['controller']}")
    for name, rows in (("controller", result["per_seed"]), ("random", result["random_per_seed"])):
        for s, r in enumerate(rows):
            extra = (f"; final policy {r['final_greedy_mask']} keep p {r['final_keep_prob']}"
                     if "final_greedy_mask" in r else "")
            print(f"{name} seed {s}: mean reward first/last {result['setting']['window']} epochs "
                  f"{r['mean_reward_first']:.3f} -> {r['mean_reward_last']:.3f} (all {r['mean_reward_all']:.3f}); "
                  f"best student {r['best_mask']} (epoch {r['best_epoch']}): {r['best_params']} params, "
                  f"compression {r['best_compression']:.2f}x, accuracy {r['best_accuracy']:.4f} "
                  f"(ratio {r['best_accuracy_ratio']:.3f}), reward {r['best_reward']:.3f}{extra}")
    curve = np.asarray(result["mean_reward"]).mean(0)
    print("controller mean reward, first 5 / last 5 epochs:", np.round(curve[:5], 3).tolist(),
          np.round(curve[-5:], 3).tolist())
    print("\n".join(table_rows(result)))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
