"""HDPO on one store with lead time 4 and lost sales against the best base-stock and capped
base-stock policies (Alvo, Russo & Kanoria 2023, arXiv:2306.11246; reference notes:
shared/reference/loss-catalog.md, A29). Part of ``benchmarks/beyond_losses.py``; runs alone too:

    python benchmarks/beyond_hdpo.py [--seeds 3] [--steps 1500]

The paper's one-store setting (``make_train("hdpo", env="inventory/one_store")``): Poisson(5)
demand, h = 1, p = 9, lost sales, lead time 4, 50 periods of which the first 30 are burn-in.
HDPO: the paper's MLP (3 x 32, ELU, softplus head) on the state (on hand, pipeline), Adam 3e-3
with a cosine decay, the pathwise gradient of the average cost over 1024 fresh demand paths per
step (the paper: 8192), seeds in one compiled program. Baselines: the best base-stock level and
the best capped base stock (level, cap), both by grid search on 8192 fixed paths. Every policy
is scored on the same 8192 held-out paths.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxpg
from jaxpg.algos import pathwise

EVAL_PATHS, TRAIN_BATCH = 8192, 1024


def run(seeds: int = 3, steps: int = 1500) -> dict:
    train = jaxpg.make_train("hdpo", env="inventory/one_store", batch_size=TRAIN_BATCH,
                             total_steps=TRAIN_BATCH * 50 * steps)
    task, store = train.task, train.store
    grid_paths = task.sample(jax.random.key(1), EVAL_PATHS)
    test_paths = task.sample(jax.random.key(2), EVAL_PATHS)

    def score(make_policy, params):
        cost = pathwise.batch_cost(make_policy, store, test_paths)
        return float(jax.jit(cost)(params, None))

    t0 = time.perf_counter()
    level, _ = jax.jit(pathwise.grid_search_base_stock, static_argnums=0)(store, grid_paths, jnp.arange(15.0, 40.0, 0.5))
    c_level, c_cap, _ = jax.jit(pathwise.grid_search_capped_base_stock, static_argnums=0)(
        store, grid_paths, jnp.arange(15.0, 40.0, 1.0), jnp.arange(4.0, 16.0, 0.5))
    base = score(pathwise.base_stock_policy, {"level": level})
    capped = score(pathwise.capped_base_stock_policy, {"level": c_level, "cap": c_cap})
    print(f"HDPO: best base stock {float(level):.1f}: cost {base:.4f}; best capped base stock "
          f"({float(c_level):.1f}, cap {float(c_cap):.1f}): {capped:.4f}  ({time.perf_counter() - t0:.0f} s)", flush=True)

    t0 = time.perf_counter()
    result = jaxpg.sweep.run(train, seeds=seeds, key=jax.random.key(100))
    costs = np.asarray(result.metrics["cost"], np.float64)  # [seeds, steps]
    hdpo = np.asarray([score(train.make_policy, jax.tree.map(lambda x, i=i: x[i], result.params))
                       for i in range(seeds)])
    wall = time.perf_counter() - t0
    gap_base, gap_capped = 100 * (hdpo / base - 1), 100 * (hdpo / capped - 1)
    print(f"HDPO test cost {hdpo.mean():.4f} +- {hdpo.std():.4f} (per seed {hdpo.round(4).tolist()}; {wall:.0f} s): "
          f"{gap_base.mean():+.2f}% vs the best base stock, {gap_capped.mean():+.2f}% vs the best capped base stock",
          flush=True)
    return {
        "setting": "one store, Poisson(5), h=1, p=9, lost sales, lead time 4, 50 periods (30 burn-in)",
        "steps": steps, "seeds": seeds, "train_batch": TRAIN_BATCH, "eval_paths": EVAL_PATHS,
        "base_stock": {"level": float(level), "test_cost": base},
        "capped_base_stock": {"level": float(c_level), "cap": float(c_cap), "test_cost": capped},
        "hdpo_test_cost": hdpo.round(5).tolist(),
        "hdpo_gap_to_base_stock_percent": gap_base.round(3).tolist(),
        "hdpo_gap_to_capped_base_stock_percent": gap_capped.round(3).tolist(),
        "train_cost_mean": costs.mean(0)[::10].round(4).tolist(),
        "wall_seconds": round(wall, 1),
    }


def plot(ax, result: dict) -> None:
    """HDPO's training cost (mean over seeds, every 10th step) against the two baselines' test cost."""
    curve = np.asarray(result["train_cost_mean"])
    ax.plot(np.arange(len(curve)) * 10, curve, label=f"HDPO (test {np.mean(result['hdpo_test_cost']):.3f})")
    ax.axhline(result["base_stock"]["test_cost"], color="k", ls="--",
               label=f"best base stock {result['base_stock']['test_cost']:.3f}")
    ax.axhline(result["capped_base_stock"]["test_cost"], color="gray", ls=":",
               label=f"best capped base stock {result['capped_base_stock']['test_cost']:.3f}")
    ax.set(title="HDPO, one store, lead time 4, lost sales", xlabel="step", ylabel="cost per period",
           ylim=(6.5, 9.0))
    ax.legend()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1500)
    args = parser.parse_args()
    run(args.seeds, args.steps)
