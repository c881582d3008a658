"""gymnax environments (classic control, MinAtar, bsuite, misc) under the jaxpg protocol."""

from __future__ import annotations

import jax.numpy as jnp

from jaxpg.envs.core import Box, Discrete, Environment

# gymnax 1.0.1's ``gymnax.registered_envs``, spelled out so that ``import jaxpg`` need not import
# gymnax (2-3 s: it loads every environment, seaborn and scipy); tests/test_envs.py checks the two
# lists agree.
GYMNAX_ENVS: tuple[str, ...] = (
    "CartPole-v1", "Pendulum-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0",
    "Asterix-MinAtar", "Breakout-MinAtar", "Freeway-MinAtar", "Seaquest-MinAtar", "SpaceInvaders-MinAtar",
    "Catch-bsuite", "DeepSea-bsuite", "MemoryChain-bsuite", "UmbrellaChain-bsuite", "DiscountingChain-bsuite",
    "MNISTBandit-bsuite", "SimpleBandit-bsuite",
    "FourRooms-misc", "MetaMaze-misc", "PointRobot-misc", "BernoulliBandit-misc", "GaussianBandit-misc",
    "Reacher-misc", "Swimmer-misc", "Pong-misc", "FrozenLake-misc",
)


def _convert_space(space) -> Discrete | Box:
    from gymnax.environments import spaces as gymnax_spaces

    if isinstance(space, gymnax_spaces.Discrete):
        return Discrete(n=int(space.n))
    if isinstance(space, gymnax_spaces.Box):
        return Box.make(space.low, space.high, space.shape)
    raise TypeError(f"unsupported gymnax space {type(space).__name__}; valid: Discrete, Box")


class GymnaxEnv(Environment):
    """Adapter over ``gymnax.make(name)``.

    gymnax reports natural termination from ``step_env`` and the time limit through
    ``is_truncated``; both are passed through unchanged, so the base class can bootstrap
    truncated episodes from their final observation.
    """

    def __init__(self, name: str, **kwargs):
        import gymnax

        self.name = name
        self.gymnax_env, self.default_params = gymnax.make(name, **kwargs)
        self.observation_spec = _convert_space(self.gymnax_env.observation_space(self.default_params))
        self.action_spec = _convert_space(self.gymnax_env.action_space(self.default_params))

    def reset_raw(self, key, params):
        obs, state = self.gymnax_env.reset_env(key, params)
        return state, jnp.asarray(obs, jnp.float32)

    def step_raw(self, key, state, action, params):
        obs, state, reward, terminated, _ = self.gymnax_env.step_env(key, state, action, params)
        truncated = self.gymnax_env.is_truncated(state, params)
        return state, jnp.asarray(obs, jnp.float32), reward, terminated, truncated
