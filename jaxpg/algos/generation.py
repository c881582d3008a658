"""Sampling answers from a causal language model inside ``jit``, scoring them, and supervised
fine-tuning (SFT) on demonstrations: the pieces a GRPO-style trainer on token tasks
(:mod:`jaxpg.envs.tokens`) needs around its loss.

- :func:`generate` samples answers to a batch of prompts with the model's key/value cache, one
  ``lax.scan`` over the ``prompt_len + answer_len - 1`` positions it feeds: the prompt is pre-filled
  by the same one-token step, so sampling costs O(length) single-token passes.
- :func:`token_log_probs` scores given sequences with one full forward pass (the differentiable
  side: a policy-gradient loss takes its log-probabilities from here, not from the sampler).
- :func:`sft` / :func:`sft_loss`: Adam on the token-mean negative log-likelihood of demonstrations,
  to start RL from a partially correct model.

Models are ``jaxpg.nets.transformer.CausalTransformer`` or anything with the same ``apply``
interface (``__call__(tokens) -> logits``, ``decode(token, position, cache)``, ``init_cache``).
``model`` and ``task`` are hashable, hence static arguments of the jitted functions here.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxpg.envs.tokens import EOS, PAD, TokenTask


@struct.dataclass
class Generation:
    """Sampled sequences and what the sampler saw. ``logp[i, t]`` is ``log softmax(z)[y_t]`` of the
    decode logits z at temperature 1 (whatever temperature sampled), ``entropy`` is
    ``-sum_v p_v log p_v`` of the same softmax, at every answer position (forced and padded ones
    included); ``mask`` is ``task.trainable_mask``: the tokens the model emitted, up to its EOS."""

    tokens: jax.Array  # int32 [n, prompt_len + answer_len]: prompt, then answer
    answers: jax.Array  # int32 [n, answer_len]
    logp: jax.Array  # float32 [n, answer_len]
    entropy: jax.Array  # float32 [n, answer_len]
    mask: jax.Array  # float32 [n, answer_len]


def _check_length(model, task: TokenTask) -> None:
    needed = task.prompt_len + task.answer_len
    if model.max_len < needed:
        raise ValueError(f"model max_len {model.max_len} < prompt_len + answer_len = {needed} of task {task.name!r}")


def _log_softmax_stats(logits, tokens):
    """``log p(tokens)`` and the entropy of ``softmax(logits)`` (last axis: the vocabulary)."""
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    logp = jnp.take_along_axis(log_probs, tokens[..., None], axis=-1)[..., 0]
    entropy = -jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1)
    return logp, entropy


def generate(model, params, task: TokenTask, prompts: jax.Array, key: jax.Array, temperature=1.0,
             greedy: bool = False) -> Generation:
    """Answers to ``prompts`` int32 ``[n, prompt_len]`` sampled from ``softmax(z / temperature)``
    (``greedy``: ``argmax z``), position by position with the KV cache.

    Step p feeds the token at position p and reads the logits z_p, which predict position p + 1:
    for p + 1 < prompt_len that is the next prompt token (pre-fill; z_p is unused), otherwise
    answer position t = p + 1 - prompt_len, which gets the sampled token, or the environment's token
    where ``task.forced(prompts, t, answers)`` says so, or PAD once an EOS was emitted earlier.

    Jitted with ``model``, ``task`` and ``greedy`` static; ``temperature`` is always traced, so
    any temperature reuses one compiled program (per model, task, batch shape and greedy flag).
    """
    _check_length(model, task)
    return _generate(model, params, task, prompts, key, temperature, greedy)


# The public functions pass every argument to their jitted implementation explicitly: jit bakes an
# omitted default in as a constant, and a later call that sets it would compile a second program.
@functools.partial(jax.jit, static_argnames=("model", "task", "greedy"))
def _generate(model, params, task, prompts, key, temperature, greedy):
    n, prompt_len = prompts.shape
    answer_len = task.answer_len
    steps = prompt_len + answer_len - 1  # the last answer token is never fed back

    def step(carry, xs):
        cache, token, answers, done = carry
        position, step_key = xs
        logits, cache = model.apply(params, token, position, cache, method="decode")
        t = position + 1 - prompt_len  # answer index of the token produced here (< 0: prompt)
        t_clipped = jnp.clip(t, 0, answer_len - 1)
        if greedy:
            sampled = jnp.argmax(logits, axis=-1)
        else:
            sampled = jax.random.categorical(step_key, logits / temperature, axis=-1)
        is_forced, forced_token = task.forced(prompts, t_clipped, answers)
        new = jnp.where(is_forced, forced_token, sampled)
        new = jnp.where(done, PAD, new).astype(jnp.int32)
        in_prompt = t < 0
        answers = jnp.where(in_prompt, answers, jax.lax.dynamic_update_index_in_dim(answers, new, t_clipped, axis=1))
        done = done | (~in_prompt & (new == EOS))
        next_prompt_token = jax.lax.dynamic_index_in_dim(prompts, jnp.minimum(position + 1, prompt_len - 1), 1, False)
        token = jnp.where(in_prompt, next_prompt_token, new)
        logp, entropy = _log_softmax_stats(logits, new)
        return (cache, token, answers, done), (logp, entropy)

    carry = (model.init_cache(n), prompts[:, 0], jnp.zeros((n, answer_len), jnp.int32), jnp.zeros((n,), bool))
    xs = (jnp.arange(steps), jax.random.split(key, steps))
    (_, _, answers, _), (logp, entropy) = jax.lax.scan(step, carry, xs)
    answer_steps = slice(prompt_len - 1, None)  # the steps that produced answer tokens
    return Generation(
        tokens=jnp.concatenate([prompts, answers], axis=1),
        answers=answers,
        logp=logp[answer_steps].T,
        entropy=entropy[answer_steps].T,
        mask=task.trainable_mask(prompts, answers),
    )


def token_log_probs(model, params, tokens: jax.Array, prompt_len: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(logp [n, A], entropy [n, A], logits [n, A, V])`` of the answer part of ``tokens``
    ``[n, prompt_len + A]`` from one full forward pass: the logits at position p predict token
    p + 1, so answer token t is scored by the logits at position ``prompt_len - 1 + t``.
    ``logp[i, t] = log softmax(z)[y_t]`` at temperature 1, as in :class:`Generation`."""
    logits = model.apply(params, tokens)[:, prompt_len - 1:-1]
    logp, entropy = _log_softmax_stats(logits, tokens[:, prompt_len:])
    return logp, entropy, logits


def sft_loss(model, params, tokens: jax.Array, mask: jax.Array, prompt_len: int) -> jax.Array:
    """Token-mean negative log-likelihood of the answer tokens under ``mask`` ``[n, A]``:
    ``-sum(mask * logp) / max(sum(mask), 1)``."""
    logp, _, _ = token_log_probs(model, params, tokens, prompt_len)
    return -jnp.sum(mask * logp) / jnp.maximum(jnp.sum(mask), 1.0)


def sft(model, params, task: TokenTask, key: jax.Array, num_steps: int, batch_size: int = 64,
        learning_rate=3e-3, correct_fraction=0.5):
    """Supervised fine-tuning: ``num_steps`` Adam steps (one ``lax.scan``) on :func:`sft_loss`
    over ``task.demonstrations`` for ``batch_size`` fresh prompts each step, the forced
    (environment) tokens masked out. Returns ``(params, losses [num_steps])``.

    Jitted with ``model``, ``task``, ``num_steps`` and ``batch_size`` static; ``learning_rate`` and
    ``correct_fraction`` are always traced, so a run with other values (a zero learning rate as a
    control) reuses the compiled program."""
    _check_length(model, task)
    return _sft(model, params, task, key, num_steps, batch_size, learning_rate, correct_fraction)


@functools.partial(jax.jit, static_argnames=("model", "task", "num_steps", "batch_size"))
def _sft(model, params, task, key, num_steps, batch_size, learning_rate, correct_fraction):
    optimizer = optax.adam(learning_rate)

    def step(carry, step_key):
        params, opt_state = carry
        k_prompts, k_demos = jax.random.split(step_key)
        prompts = task.sample_prompts(k_prompts, batch_size)
        answers = task.demonstrations(k_demos, prompts, correct_fraction)
        tokens = jnp.concatenate([prompts, answers], axis=1)
        mask = task.trainable_mask(prompts, answers)
        loss, grads = jax.value_and_grad(lambda p: sft_loss(model, p, tokens, mask, task.prompt_len))(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    (params, _), losses = jax.lax.scan(step, (params, optimizer.init(params)), jax.random.split(key, num_steps))
    return params, losses


def greedy_reward(model, params, task: TokenTask, prompts: jax.Array) -> jax.Array:
    """float32 ``[n]``: ``task.reward`` of the greedy answers (exact match; weighted components
    for multi-component tasks). Jittable."""
    generation = generate(model, params, task, prompts, jax.random.key(0), greedy=True)
    return task.reward(prompts, generation.answers)


@functools.partial(jax.jit, static_argnames="task")
def _mean_reward(task: TokenTask, prompts, answers):
    return jnp.mean(task.reward(prompts, answers))


def accuracy(model, params, task: TokenTask, prompts: jax.Array) -> float:
    """Mean :func:`greedy_reward` over ``prompts``, as a host float. (Host side; the greedy
    ``generate`` it runs is the same compiled program as a direct ``generate(..., greedy=True)``.)"""
    generation = generate(model, params, task, prompts, jax.random.key(0), greedy=True)
    return float(_mean_reward(task, prompts, generation.answers))
