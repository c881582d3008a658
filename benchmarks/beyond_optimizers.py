"""SinkGD against Adam at equal budgets: PPO on CartPole-v1 and a small supervised MLP on sklearn's
digits (Scetbon et al. 2025, arXiv:2502.06742; reference notes: shared/reference/loss-catalog.md,
A35). Part of ``benchmarks/beyond_losses.py``; runs alone too:

    python benchmarks/beyond_optimizers.py [--seeds 5]

Fairness: each optimizer gets the best learning rate of the same grid (chosen on the mean over
seeds: PPO's mean training return over the run, the MLP's validation accuracy), every (learning rate, seed) of one optimizer runs in one
compiled program (``jaxpg.sweep``), and everything else is the same (PPO: jaxpg's defaults with
global-norm clipping 0.5 before either optimizer; MLP: the same init, batches and steps).
SinkGD's paper reports LLM pre-training; nothing here tests that claim.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxpg import optim

from _curves import first_at_least, learning_rate_sweep, moving_mean  # noqa: E402  (benchmarks/_curves.py)

LR_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
OPTIMIZERS = ("adam", "sinkgd")
PPO_STEPS, PPO_THRESHOLD = 200_000, 475.0
MLP_HIDDEN, MLP_STEPS, MLP_BATCH = (128, 128), 600, 128


def ppo_cartpole(seeds: int) -> dict:
    """PPO (jaxpg's defaults) with ``optimizer`` in (adam, sinkgd): per learning rate and seed,
    the mean training return over the run (area under the curve, which picks each optimizer's
    learning rate), over its last 10% of iterations, and the env steps until the moving mean (10
    iterations) of the training return first reaches 475."""
    out = {"env_steps": PPO_STEPS, "threshold": PPO_THRESHOLD, "lr_grid": list(LR_GRID)}
    for name in OPTIMIZERS:
        returns, steps, wall, _ = learning_rate_sweep("ppo", name, PPO_STEPS, LR_GRID, seeds,
                                                      jax.random.key(7))  # returns [lr, seed, iteration]
        tail = max(1, returns.shape[-1] // 10)
        final = returns[..., -tail:].mean(-1)  # [lr, seed]
        auc = np.nanmean(returns, -1)  # [lr, seed]: the mean training return over the run
        # The learning rate with the best area under the curve: several reach 500 by the end.
        best = int(np.argmax(auc.mean(-1)))
        reach = [first_at_least(m, PPO_THRESHOLD) for m in moving_mean(returns[best], 10)]
        out[name] = {
            "final_return_by_lr": final.mean(-1).round(1).tolist(),
            "auc_by_lr": auc.mean(-1).round(1).tolist(),
            "auc": auc[best].round(1).tolist(),
            "best_lr": LR_GRID[best],
            "final_return": final[best].round(1).tolist(),
            "steps_to_threshold": [None if i is None else float(steps[i + 9]) for i in reach],
            "curve_mean": returns[best].mean(0).round(1).tolist(),
            "curve_std": returns[best].std(0).round(1).tolist(),
            "curve_steps": steps.tolist(),
            "wall_seconds": round(wall, 1),
        }
        print(f"PPO CartPole {name}: final return by lr {dict(zip(LR_GRID, out[name]['final_return_by_lr']))}; "
              f"best lr (AUC) {LR_GRID[best]:g}: AUC {auc[best].mean():.1f}, final {final[best].mean():.1f} +- {final[best].std():.1f}; "
              f"steps to {PPO_THRESHOLD:g}: {out[name]['steps_to_threshold']} ({wall:.0f} s)", flush=True)
    return out


def _digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int32)
    order = np.random.default_rng(0).permutation(len(y))  # one fixed split for every run
    splits = order[400:], order[:200], order[200:400]  # train 1397, validation 200, test 200
    return [(jnp.asarray(x[i]), jnp.asarray(y[i])) for i in splits]


def _mlp_apply(params, x):
    for w, b in params[:-1]:
        x = jnp.tanh(x @ w + b)
    w, b = params[-1]
    return x @ w + b


def _mlp_init(key, sizes):
    keys = jax.random.split(key, len(sizes) - 1)
    return [(jax.random.normal(k, (m, n)) / jnp.sqrt(m), jnp.zeros(n)) for k, m, n in zip(keys, sizes[:-1], sizes[1:])]


def supervised_mlp(seeds: int) -> dict:
    """A tanh MLP 64 -> 128 -> 128 -> 10 on digits (1397 train / 200 validation / 200 test),
    cross-entropy, minibatches of 128 for 600 steps; per learning rate and seed the final
    validation and test accuracy and the training loss curve; the learning rate is picked on
    validation accuracy. The optimizer is the only difference between the two arms."""
    (x, y), (x_val, y_val), (x_test, y_test) = _digits()
    sizes = (x.shape[1], *MLP_HIDDEN, 10)

    def run(make_tx, lr, key):
        tx = make_tx(lr)
        params = _mlp_init(jax.random.fold_in(key, 0), sizes)

        def loss_fn(p, idx):
            logits = _mlp_apply(p, x[idx])
            return optax.softmax_cross_entropy_with_integer_labels(logits, y[idx]).mean()

        def step(carry, k):
            p, s = carry
            idx = jax.random.choice(k, x.shape[0], (MLP_BATCH,), replace=False)
            loss, g = jax.value_and_grad(loss_fn)(p, idx)
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s), loss

        (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), jax.random.split(key, MLP_STEPS))
        accuracy = [jnp.mean(jnp.argmax(_mlp_apply(params, a), -1) == b) for a, b in ((x_val, y_val), (x_test, y_test))]
        return jnp.stack(accuracy), losses

    makers = {"adam": lambda lr: optax.adam(lr), "sinkgd": lambda lr: optim.sinkgd(lr)}
    out = {"steps": MLP_STEPS, "batch": MLP_BATCH, "hidden": list(MLP_HIDDEN), "lr_grid": list(LR_GRID)}
    keys = jax.random.split(jax.random.key(11), seeds)
    for name, make_tx in makers.items():
        t0 = time.perf_counter()
        grid = jax.jit(jax.vmap(jax.vmap(lambda lr, k: run(make_tx, lr, k), (None, 0)), (0, None)))
        both, losses = grid(jnp.asarray(LR_GRID), keys)  # [lr, seed, (val, test)], [lr, seed, step]
        both, losses = np.asarray(both, np.float64), np.asarray(losses, np.float64)
        validation, accuracy = both[..., 0], both[..., 1]
        best = int(np.argmax(validation.mean(-1)))
        out[name] = {
            "validation_accuracy_by_lr": validation.mean(-1).round(4).tolist(),
            "test_accuracy_by_lr": accuracy.mean(-1).round(4).tolist(),
            "best_lr": LR_GRID[best],
            "test_accuracy": accuracy[best].round(4).tolist(),
            "final_train_loss": losses[best, :, -50:].mean(-1).round(4).tolist(),
            "loss_curve_mean": losses[best].mean(0)[::10].round(4).tolist(),
            "wall_seconds": round(time.perf_counter() - t0, 1),
        }
        print(f"digits MLP {name}: validation accuracy by lr {dict(zip(LR_GRID, out[name]['validation_accuracy_by_lr']))}; "
              f"best lr {LR_GRID[best]:g}: {accuracy[best].mean():.4f} +- {accuracy[best].std():.4f}", flush=True)
    return out


def run(seeds: int = 5) -> dict:
    return {"ppo_cartpole": ppo_cartpole(seeds), "digits_mlp": supervised_mlp(seeds)}


def plot(axes, result: dict) -> None:
    """Two panels: PPO CartPole training return (mean +- std over seeds, each optimizer at its
    best learning rate) and the digits MLP's training loss."""
    ax_rl, ax_sl = axes
    ppo = result["ppo_cartpole"]
    for name in OPTIMIZERS:
        r = ppo[name]
        steps, mean, std = (np.asarray(r[k]) for k in ("curve_steps", "curve_mean", "curve_std"))
        ax_rl.plot(steps, mean, label=f"{name} (lr {r['best_lr']:g})")
        ax_rl.fill_between(steps, mean - std, mean + std, alpha=0.2)
    ax_rl.set(title="PPO CartPole-v1", xlabel="env steps", ylabel="training return")
    ax_rl.legend()
    mlp = result["digits_mlp"]
    for name in OPTIMIZERS:
        r = mlp[name]
        curve = np.asarray(r["loss_curve_mean"])
        ax_sl.plot(np.arange(len(curve)) * 10, curve,
                   label=f"{name} (lr {r['best_lr']:g}; test acc {np.mean(r['test_accuracy']):.3f})")
    ax_sl.set(title="MLP on digits", xlabel="step", ylabel="training loss", yscale="log")
    ax_sl.legend()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    run(parser.parse_args().seeds)
