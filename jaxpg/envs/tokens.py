"""Token tasks with verifiable rewards: a CPU-sized testbed for RL fine-tuning of a tiny language
model (GRPO-style: sample answers to a prompt, score them with a checker, no learned reward).

Every task shares one vocabulary (:data:`VOCAB`): id 0 ``<pad>``, 1 ``<bos>``, 2 ``<eos>``, 3
``<sep>``, the digits 0-9 as ids 4..13, then ``+ = { } : ? L R`` (ids 14..21). A prompt is
``prompt_len`` tokens starting with ``<bos>``; an answer is ``answer_len`` tokens, ended by the first
``<eos>`` and padded with ``<pad>`` after it. One vocabulary for all tasks lets one model
(and one set of parameters) move between them.

Rewards are checks, not models. Exact match, for answers ``y`` and the solution ``y*``:

    r(x, y) = 1[ trunc(y)_t = y*_t for every t ],   trunc(y)_t = y_t if t <= first EOS else PAD,

so the tokens after the first EOS are ignored and an answer without EOS never matches (the solution
has one). Tasks with several reward components (``struct``) give ``R [n, K]`` and the reward is
``R @ reward_weights``.

Multi-turn tasks let the environment write tokens into the answer (``forced``): those positions
are observations, part of the sequence the model reads but not of what it is trained to emit
(``trainable_mask``); ``segment_ids`` says which turn each answer position belongs to.

All array methods are pure jnp with static shapes (jittable, vmappable); tasks are frozen
dataclasses, hashable, so they can be static arguments of ``jax.jit``.

    copy       <bos> 3 1 4 1 <sep>          -> 3 1 4 1 <eos>
    sort       <bos> 3 1 4 1 5 <sep>        -> 1 1 3 4 5 <eos>
    addition   <bos> 4 7 + 3 5 =            -> 0 8 2 <eos>        (sum with num_digits + 1 digits)
    addition3  <bos> 4 7 0 + 3 5 9 =        -> 0 8 2 9 <eos>
    multiturn  <bos> 3 7 ? L <sep>          -> L [6] 6 <eos>      ([6]: written by the environment)
    struct     <bos> 3 5 8 <sep>            -> { 3 : 8 5 } <eos>  (format, key, value components)
"""

from __future__ import annotations

import abc
import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

VOCAB: tuple[str, ...] = (
    ("<pad>", "<bos>", "<eos>", "<sep>")
    + tuple(str(d) for d in range(10))
    + ("+", "=", "{", "}", ":", "?", "L", "R")
)
PAD, BOS, EOS, SEP = 0, 1, 2, 3
DIGIT0 = 4  # token of digit d is DIGIT0 + d
PLUS, EQUALS, LBRACE, RBRACE, COLON, QUERY, LEFT, RIGHT = range(14, 22)


def is_digit(tokens: jax.Array) -> jax.Array:
    """True where a token is one of the digits 0-9."""
    return (tokens >= DIGIT0) & (tokens < DIGIT0 + 10)


def _column(tokens: int | jax.Array, n: int) -> jax.Array:
    """A constant token as an int32 ``[n, 1]`` column (to concatenate with ``[n, k]`` blocks)."""
    return jnp.full((n, 1), tokens, jnp.int32)


def _digits_to_int(digits: jax.Array) -> jax.Array:
    """``[..., k]`` digit values (most significant first) -> ``[...]`` integers."""
    k = digits.shape[-1]
    return jnp.sum(digits * (10 ** jnp.arange(k - 1, -1, -1)), axis=-1)


def _int_to_digits(x: jax.Array, k: int) -> jax.Array:
    """``[...]`` integers -> ``[..., k]`` digit values, zero-padded on the left (x < 10**k)."""
    return (x[..., None] // (10 ** jnp.arange(k - 1, -1, -1))) % 10


@dataclasses.dataclass(frozen=True)
class TokenTask(abc.ABC):
    """A prompt distribution with a checkable answer. Subclasses give ``prompt_len``,
    ``answer_len``, ``sample_prompts`` and ``solution``; the rest has generic defaults.

    ``reward_weights`` is a field so a caller can re-weight components:
    ``dataclasses.replace(task, reward_weights=(0.0, 0.0, 1.0))`` (or ``make_task(name, reward_weights=...)``).
    """

    name: str = "task"
    reward_weights: tuple[float, ...] = (1.0,)

    vocab: ClassVar[tuple[str, ...]] = VOCAB
    num_reward_components: ClassVar[int] = 1

    def __post_init__(self):
        if len(self.reward_weights) != self.num_reward_components:
            raise ValueError(f"{self.name}: reward_weights {self.reward_weights} must have "
                             f"{self.num_reward_components} entries (one per reward component)")

    # ---- sizes ---------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    @abc.abstractmethod
    def prompt_len(self) -> int:
        """Tokens per prompt (fixed), the first being ``<bos>``."""

    @property
    @abc.abstractmethod
    def answer_len(self) -> int:
        """The most tokens an answer may have, its ``<eos>`` included."""

    # ---- the task ------------------------------------------------------------------------------
    @abc.abstractmethod
    def sample_prompts(self, key: jax.Array, n: int) -> jax.Array:
        """int32 ``[n, prompt_len]``, each starting with ``<bos>``."""

    @abc.abstractmethod
    def solution(self, prompts: jax.Array) -> jax.Array:
        """The correct answers, int32 ``[n, answer_len]``: EOS-terminated, PAD after, with the
        environment's forced tokens at their positions."""

    def forced(self, prompts: jax.Array, t, answers_so_far: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(is_forced bool [n], token int32 [n])`` for answer position ``t`` (a python int or a
        traced scalar), given the answers written so far (positions < t are final). Default: the
        environment writes nothing."""
        n = prompts.shape[0]
        return jnp.zeros((n,), bool), jnp.full((n,), PAD, jnp.int32)

    def segment_ids(self) -> np.ndarray:
        """int32 ``[answer_len]``: the turn each answer position belongs to (all 0: one turn)."""
        return np.zeros(self.answer_len, np.int32)

    # ---- masks ---------------------------------------------------------------------------------
    def answer_mask(self, answers: jax.Array) -> jax.Array:
        """float32 ``[n, answer_len]``: 1 up to and including the first EOS (everywhere if none)."""
        eos = (answers == EOS).astype(jnp.int32)
        eos_before = jnp.cumsum(eos, axis=-1) - eos  # EOS strictly before position t
        return (eos_before == 0).astype(jnp.float32)

    def forced_mask(self, prompts: jax.Array, answers: jax.Array) -> jax.Array:
        """bool ``[n, answer_len]``: positions the environment writes (given these answers)."""
        return jnp.stack([self.forced(prompts, t, answers)[0] for t in range(self.answer_len)], axis=-1)

    def trainable_mask(self, prompts: jax.Array, answers: jax.Array) -> jax.Array:
        """float32 ``[n, answer_len]``: ``answer_mask * (1 - forced)``, the tokens the model emits."""
        return self.answer_mask(answers) * (1.0 - self.forced_mask(prompts, answers))

    def truncate(self, answers: jax.Array) -> jax.Array:
        """Answers with every token after the first EOS replaced by PAD."""
        return jnp.where(self.answer_mask(answers) > 0, answers, PAD)

    # ---- rewards -------------------------------------------------------------------------------
    def exact_match(self, prompts: jax.Array, answers: jax.Array) -> jax.Array:
        """float32 ``[n]`` in {0, 1}: ``trunc(y) == y*`` (a missing EOS never matches)."""
        return jnp.all(self.truncate(answers) == self.solution(prompts), axis=-1).astype(jnp.float32)

    def reward_components(self, prompts: jax.Array, answers: jax.Array) -> jax.Array:
        """float32 ``[n, K]``; default K = 1, exact match."""
        return self.exact_match(prompts, answers)[:, None]

    def reward(self, prompts: jax.Array, answers: jax.Array) -> jax.Array:
        """float32 ``[n]``: ``reward_components @ reward_weights``."""
        weights = jnp.asarray(self.reward_weights, jnp.float32)
        return self.reward_components(prompts, answers) @ weights

    # ---- supervised data -----------------------------------------------------------------------
    def corruptible(self, prompts: jax.Array, solution: jax.Array) -> jax.Array:
        """bool ``[n, answer_len]``: the positions a wrong demonstration may change (the digits
        the model emits; format tokens and forced observations stay)."""
        return is_digit(solution) & ~self.forced_mask(prompts, solution)

    def demonstrations(self, key: jax.Array, prompts: jax.Array, correct_fraction) -> jax.Array:
        """int32 ``[n, answer_len]``: each row is the solution with probability ``correct_fraction``,
        else the solution with 1 or 2 (equally likely) corruptible digits replaced by a different
        random digit, format kept. The wrong digits are uniform over the other nine, so at every
        position the solution's token stays the most likely one (whenever ``correct_fraction > 0``,
        or a task has two or more corruptible digits): SFT on them gives a partially correct
        model, and its greedy answers can still be right."""
        n, a = prompts.shape[0], self.answer_len
        # One uniform draw for all four choices (each random call costs compile time on CPU).
        u = jax.random.uniform(key, (n, 2 * a + 2))
        correct = u[:, 0] < correct_fraction
        num_wrong = 1 + (u[:, 1] < 0.5).astype(jnp.int32)
        solution = self.solution(prompts)
        eligible = self.corruptible(prompts, solution)
        # The num_wrong eligible positions with the smallest uniform scores are changed.
        scores = jnp.where(eligible, u[:, 2:2 + a], 2.0)
        rank = jnp.argsort(jnp.argsort(scores, axis=-1), axis=-1)
        corrupt = eligible & (rank < num_wrong[:, None]) & ~correct[:, None]
        offset = 1 + jnp.minimum(jnp.floor(9 * u[:, 2 + a:]).astype(jnp.int32), 8)  # 1..9: never the right digit
        wrong = DIGIT0 + (solution - DIGIT0 + offset) % 10
        return jnp.where(corrupt, wrong, solution).astype(jnp.int32)

    # ---- host side -----------------------------------------------------------------------------
    def decode(self, tokens) -> str:
        """Readable text of a token row (or rows, one line each), host side: tokens separated by
        spaces, trailing PADs left out (a PAD a model emitted mid-answer shows as ``<pad>``)."""
        tokens = np.asarray(tokens)
        if tokens.ndim > 1:
            return "\n".join(self.decode(row) for row in tokens.reshape(-1, tokens.shape[-1]))
        ids = tokens.tolist()
        while ids and ids[-1] == PAD:
            ids.pop()
        return " ".join(self.vocab[t] if 0 <= t < len(self.vocab) else f"<unk:{t}>" for t in ids)


@dataclasses.dataclass(frozen=True)
class CopyTask(TokenTask):
    """``<bos> d_1 .. d_k <sep>`` -> ``d_1 .. d_k <eos>``, digits uniform."""

    name: str = "copy"
    num_digits: int = 4

    @property
    def prompt_len(self) -> int:
        return self.num_digits + 2

    @property
    def answer_len(self) -> int:
        return self.num_digits + 1

    def sample_prompts(self, key, n):
        digits = DIGIT0 + jax.random.randint(key, (n, self.num_digits), 0, 10)
        return jnp.concatenate([_column(BOS, n), digits, _column(SEP, n)], axis=1).astype(jnp.int32)

    def _target_digits(self, digits):
        return digits

    def solution(self, prompts):
        digits = self._target_digits(prompts[:, 1:1 + self.num_digits])
        return jnp.concatenate([digits, _column(EOS, prompts.shape[0])], axis=1).astype(jnp.int32)


@dataclasses.dataclass(frozen=True)
class SortTask(CopyTask):
    """``<bos> d_1 .. d_k <sep>`` -> the digits in ascending order, then ``<eos>``."""

    name: str = "sort"
    num_digits: int = 5

    def _target_digits(self, digits):
        return jnp.sort(digits, axis=-1)  # digit tokens are consecutive ids, so ids sort as digits


@dataclasses.dataclass(frozen=True)
class AdditionTask(TokenTask):
    """``<bos> a + b =`` -> ``a + b`` with ``num_digits + 1`` digits (leading zeros), then ``<eos>``;
    a, b uniform on [0, 10^num_digits), written with ``num_digits`` digits each. The fixed width
    fixes the answer length; most significant digit first, as people write it (the harder order
    for a causal model: the leading digit depends on every carry)."""

    name: str = "addition"
    num_digits: int = 2

    @property
    def prompt_len(self) -> int:
        return 2 * self.num_digits + 3

    @property
    def answer_len(self) -> int:
        return self.num_digits + 2

    def sample_prompts(self, key, n):
        k = self.num_digits
        digits = DIGIT0 + jax.random.randint(key, (n, 2, k), 0, 10)
        parts = [_column(BOS, n), digits[:, 0], _column(PLUS, n), digits[:, 1], _column(EQUALS, n)]
        return jnp.concatenate(parts, axis=1).astype(jnp.int32)

    def operands(self, prompts) -> tuple[jax.Array, jax.Array]:
        """The integers a and b of each prompt."""
        k = self.num_digits
        a = _digits_to_int(prompts[:, 1:1 + k] - DIGIT0)
        b = _digits_to_int(prompts[:, 2 + k:2 + 2 * k] - DIGIT0)
        return a, b

    def solution(self, prompts):
        a, b = self.operands(prompts)
        digits = DIGIT0 + _int_to_digits(a + b, self.num_digits + 1)
        return jnp.concatenate([digits, _column(EOS, prompts.shape[0])], axis=1).astype(jnp.int32)


# The multi-turn task's hidden digits: room r holds HIDDEN[r, 0] on the left and HIDDEN[r, 1] on
# the right. A fixed pseudo-random table (seed 0), so the model cannot compute them from the room
# number and has to ask; the two sides always differ, so asking the wrong side shows a wrong digit.
_TABLE = np.random.default_rng(0)
_LEFT_DIGITS = _TABLE.integers(0, 10, 100)
HIDDEN = np.stack([_LEFT_DIGITS, (_LEFT_DIGITS + _TABLE.integers(1, 10, 100)) % 10], axis=1).astype(np.int32)


@dataclasses.dataclass(frozen=True)
class MultiTurnTask(TokenTask):
    """Three turns: ask, observe, answer. Prompt ``<bos> r_1 r_2 ? S <sep>``: room ``r = 10 r_1 + r_2``
    and the side ``S`` in {L, R} whose hidden digit ``h = HIDDEN[r, S]`` is wanted.

        turn 0 (agent)        the query q, a side token L or R                 answer position 0
        turn 1 (environment)  HIDDEN[r, q] if q is L or R, else '?'  (forced)  answer position 1
        turn 2 (agent)        the digit, then <eos>                            answer positions 2, 3

    Solution ``S h h <eos>``; exact match needs the right query (a wrong side shows the other, always
    different digit) and the right digit. The table is pseudo-random, so the digit is learned by
    asking and copying the observation rather than by computing it from the room.
    """

    name: str = "multiturn"

    @property
    def prompt_len(self) -> int:
        return 6

    @property
    def answer_len(self) -> int:
        return 4

    def segment_ids(self) -> np.ndarray:
        return np.array([0, 1, 2, 2], np.int32)

    def sample_prompts(self, key, n):
        draws = jax.random.randint(key, (n, 3), 0, 10)  # room digits, and a third for the side
        room = DIGIT0 + draws[:, :2]
        side = jnp.where(draws[:, 2:] < 5, LEFT, RIGHT)
        parts = [_column(BOS, n), room, _column(QUERY, n), side, _column(SEP, n)]
        return jnp.concatenate(parts, axis=1).astype(jnp.int32)

    def _observation(self, prompts, query):
        room = 10 * (prompts[:, 1] - DIGIT0) + (prompts[:, 2] - DIGIT0)
        digit = DIGIT0 + jnp.asarray(HIDDEN)[room, (query == RIGHT).astype(jnp.int32)]
        return jnp.where((query == LEFT) | (query == RIGHT), digit, QUERY).astype(jnp.int32)

    def forced(self, prompts, t, answers_so_far):
        n = prompts.shape[0]
        is_forced = jnp.broadcast_to(jnp.asarray(t) == 1, (n,))
        return is_forced, self._observation(prompts, answers_so_far[:, 0])

    def solution(self, prompts):
        side = prompts[:, 4]
        digit = self._observation(prompts, side)
        return jnp.stack([side, digit, digit, jnp.full_like(side, EOS)], axis=1).astype(jnp.int32)


@dataclasses.dataclass(frozen=True)
class StructTask(TokenTask):
    """Structured output (RL-Struct style): prompt ``<bos> k a b <sep>``, answer ``{ k : b a } <eos>``
    (the key, then the value: the two digits reversed). Three reward components, each in {0, 1},
    on the answer truncated after its first EOS:

        format  ``{ D : D D } <eos>`` with D any digit (braces, colon, digit slots, termination)
        key     position 1 is k
        value   positions 3, 4 are b, a

    Default weights (0.2, 0.3, 0.5) sum to 1: the solution earns 1 and the weighted reward grades
    partial answers (right format, wrong value: 0.5).
    """

    name: str = "struct"
    reward_weights: tuple[float, ...] = (0.2, 0.3, 0.5)
    num_reward_components: ClassVar[int] = 3

    @property
    def prompt_len(self) -> int:
        return 5

    @property
    def answer_len(self) -> int:
        return 7

    def sample_prompts(self, key, n):
        digits = DIGIT0 + jax.random.randint(key, (n, 3), 0, 10)
        return jnp.concatenate([_column(BOS, n), digits, _column(SEP, n)], axis=1).astype(jnp.int32)

    def solution(self, prompts):
        n = prompts.shape[0]
        key, a, b = prompts[:, 1:2], prompts[:, 2:3], prompts[:, 3:4]
        parts = [_column(LBRACE, n), key, _column(COLON, n), b, a, _column(RBRACE, n), _column(EOS, n)]
        return jnp.concatenate(parts, axis=1).astype(jnp.int32)

    def reward_components(self, prompts, answers):
        y = self.truncate(answers)
        digit = is_digit(y)
        form = ((y[:, 0] == LBRACE) & digit[:, 1] & (y[:, 2] == COLON) & digit[:, 3] & digit[:, 4]
                & (y[:, 5] == RBRACE) & (y[:, 6] == EOS))
        key = y[:, 1] == prompts[:, 1]
        value = (y[:, 3] == prompts[:, 3]) & (y[:, 4] == prompts[:, 2])
        return jnp.stack([form, key, value], axis=-1).astype(jnp.float32)


TASKS: dict[str, TokenTask] = {
    "copy": CopyTask(),
    "sort": SortTask(),
    "addition": AdditionTask(),
    "addition3": AdditionTask(name="addition3", num_digits=3),
    "multiturn": MultiTurnTask(),
    "struct": StructTask(),
}


def make_task(name: str, **overrides) -> TokenTask:
    """The task ``"seq/<task>"`` or ``"<task>"`` of :data:`TASKS`, with fields replaced by
    ``overrides`` (e.g. ``reward_weights=(0.0, 0.0, 1.0)``)."""
    short = name[len("seq/"):] if name.startswith("seq/") else name
    if short not in TASKS:
        raise ValueError(f"unknown token task {name!r}; valid choices: {', '.join('seq/' + t for t in TASKS)}")
    task = TASKS[short]
    fields = [f.name for f in dataclasses.fields(task)]
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(f"unknown {short} task field(s) {unknown}; valid choices: {', '.join(fields)}")
    return dataclasses.replace(task, **overrides)
