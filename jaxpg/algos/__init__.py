"""Algorithms under one contract: ``train = make_train(name, env=..., **overrides)``.

``result = jax.jit(train)(key, hparams)`` runs the whole training in one compiled ``lax.scan``.
The protocol every trainer implements is in :mod:`jaxpg.algos.trainer`.
"""

from __future__ import annotations

import dataclasses
import inspect

from jaxpg.algos import gorl
from jaxpg.algos.gorl import GoRL, GoRLConfig, GoRLHParams, GoRLSAC, GoRLSACConfig, GoRLSACHParams
from jaxpg.algos.lpg import LPG, LPGConfig, LPGTrainHParams
from jaxpg.algos.hdpo import HDPO, HDPOConfig, HDPOHParams
from jaxpg.algos.harpg import HARPG, METHODS, NHARPG, NMPG, NPGIGT, PG, HARPGConfig, HARPGHParams, PolicyGradientFamily
from jaxpg.algos.pmoe import PMOEPPO, PMOESAC, PMOEPPOConfig, PMOEPPOHParams, PMOESACConfig
from jaxpg.algos.ppo import PPO, PPOConfig, PPOHParams, ppo_objective
from jaxpg.algos.reinforce import Reinforce, ReinforceConfig, ReinforceHParams, reinforce_objective
from jaxpg.algos.sac import SAC, SACConfig, SACHParams
from jaxpg.algos.sequence import SequenceConfig, SequenceHParams, SequenceTrainer
from jaxpg.algos.trainer import Result, Trainer, check_finite
from jaxpg.algos.validation import validate

ALGORITHMS: dict[str, type[Trainer]] = {
    "ppo": PPO,
    "reinforce": Reinforce,
    "sac": SAC,
    "pmoe_sac": PMOESAC,
    "pmoe_ppo": PMOEPPO,
    "gorl": GoRL,
    "gorl_sac": GoRLSAC,
    "lpg": LPG,
    "grpo": SequenceTrainer,  # any loss of jaxpg.losses.sequence: make_train("grpo", recipe="rloo")
    "hdpo": HDPO,  # pathwise gradients through the inventory simulator: env="inventory/one_store"
    # Fatkhullin et al. 2023: one class, one registry name per method.
    **METHODS,
}


# Algorithms whose base RL algorithm is a parameter: make_train(name, base=...) picks the variant.
BASES: dict[str, dict[str, type[Trainer]]] = {"gorl": gorl.BASES}


def get_algorithm(name: str, base: str | None = None) -> type[Trainer]:
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; valid choices: {', '.join(ALGORITHMS)}")
    if base is None:
        return ALGORITHMS[name]
    if name not in BASES:
        raise ValueError(f"{name} takes no base algorithm; algorithms with one: {', '.join(BASES)}")
    if base not in BASES[name]:
        raise ValueError(f"unknown base {base!r} for {name}; valid choices: {', '.join(BASES[name])}")
    return BASES[name][base]


def make_train(algo: str, env: str | None = None, hparams: dict | None = None, objective=None,
               base: str | None = None, **overrides) -> Trainer:
    """One-line entry point: ``make_train("ppo", env="CartPole-v1", total_steps=100_000)``.

    Keyword overrides may name fields of the algorithm's ``Config`` (static: network sizes, batch
    shapes, budget) or of its ``HParams`` (floats: they become ``train.default_hparams``).
    ``objective`` replaces the algorithm's loss where it has one (PPO, REINFORCE). ``base`` picks
    the base RL algorithm of a framework that takes one (``make_train("gorl", base="sac")`` is
    ``make_train("gorl_sac")``).
    """
    cls = get_algorithm(algo, base)
    config_fields = {f.name for f in dataclasses.fields(cls.Config)}
    hparam_fields = {f.name for f in dataclasses.fields(cls.HParams)}
    config_kwargs, hparam_kwargs = {}, dict(hparams or {})
    if env is not None:
        config_kwargs["env"] = env
    for key, value in overrides.items():
        if key in config_fields:
            config_kwargs[key] = value
        elif key in hparam_fields:
            hparam_kwargs[key] = value
        else:
            valid = ", ".join(sorted(config_fields | hparam_fields))
            raise ValueError(f"unknown option {key!r} for {algo}; valid choices: {valid}")
    unknown = set(hparam_kwargs) - hparam_fields
    if unknown:
        raise ValueError(f"unknown hyperparameter {sorted(unknown)[0]!r} for {algo}; valid choices: {', '.join(sorted(hparam_fields))}")
    hparams = cls.HParams(**hparam_kwargs)
    validate(hparams)  # before building the trainer: a bad value fails fast, naming its range
    extra = {}
    if objective is not None:
        if "objective" not in inspect.signature(cls.__init__).parameters:
            with_objective = [name for name, c in ALGORITHMS.items() if "objective" in inspect.signature(c.__init__).parameters]
            raise ValueError(f"{algo} takes no objective; algorithms with a replaceable objective: {', '.join(with_objective)}")
        extra["objective"] = objective
    trainer = cls(cls.Config(**config_kwargs), **extra)
    trainer.default_hparams = hparams
    return trainer


__all__ = [
    "ALGORITHMS",
    "GoRL",
    "GoRLConfig",
    "GoRLHParams",
    "GoRLSAC",
    "GoRLSACConfig",
    "GoRLSACHParams",
    "HARPG",
    "HDPO",
    "HDPOConfig",
    "HDPOHParams",
    "HARPGConfig",
    "HARPGHParams",
    "LPG",
    "LPGConfig",
    "LPGTrainHParams",
    "NHARPG",
    "NMPG",
    "NPGIGT",
    "PG",
    "PMOEPPO",
    "PMOEPPOConfig",
    "PMOEPPOHParams",
    "PMOESAC",
    "PMOESACConfig",
    "PPO",
    "PPOConfig",
    "SAC",
    "SACConfig",
    "SACHParams",
    "SequenceConfig",
    "SequenceHParams",
    "SequenceTrainer",
    "PPOHParams",
    "PolicyGradientFamily",
    "Reinforce",
    "ReinforceConfig",
    "ReinforceHParams",
    "Result",
    "Trainer",
    "check_finite",
    "get_algorithm",
    "make_train",
    "ppo_objective",
    "reinforce_objective",
    "validate",
]
