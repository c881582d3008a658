"""Pieces every on-policy algorithm shares: results, metrics, NaN detection, progress, optimizers."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxpg import optim, progress
from jaxpg.algos import validation
from jaxpg.algos.validation import FINITE, NONNEGATIVE_INT, POSITIVE_INT, bounded
from jaxpg.envs import Environment, VectorEnv
from jaxpg.envs import make as make_env
from jaxpg.nets import NORMALIZATIONS, ActorCritic, RunningStats, get_activation, running_norm
from jaxpg.policies import STD_MODES

SCHEDULES = ("constant", "linear", "cosine")


@dataclasses.dataclass(frozen=True)
class BaseConfig:
    """Static choices every algorithm shares: environment, budget, network, progress reporting.

    Algorithm configs extend it (and may redeclare a field to change its default).
    """

    env: str = "CartPole-v1"
    env_kwargs: tuple = ()  # ((name, value), ...) passed to jaxpg.envs.make
    total_steps: int = bounded(500_000, POSITIVE_INT)
    num_envs: int = bounded(4, POSITIVE_INT)
    hidden_sizes: tuple = (64, 64)
    activation: str = "tanh"
    std_mode: str = "state_independent"
    init_log_std: float = bounded(0.0, FINITE)
    normalize_obs: bool = False
    # "none" | "layer_norm" | "rms_norm": a normalization before every hidden nonlinearity of the
    # policy and value torsos (the NaP layout); pair it with nap=True to project the weights.
    normalization: str = "none"
    nap: bool = False  # project normalized kernels back to their initial norm after every step
    progress_every: int = bounded(0, NONNEGATIVE_INT)  # iterations between progress callbacks (0: none)


@struct.dataclass
class Result:
    """What ``train`` returns.

    ``params``: final network parameters; ``metrics``: dict of per-iteration arrays (leading axis
    = iteration); ``state``: the whole training state, for resuming (``trainer.run(result.state,
    hparams, n)``) and for :func:`jaxpg.policy_fn` (it holds the observation normalizer).
    ``algo`` and ``config`` are static, so a Result knows how to rebuild its network.
    """

    params: Any
    metrics: dict
    state: Any
    algo: str = struct.field(pytree_node=False, default="")
    config: Any = struct.field(pytree_node=False, default=None)


def check_config(config) -> None:
    """Validate a config with one-line errors naming valid choices: every field's declared range
    (:mod:`jaxpg.algos.validation`) and the named choices shared by all configs."""
    validation.validate(config)
    schedule = getattr(config, "lr_schedule", "constant")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown lr_schedule {schedule!r}; valid choices: {', '.join(SCHEDULES)}")
    get_activation(config.activation)  # raises with the valid names
    if config.normalization not in NORMALIZATIONS:
        raise ValueError(
            f"unknown normalization {config.normalization!r}; valid choices: {', '.join(NORMALIZATIONS)}"
        )
    if config.nap and config.normalization == "none":
        raise ValueError("nap=True needs normalization='layer_norm' or 'rms_norm' (valid with nap: layer_norm, rms_norm)")
    if config.std_mode not in STD_MODES:
        raise ValueError(f"unknown std_mode {config.std_mode!r}; valid choices: {', '.join(STD_MODES)}")
    if any(int(size) < 1 for size in config.hidden_sizes):
        raise ValueError(f"hidden_sizes must be positive integers, got {config.hidden_sizes!r}")


def make_environment(config) -> tuple[Environment, VectorEnv]:
    env = make_env(config.env, **dict(config.env_kwargs))
    return env, VectorEnv(env, config.num_envs)


def make_network(config, env: Environment, network=ActorCritic):
    """The algorithm's network (``ActorCritic`` or ``PolicyNetwork``) from the shared config fields."""
    return network(
        action_spec=env.action_spec,
        obs_ndim=len(env.observation_spec.shape),
        hidden_sizes=tuple(config.hidden_sizes),
        activation=config.activation,
        std_mode=config.std_mode,
        init_log_std=config.init_log_std,
        normalization=config.normalization,
    )


def learning_rate_schedule(kind: str, learning_rate, total_updates: int):
    """optax schedule; ``learning_rate`` may be a traced hyperparameter."""
    if kind == "constant":
        return lambda count: learning_rate * jnp.ones_like(count, jnp.float32)
    if kind == "linear":
        return optax.linear_schedule(learning_rate, 0.0, total_updates)
    if kind == "cosine":
        return optax.cosine_decay_schedule(learning_rate, total_updates)
    raise ValueError(f"unknown lr_schedule {kind!r}; valid choices: {', '.join(SCHEDULES)}")


def adam_with_clipping(schedule, max_grad_norm, nap: bool = False) -> optax.GradientTransformation:
    """Global-norm clipping then Adam (eps=1e-5 as in the PPO reference implementations);
    with ``nap``, followed by NaP's projection of the normalized kernels."""
    tx = optax.chain(optax.clip_by_global_norm(max_grad_norm), optax.adam(schedule, eps=1e-5))
    return optim.nap(tx) if nap else tx


def weight_diagnostics(old_params, new_params) -> dict:
    """Per-layer ``weight_norm/<layer>`` and realized ``effective_lr/<layer>`` of one iteration."""
    norms = optim.weight_norms(new_params)
    rates = optim.effective_learning_rates(old_params, new_params)
    return {**{f"weight_norm/{k}": v for k, v in norms.items()}, **{f"effective_lr/{k}": v for k, v in rates.items()}}


def normalize_obs(stats: RunningStats, obs: jax.Array, enabled: bool) -> jax.Array:
    return running_norm.normalize(stats, obs) if enabled else obs


def episode_statistics(done, episode_return, episode_length, previous_return, previous_length):
    """Mean return/length of the episodes that ended in a rollout; carry the last value if none did
    (NaN before the first episode ends).

    ``done``/``episode_*``: arrays [T, N] from ``TimeStep``; returns (return, length, count).
    """
    done = done.astype(jnp.float32)
    count = done.sum()
    safe = jnp.maximum(count, 1.0)
    mean_return = jnp.where(count > 0, (done * episode_return).sum() / safe, previous_return)
    mean_length = jnp.where(count > 0, (done * episode_length).sum() / safe, previous_length)
    return mean_return, mean_length, count


def all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def report_progress(config, step, num_steps: int, episode_return) -> None:
    """Send progress to the host every ``config.progress_every`` iterations (static; 0 = never).

    ``step`` is the scan index of this call (not the state's iteration counter): it is never
    batched under ``vmap``, so the ``cond`` stays a real branch and the host hears from the run
    only every ``progress_every`` iterations. The host adds the offset of resumed runs
    (``progress.set_offset``).
    """
    every = getattr(config, "progress_every", 0)
    if every:
        due = jnp.logical_or((step + 1) % every == 0, step + 1 == num_steps)

        def send(_):
            jax.debug.callback(progress.update, step + 1, episode_return)

        jax.lax.cond(due, send, lambda _: None, None)


def first_nonfinite(finite) -> tuple[int, int] | None:
    """``(first iteration, number of runs)`` where a ``finite`` metric (``[..., iterations]``) is
    False, or None when every entry is True. Leading axes (sweeps: ``[hparams, seeds]``) are runs."""
    finite = np.asarray(finite).astype(bool)
    if finite.all():
        return None
    first = int(np.argwhere(~finite)[:, -1].min())
    runs = int((~finite).reshape(-1, finite.shape[-1]).any(-1).sum()) if finite.ndim > 1 else 1
    return first, runs


def check_finite(result: Result) -> Result:
    """Raise ``FloatingPointError`` naming the iteration where NaN/inf first appeared."""
    bad = first_nonfinite(result.metrics["finite"])
    if bad is None:
        return result
    first, runs = bad
    raise FloatingPointError(
        f"NaN or inf in training: first at iteration {first} (of {np.shape(result.metrics['finite'])[-1]}) "
        f"in {runs} run(s); try a smaller learning rate or enable max_grad_norm"
    )


class Trainer:
    """Shared entry points of the algorithms under the ``make_train`` contract.

    Subclasses set ``algo``, ``config``, ``default_hparams`` and ``num_iterations`` and implement
    ``init(key, hparams, env_params) -> state`` and ``_iteration(hparams, state) -> (state,
    metrics)``. Then:

    * ``train(key, hparams)`` runs the whole budget in one ``lax.scan`` (``jax.jit(train)``);
    * ``train.run(state, hparams, num_iterations)`` continues from a state (resuming and chunked
      runs give exactly the result of one uninterrupted run: the state holds the RNG key).
    """

    algo: str = ""
    num_iterations: int
    default_hparams: Any

    def run(self, state, hparams=None, num_iterations: int | None = None) -> Result:
        hparams = self.default_hparams if hparams is None else hparams
        n = self.num_iterations if num_iterations is None else int(num_iterations)

        def body(state, step):
            new_state, metrics = self._iteration(hparams, state)
            metrics.update(weight_diagnostics(state.params, new_state.params))
            report_progress(self.config, step, n, metrics["episode_return"])
            return new_state, metrics

        state, metrics = jax.lax.scan(body, state, jnp.arange(n))
        return Result(params=state.params, metrics=metrics, state=state, algo=self.algo, config=self.config)

    def __call__(self, key: jax.Array, hparams=None) -> Result:
        if hparams is not None:
            validation.validate(hparams)  # concrete values only; traced ones (under jit) pass
        return self.run(self.init(key, hparams), hparams)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"
