"""Compile time of GoRL's whole program against PPO's on one environment (CPU, XLA's defaults).

    python benchmarks/compile_cost.py [--env playground/CheetahRun]

GoRL's stage switch puts a second copy of the environment rollout (the decoder's data
collection), an environment reset and the decoder's training into the one compiled program; on
MJX physics the rollout dominates compilation, so a short GPU run of GoRL pays mostly compile
time. Settings are small (16 envs x 32 steps, 6 iterations): compilation does not depend on them.
Prints one line per algorithm.
"""

from __future__ import annotations

import argparse
import time

import jax

import jaxpg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="playground/CheetahRun")
    args = parser.parse_args()
    common = dict(num_envs=16, num_steps=32, update_epochs=2, num_minibatches=4, hidden_sizes=(64, 64),
                  normalize_obs=True, total_steps=16 * 32 * 6)
    for algo, extra in (("ppo", {}), ("gorl", dict(num_stages=3, decoder_rollouts=1, decoder_train_steps=10,
                                                      decoder_batch_size=64))):
        train = jaxpg.make_train(algo, env=args.env, **common, **extra)
        start = time.perf_counter()
        jax.jit(train).lower(jax.random.key(0)).compile()
        print(f"{algo:5s} {args.env}: compile {time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
