r"""Policy gradients toward a target distribution or a game equilibrium: f-DPG and Nash-MD.

**f-DPG** (Go et al. 2023, "Aligning Language Models with Preferences through f-divergence
Minimization", arXiv:2302.08215; code naver/disco ``disco/tuners/losses/f_divergence.py``)
minimizes :math:`D_f(\pi_\theta \| p)` to a target :math:`p(y) = P(y)/Z`. For reward alignment
:math:`P(y) = \pi_{ref}(y)\, e^{r(y)/\beta}`, whose normalized form is the optimum of
KL-regularized RL. With proposal q (the sampling policy) the gradient is

.. math:: \nabla D_f = \mathbb{E}_q\Big[\tfrac{\pi}{q} f'\big(\tfrac{\pi}{p}\big) \nabla\log\pi\Big],
          \qquad \mathcal{L} = \operatorname{mean}_i\big[\operatorname{sg}(\pi_i/q_i)\,(-A_i)\,\log\pi(y_i)\big],
          \quad A_i = -f'(\pi_i / p_i) - b .

With reverse KL and :math:`p \propto \pi_{ref} e^{r/\beta}`,
:math:`A_i = \tfrac1\beta\big(r_i - \beta\log\tfrac{\pi(y_i)}{\pi_{ref}(y_i)}\big) - \log Z - 1 - b`:
f-DPG's gradient is exactly 1/beta times KL-regularized REINFORCE's with the baseline
:math:`\beta(\log Z + 1 + b)`. With f-DPG's batch-mean baseline the constants cancel: it is
REINFORCE with the batch mean of :math:`r - \beta\log(\pi/\pi_{ref})` as baseline, plus
:math:`\beta(\log Z_g - \operatorname{mean}\log Z)` when prompts differ (a unit test checks both).

**Nash-MD** (Munos et al. 2023, "Nash Learning from Human Feedback", arXiv:2312.00886) finds the
regularized Nash equilibrium of a preference game by mirror descent against a geometric mixture
of the current policy and the reference; :func:`nash_md_tabular_step` is the tabular algorithm and
:func:`nash_md_loss` the deep REINFORCE form of TRL's ``NashMDTrainer``.

Sequence log-probabilities are sums of token log-probabilities under the mask.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable

import chex
import jax
import jax.numpy as jnp

from jaxpg.losses.sequence.batch import SequenceBatch, require
from jaxpg.losses.sequence.groups import group_count
from jaxpg.losses.sequence.recipe import LossRecipe
from jaxpg.losses.sequence.rewards import scalar_reward

Array = chex.Array
sg = jax.lax.stop_gradient

_LOG2 = math.log(2.0)


def sequence_sum(token_values: Array, mask: Array) -> Array:
    """``[B, T] -> [B]``: the sum over each response's valid tokens (a sequence log-probability)."""
    return jnp.sum(jnp.where(mask != 0, token_values, 0.0), axis=1)


def _capped_exp(x: Array, cap: float = 30.0) -> Array:
    """``exp(min(x, cap))``: the pseudo-rewards and importance weights below are constants
    (no gradient), so capping them only bounds a value that would otherwise overflow."""
    return jnp.exp(jnp.minimum(x, cap))


# f'(t) as a function of log t, t = pi / p. Derivatives of the f of D_f(pi || p) = E_p[f(pi/p)].
F_PRIMES: dict[str, Callable[[Array], Array]] = {
    # forward KL, KL(p || pi): f(t) = -log t -> f'(t) = -1/t = -p/pi (DPG).
    "forward_kl": lambda log_t: -_capped_exp(-log_t),
    # reverse KL, KL(pi || p): f(t) = t log t -> f'(t) = log t + 1.
    "reverse_kl": lambda log_t: log_t + 1.0,
    # Jensen-Shannon: f'(t) = log 2 - log(1 + 1/t) = log 2 - softplus(-log t).
    "js": lambda log_t: _LOG2 - jax.nn.softplus(-log_t),
    # total variation: f(t) = |t - 1| / 2 -> f'(t) = sign(t - 1) / 2.
    "tv": lambda log_t: 0.5 * jnp.sign(log_t),
}


def log_partition_snis(log_target: Array, log_proposal: Array, group_ids: Array) -> Array:
    r"""Self-normalized importance-sampling estimate of :math:`\log Z` of each response's prompt:

    .. math:: \log \hat Z_g = \log \frac{1}{n_g}\sum_{j\in g} \frac{P(y_j)}{q(y_j)}

    computed as a per-group log-sum-exp (stable for any magnitudes). ``[B]``, a constant."""
    log_w = sg(log_target - log_proposal)
    n = log_w.shape[0]
    group_max = jax.ops.segment_max(log_w, group_ids, num_segments=n)[group_ids]
    total = jax.ops.segment_sum(jnp.exp(log_w - group_max), group_ids, num_segments=n)[group_ids]
    return group_max + jnp.log(total) - jnp.log(group_count(group_ids))


def fdpg_log_target(batch: SequenceBatch, *, beta: float) -> Array:
    r"""Unnormalized log target :math:`\log P(y) = \log\pi_{ref}(y) + r(y)/\beta` (``[B]``)."""
    require(batch, ("ref_logp",), "fdpg_log_target")
    return sequence_sum(batch.ref_logp, batch.mask) + scalar_reward(batch) / beta


def fdpg_advantage(rewards: Array, batch: SequenceBatch, *, beta: float = 1.0,
                   divergence: str = "forward_kl") -> Array:
    r"""f-DPG's pseudo-reward minus a baseline, ``[B]`` (a constant):

    .. math:: A_i = -f'(t_i) - b, \qquad \log t_i = \log\pi(y_i) - \log P(y_i) + \log\hat Z

    with :math:`\log \hat Z` from :func:`log_partition_snis` over the prompt's group (proposal q =
    the sampling policy, ``old_logp``), or ``batch.extras["log_z"] [B]`` if given. ``divergence``
    names f' (:data:`F_PRIMES`). Baseline b: ``batch.extras["baseline"]`` (scalar or ``[B]``) if
    given, else the mean pseudo-reward of the batch. Deviation: disco's baseline is a moving
    average over the previous 1024 samples (so it excludes the current one); the batch mean
    includes it, a bias of order 1/B; a trainer that keeps a moving average passes it as
    ``extras["baseline"]``. ``rewards`` is the scalar reward ``r``; ``beta`` its temperature.
    """
    if divergence not in F_PRIMES:
        raise ValueError(f"unknown divergence {divergence!r}; valid choices: {', '.join(F_PRIMES)}")
    require(batch, ("ref_logp",), "fdpg_advantage")
    log_pi = sg(sequence_sum(batch.logp, batch.mask))
    log_target = sequence_sum(batch.ref_logp, batch.mask) + rewards / beta
    if "log_z" in batch.extras:
        log_z = batch.extras["log_z"]
    else:
        log_z = log_partition_snis(log_target, sequence_sum(batch.old_logp, batch.mask), batch.group_ids)
    pseudo_reward = -F_PRIMES[divergence](log_pi - (log_target - log_z))
    baseline = batch.extras.get("baseline")
    baseline = jnp.mean(pseudo_reward) if baseline is None else baseline
    return sg(pseudo_reward - baseline)


def fdpg_loss(batch: SequenceBatch, *, beta: float = 1.0, divergence: str = "forward_kl",
              max_log_weight: float = 30.0) -> tuple[Array, dict]:
    r"""f-DPG's importance-weighted REINFORCE loss (disco ``FDivergenceLoss``):

    .. math:: \mathcal{L} = \frac1B\sum_i w_i\,(-A_i)\,\log\pi(y_i), \qquad w_i = \operatorname{sg}(\pi(y_i)/q(y_i))

    with :math:`A` from :func:`fdpg_advantage` and q the sampling policy (``old_logp``). The
    sequence weight is capped at :math:`e^{30}` (``max_log_weight``) so a far off-policy sample
    cannot overflow; on-policy it is 1.
    """
    adv = fdpg_advantage(scalar_reward(batch), batch, beta=beta, divergence=divergence)
    log_pi = sequence_sum(batch.logp, batch.mask)
    log_weight = sg(log_pi - sequence_sum(batch.old_logp, batch.mask))
    weight = _capped_exp(log_weight, max_log_weight)
    loss = jnp.mean(weight * (-adv) * log_pi)
    aux = {"loss": loss, "advantage_abs_mean": jnp.mean(jnp.abs(adv)), "importance_weight_mean": jnp.mean(weight)}
    return loss, aux


def nash_md_tabular_step(log_pi: Array, log_mu: Array, preference: Array, eta: float, tau: float) -> Array:
    r"""One Nash-MD step on a finite action set (Munos et al. 2023, Sec. 6):

    .. math:: \pi^\mu_t \propto \pi_t^{1-\eta\tau}\mu^{\eta\tau}, \qquad
              \pi_{t+1} \propto \pi^\mu_t \exp\big(\eta\, \mathcal{P}(y \succ \pi^\mu_t)\big)

    ``preference[y, y'] = P(y ≻ y')`` (with ``P + P^T = 1``), ``log_mu`` the reference. Returns the
    new normalized log-policy. The last iterate approaches the tau-regularized Nash equilibrium
    :math:`\pi^* \propto \mu \exp(\mathcal{P}(y \succ \pi^*)/\tau)` up to O(eta)."""
    log_mix = jax.nn.log_softmax((1.0 - eta * tau) * log_pi + eta * tau * log_mu)
    win_rate = preference @ jnp.exp(log_mix)
    return jax.nn.log_softmax(log_mix + eta * win_rate)


def nash_md_loss(batch: SequenceBatch, *, beta: float = 0.1) -> tuple[Array, dict]:
    r"""Nash-MD's deep loss, TRL ``NashMDTrainer._compute_losses``, batch mean over responses y ~ pi:

    .. math:: \mathcal{L} = \beta \sum_t \operatorname{sg}(\log\pi_t - \log\pi^{ref}_t)\log\pi_t
                            - (P(y \succ y') - \tfrac12)\sum_t \log\pi_t

    the KL to the reference by REINFORCE plus the win probability against a sample y' of the
    mixture policy (the rollout side draws y' from the token-level geometric mixture of pi and
    pi_ref, TRL's ``mixture_coef`` 0.5, and a judge gives ``batch.extras["p_win"] [B]``);
    1/2 is the control variate. Gradient flows through ``batch.logp``.
    """
    require(batch, ("ref_logp", "p_win"), "nash_md_loss")
    valid = batch.mask != 0
    logp = jnp.where(valid, batch.logp, 0.0)
    kl_term = jnp.sum(sg(jnp.where(valid, batch.logp - batch.ref_logp, 0.0)) * logp, axis=1)
    score = (sg(batch.extras["p_win"]) - 0.5) * jnp.sum(logp, axis=1)
    loss = jnp.mean(beta * kl_term - score)
    aux = {"loss": loss, "sequence_kl": jnp.mean(sequence_sum(sg(batch.logp - batch.ref_logp), batch.mask)),
           "p_win_mean": jnp.mean(batch.extras["p_win"])}
    return loss, aux


FDPG = LossRecipe(
    name="fdpg",
    fn=functools.partial(fdpg_loss, beta=0.1, divergence="forward_kl"),
    requires=("ref_logp",),
    paper="Go et al. 2023, f-DPG (arXiv:2302.08215), forward KL (= DPG, Khalifa et al. 2021): target "
          "pi_ref exp(r / beta), beta = 0.1, log Z by self-normalized IS per prompt, batch-mean baseline",
)

FDPG_REVERSE_KL = dataclasses.replace(
    FDPG,
    name="fdpg_reverse_kl",
    fn=functools.partial(fdpg_loss, beta=0.1, divergence="reverse_kl"),
    paper="Go et al. 2023, f-DPG (arXiv:2302.08215), reverse KL: the gradient of KL-regularized REINFORCE "
          "(r - beta log pi/pi_ref) scaled by 1/beta, beta = 0.1",
)

NASH_MD = LossRecipe(
    name="nash_md",
    fn=functools.partial(nash_md_loss, beta=0.1),
    requires=("ref_logp", "p_win"),
    paper="Munos et al. 2023, Nash-MD (arXiv:2312.00886), TRL's deep form: REINFORCE on P(y > y') - 1/2 against "
          "a sample of the pi/pi_ref mixture (extras['p_win']) plus beta = 0.1 REINFORCE-KL to the reference",
)

RECIPES: dict = {r.name: r for r in (FDPG, FDPG_REVERSE_KL, NASH_MD)}
