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

``gate_estimator`` picks how the gate learns: ``"frequency"`` (PMOE, above), or the paper's two
comparison points, ``"gumbel_softmax"`` (the executed action mixes the experts' actions with a
straight-through Gumbel-softmax sample, so the actor loss reaches the gate) and
``"score_function"`` (k ~ w(s); the selected expert gets the SAC loss, the gate the REINFORCE
gradient of its soft value against the gate-weighted mean); see :mod:`jaxpg.losses.mixture_of_experts`.

Evaluation (``policy_fn``, ``evaluate``) uses the mixture's mode: the most probable expert's mean
action (the official code samples the expert even then; jaxpg's choice is deterministic).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxpg import losses
from jaxpg.algos.sac import SAC, SACConfig, SACHParams, SACState
from jaxpg.algos.validation import POSITIVE, POSITIVE_INT, bounded
from jaxpg.nets import PolicyNetwork
from jaxpg.policies import MixtureOfExpertsHead


@dataclasses.dataclass(frozen=True)
class PMOESACConfig(SACConfig):
    num_experts: int = bounded(4, POSITIVE_INT)  # K (the official default)
    detach_gate: bool = True
    gate_estimator: str = "frequency"  # see GATE_ESTIMATORS
    gumbel_temperature: float = bounded(1.0, POSITIVE)  # tau of the "gumbel_softmax" relaxation


GATE_ESTIMATORS = ("frequency", "gumbel_softmax", "score_function")


class PMOESAC(SAC):
    algo = "pmoe_sac"
    Config = PMOESACConfig
    HParams = SACHParams

    def __init__(self, config: PMOESACConfig = PMOESACConfig()):
        if config.gate_estimator not in GATE_ESTIMATORS:
            raise ValueError(f"unknown gate_estimator {config.gate_estimator!r}; valid choices: {', '.join(GATE_ESTIMATORS)}")
        super().__init__(config)
        head = MixtureOfExpertsHead(self.env.action_spec, num_experts=config.num_experts, std_mode=config.std_mode,
                                    init_log_std=config.init_log_std, detach_gate=config.detach_gate)
        self.network = PolicyNetwork(head=head, obs_ndim=len(self.env.observation_spec.shape),
                                     hidden_sizes=tuple(config.hidden_sizes), activation=config.activation,
                                     normalization=config.normalization)

    def next_action(self, mixture, key):
        """k' ~ w(s'), a' ~ pi_k'(.|s'); the entropy term uses the selected expert's log pi_k'(a')."""
        # Keys as in Mixture.sample_latent: with K = 1 this is SAC's draw exactly.
        experts = mixture.components.sample_and_log_prob(key)  # [B, K, d], [B, K]
        k = jax.random.categorical(jax.random.fold_in(key, 1), mixture.logits)
        action = jnp.take_along_axis(experts.action, k[:, None, None], axis=1)[:, 0]
        log_prob = jnp.take_along_axis(experts.log_prob, k[:, None], axis=1)[:, 0]
        return action, log_prob

    def actor_loss(self, actor_params, state: SACState, critic_params, obs, key):
        mixture = self.network.apply(actor_params, obs)
        key_gate = jax.random.fold_in(key, 1)  # ``key`` itself draws the actions, as in SAC
        experts = mixture.components.sample_and_log_prob(key)  # one reparameterized action per expert
        batch, num = experts.action.shape[:2]
        alpha = jnp.exp(state.log_alpha)
        estimator = self.config.gate_estimator
        if estimator == "gumbel_softmax":
            gate = losses.gumbel_softmax_gate(key_gate, mixture.logits, temperature=self.config.gumbel_temperature)
            action = jnp.einsum("bk,bkd->bd", gate, experts.action)
            q_mixed = self.critic.apply(critic_params, obs, action).min(0)
            loss, aux = losses.gumbel_softmax_actor_loss(q_mixed, experts.log_prob, gate, mixture.weights(),
                                                         alpha=alpha)
        else:  # every expert's action is scored by the critics: one [B*K] batch
            flat_actions = experts.action.reshape(batch * num, -1)
            q = self.critic.apply(critic_params, jnp.repeat(obs, num, axis=0), flat_actions).min(0).reshape(batch, num)
            if estimator == "frequency":
                loss, aux = losses.pmoe_actor_loss(q, experts.log_prob, mixture.weights(), alpha=alpha)
            else:
                selected = jax.random.categorical(key_gate, mixture.logits)
                loss, aux = losses.score_function_gate_actor_loss(q, experts.log_prob, mixture.logits, selected,
                                                                  alpha=alpha)
        per_expert = {f"{name}/{k}": values[k] for name, values in
                      [(n, aux.pop(n)) for n in ("selection_frequency", "gate_probability")] for k in range(num)}
        log_prob = aux.pop("selected_log_prob")
        return loss, {**aux, "entropy": -log_prob.mean(), "log_prob": log_prob, **per_expert}
