"""Environments under one functional protocol; see :mod:`jaxpg.envs.core`.

>>> env = jaxpg.envs.make("CartPole-v1")          # gymnax
>>> env = jaxpg.envs.make("brax/inverted_pendulum")  # brax
"""

from __future__ import annotations

from jaxpg.envs.core import Box, Discrete, Environment, EnvState, TimeStep, VectorEnv, tree_select
from jaxpg.envs.gymnax_adapter import GYMNAX_ENVS, GymnaxEnv
from jaxpg.envs.wrappers import PermutedObservations, PermutedParams

BRAX_ENVS: tuple[str, ...] = (
    "ant",
    "halfcheetah",
    "hopper",
    "humanoid",
    "humanoidstandup",
    "inverted_double_pendulum",
    "inverted_pendulum",
    "pusher",
    "reacher",
    "swimmer",
    "walker2d",
)


# Own environments; "permuted/NAME" works for any gymnax environment with vector observations.
OWN_ENVS: tuple[str, ...] = ("bandit/bimodal", "multigoal", "tabular/random", "permuted/CartPole-v1", "permuted/Acrobot-v1", "permuted/Pendulum-v1")


def list_envs() -> list[str]:
    """All names accepted by :func:`make`."""
    return list(GYMNAX_ENVS) + [f"brax/{name}" for name in BRAX_ENVS] + list(OWN_ENVS)


def make(name: str, **kwargs) -> Environment:
    """Build an environment by name (``jaxpg.envs.list_envs()`` lists them).

    gymnax names are used as gymnax spells them (``"CartPole-v1"``); brax environments are
    ``"brax/<name>"`` and accept ``backend=`` and ``episode_length=`` keyword arguments.
    """
    if not isinstance(name, str):
        raise TypeError(f"environment name must be a string, got {type(name).__name__}")
    if name in GYMNAX_ENVS:
        return GymnaxEnv(name, **kwargs)
    if name.startswith("permuted/") and name[len("permuted/") :] in GYMNAX_ENVS:
        return PermutedObservations(GymnaxEnv(name[len("permuted/") :], **kwargs))
    if name == "bandit/bimodal":
        from jaxpg.envs.bandit import BimodalBandit

        return BimodalBandit(**kwargs)
    if name == "multigoal":
        from jaxpg.envs.multigoal import MultiGoal

        return MultiGoal(**kwargs)
    if name == "tabular/random":
        from jaxpg.envs.tabular import TabularMDP

        return TabularMDP(**kwargs)
    if name.startswith("brax/") and name[len("brax/") :] in BRAX_ENVS:
        from jaxpg.envs.brax_adapter import BraxEnv  # brax is heavy to import; only on demand

        return BraxEnv(name[len("brax/") :], **kwargs)
    raise ValueError(f"unknown environment {name!r}; valid choices: {', '.join(list_envs())}")


__all__ = [
    "BRAX_ENVS",
    "Box",
    "Discrete",
    "EnvState",
    "Environment",
    "GYMNAX_ENVS",
    "OWN_ENVS",
    "PermutedObservations",
    "PermutedParams",
    "GymnaxEnv",
    "TimeStep",
    "VectorEnv",
    "list_envs",
    "make",
    "tree_select",
]
