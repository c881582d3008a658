"""Building blocks the algorithms share: the base config, environments (with their levels),
networks, optimizers, observation normalization and episode statistics."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from jaxpg import optim
from jaxpg.algos import validation
from jaxpg.algos.validation import FINITE, POSITIVE_INT, bounded
from jaxpg.envs import Environment, VectorEnv
from jaxpg.envs import make as make_env
from jaxpg.nets import NORMALIZATIONS, ActorCritic, RunningStats, get_activation, normalized_kernels_mask, running_norm
from jaxpg.policies import STD_MODES, policy_head

SCHEDULES = ("constant", "linear", "cosine")
LEVELS = ("default", "sampled")
OPTIMIZERS = ("adam", "sinkgd")  # choices of BaseConfig.optimizer (built by make_optimizer)


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
    # "default": every env copy plays the environment's default params; "sampled": each copy gets
    # its own level from env.sample_params at init (replace them later with replace_levels).
    levels: str = "default"
    per_env_returns: bool = False  # also report metrics["episode_return_per_env"] [num_envs]
    # "adam" | "sinkgd" (jaxpg.optim.sinkgd: stateless, Sinkhorn-normalized matrix gradients),
    # after global-norm clipping; built by make_optimizer. An algorithm may widen the choices with
    # optimizers it builds itself: REINFORCE adds "sgd" (plain gradient step after clipping: the
    # plain-PG baseline) and "gns" (natural PG, jaxpg.optim.scale_by_gns on the policy's Fisher);
    # algorithms that keep these OPTIMIZERS (PPO, ...) refuse them with the valid choices. SAC,
    # the sequence trainer and HDPO build theirs with clipped_optimizer (same two choices); the
    # HARPG family's step is the method itself, so it takes no optimizer (OPTIMIZERS = ("adam",)).
    optimizer: str = "adam"

    # Valid values of ``optimizer`` (a class attribute, not a field). A subclass may narrow them
    # (``OPTIMIZERS = ("adam",)`` for an algorithm that builds its own optimizer); one that
    # redeclares the ``optimizer`` field without setting OPTIMIZERS owns the field and checks it
    # itself (LPG: "sgd" | "adam"), so check_config skips it.
    OPTIMIZERS = OPTIMIZERS


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
    if config.levels not in LEVELS:
        raise ValueError(f"unknown levels {config.levels!r}; valid choices: {', '.join(LEVELS)}")
    if config.std_mode not in STD_MODES:
        raise ValueError(f"unknown std_mode {config.std_mode!r}; valid choices: {', '.join(STD_MODES)}")
    if any(int(size) < 1 for size in config.hidden_sizes):
        raise ValueError(f"hidden_sizes must be positive integers, got {config.hidden_sizes!r}")
    choices = _optimizer_choices(config)
    if choices is not None and config.optimizer not in choices:
        raise ValueError(f"unknown optimizer {config.optimizer!r}; valid choices: {', '.join(choices)}")


def _optimizer_choices(config) -> tuple | None:
    """The valid ``optimizer`` values: the nearest class in the MRO that sets ``OPTIMIZERS`` or
    redeclares the ``optimizer`` field decides; its OPTIMIZERS, or None when it redeclares the
    field without them (the algorithm validates its own choices)."""
    for cls in type(config).__mro__:
        namespace = vars(cls)
        if "OPTIMIZERS" in namespace:
            return namespace["OPTIMIZERS"]
        if "optimizer" in namespace:
            return None
    return None


def make_environment(config, num_envs: int | None = None) -> tuple[Environment, VectorEnv]:
    """The environment and a ``VectorEnv`` of ``num_envs`` (default ``config.num_envs``) copies,
    one level per copy when ``config.levels == "sampled"``."""
    env = make_env(config.env, **dict(config.env_kwargs))
    sampled = config.levels == "sampled"
    if sampled and not env.has_level_sampler:
        raise ValueError(f"levels='sampled' needs an environment with a level generator; {config.env} has none "
                         "(valid: tabular/random, permuted/<gymnax env>)")
    return env, VectorEnv(env, config.num_envs if num_envs is None else num_envs, batched_params=sampled)


def initial_levels(config, env: Environment, venv: VectorEnv, key: jax.Array, env_params=None):
    """The env params a run starts on: ``env_params`` if given, else the default params, or with
    ``levels="sampled"`` one ``env.sample_params`` draw per env copy."""
    if env_params is not None:
        return env_params
    if config.levels == "sampled":
        return jax.vmap(env.sample_params)(jax.random.split(key, venv.num_envs))
    return env.default_params


def resolve_horizon(config, env) -> int:
    """The episode horizon: ``config.horizon`` if the config has one set, else the env's time limit."""
    horizon = getattr(config, "horizon", None)
    if horizon is not None:  # its range is checked with the config (``check_config``)
        return int(horizon)
    limit = getattr(env.default_params, "max_steps_in_episode", None)
    if limit is None:
        raise ValueError(f"{config.env} has no max_steps_in_episode; set horizon=N explicitly")
    return int(limit)


def make_network(config, env: Environment, network=ActorCritic):
    """The algorithm's network (``ActorCritic`` or ``PolicyNetwork``) from the shared config fields,
    with the policy head that fits the environment's action spec."""
    return network(
        head=policy_head(env.action_spec, config.std_mode, config.init_log_std),
        obs_ndim=len(env.observation_spec.shape),
        hidden_sizes=tuple(config.hidden_sizes),
        activation=config.activation,
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
    return clipped_optimizer("adam", schedule, max_grad_norm, nap=nap)


def make_optimizer(config, schedule, max_grad_norm) -> optax.GradientTransformation:
    """The optimizer ``config.optimizer`` names, after global-norm clipping, with NaP's projection
    when ``config.nap``: ``"adam"`` is :func:`adam_with_clipping`; ``"sinkgd"`` is
    ``jaxpg.optim.sinkgd(schedule)`` (Scetbon et al. 2025; 5 SR-Sinkhorn passes, unit-RMS rule for
    biases and other non-matrix leaves). SinkGD's step does not depend on the gradient's scale, so
    the clip leaves it unchanged; it stays for one interface across optimizers.
    ``schedule`` may be a float or an optax schedule (a traced learning rate too)."""
    return clipped_optimizer(getattr(config, "optimizer", "adam"), schedule, max_grad_norm, nap=config.nap)


def check_optimizer(kind: str, choices: tuple = OPTIMIZERS) -> None:
    """One-line error naming the valid choices (for configs that are not a ``BaseConfig``)."""
    if kind not in choices:
        raise ValueError(f"unknown optimizer {kind!r}; valid choices: {', '.join(choices)}")


def clipped_optimizer(kind: str, schedule, max_grad_norm, *, nap: bool = False,
                      adam_eps: float = 1e-5) -> optax.GradientTransformation:
    """Global-norm clipping then ``kind`` ("adam" with ``adam_eps`` | "sinkgd"), then NaP's
    projection when ``nap``: the one place every trainer's optimizer choice is built (PPO and
    REINFORCE through :func:`make_optimizer`; SAC, the sequence trainer and HDPO with optax's
    default ``adam_eps = 1e-8``)."""
    if kind == "adam":
        inner = optax.adam(schedule, eps=adam_eps)
    elif kind == "sinkgd":
        inner = optim.sinkgd(schedule)
    else:
        raise ValueError(f"unknown optimizer {kind!r}; valid choices: {', '.join(OPTIMIZERS)}")
    tx = optax.chain(optax.clip_by_global_norm(max_grad_norm), inner)
    return optim.nap(tx, mask=normalized_kernels_mask) if nap else tx


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


