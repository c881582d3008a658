"""The LPG network eta: a recurrent network run backward over a trajectory that outputs the
agent's policy target and prediction target (Oh et al. 2020, "Discovering Reinforcement Learning
Algorithms"; reference notes: shared/reference/algorithms.md, 5.1).

Per step t of a rollout ``[T, N]`` the input is

    x_t = [ r_t, d_t, gamma, pi(a_t|s_t), phi(y(s_t)), (1 - d_t) phi(y(s_{t+1})) ]

with ``phi`` a shared embedding (Dense ``embed_size`` -> ReLU -> Dense 1) of the agent's
prediction vectors ``y in Delta^m``; a GRU runs from t = T-1 down to 0, its state reset where an
episode ended (``d_t``: the step after belongs to another episode); from its state ``h_t``:

    pi_hat_t = Dense_1(relu(h_t))            (the policy target, a scalar)
    y_hat_t  = softmax(Dense_m(relu(h_t)))   (the prediction target)

The LPG paper uses an LSTM and feeds gamma; the GROOVE code uses a GRU (256 units) and omits gamma.
jaxpg follows the paper's inputs (gamma included) with GROOVE's GRU.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class RuleInputs:
    """What an update rule sees of a rollout ``[T, N]`` (all stop-gradient with respect to the agent)."""

    reward: jax.Array
    done: jax.Array
    gamma: jax.Array  # scalar
    pi_taken: jax.Array  # pi(a_t | s_t)
    y: jax.Array  # [T, N, m]
    y_next: jax.Array  # [T, N, m]: y of the state the transition reached


class _BackwardGRUStep(nn.Module):
    hidden_size: int

    @nn.compact
    def __call__(self, h, inputs):
        x, reset = inputs
        h = jnp.where(reset[..., None], jnp.zeros_like(h), h)
        h, _ = nn.GRUCell(features=self.hidden_size)(h, x)
        return h, h


class LPGNetwork(nn.Module):
    """``(pi_hat [T, N], y_hat [T, N, m]) = LPGNetwork(m)(RuleInputs)``."""

    prediction_dim: int = 8
    hidden_size: int = 256
    embed_size: int = 16

    @nn.compact
    def __call__(self, inputs: RuleInputs):
        embed = nn.Sequential([nn.Dense(self.embed_size), nn.relu, nn.Dense(1)], name="embed")
        done = inputs.done.astype(jnp.float32)
        features = jnp.stack([
            inputs.reward.astype(jnp.float32), done, jnp.broadcast_to(inputs.gamma, done.shape).astype(jnp.float32),
            inputs.pi_taken, embed(inputs.y)[..., 0], (1.0 - done) * embed(inputs.y_next)[..., 0]], axis=-1)
        scan = nn.scan(_BackwardGRUStep, variable_broadcast="params", split_rngs={"params": False}, in_axes=0,
                       out_axes=0, reverse=True)
        h0 = jnp.zeros(done.shape[1:] + (self.hidden_size,), features.dtype)
        _, hidden = scan(self.hidden_size, name="gru")(h0, (features, inputs.done.astype(bool)))
        hidden = nn.relu(hidden)
        pi_hat = nn.Dense(1, name="policy_target")(hidden)[..., 0]
        y_hat = jax.nn.softmax(nn.Dense(self.prediction_dim, name="prediction_target")(hidden), axis=-1)
        return pi_hat, y_hat
