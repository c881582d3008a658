"""The learning tests' criteria in one place, shared by the tests and by the script that measures
their spread over many keys (``benchmarks/learning_spread.py``).

Each criterion names a small training budget, a per-seed statistic, how the test aggregates it
over its seeds (median or mean) and the threshold. The thresholds were set from the spread over
20 keys and checked against broken variants (zero learning rate, flipped sign); the measured
figures are in each test's comment and in ``benchmarks/results/learning_spread.md``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

import jaxpg
from jaxpg.algos import PPO, Reinforce, ppo_objective, reinforce_objective
from jaxpg.envs.tabular import exact_return


@dataclasses.dataclass(frozen=True)
class Criterion:
    description: str  # what the per-seed statistic is
    make: Callable  # () -> trainer with its default_hparams
    statistic: Callable  # (trainer, result with a leading seed axis, seed keys) -> [seeds] array
    threshold: float
    seeds: int  # seeds the test runs
    aggregate: str = "median"  # "median" | "mean" over the test's seeds
    rate_name: str = "learning_rate"  # the hparam that zero_lr sets to 0
    flippable: bool = True  # whether flipped_sign applies
    test_key: int = 0  # the key the test uses
    spread_key: int = 1000  # the key the spread measurement splits its keys from

    def aggregate_of(self, values) -> float:
        values = np.asarray(values)
        return float(np.median(values) if self.aggregate == "median" else values.mean())

    def passes(self, values) -> bool:
        return self.aggregate_of(values) > self.threshold


def last_returns(fraction: float) -> Callable:
    """Per seed: mean training return over the last ``fraction`` of the iterations."""

    def statistic(trainer, result, keys=None):
        returns = np.asarray(result.metrics["episode_return"])
        tail = max(1, int(round(fraction * returns.shape[-1])))
        return np.nanmean(returns[..., -tail:], axis=-1)

    return statistic


def tabular_gain(trainer, result, keys) -> np.ndarray:
    """Per seed: exact return J(final policy) - J(initial policy) on the tabular MDP."""
    mdp = trainer.env.default_params
    states = jnp.eye(trainer.env.num_states)

    def objective(params):
        probs = jax.nn.softmax(trainer.network.apply(params, states).logits, -1)
        return exact_return(mdp, probs, 0.99, int(mdp.max_steps_in_episode))

    initial = jax.vmap(lambda k: objective(trainer.init(k).params))(keys)
    final = jax.vmap(objective)(result.params)
    return np.asarray(final - initial)


def _tabular(method: str):
    def make():
        per_iteration = 1 + (1 if method in ("harpg", "n_harpg") else 0)
        unnormalized = method in ("pg", "harpg")
        return jaxpg.make_train(
            method, env="tabular/random", num_envs=1, hidden_sizes=(), total_steps=100 * per_iteration * 5,
            baseline="none", env_kwargs=(("num_states", 4), ("num_actions", 3), ("horizon", 5), ("seed", 3)),
            step_size=0.3 if unnormalized else 0.5, gamma=0.99,
        )

    return make


# SAC, Pendulum-v1, 8k steps, per seed the mean training return over the last 10%. Spread over
# 20 keys (benchmarks/learning_spread.py): working min -918, 10% -465, median -249, max -164;
# zero learning rate min -1512, median -1206, max -977 (a random policy). Median of 4 seeds >
# -900: every zero-rate seed is below it; a working run fails only if 3 of its 4 seeds land in
# the lowest 5%.
THRESHOLD_SAC = -900.0

CRITERIA: dict[str, Criterion] = {
    "ppo_cartpole": Criterion(
        "mean training return, last 10% of 60k steps",
        lambda: jaxpg.make_train("ppo", env="CartPole-v1", total_steps=60_000),
        last_returns(0.1), threshold=100.0, seeds=4,
    ),
    "reinforce_cartpole": Criterion(
        "mean training return, last 10% of 160k steps",
        lambda: jaxpg.make_train("reinforce", env="CartPole-v1", total_steps=160_000),
        last_returns(0.1), threshold=100.0, seeds=4,
    ),
    "ppo_minatar_breakout": Criterion(
        "mean training return, last 10% of 30k steps",
        lambda: jaxpg.make_train("ppo", env="Breakout-MinAtar", total_steps=30_000, num_envs=8, num_steps=64,
                                 lr_schedule="constant", learning_rate=1e-3),
        last_returns(0.1), threshold=1.0, seeds=4,
    ),
    "sac_pendulum": Criterion(
        "mean training return, last 10% of 8k steps",
        lambda: jaxpg.make_train("sac", env="Pendulum-v1", total_steps=8_000, hidden_sizes=(64, 64),
                                 learning_starts=500, batch_size=128),
        last_returns(0.1), threshold=THRESHOLD_SAC, seeds=4, flippable=False,
    ),
    **{
        f"tabular_{method}": Criterion(
            "exact gain J(final) - J(initial), 100 single-trajectory iterations",
            _tabular(method), tabular_gain, threshold=0.05, seeds=16, aggregate="mean",
            rate_name="step_size", flippable=False,
        )
        for method in ("pg", "n_mpg", "n_pg_igt", "harpg", "n_harpg")
    },
}


def flipped_sign(trainer):
    """The same trainer whose objective sees the advantage (REINFORCE: the return) negated."""
    if isinstance(trainer, PPO):
        objective = lambda policy, values, batch, adv, tgt, hp: ppo_objective(policy, values, batch, -adv, tgt, hp)
    elif isinstance(trainer, Reinforce):
        objective = lambda policy, values, batch, returns, hp: reinforce_objective(policy, values, batch, -returns, hp)
    else:
        raise TypeError(f"no flipped variant for {type(trainer).__name__}")
    flipped = type(trainer)(trainer.config, objective=objective)
    flipped.default_hparams = trainer.default_hparams
    return flipped


def run(name: str, with_zero_rate: bool = False):
    """Run a criterion's experiment as its test does: per-seed statistics of the working algorithm
    and, with ``with_zero_rate``, of the zero-learning-rate variant from the same sweep."""
    criterion = CRITERIA[name]
    trainer = criterion.make()
    hparams = trainer.default_hparams
    if with_zero_rate:
        rates = [getattr(hparams, criterion.rate_name), 0.0]
        hparams = jaxpg.sweep.grid(hparams, **{criterion.rate_name: rates})
    key = jax.random.key(criterion.test_key)
    out = jaxpg.sweep.run(trainer, seeds=criterion.seeds, hparams=hparams, key=key)
    jaxpg.check_finite(out)
    keys = jax.random.split(key, criterion.seeds)
    if not with_zero_rate:
        return np.asarray(criterion.statistic(trainer, out, keys)), criterion
    working, zero = (jax.tree.map(lambda x, i=i: x[i], out) for i in range(2))
    return (np.asarray(criterion.statistic(trainer, working, keys)),
            np.asarray(criterion.statistic(trainer, zero, keys)), criterion)
