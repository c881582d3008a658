"""jaxpg: a JAX-native functional suite of policy-gradient algorithms.

>>> train = jaxpg.make_train("ppo", env="CartPole-v1", total_steps=500_000)
>>> result = jax.jit(train)(jax.random.key(0), train.default_hparams)
>>> result.metrics["episode_return"]      # [iterations]
>>> act = jaxpg.policy_fn(result)         # obs -> action, jittable
"""

from jaxpg import envs, losses, nets, policies, progress, sweep
from jaxpg.algos import ALGORITHMS, Result, check_finite, make_train
from jaxpg.evaluation import evaluate, policy_fn

__version__ = "0.1.0"

__all__ = [
    "ALGORITHMS",
    "Result",
    "check_finite",
    "envs",
    "evaluate",
    "losses",
    "make_train",
    "nets",
    "policies",
    "policy_fn",
    "progress",
    "sweep",
]
