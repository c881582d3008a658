"""jaxpg: a JAX-native functional suite of policy-gradient algorithms.

>>> train = jaxpg.make_train("ppo", env="CartPole-v1", total_steps=500_000)
>>> result = jax.jit(train)(jax.random.key(0), train.default_hparams)
>>> result.metrics["episode_return"]      # [iterations]
>>> act = jaxpg.policy_fn(result)         # obs -> action, jittable

Submodules and the names below load on first use (PEP 562), so ``import jaxpg`` and the
command line's argument checks do not wait for JAX and its libraries to import.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("algos", "checkpoint", "distributed", "envs", "estimators", "evaluation", "losses", "nets", "optim",
               "policies", "prng", "progress", "sweep")
_NAMES = {
    "ALGORITHMS": "jaxpg.algos",
    "Result": "jaxpg.algos",
    "check_finite": "jaxpg.algos",
    "make_train": "jaxpg.algos",
    "enable_compilation_cache": "jaxpg.runtime",
    "use_all_cpu_cores": "jaxpg.runtime",
    "evaluate": "jaxpg.evaluation",
    "policy_fn": "jaxpg.evaluation",
}

__all__ = sorted(_NAMES) + list(_SUBMODULES)


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"jaxpg.{name}")
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'jaxpg' has no attribute {name!r}")


def __dir__():
    return __all__
