"""Learning test of the group advantage estimators on the catalog's bandit (loss-catalog Part C):
10-arm Bernoulli bandits, 16 prompts x 8 samples, PPO dual-clip surrogate (BNPO's; the others'
default clip), tabular softmax policies, Adam 0.1, 2 epochs per batch, 150 iterations.

Criterion, from the spread over 16 keys measured on this machine (``benchmarks/sequence.py
--bandit`` prints it): the final p(best arm), averaged over prompts, had mean 0.84-0.86 and minimum
0.74 for every recipe (chance is 0.1). A recipe passes when the mean over 12 keys is >= 0.5 and the
worst key >= 0.35: about five standard deviations below the measured mean, far above chance. A
zero learning rate stays at exactly 0.1 and a flipped advantage sign goes to 0, so both fail.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from jaxpg.algos.sequence_bandit import bandit_means, train_bandit
from jaxpg.losses import sequence as seq

MEAN_P_BEST, WORST_P_BEST = 0.5, 0.35


def final_p_best(recipe, learning_rate=0.1):
    means = bandit_means(jax.random.key(0), 16)
    keys = jax.random.split(jax.random.key(1), 12)
    run = jax.jit(jax.vmap(lambda k: train_bandit(recipe, k, means, num_steps=150, learning_rate=learning_rate)[0][-1]))
    return np.asarray(run(keys))


def passes(p_best) -> bool:
    return p_best.mean() >= MEAN_P_BEST and p_best.min() >= WORST_P_BEST


@pytest.mark.slow
@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo", "bnpo"])
def test_group_advantages_learn_the_bandit(name):
    assert passes(final_p_best(seq.get_recipe(name))), name


@pytest.mark.slow
def test_broken_variants_fail_the_criterion():
    grpo = seq.get_recipe("grpo")
    flipped = grpo.replace_term(advantage=lambda r, b: -seq.advantages.grpo_advantage(r, b))
    p_flipped = final_p_best(flipped)
    assert not passes(p_flipped) and p_flipped.mean() < 0.1
    # A zero learning rate (same compiled program as above with another constant) stays at chance.
    assert not passes(final_p_best(grpo, learning_rate=0.0))
