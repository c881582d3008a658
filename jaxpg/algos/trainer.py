"""The trainer protocol every algorithm implements, and the layers ``run`` adds around it.

An algorithm is a :class:`Trainer` with two pure functions:

* ``init(key, hparams, env_params) -> state``: the whole training state (networks, optimizer
  states, environment states, RNG key, counters) as one pytree;
* ``step(state, hparams) -> (state, metrics)``: one iteration. Nothing host-side happens inside,
  so ``jax.grad`` can differentiate through ``k`` steps (meta-gradients) and ``vmap`` can batch it.

``run(state, hparams, n)`` scans ``step`` ``n`` times inside one ``lax.scan`` and layers two
optional things around it: per-network weight diagnostics (``weight_norm/...``,
``effective_lr/...``) and a progress callback to the host, every ``progress_every`` iterations,
only when the caller passes one. ``train(key, hparams)`` is ``run(init(key, hparams), hparams)``.

A state may hold several named networks (actor, twin critics, targets, decoder, gate), each
with its own optimizer state: ``networks(state)`` names the parameter pytrees that diagnostics
report on (``{"": state.params}`` by default; otherwise metric names gain a ``<network>/``
prefix).
"""

from __future__ import annotations

import abc
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxpg import optim
from jaxpg.algos import validation

# progress(iteration, episode_return) on the host; under vmap both arrive batched over runs.
ProgressCallback = Callable[[Any, Any], None]


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


def compiler_options() -> dict:
    """XLA options for jaxpg's programs: on CPU, backend (LLVM) optimization level 1 instead of
    XLA's default 3. Measured on PPO CartPole (``benchmarks/throughput.py``): compile time -27%,
    run time unchanged (the time goes to library matmul kernels and many small loops, which
    LLVM's heavier passes do not speed up); brax inverted_pendulum: compile -17%, run unchanged.
    Other backends keep their defaults, and a level set in ``XLA_FLAGS`` wins (the test suite
    sets 0). XLA:CPU's fusion emitters (its default) are named too, unless ``XLA_FLAGS`` chooses:
    the test suite turns them off for compile speed process-wide, and its run-time-bound tests,
    which clear ``XLA_FLAGS`` to get jaxpg's options, then run with them."""
    if jax.default_backend() != "cpu":
        return {}
    flags = os.environ.get("XLA_FLAGS", "")
    options = {}
    if "--xla_backend_optimization_level" not in flags:
        options["xla_backend_optimization_level"] = 1
    if "--xla_cpu_use_fusion_emitters" not in flags:
        options["xla_cpu_use_fusion_emitters"] = True
    return options


def all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


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


def weight_diagnostics(old_networks: dict, new_networks: dict) -> dict:
    """Per network and layer: ``weight_norm/[<network>/]<layer>`` and the realized
    ``effective_lr/[<network>/]<layer>`` (``|W_new - W_old| / |W_old|``) of one iteration."""
    metrics = {}
    for name, new in new_networks.items():
        prefix = f"{name}/" if name else ""
        for layer, value in optim.weight_norms(new).items():
            metrics[f"weight_norm/{prefix}{layer}"] = value
        for layer, value in optim.effective_learning_rates(old_networks[name], new).items():
            metrics[f"effective_lr/{prefix}{layer}"] = value
    return metrics


def _report_progress(progress: ProgressCallback, every: int, step, num_steps: int, iteration, episode_return):
    """Call ``progress`` on the host every ``every`` scan steps and at the last one.

    The condition uses the scan index ``step``, never batched under ``vmap``, so the ``cond`` stays
    a real branch; the absolute ``iteration`` (batched under vmap) is what the host is sent, so
    chunked and resumed runs need no offset.
    """
    due = jnp.logical_or((step + 1) % every == 0, step + 1 == num_steps)

    def send(_):
        jax.debug.callback(progress, iteration, episode_return)

    jax.lax.cond(due, send, lambda _: None, None)


class Trainer(abc.ABC):
    """Base class of the algorithms under the ``make_train`` contract.

    Subclasses set ``algo``, ``Config``, ``HParams``, ``config``, ``default_hparams``,
    ``num_iterations`` and ``steps_per_iteration``, and implement ``init`` and ``step``. The
    state must carry ``iteration`` and ``env_params``; ``step``'s metrics must carry
    ``episode_return``, ``env_steps`` and ``finite``.
    """

    algo: str = ""
    num_iterations: int
    default_hparams: Any

    @abc.abstractmethod
    def init(self, key: jax.Array, hparams=None, env_params=None):
        """The initial training state (``env_params``: one level, or one per env copy)."""

    @abc.abstractmethod
    def step(self, state, hparams):
        """One pure training iteration: ``(state, metrics)``."""

    def networks(self, state) -> dict:
        """The named parameter pytrees of ``state`` that weight diagnostics report on."""
        return {"": state.params}

    def policy(self, state, obs: jax.Array):
        """The policy object the run acts with at raw observations ``obs`` (what ``policy_fn`` and
        ``evaluate`` use): by default the network's policy on the normalized observations.
        Trainers whose action also depends on other state (e.g. GoRL's frozen decoder) override it."""
        from jaxpg.algos.common import normalize_obs

        obs = normalize_obs(state.obs_stats, obs, getattr(self.config, "normalize_obs", False))
        return self.network.apply(state.params, obs, method="policy")

    def replace_levels(self, state, env_params, key: jax.Array | None = None):
        """``state`` acting on new levels (environment params) from the next iteration on: the
        hook a curriculum uses between iterations. Trainers whose environments persist across
        iterations also restart their episodes (``key`` for the resets)."""
        return state.replace(env_params=env_params)

    def run(self, state, hparams=None, num_iterations: int | None = None,
            progress: ProgressCallback | None = None, progress_every: int = 1) -> Result:
        """``num_iterations`` steps from ``state`` in one ``lax.scan``, with weight diagnostics,
        and a host ``progress(iteration, episode_return)`` call every ``progress_every`` steps."""
        hparams = self.default_hparams if hparams is None else hparams
        n = self.num_iterations if num_iterations is None else int(num_iterations)
        every = max(1, int(progress_every))

        def body(state, scan_step):
            new_state, metrics = self.step(state, hparams)
            metrics.update(weight_diagnostics(self.networks(state), self.networks(new_state)))
            if progress is not None:
                _report_progress(progress, every, scan_step, n, new_state.iteration, metrics["episode_return"])
            return new_state, metrics

        state, metrics = jax.lax.scan(body, state, jnp.arange(n))
        return Result(params=state.params, metrics=metrics, state=state, algo=self.algo, config=self.config)

    def jit(self):
        """``jax.jit(self)`` with :func:`compiler_options` (compiled once per trainer and shapes):
        ``result = train.jit()(key, hparams)``. Plain ``jax.jit(train)`` works too, at XLA's
        default options."""
        if getattr(self, "_jitted", None) is None:
            self._jitted = jax.jit(self, static_argnames=("progress", "progress_every"),
                                   compiler_options=compiler_options())
        return self._jitted

    def __call__(self, key: jax.Array, hparams=None, progress: ProgressCallback | None = None,
                 progress_every: int = 1) -> Result:
        if hparams is not None:
            validation.validate(hparams)  # concrete values only; traced ones (under jit) pass
        return self.run(self.init(key, hparams), hparams, progress=progress, progress_every=progress_every)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"
