"""``grpo``: group-sampling RL fine-tuning of a tiny causal transformer on a token task, with any
loss of the sequence catalog (:mod:`jaxpg.losses.sequence`) under the ``make_train`` contract.

``make_train("grpo", env="seq/addition", recipe="dr_grpo")``; ``jax.jit(train)(key)`` runs

1. ``init``: a supervised warm start (SFT) on partially correct demonstrations
   (``sft_correct_fraction`` of them right), whose result is also the frozen reference policy;
2. ``num_iterations`` iterations, each: ``num_prompts`` fresh prompts, ``group_size`` responses per
   prompt sampled with the KV cache, verifiable rewards from the task, one batch of the kind the
   recipe asks for (below), and ``update_epochs`` Adam steps on the recipe's loss (the first on
   policy, ratio 1; later ones off policy, where the clip matters).

What each recipe kind gets:

* ``group``: the sampled responses with rewards, group ids, sampling log-probs and entropies,
  reference log-probs, turn ids, strata (the number of response tokens; for ``seq/multiturn`` the
  query token), answer ids (a hash of the answer tokens), per-token span rewards (+1 where the
  token equals the solution's, -1 elsewhere: a synthetic span critic), the solution as targets.
  Recipes that require ``is_demo`` (HPT) get one demonstration per prompt appended; those that
  require ``values`` get a separate value transformer trained by their loss; those that require
  ``reward_weights`` (dynamic reward weighting) get the weights the trainer keeps and updates by
  the objectives' gradient alignment; ``p_win`` (Nash-MD) is the Bradley-Terry probability that
  the response beats one sampled from the reference policy.
* ``pairwise``: responses in pairs (groups of two, same prompt), a preference drawn from the
  Bradley-Terry model of the task's reward, ``P(y1 > y2) = sigmoid((r1 - r2) / preference_temperature)``,
  and the SFT model as reference.
* ``demonstration`` (OTR): the batch is the prompts' solutions, with the policy's logits.

Metrics: ``episode_return`` (mean reward of the sampled responses), ``accuracy`` (fraction
exactly right), ``eval_accuracy`` (greedy decoding on a fixed set of ``eval_prompts`` prompts,
refreshed every ``eval_every`` iterations), ``response_length``, ``entropy``, the loss's
diagnostics, ``env_steps`` (responses sampled so far) and ``tokens`` (tokens sampled so far).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxpg.algos import common, generation
from jaxpg.algos.trainer import Trainer, all_finite
from jaxpg.algos.validation import NONNEGATIVE, NONNEGATIVE_INT, POSITIVE, POSITIVE_INT, UNIT, bounded
from jaxpg.envs.tokens import make_task
from jaxpg.losses import sequence as seq
from jaxpg.nets.transformer import CausalTransformer

KINDS = ("group", "pairwise", "demonstration")
EVAL_SEED = 20_261_130  # the fixed held-out prompt set


@dataclasses.dataclass(frozen=True)
class SequenceConfig:
    env: str = "seq/addition"
    recipe: str = "grpo"  # a name of jaxpg.losses.sequence.RECIPES
    total_steps: int = bounded(25_600, POSITIVE_INT)  # sampled responses
    num_prompts: int = bounded(16, POSITIVE_INT)
    group_size: int = bounded(8, POSITIVE_INT)
    update_epochs: int = bounded(2, POSITIVE_INT)
    width: int = bounded(64, POSITIVE_INT)
    num_layers: int = bounded(2, POSITIVE_INT)
    num_heads: int = bounded(4, POSITIVE_INT)
    sft_steps: int = bounded(300, NONNEGATIVE_INT)
    sft_batch_size: int = bounded(64, POSITIVE_INT)
    sft_correct_fraction: float = bounded(0.5, UNIT)
    eval_prompts: int = bounded(128, POSITIVE_INT)
    eval_every: int = bounded(10, POSITIVE_INT)
    optimizer: str = "adam"  # "adam" | "sinkgd" (the policy's and the critic's, after clipping)


@struct.dataclass
class SequenceHParams:
    learning_rate: float = bounded(3e-4, NONNEGATIVE)
    sft_learning_rate: float = bounded(3e-3, NONNEGATIVE)
    value_learning_rate: float = bounded(1e-3, NONNEGATIVE)
    max_grad_norm: float = bounded(1.0, POSITIVE)
    temperature: float = bounded(1.0, POSITIVE)  # sampling temperature of the rollouts
    preference_temperature: float = bounded(0.25, POSITIVE)  # Bradley-Terry scale of the pairs' preferences
    reward_weight_lr: float = bounded(1e-6, NONNEGATIVE)  # dynamic reward weighting's step (lambda = 1e-5)


@struct.dataclass
class SequenceState:
    params: Any
    opt_state: Any
    ref_params: Any
    value_params: Any
    value_opt_state: Any
    reward_log_weights: jax.Array  # dynamic reward weighting's log w (unused by other recipes)
    eval_accuracy: jax.Array
    key: jax.Array
    iteration: jax.Array
    env_steps: jax.Array
    tokens: jax.Array
    env_params: Any = None  # the contract's field; token tasks have no levels


def bradley_terry_preferences(key: jax.Array, rewards: jax.Array, temperature) -> jax.Array:
    """``[2P]`` preference flags for ``P`` consecutive pairs: in each pair exactly one is 1, the
    first with probability ``sigmoid((r_1 - r_2) / temperature)`` (Bradley & Terry 1952)."""
    pairs = jnp.reshape(rewards, (-1, 2))
    first_wins = jax.random.bernoulli(key, jax.nn.sigmoid((pairs[:, 0] - pairs[:, 1]) / temperature))
    return jnp.stack([first_wins, ~first_wins], axis=1).reshape(-1).astype(jnp.float32)


def _answer_hash(answers: jax.Array, mask: jax.Array) -> jax.Array:
    """An integer id per distinct masked answer (COPO's answer entropy counts them)."""
    tokens = jnp.where(mask != 0, answers + 1, 0).astype(jnp.uint32)
    weights = jnp.uint32(1_000_003) ** jnp.arange(answers.shape[1], dtype=jnp.uint32)
    return (jnp.sum(tokens * weights, axis=1) % jnp.uint32(2**31 - 1)).astype(jnp.int32)


class SequenceTrainer(Trainer):
    """``train = make_train("grpo", env="seq/addition", recipe="grpo")``; ``jax.jit(train)(key)``."""

    algo = "grpo"
    Config = SequenceConfig
    HParams = SequenceHParams

    def __init__(self, config: SequenceConfig = SequenceConfig()):
        from jaxpg.algos.validation import validate

        validate(config)
        common.check_optimizer(config.optimizer)
        self.config = config
        self.task = make_task(config.env)
        self.recipe = seq.get_recipe(config.recipe)
        self.kind = getattr(self.recipe, "kind", "group")
        if self.kind not in KINDS:
            raise ValueError(f"recipe {config.recipe!r} has kind {self.kind!r}; valid kinds: {', '.join(KINDS)}")
        if self.kind == "pairwise" and config.group_size % 2:
            raise ValueError(f"pairwise recipes pair the responses to a prompt: group_size must be even, got {config.group_size}")
        if config.width % config.num_heads:
            raise ValueError(f"width {config.width} must be a multiple of num_heads {config.num_heads}")
        requires = tuple(getattr(self.recipe, "requires", ()))
        self.uses_demos = "is_demo" in requires
        self.uses_values = "values" in requires
        self.uses_reward_weights = "reward_weights" in requires
        self.uses_p_win = "p_win" in requires
        self.uses_hidden = "hidden" in requires
        self.max_len = self.task.prompt_len + self.task.answer_len
        self.network = CausalTransformer(vocab_size=self.task.vocab_size, max_len=self.max_len, width=config.width,
                                         num_layers=config.num_layers, num_heads=config.num_heads)
        # The critic is a transformer of its own whose first output is the value (RLHF's separate
        # critic model): the policy's representation is not pulled by the value loss.
        self.value_network = CausalTransformer(vocab_size=self.task.vocab_size, max_len=self.max_len,
                                               width=config.width, num_layers=config.num_layers,
                                               num_heads=config.num_heads)
        self.num_responses = config.num_prompts * config.group_size
        self.steps_per_iteration = self.num_responses
        if config.total_steps < self.steps_per_iteration:
            raise ValueError(f"total_steps = {config.total_steps} is less than one iteration "
                             f"(num_prompts x group_size = {self.steps_per_iteration} responses)")
        self.num_iterations = config.total_steps // self.steps_per_iteration
        self.default_hparams = SequenceHParams()

    # -- set-up ------------------------------------------------------------------------------
    def optimizer(self, hparams) -> optax.GradientTransformation:
        return common.clipped_optimizer(self.config.optimizer, hparams.learning_rate, hparams.max_grad_norm, adam_eps=1e-8)

    def value_optimizer(self, hparams) -> optax.GradientTransformation:
        return common.clipped_optimizer(self.config.optimizer, hparams.value_learning_rate, hparams.max_grad_norm,
                                        adam_eps=1e-8)

    def init_params(self, key: jax.Array):
        return self.network.init(key, jnp.zeros((1, self.max_len), jnp.int32))

    def warm_start(self, key: jax.Array, hparams=None):
        """The SFT start: ``sft_steps`` Adam steps on partially correct demonstrations from a fresh
        initialization (jittable). Returns ``(params, sft_losses)``."""
        hparams = self.default_hparams if hparams is None else hparams
        c = self.config
        key_init, key_sft = jax.random.split(key)
        params = self.init_params(key_init)
        if c.sft_steps == 0:
            return params, jnp.zeros((0,))
        return generation.sft(self.network, params, self.task, key_sft, c.sft_steps, batch_size=c.sft_batch_size,
                              learning_rate=hparams.sft_learning_rate, correct_fraction=c.sft_correct_fraction)

    def init(self, key, hparams=None, env_params=None) -> SequenceState:
        key_sft, key_run = jax.random.split(key)
        params, _ = self.warm_start(key_sft, hparams)
        return self.init_from(params, key_run, hparams)

    def init_from(self, params, key, hparams=None) -> SequenceState:
        """A state that starts RL from ``params`` (also the reference policy): how a benchmark
        gives every recipe the same SFT start."""
        hparams = self.default_hparams if hparams is None else hparams
        key_value, key_run = jax.random.split(key)
        value_params = self.value_network.init(key_value, jnp.zeros((1, self.max_len), jnp.int32)) if self.uses_values else {}
        k = self.task.num_reward_components
        return SequenceState(
            params=params,
            opt_state=self.optimizer(hparams).init(params),
            ref_params=params,
            value_params=value_params,
            value_opt_state=self.value_optimizer(hparams).init(value_params),
            reward_log_weights=jnp.log(jnp.full((k,), 1.0 / k)),
            eval_accuracy=self.evaluate_params(params),
            key=key_run,
            iteration=jnp.zeros((), jnp.int32),
            env_steps=jnp.zeros((), jnp.int32),
            tokens=jnp.zeros((), jnp.int32),
        )

    def networks(self, state) -> dict:
        return {"": state.params}

    # -- evaluation ----------------------------------------------------------------------------
    def eval_prompts(self, n: int | None = None, key: jax.Array | None = None):
        key = jax.random.key(EVAL_SEED) if key is None else key
        return self.task.sample_prompts(key, self.config.eval_prompts if n is None else n)

    def evaluate_params(self, params, prompts=None) -> jax.Array:
        """Greedy-decoding accuracy (the task's reward) on ``prompts`` (default: the fixed held-out set)."""
        prompts = self.eval_prompts() if prompts is None else prompts
        return jnp.mean(generation.greedy_reward(self.network, params, self.task, prompts))

    def evaluate_result(self, result, key, num_episodes: int, deterministic: bool = True) -> jax.Array:
        """``jaxpg.evaluate`` for a sequence run: the reward of one response per fresh prompt."""
        prompts = self.task.sample_prompts(key, num_episodes)
        gen = generation.generate(self.network, result.state.params, self.task, prompts, jax.random.fold_in(key, 1),
                                  greedy=deterministic)
        return self.task.reward(prompts, gen.answers)

    # -- one iteration -------------------------------------------------------------------------
    def _log_probs(self, params, tokens):
        return generation.token_log_probs(self.network, params, tokens, self.task.prompt_len)

    def _values(self, value_params, tokens):
        logits = self.value_network.apply(value_params, tokens)
        # The value of the state before answer token t is read at the position that predicts it.
        p = self.task.prompt_len
        return logits[:, p - 1:p - 1 + self.task.answer_len, 0]

    def _sequences(self, state, hparams, key):
        """Prompts, sampled responses and rewards of one iteration (plus demos for HPT)."""
        c, task = self.config, self.task
        key_prompts, key_sample = jax.random.split(key)
        prompts = task.sample_prompts(key_prompts, c.num_prompts)
        repeated = jnp.repeat(prompts, c.group_size, axis=0)
        gen = generation.generate(self.network, state.params, task, repeated, key_sample,
                                  temperature=hparams.temperature)
        group_ids = jnp.repeat(jnp.arange(c.num_prompts), c.group_size)
        if self.kind == "pairwise":
            group_ids = jnp.arange(self.num_responses) // 2
        return prompts, repeated, gen, group_ids

    def _batch(self, state, hparams, key):
        c, task = self.config, self.task
        key_seq, key_pref, key_opp = jax.random.split(key, 3)
        prompts, repeated, gen, group_ids = self._sequences(state, hparams, key_seq)
        tokens, answers, mask = gen.tokens, gen.answers, gen.mask
        correct = task.reward(repeated, answers)
        components = task.reward_components(repeated, answers)
        rewards = components if task.num_reward_components > 1 else correct
        solution = task.solution(repeated)
        logp, old_logp, entropy, is_demo = gen.logp, gen.logp, gen.entropy, None
        if self.kind == "demonstration":
            tokens = jnp.concatenate([repeated, solution], axis=1)
            answers, mask = solution, task.trainable_mask(repeated, solution)
            old_logp, entropy, _ = self._log_probs(state.params, tokens)
            logp = old_logp
        if self.uses_demos:
            # One demonstration per prompt, in the prompt's group (HPT's SFT rows).
            demo_answers = task.solution(prompts)
            demo_tokens = jnp.concatenate([prompts, demo_answers], axis=1)
            demo_mask = task.trainable_mask(prompts, demo_answers)
            demo_logp, demo_entropy, _ = self._log_probs(state.params, demo_tokens)
            tokens = jnp.concatenate([tokens, demo_tokens])
            answers = jnp.concatenate([answers, demo_answers])
            mask = jnp.concatenate([mask, demo_mask])
            old_logp = jnp.concatenate([old_logp, demo_logp])
            logp = old_logp
            entropy = jnp.concatenate([entropy, demo_entropy])
            demo_rewards = task.reward_components(prompts, demo_answers) if rewards.ndim > 1 else \
                task.reward(prompts, demo_answers)
            rewards = jnp.concatenate([rewards, demo_rewards])
            group_ids = jnp.concatenate([group_ids, jnp.arange(c.num_prompts)])
            solution = jnp.concatenate([solution, demo_answers])
            is_demo = jnp.concatenate([jnp.zeros(self.num_responses), jnp.ones(c.num_prompts)])
        ref_logp, _, _ = self._log_probs(state.ref_params, tokens)
        n = tokens.shape[0]
        lengths = jnp.sum(task.answer_mask(answers), axis=1).astype(jnp.int32)
        strata = answers[:, 0] if task.name == "multiturn" else lengths
        extras = {}
        if self.kind == "pairwise":
            extras["preferred"] = bradley_terry_preferences(key_pref, correct,
                                                            hparams.preference_temperature)
        if self.uses_p_win:
            opponent = generation.generate(self.network, state.ref_params, task, repeated, key_opp,
                                           temperature=hparams.temperature)
            opponent_reward = task.reward(repeated, opponent.answers)
            extras["p_win"] = jax.nn.sigmoid((correct - opponent_reward) / hparams.preference_temperature)
        if self.uses_reward_weights:
            extras["reward_weights"] = jnp.exp(state.reward_log_weights)
        batch = seq.SequenceBatch(
            logp=logp, old_logp=old_logp, mask=mask, rewards=rewards, group_ids=group_ids, ref_logp=ref_logp,
            entropy=entropy, segment_ids=jnp.broadcast_to(jnp.asarray(task.segment_ids()), mask.shape),
            strata=strata, answer_ids=_answer_hash(answers, mask), is_demo=is_demo,
            token_rewards=jnp.where(answers == solution, 1.0, -1.0) * mask,
            targets=solution, extras=extras,
        )
        if self.uses_values:
            old_values = self._values(state.value_params, tokens)
            batch = batch.replace(values=old_values, old_values=old_values)
        stats = {
            "episode_return": jnp.mean(correct),
            "accuracy": jnp.mean(correct >= 1.0),
            "response_length": jnp.mean(jnp.sum(gen.mask, axis=1)),
            "entropy": jnp.sum(gen.entropy * gen.mask) / jnp.maximum(jnp.sum(gen.mask), 1.0),
            "sampled_tokens": jnp.sum(task.answer_mask(gen.answers)).astype(jnp.int32),
        }
        return tokens, batch, stats, n

    def loss(self, params, value_params, tokens, batch, key):
        """The recipe's loss with the batch's log-probs (and logits, values) from ``params``."""
        logp, _, logits = self._log_probs(params, tokens)
        batch = batch.replace(logp=logp, logits=logits)
        if self.uses_hidden:  # CAPO: the features the LM head reads at the answer positions
            p = self.task.prompt_len
            hidden = self.network.apply(params, tokens, method="features")[:, p - 1:p - 1 + self.task.answer_len]
            batch = batch.replace(extras={**batch.extras, "hidden": jax.lax.stop_gradient(hidden)})
        if self.uses_values:
            batch = batch.replace(values=self._values(value_params, tokens))
        return self.recipe(batch, key)

    def _reward_weight_update(self, state, hparams, tokens, batch, key):
        """Dynamic reward weighting (Lu et al. 2025): each objective's policy gradient from its
        own reward, then ``log w <- log_softmax(log w + lr s / lambda)``, s_k = sum_j <g_k, g_j>."""
        from jaxpg.losses.sequence import reward_weighting

        k = self.task.num_reward_components
        grads = []
        for i in range(k):
            one_hot = jnp.zeros((k,)).at[i].set(1.0)
            objective = batch.replace(extras={**batch.extras, "reward_weights": one_hot})
            grads.append(jax.grad(lambda p: self.loss(p, state.value_params, tokens, objective, key)[0])(state.params))
        return reward_weighting.gradient_weight_update(state.reward_log_weights, grads, lr=hparams.reward_weight_lr)

    def step(self, state: SequenceState, hparams):
        c = self.config
        key, key_batch, key_loss = jax.random.split(state.key, 3)
        tokens, batch, stats, _ = self._batch(state, hparams, key_batch)
        tx, value_tx = self.optimizer(hparams), self.value_optimizer(hparams)
        grad_fn = jax.grad(self.loss, argnums=(0, 1), has_aux=True)

        def epoch(carry, epoch_key):
            params, opt_state, value_params, value_opt_state = carry
            (grads, value_grads), aux = grad_fn(params, value_params, tokens, batch, epoch_key)
            updates, opt_state = tx.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            if self.uses_values:
                value_updates, value_opt_state = value_tx.update(value_grads, value_opt_state, value_params)
                value_params = optax.apply_updates(value_params, value_updates)
            aux = {**aux, "grad_norm": optax.tree.norm(grads)}
            return (params, opt_state, value_params, value_opt_state), aux

        carry = (state.params, state.opt_state, state.value_params, state.value_opt_state)
        carry, aux = jax.lax.scan(epoch, carry, jax.random.split(key_loss, c.update_epochs))
        params, opt_state, value_params, value_opt_state = carry
        aux = jax.tree.map(lambda x: x[0], aux)  # the on-policy epoch's diagnostics
        reward_log_weights = state.reward_log_weights
        if self.uses_reward_weights:
            reward_log_weights = self._reward_weight_update(state, hparams, tokens, batch, key_loss)
        iteration = state.iteration + 1
        eval_accuracy = jax.lax.cond(iteration % c.eval_every == 0, self.evaluate_params,
                                     lambda _: state.eval_accuracy, params)
        new_state = state.replace(
            params=params, opt_state=opt_state, value_params=value_params, value_opt_state=value_opt_state,
            reward_log_weights=reward_log_weights, eval_accuracy=eval_accuracy, key=key, iteration=iteration,
            env_steps=state.env_steps + self.num_responses, tokens=state.tokens + stats.pop("sampled_tokens"),
        )
        metrics = {
            **{k: v for k, v in aux.items() if jnp.ndim(v) == 0},
            **stats,
            "eval_accuracy": eval_accuracy,
            "env_steps": new_state.env_steps,
            "tokens": new_state.tokens,
            "finite": jnp.logical_and(all_finite(aux), all_finite(params)),
        }
        if self.uses_reward_weights:
            metrics["reward_weights"] = jnp.exp(reward_log_weights)
        return new_state, metrics

    def policy_function(self, result, deterministic: bool = True):
        """``jaxpg.policy_fn`` for a sequence run: ``prompts [n, prompt_len] -> answers [n, answer_len]``
        (greedy), or ``fn(prompts, key)`` sampling."""
        if deterministic:
            return lambda prompts: generation.generate(self.network, result.state.params, self.task, prompts,
                                                       jax.random.key(0), greedy=True).answers
        return lambda prompts, key: generation.generate(self.network, result.state.params, self.task, prompts,
                                                        key).answers
