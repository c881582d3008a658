"""Policy heads: network features -> a policy object (:mod:`jaxpg.policies.distributions`),
chosen from the action spec. Networks (``jaxpg.nets``) receive a head as a module attribute."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxpg.envs.core import Box, Discrete
from jaxpg.nets.initializers import orthogonal
from jaxpg.policies.distributions import Categorical, Gaussian, Mixture, SquashedGaussian

STD_MODES = ("state_independent", "state_dependent")


class CategoricalHead(nn.Module):
    """Logits from a small-scale orthogonal layer (gain 0.01): a near-uniform initial policy."""

    num_actions: int

    @nn.compact
    def __call__(self, features):
        logits = nn.Dense(self.num_actions, kernel_init=orthogonal(0.01))(features)
        return Categorical(logits)


class GaussianHead(nn.Module):
    """Diagonal Gaussian; tanh-squashed into the action box when the box is bounded.

    ``std_mode="state_independent"``: a learned log-std vector (initialized to ``init_log_std``).
    ``std_mode="state_dependent"``: log-std is a linear function of the features, mapped smoothly
    into ``[log_std_min, log_std_max]`` with ``tanh`` (as in SAC implementations) so that the std
    can neither collapse to 0 nor explode.
    """

    action_spec: Box
    std_mode: str = "state_independent"
    init_log_std: float = 0.0
    log_std_min: float = -5.0
    log_std_max: float = 2.0

    @nn.compact
    def __call__(self, features):
        dim = self.action_spec.shape[-1] if self.action_spec.shape else 1
        mean = nn.Dense(dim, kernel_init=orthogonal(0.01))(features)
        if self.std_mode == "state_independent":
            log_std = self.param("log_std", nn.initializers.constant(self.init_log_std), (dim,))
            log_std = jnp.broadcast_to(log_std, mean.shape)
        elif self.std_mode == "state_dependent":
            if not self.log_std_min < self.init_log_std < self.log_std_max:
                raise ValueError(
                    f"init_log_std = {self.init_log_std} must lie strictly inside "
                    f"({self.log_std_min}, {self.log_std_max}) for std_mode='state_dependent'"
                )
            raw = nn.Dense(dim, kernel_init=orthogonal(0.01))(features)
            half_range = (self.log_std_max - self.log_std_min) / 2.0
            mid = (self.log_std_max + self.log_std_min) / 2.0
            # Start at init_log_std: shift so that raw = 0 maps to it.
            offset = jnp.arctanh((self.init_log_std - mid) / half_range)
            log_std = mid + half_range * jnp.tanh(raw + offset)
        else:
            raise ValueError(f"unknown std_mode {self.std_mode!r}; valid choices: {', '.join(STD_MODES)}")
        std = jnp.exp(log_std)
        if self.action_spec.bounded:
            return SquashedGaussian(mean, std, jnp.asarray(self.action_spec.low), jnp.asarray(self.action_spec.high))
        return Gaussian(mean, std)


class MixtureOfExpertsHead(nn.Module):
    """PMOE's policy (Ren et al. 2021, "Probabilistic Mixture-of-Experts for Efficient Deep
    Reinforcement Learning"): K Gaussian experts, tanh-squashed into the action box when it is
    bounded, weighted by a softmax gate,

        pi(a|s) = sum_k w_k(s) pi_k(a|s),   w(s) = softmax(f_gate(s)).

    The experts are one :class:`GaussianHead` with K times the outputs (same initialization and
    std modes), reshaped to ``[..., K, d]``. With ``detach_gate`` (the official code's choice) the
    gate reads the features through ``stop_gradient``: it is trained only by its own loss (PMOE's
    frequency loss) and never shapes the torso. Returns a :class:`Mixture`, whose mode is the most
    probable expert's mean action and whose ``components`` give every expert's sample, log-prob
    and entropy at once (the PMOE estimator scores all K candidate actions).
    """

    action_spec: Box
    num_experts: int = 4
    std_mode: str = "state_independent"
    init_log_std: float = 0.0
    detach_gate: bool = True

    @nn.compact
    def __call__(self, features):
        if self.num_experts < 1:
            raise ValueError(f"num_experts must be a positive integer, got {self.num_experts!r}")
        spec, k = self.action_spec, self.num_experts
        dim = spec.shape[-1] if spec.shape else 1
        tiled = Box.make(np.tile(spec.low.reshape(-1), k), np.tile(spec.high.reshape(-1), k), (k * dim,))
        flat = GaussianHead(tiled, std_mode=self.std_mode, init_log_std=self.init_log_std, name="experts")(features)
        per_expert = lambda x: x.reshape(x.shape[:-1] + (k, dim))  # noqa: E731
        mean, std = per_expert(flat.mean), per_expert(jnp.broadcast_to(flat.std, flat.mean.shape))
        if spec.bounded:
            experts = SquashedGaussian(mean, std, jnp.asarray(spec.low), jnp.asarray(spec.high))
        else:
            experts = Gaussian(mean, std)
        gate_input = jax.lax.stop_gradient(features) if self.detach_gate else features
        logits = nn.Dense(k, kernel_init=orthogonal(0.01), name="gate")(gate_input)
        return Mixture(experts, logits)


def policy_head(action_spec, std_mode: str = "state_independent", init_log_std: float = 0.0) -> nn.Module:
    """The head that fits ``action_spec``: categorical for Discrete, Gaussian for Box."""
    if std_mode not in STD_MODES:
        raise ValueError(f"unknown std_mode {std_mode!r}; valid choices: {', '.join(STD_MODES)}")
    if isinstance(action_spec, Discrete):
        return CategoricalHead(action_spec.n)
    if isinstance(action_spec, Box):
        if len(action_spec.shape) > 1:
            raise ValueError(f"Box actions must be a vector, got shape {action_spec.shape}")
        return GaussianHead(action_spec, std_mode=std_mode, init_log_std=init_log_std)
    raise TypeError(f"unsupported action spec {type(action_spec).__name__}; valid: Discrete, Box")
