"""Issue 14's learning results, as far as they are built: HDPO on one store with lead time 4 and
lost sales against the best base-stock and capped base-stock policies (Alvo, Russo & Kanoria
2023, arXiv:2306.11246; reference notes: shared/reference/loss-catalog.md, A29).

    python benchmarks/beyond_losses.py [--seeds 3] [--steps 1500]

The paper's one-store setting: Poisson(5) demand, h = 1, p = 9, lost sales, lead time 4, 50
periods of which the first 30 are burn-in. HDPO: the paper's MLP (3 x 32, ELU, softplus head) on
the state (on hand, pipeline), Adam 3e-3 with a cosine decay, the pathwise gradient of the
average cost over 1024 fresh demand paths per step. Baselines: the best base-stock level and the
best capped base-stock (level, cap), both by grid search on 8192 fixed paths. Every policy is
scored on the same 8192 held-out paths. Writes benchmarks/results/beyond_losses.json.
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
import optax

from jaxpg.algos import pathwise
from jaxpg.envs import inventory

RESULTS = os.path.join(os.path.dirname(__file__), "results")
STORE = inventory.InventoryParams(lead_time=4, holding_cost=1.0, shortage_cost=9.0, lost_sales=True, burn_in=30)
PERIODS, TRAIN_BATCH, EVAL_PATHS = 50, 1024, 8192


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1500)
    args = parser.parse_args()
    grid_paths = inventory.sample_demand(jax.random.key(1), (EVAL_PATHS, PERIODS))
    test_paths = inventory.sample_demand(jax.random.key(2), (EVAL_PATHS, PERIODS))
    score = lambda make_policy, params: float(jax.jit(pathwise.batch_cost(make_policy, STORE, test_paths))(params, None))  # noqa: E731

    t0 = time.perf_counter()
    level, _ = jax.jit(pathwise.grid_search_base_stock, static_argnums=0)(STORE, grid_paths, jnp.arange(15.0, 40.0, 0.5))
    c_level, c_cap, _ = jax.jit(pathwise.grid_search_capped_base_stock, static_argnums=0)(
        STORE, grid_paths, jnp.arange(15.0, 40.0, 1.0), jnp.arange(4.0, 16.0, 0.5))
    base = score(pathwise.base_stock_policy, {"level": level})
    capped = score(pathwise.capped_base_stock_policy, {"level": c_level, "cap": c_cap})
    print(f"best base stock {float(level):.1f}: cost {base:.4f}; best capped base stock ({float(c_level):.1f}, "
          f"cap {float(c_cap):.1f}): {capped:.4f}  ({time.perf_counter() - t0:.0f} s)", flush=True)

    module = pathwise.InventoryMLP()
    make_policy = pathwise.mlp_policy(module)
    cost_fn = pathwise.batch_cost(make_policy, STORE, resample=(TRAIN_BATCH, PERIODS))
    schedule = optax.cosine_decay_schedule(3e-3, args.steps)

    @jax.jit
    def train(key):
        params = module.init(jax.random.fold_in(key, 1), jnp.zeros(1 + STORE.lead_time))
        return pathwise.train_pathwise(cost_fn, params, key, args.steps, learning_rate=schedule)

    hdpo = []
    for seed in range(args.seeds):
        t0 = time.perf_counter()
        params, costs = train(jax.random.key(100 + seed))
        hdpo.append(score(make_policy, params))
        print(f"HDPO seed {seed}: test cost {hdpo[-1]:.4f} (train cost first/last {float(costs[0]):.3f}/"
              f"{float(costs[-1]):.3f}; {time.perf_counter() - t0:.0f} s)", flush=True)
    hdpo = np.asarray(hdpo)
    gap_base = 100 * (hdpo / base - 1)
    gap_capped = 100 * (hdpo / capped - 1)
    print(f"HDPO vs best base stock: {gap_base.mean():+.2f}% (per seed {np.round(gap_base, 2).tolist()}); "
          f"vs best capped base stock: {gap_capped.mean():+.2f}%")
    out = {"date": datetime.date.today().isoformat(), "setting": "one store, Poisson(5), h=1, p=9, lost sales, "
           "lead time 4, 50 periods (30 burn-in)", "steps": args.steps, "seeds": args.seeds,
           "base_stock": {"level": float(level), "test_cost": base},
           "capped_base_stock": {"level": float(c_level), "cap": float(c_cap), "test_cost": capped},
           "hdpo_test_cost": hdpo.round(5).tolist(), "hdpo_gap_to_base_stock_percent": gap_base.round(3).tolist(),
           "hdpo_gap_to_capped_base_stock_percent": gap_capped.round(3).tolist(),
           "command": f"python benchmarks/beyond_losses.py --seeds {args.seeds} --steps {args.steps}"}
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "beyond_losses.json"), "w") as fh:
        json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
