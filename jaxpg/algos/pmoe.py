"""PMOE: SAC and PPO with a probabilistic mixture-of-experts policy and PMOE's gradient estimator
(Ren et al. 2021, "Probabilistic Mixture-of-Experts for Efficient Deep Reinforcement Learning";
reference notes: shared/reference/algorithms.md, section 3).

PMOE-SAC (:class:`PMOESAC`, the official code's algorithm).

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

from flax import struct

import jax
import jax.numpy as jnp

from jaxpg import losses
from jaxpg.algos.ppo import PPO, PPOConfig, PPOHParams
from jaxpg.algos.sac import SAC, SACConfig, SACHParams, SACState
from jaxpg.algos.validation import NONNEGATIVE, POSITIVE, POSITIVE_INT, bounded
from jaxpg.envs import Box
from jaxpg.nets import ActorCriticWithQ, PolicyNetwork
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

    def actor_loss(self, actor_params, state: SACState, critic_params, obs, key, hparams):
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


# -- PMOE-PPO ----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PMOEPPOConfig(PPOConfig):
    num_experts: int = bounded(5, POSITIVE_INT)  # the co-author PPO code's mix_num
    detach_gate: bool = True


@struct.dataclass
class PMOEPPOHParams(PPOHParams):
    frequency_coef: float = bounded(1.0, NONNEGATIVE)
    q_coef: float = bounded(1.0, NONNEGATIVE)


class PMOEPPO(PPO):
    """PPO with PMOE's mixture policy (the co-author PPO code's algorithm; reference notes 3.2):

    * the ratio uses the whole mixture's likelihood, log pi(a|s) = logsumexp_k(log w_k + log pi_k),
      so the gate also learns from the clipped surrogate;
    * an auxiliary ``Q(s, a)`` (own MLP, same optimizer) regresses the GAE lambda-returns of the
      stored actions, ``L_Q = mean (Q(s, a) - (A + V))^2``;
    * every expert proposes an action at each stored state (drawn with noise kept from the rollout,
      through the current experts), ``k* = argmax_k Q(s, a_k)``, and the gate is regressed onto
      the one-hot of k* (the frequency loss, :func:`jaxpg.losses.frequency_loss`).

    Loss: ``L_PPO + frequency_coef L_freq + q_coef L_Q``; metrics add ``frequency_loss``,
    ``q_loss`` and per-expert ``gate_probability/<k>`` and ``selection_frequency/<k>``.
    """

    algo = "pmoe_ppo"
    Config = PMOEPPOConfig
    HParams = PMOEPPOHParams

    def __init__(self, config: PMOEPPOConfig = PMOEPPOConfig(), objective=None):
        super().__init__(config, objective)
        if not isinstance(self.env.action_spec, Box):
            raise ValueError(f"pmoe_ppo needs continuous (Box) actions; {config.env} has "
                             f"{type(self.env.action_spec).__name__} actions (for discrete actions use ppo)")
        head = MixtureOfExpertsHead(self.env.action_spec, num_experts=config.num_experts, std_mode=config.std_mode,
                                    init_log_std=config.init_log_std, detach_gate=config.detach_gate)
        self.network = ActorCriticWithQ(head=head, obs_ndim=len(self.env.observation_spec.shape),
                                        hidden_sizes=tuple(config.hidden_sizes), activation=config.activation,
                                        normalization=config.normalization)
        self.default_hparams = PMOEPPOHParams()

    def act(self, state, obs, key):
        """The mixture's sample, plus standard-normal noise for one candidate action per expert
        (the frequency loss pushes it through the experts current at update time)."""
        sample, extras = super().act(state, obs, key)
        experts = self.policy(state, obs).components
        noise = jax.random.normal(jax.random.fold_in(key, 2), experts.mean.shape, experts.mean.dtype)
        return sample, {**extras, "expert_noise": noise}

    def loss(self, params, hparams: PMOEPPOHParams, batch, advantages, targets):
        policy, values = self.network.apply(params, batch.obs)
        total, info = self.objective(policy, values, batch, advantages, targets, hparams)
        q_taken = self.network.apply(params, batch.obs, batch.action.reshape(batch.obs.shape[0], -1), method="q")
        q_loss = jnp.mean(jnp.square(q_taken - targets))
        experts = policy.components
        candidates = jax.lax.stop_gradient(experts.decode(experts.mean + experts.std * batch.extras["expert_noise"]))
        num = candidates.shape[-2]
        obs = jnp.broadcast_to(batch.obs[:, None], (batch.obs.shape[0], num) + batch.obs.shape[1:])
        q_candidates = self.network.apply(params, obs, candidates, method="q")  # [B, K]; only its argmax is used
        frequency, one_hot = losses.frequency_loss(q_candidates, policy.weights())
        total = total + hparams.frequency_coef * frequency + hparams.q_coef * q_loss
        gate = jax.lax.stop_gradient(policy.weights()).mean(0)
        per_expert = {**{f"selection_frequency/{k}": one_hot[:, k].mean() for k in range(num)},
                      **{f"gate_probability/{k}": gate[k] for k in range(num)}}
        return total, {**info, "loss": total, "frequency_loss": frequency, "q_loss": q_loss, **per_expert}
