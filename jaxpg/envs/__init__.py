"""Environments under one functional protocol; see :mod:`jaxpg.envs.core`.

>>> env = jaxpg.envs.make("CartPole-v1")          # gymnax
>>> env = jaxpg.envs.make("brax/inverted_pendulum")  # brax
>>> env = jaxpg.envs.make("playground/CartpoleBalance")  # MuJoCo Playground (optional extra)
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

# DeepMind Control Suite tasks of MuJoCo Playground 0.2.0 (``dm_control_suite.ALL_ENVS``), named
# "playground/<task>". A static tuple, so listing them never imports the optional
# ``mujoco_playground`` (``pip install -e ".[playground]"``); tests check it against the package.
PLAYGROUND_ENVS: tuple[str, ...] = (
    "AcrobotSwingup",
    "AcrobotSwingupSparse",
    "BallInCup",
    "CartpoleBalance",
    "CartpoleBalanceSparse",
    "CartpoleSwingup",
    "CartpoleSwingupSparse",
    "CheetahRun",
    "FingerSpin",
    "FingerTurnEasy",
    "FingerTurnHard",
    "FishSwim",
    "HopperHop",
    "HopperStand",
    "HumanoidStand",
    "HumanoidWalk",
    "HumanoidRun",
    "PendulumSwingup",
    "PointMass",
    "ReacherEasy",
    "ReacherHard",
    "SwimmerSwimmer6",
    "WalkerRun",
    "WalkerStand",
    "WalkerWalk",
)


# Own environments; "permuted/NAME" works for any gymnax environment with vector observations.
OWN_ENVS: tuple[str, ...] = ("bandit/bimodal", "multigoal", "tabular/random", "permuted/CartPole-v1", "permuted/Acrobot-v1", "permuted/Pendulum-v1")
# LPG's and GROOVE's grid-worlds (jaxpg.envs.gridworld.LEVELS), "gridworld/<level>".
GRIDWORLD_LEVELS: tuple[str, ...] = ("dense", "sparse", "long", "longer", "long_dense", "rand_dense", "rand_long",
                                     "rand_small", "rand_sparse", "rand_very_dense", "small", "all")


def list_envs() -> list[str]:
    """All names accepted by :func:`make`."""
    return (
        list(GYMNAX_ENVS)
        + [f"brax/{name}" for name in BRAX_ENVS]
        + [f"playground/{name}" for name in PLAYGROUND_ENVS]
        + list(OWN_ENVS)
        + [f"gridworld/{level}" for level in GRIDWORLD_LEVELS]
    )


def make(name: str, **kwargs) -> Environment:
    """Build an environment by name (``jaxpg.envs.list_envs()`` lists them).

    gymnax names are used as gymnax spells them (``"CartPole-v1"``); brax environments are
    ``"brax/<name>"`` and accept ``backend=`` and ``episode_length=`` keyword arguments.
    MuJoCo Playground's DeepMind Control Suite tasks are ``"playground/<Task>"`` (optional extra
    ``pip install -e ".[playground]"``) and accept ``episode_length=``, ``impl=`` and
    ``config_overrides=``.
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
    if name.startswith("gridworld/"):  # an unknown level gets the grid-world's own message
        from jaxpg.envs.gridworld import GridWorld

        return GridWorld(name[len("gridworld/") :], **kwargs)
    if name.startswith("brax/") and name[len("brax/") :] in BRAX_ENVS:
        from jaxpg.envs.brax_adapter import BraxEnv  # brax is heavy to import; only on demand

        return BraxEnv(name[len("brax/") :], **kwargs)
    if name.startswith("playground/"):
        task = name[len("playground/") :]
        if task not in PLAYGROUND_ENVS:
            valid = ", ".join(PLAYGROUND_ENVS)
            raise ValueError(f"unknown MuJoCo Playground task {task!r}; valid DMC task names: {valid}")
        # an optional extra, imported only here (a one-line ImportError if it is missing)
        from jaxpg.envs.playground_adapter import PlaygroundEnv

        return PlaygroundEnv(task, **kwargs)
    raise ValueError(f"unknown environment {name!r}; valid choices: {', '.join(list_envs())}")


__all__ = [
    "BRAX_ENVS",
    "Box",
    "Discrete",
    "EnvState",
    "Environment",
    "GRIDWORLD_LEVELS",
    "GYMNAX_ENVS",
    "OWN_ENVS",
    "PLAYGROUND_ENVS",
    "PermutedObservations",
    "PermutedParams",
    "GymnaxEnv",
    "TimeStep",
    "VectorEnv",
    "list_envs",
    "make",
    "tree_select",
]
