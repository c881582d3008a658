"""PMOE-SAC: SAC with a probabilistic mixture-of-experts policy and PMOE's gradient estimator
(Ren et al. 2021, "Probabilistic Mixture-of-Experts for Efficient Deep Reinforcement Learning";
reference notes: shared/reference/algorithms.md, section 3).

The policy is :class:`jaxpg.policies.MixtureOfExpertsHead`: K tanh-Gaussian experts and a softmax
gate reading the torso's features through ``stop_gradient``. What changes from :class:`SAC`:

* actor: every expert proposes a reparameterized action; the one with the highest twin-critic
  minimum (k*) alone receives the actor gradient, and the gate is regressed onto the one-hot of k*
  (the frequency loss), :func:`jaxpg.losses.pmoe_actor_loss`;
* temperature: driven by the selected expert's log-density (target entropy -dim(A) "per expert");
* critic target: k' ~ w(s'), a' ~ pi_k'(.|s'), entropy term with log pi_k'(a'|s');
* metrics: per-expert gate probability and selection frequency (``gate_probability/<k>``,
  ``selection_frequency/<k>``), where expert collapse shows.

Evaluation (``policy_fn``, ``evaluate``) uses the mixture's mode: the most probable expert's mean
action (the official code samples the expert even then; jaxpg's choice is deterministic).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxpg import losses
from jaxpg.algos.sac import SAC, SACConfig, SACHParams, SACState
from jaxpg.algos.validation import POSITIVE_INT, bounded
from jaxpg.nets import PolicyNetwork
from jaxpg.policies import MixtureOfExpertsHead


@dataclasses.dataclass(frozen=True)
class PMOESACConfig(SACConfig):
    num_experts: int = bounded(4, POSITIVE_INT)  # K (the official default)
    detach_gate: bool = True


class PMOESAC(SAC):
    algo = "pmoe_sac"
    Config = PMOESACConfig
    HParams = SACHParams

    def __init__(self, config: PMOESACConfig = PMOESACConfig()):
        super().__init__(config)
        head = MixtureOfExpertsHead(self.env.action_spec, num_experts=config.num_experts, std_mode=config.std_mode,
                                    init_log_std=config.init_log_std, detach_gate=config.detach_gate)
        self.network = PolicyNetwork(head=head, obs_ndim=len(self.env.observation_spec.shape),
                                     hidden_sizes=tuple(config.hidden_sizes), activation=config.activation,
                                     normalization=config.normalization)

    def next_action(self, mixture, key):
        """k' ~ w(s'), a' ~ pi_k'(.|s'); the entropy term uses the selected expert's log pi_k'(a')."""
        key_expert, key_action = jax.random.split(key)
        experts = mixture.components.sample_and_log_prob(key_action)  # [B, K, d], [B, K]
        k = jax.random.categorical(key_expert, mixture.logits)
        action = jnp.take_along_axis(experts.action, k[:, None, None], axis=1)[:, 0]
        log_prob = jnp.take_along_axis(experts.log_prob, k[:, None], axis=1)[:, 0]
        return action, log_prob

    def actor_loss(self, actor_params, state: SACState, critic_params, obs, key):
        mixture = self.network.apply(actor_params, obs)
        experts = mixture.components.sample_and_log_prob(key)  # one reparameterized action per expert
        batch, num = experts.action.shape[:2]
        flat_actions = experts.action.reshape(batch * num, -1)
        flat_obs = jnp.repeat(obs, num, axis=0)
        q = self.critic.apply(critic_params, flat_obs, flat_actions).min(0).reshape(batch, num)
        loss, aux = losses.pmoe_actor_loss(q, experts.log_prob, mixture.weights(), alpha=jnp.exp(state.log_alpha))
        per_expert = {f"{name}/{k}": aux[name][k] for name in ("selection_frequency", "gate_probability")
                      for k in range(num)}
        return loss, {"actor_loss": aux["actor_loss"], "frequency_loss": aux["frequency_loss"],
                      "entropy": -aux["selected_log_prob"].mean(), "log_prob": aux["selected_log_prob"], **per_expert}
