"""The spread over many keys behind every learning test's criterion, and the broken variants.

A learning test runs a few seeds of a small budget and asserts on their median (or mean). Its
threshold must hold on any machine, where floating point differs and RL amplifies the
difference, so it comes from the distribution over many keys measured here, and it must reject
broken variants of the same algorithm, also measured here:

* ``zero_lr``: learning rate (or step size) 0, i.e. the initial, near-uniform random policy;
* ``flipped``: the advantage (or return) enters the policy loss with the wrong sign.

For each experiment the script prints and stores the per-seed statistic of the test for every
variant (quantiles and all values), and the probability, estimated by resampling the measured
seeds, that the test's aggregate over its own number of seeds clears the test's threshold.

    python benchmarks/learning_spread.py                  # all experiments, 20 keys each
    python benchmarks/learning_spread.py --only ppo_cartpole --keys 32

Writes ``benchmarks/results/learning_spread.{json,md}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

import jaxpg  # noqa: E402
from learning_criteria import CRITERIA, flipped_sign  # noqa: E402  (tests/learning_criteria.py)

RESULTS = os.path.join(os.path.dirname(__file__), "results")


def measure(name: str, num_keys: int) -> dict:
    criterion = CRITERIA[name]
    rows = {}
    for variant in ("working", "zero_lr", "flipped"):
        trainer = criterion.make()
        hparams = trainer.default_hparams
        if variant == "zero_lr":
            hparams = dataclasses.replace(hparams, **{criterion.rate_name: 0.0})
        if variant == "flipped":
            if not criterion.flippable:
                continue
            trainer = flipped_sign(trainer)
        start = time.perf_counter()
        key = jax.random.key(criterion.spread_key)
        out = jaxpg.sweep.run(trainer, seeds=num_keys, hparams=hparams, key=key)
        stats = np.asarray(criterion.statistic(trainer, out, jax.random.split(key, num_keys)), np.float64)
        seconds = time.perf_counter() - start
        rows[variant] = {
            "values": [round(float(v), 4) for v in stats],
            "quantiles": {q: round(float(np.quantile(stats, float(q))), 4) for q in ("0.0", "0.1", "0.5", "0.9", "1.0")},
            "pass_probability": pass_probability(stats, criterion),
            "seconds": round(seconds, 1),
        }
        print(f"{name:>22} {variant:>8}: min {stats.min():8.3f}  median {np.median(stats):8.3f}  "
              f"max {stats.max():8.3f}  P(test passes) = {rows[variant]['pass_probability']:.4f}  ({seconds:.0f} s)")
    return {"threshold": criterion.threshold, "aggregate": criterion.aggregate, "test_seeds": criterion.seeds,
            "description": criterion.description, "variants": rows}


def pass_probability(stats: np.ndarray, criterion, draws: int = 20_000) -> float:
    """P(aggregate of ``criterion.seeds`` seeds drawn from the measured ones > threshold)."""
    rng = np.random.default_rng(0)
    sample = rng.choice(stats, size=(draws, criterion.seeds), replace=True)
    aggregate = np.median(sample, axis=1) if criterion.aggregate == "median" else sample.mean(axis=1)
    return float((aggregate > criterion.threshold).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=20, help="keys (seeds) per experiment and variant")
    parser.add_argument("--only", nargs="*", choices=sorted(CRITERIA), help="experiments to run (default all)")
    args = parser.parse_args()
    names = args.only or list(CRITERIA)
    path = os.path.join(RESULTS, "learning_spread.json")
    results = json.load(open(path)) if os.path.exists(path) else {}
    for name in names:
        results[name] = {**measure(name, args.keys), "keys": args.keys, "machine": f"{os.cpu_count()} CPU cores",
                         "jax": jax.__version__}
    os.makedirs(RESULTS, exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(RESULTS, "learning_spread.md"), "w") as f:
        f.write(markdown(results))
    print(markdown(results))


def markdown(results: dict) -> str:
    lines = ["| test | statistic per seed | test criterion | variant | min | 10% | median | 90% | max | P(test passes) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        for variant, row in r["variants"].items():
            q = row["quantiles"]
            lines.append(
                f"| {name} | {r['description']} | {r['aggregate']} of {r['test_seeds']} seeds > {r['threshold']:g} "
                f"| {variant} | {q['0.0']:.3g} | {q['0.1']:.3g} | {q['0.5']:.3g} | {q['0.9']:.3g} | {q['1.0']:.3g} "
                f"| {row['pass_probability']:.4f} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    jnp.zeros(())  # initialize the backend before timing
    main()
