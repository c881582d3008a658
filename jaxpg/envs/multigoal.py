"""A 2-D point that may reach any of several equally good goals: a multimodal control task.

The task of the soft Q-learning paper's multi-goal experiment (Haarnoja et al. 2017,
"Reinforcement Learning with Deep Energy-Based Policies", section 6.1), in the form the PMOE
reference notes suggest (shared/reference/algorithms.md, 3.5): the point starts near the origin;
four goals sit at (+-5, 0) and (0, +-5); an action ``a`` in [-1, 1]^2 moves it to
``clip(x + a, -bound, bound)``; the reward is

    r = -distance_scale * min_i ||x' - g_i||  + goal_bonus * [min_i ||x' - g_i|| <= goal_radius]

and reaching a goal ends the episode (terminated); otherwise it is truncated after ``horizon``
steps. All goals are equally good, so an optimal stochastic policy is multimodal at the origin,
which a unimodal Gaussian cannot represent: it commits to one goal.

:func:`goal_reached` names the goal a final position reached (-1 for none), for counting the
distinct goals a set of policies (e.g. a mixture's experts) heads to.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxpg.envs.core import Box, Environment


@struct.dataclass
class MultiGoalParams:
    goals: jax.Array = struct.field(default_factory=lambda: jnp.array([[5.0, 0.0], [0.0, 5.0], [-5.0, 0.0], [0.0, -5.0]]))
    goal_radius: float = 0.5
    goal_bonus: float = 10.0
    distance_scale: float = 0.1
    start_noise: float = 0.1  # start uniformly in [-start_noise, start_noise]^2
    bound: float = 7.0  # the point stays in [-bound, bound]^2
    max_steps_in_episode: int = 30


@struct.dataclass
class MultiGoalState:
    position: jax.Array
    time: jax.Array


def goal_reached(position: jax.Array, params: MultiGoalParams) -> jax.Array:
    """The index of the goal within ``goal_radius`` of ``position [..., 2]``, or -1 (int32)."""
    distance = jnp.linalg.norm(position[..., None, :] - params.goals, axis=-1)
    nearest = jnp.argmin(distance, axis=-1)
    return jnp.where(jnp.min(distance, axis=-1) <= params.goal_radius, nearest, -1).astype(jnp.int32)


class MultiGoal(Environment):
    """``make("multigoal")``: observations are the position (2,), actions a displacement in [-1, 1]^2."""

    name = "multigoal"

    def __init__(self, **params):
        try:
            self.default_params = MultiGoalParams(**params)
        except TypeError:
            valid = ", ".join(f for f in MultiGoalParams.__dataclass_fields__)
            raise ValueError(f"unknown multigoal parameter in {sorted(params)}; valid choices: {valid}") from None
        bound = float(self.default_params.bound)
        self.observation_spec = Box.make(-bound, bound, (2,))
        self.action_spec = Box.make(-1.0, 1.0, (2,))

    def reset_raw(self, key, params):
        position = jax.random.uniform(key, (2,), minval=-params.start_noise, maxval=params.start_noise)
        return MultiGoalState(position, jnp.zeros((), jnp.int32)), position

    def step_raw(self, key, state, action, params):
        action = jnp.clip(jnp.asarray(action, jnp.float32).reshape(2), -1.0, 1.0)
        position = jnp.clip(state.position + action, -params.bound, params.bound)
        distance = jnp.min(jnp.linalg.norm(position - params.goals, axis=-1))
        reached = distance <= params.goal_radius
        reward = -params.distance_scale * distance + params.goal_bonus * reached
        time = state.time + 1
        return MultiGoalState(position, time), position, reward, reached, time >= params.max_steps_in_episode


def mode_rollout_goals(act, params: MultiGoalParams = MultiGoalParams(), start=np.zeros(2)) -> jax.Array:
    """Run the deterministic ``act(obs [2]) -> action [2]`` from ``start`` for the horizon (staying
    put after a goal is reached) and return the goal reached (-1 for none)."""

    def step(carry, _):
        position, done = carry
        moved = jnp.clip(position + jnp.clip(act(position), -1.0, 1.0), -params.bound, params.bound)
        position = jnp.where(done, position, moved)
        return (position, done | (goal_reached(position, params) >= 0)), None

    (position, _), _ = jax.lax.scan(step, (jnp.asarray(start, jnp.float32), jnp.zeros((), bool)), None,
                                    params.max_steps_in_episode)
    return goal_reached(position, params)
