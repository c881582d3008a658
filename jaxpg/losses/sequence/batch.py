"""The one batch container every sequence loss reads: :class:`SequenceBatch`.

A batch is ``B`` sampled responses of ``T`` tokens each (padded), from ``B / G`` prompts with ``G``
responses per prompt. Token arrays are batch-major ``[B, T]`` (the LLM convention; jaxpg's
environment losses are time-major), sequence arrays are ``[B]``. Optional fields are ``None``
when a recipe does not need them; a recipe names the fields it needs (``Recipe.requires``) and
fails with a one-line error when one is missing.

Only ``logp`` (and ``values``/``logits`` when present) should carry gradient: they are what a
user's model computes inside the differentiated function. Everything else is data.
"""

from __future__ import annotations

from typing import Any

import chex
from flax import struct

Array = chex.Array


@struct.dataclass
class SequenceBatch:
    """Sampled responses and what the losses need to know about them.

    Attributes:
      logp: ``[B, T]`` log-probabilities of the sampled tokens under the policy being trained
        (differentiable).
      old_logp: ``[B, T]`` the same under the policy that sampled them (the ratio's denominator).
      mask: ``[B, T]`` 1 for tokens the loss trains on (response tokens up to and including EOS,
        not environment-written tokens), 0 for padding.
      rewards: ``[B]`` scalar rewards, or ``[B, K]`` reward components (see ``Recipe.reward``).
      group_ids: ``[B]`` integer prompt index in ``[0, B)``; responses to one prompt share it.
      ref_logp: ``[B, T]`` reference-policy log-probs (KL regularizers, pairwise losses).
      entropy: ``[B, T]`` entropy of the sampling policy at each position (HAPO, EMPG, D^3S, Clip/KL-Cov).
      segment_ids: ``[B, T]`` turn/step index per token, ``0 <= id < T`` (ST-PPO, EMPG).
      strata: ``[B]`` integer structural key of each response (Stratified GRPO).
      answer_ids: ``[B]`` integer id of each response's final answer (COPO's answer entropy).
      is_demo: ``[B]`` 1 for demonstrations, 0 for on-policy samples (HPT).
      token_rewards: ``[B, T]`` per-token rewards (Text2Grad's span rewards).
      values: ``[B, T]`` value predictions of the model being trained (differentiable; GAE recipes).
      old_values: ``[B, T]`` value predictions at sampling time (GAE targets and value clipping).
      logits: ``[B, T, V]`` the trained policy's logits at each position (OTR).
      targets: ``[B, T]`` demonstration tokens (OTR).
      extras: anything else a custom slot needs (a dict of arrays).
    """

    logp: Array
    old_logp: Array
    mask: Array
    rewards: Array
    group_ids: Array
    ref_logp: Array | None = None
    entropy: Array | None = None
    segment_ids: Array | None = None
    strata: Array | None = None
    answer_ids: Array | None = None
    is_demo: Array | None = None
    token_rewards: Array | None = None
    values: Array | None = None
    old_values: Array | None = None
    logits: Array | None = None
    targets: Array | None = None
    extras: dict[str, Any] = struct.field(default_factory=dict)

    @property
    def num_sequences(self) -> int:
        return self.logp.shape[0]


def require(batch: SequenceBatch, fields: tuple[str, ...], who: str) -> None:
    """Raise a one-line error when ``batch`` lacks a field ``who`` needs."""
    # A name that is not a field is an ``extras`` key (e.g. "preferred", "p_win").
    missing = [f for f in fields if (getattr(batch, f) if hasattr(batch, f) else batch.extras.get(f)) is None]
    if missing:
        raise ValueError(f"{who} needs SequenceBatch field(s) {', '.join(missing)}; "
                         f"set them (valid optional fields: ref_logp, entropy, segment_ids, strata, answer_ids, "
                         f"is_demo, token_rewards, values, old_values, logits, targets, or an extras key)")
