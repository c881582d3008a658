"""brax's own PPO trainer (``brax.training.agents.ppo.train``) for benchmarks/peers.py, run in a
fresh process with the jaxpg venv's Python (brax is a jaxpg dependency).

    python benchmarks/peers/brax_worker.py '{"env": "inverted_pendulum", "backend": "generalized",
                                             "total_steps": N, "num_envs": 32, "num_steps": 64,
                                             "update_epochs": 4, "num_minibatches": 4, ...}'

brax's ``train`` is a Python loop around jitted pieces; it cannot be compiled apart from running.
With ``num_evals=3`` it runs: an evaluation of the initial policy, a first training epoch (half of
the steps; its time includes compiling the training step), an evaluation, a second training epoch
(the same program, already compiled: brax's own ``training/sps`` for it is the steady-state
throughput), and a final evaluation, whose mean return is the final return. Each evaluation
runs ``num_eval_envs`` episodes of ``episode_length`` steps with sampled actions. Prints one
``RESULT {json}`` line with the whole call's wall time and brax's own timings of its parts.
"""

import time

T0 = time.perf_counter()  # before jax: the import times below are the process's own

import jax  # noqa: E402

T_JAX = time.perf_counter()
import functools  # noqa: E402
import warnings  # noqa: E402

with warnings.catch_warnings():  # brax announces on import and env build that it is unmaintained
    warnings.simplefilter("ignore")
    from brax import envs  # noqa: E402
    from brax.training.agents.ppo import networks as ppo_networks  # noqa: E402
    from brax.training.agents.ppo import train as ppo  # noqa: E402

T_BRAX = time.perf_counter()

from _common import disable_compilation_cache, emit, spec_from_argv, versions  # noqa: E402

NUM_EVALS = 3  # initial, after epoch 1, after epoch 2 (final); see the module docstring


def _device_put_replicated(tree, devices):
    """``jax.device_put_replicated`` (removed from jax, still called by brax 0.14.2's trainer once,
    to place the initial training state): a copy per device along a new leading axis.

    The copies are laid out exactly like the outputs of brax's ``pmap`` (a mesh over the devices
    whose axis is brax's pmap axis name); any other layout, or weak types, makes every later call
    of brax's jitted training epoch and evaluator see new input types and compile again."""
    import jax.numpy as jnp
    import numpy as np

    axis = getattr(ppo, "_PMAP_AXIS_NAME", "i")
    sharding = jax.sharding.NamedSharding(jax.sharding.Mesh(np.array(devices), (axis,)),
                                          jax.sharding.PartitionSpec(axis))

    def replicate(x):
        x = jnp.asarray(x)
        return jax.device_put(jnp.stack([jnp.asarray(x, dtype=x.dtype)] * len(devices)), sharding)

    return jax.tree.map(replicate, tree)


def install_jax_shims() -> list[str]:
    """Put back what brax's trainer needs and this jax no longer has; returns what was patched
    (recorded in the results). Only setup code calls it, never the timed training loop."""
    patched = []
    try:
        jax.device_put_replicated  # noqa: B018  (raises AttributeError where it was removed)
    except AttributeError:
        jax.device_put_replicated = _device_put_replicated
        patched.append("jax.device_put_replicated")
    return patched


def train_kwargs(spec: dict) -> dict:
    """jaxpg's PPO settings in brax's terms.

    brax collects ``batch_size * num_minibatches / num_envs`` unrolls of ``unroll_length`` steps
    per env each training step; with ``batch_size = num_envs / num_minibatches`` that is one
    unroll of ``num_steps`` per env, i.e. jaxpg's iteration of ``num_envs x num_steps``; a
    minibatch then holds ``batch_size`` whole unrolls (jaxpg shuffles single transitions).
    """
    num_envs, minibatches = spec["num_envs"], spec["num_minibatches"]
    if num_envs % minibatches:
        raise ValueError("brax's minibatches are whole unrolls: num_envs must be divisible by num_minibatches")
    network_factory = functools.partial(
        ppo_networks.make_ppo_networks,
        policy_hidden_layer_sizes=tuple(spec["hidden_sizes"]),
        value_hidden_layer_sizes=tuple(spec["hidden_sizes"]),
        activation=getattr(jax.nn, spec["activation"]),
    )
    return dict(
        num_timesteps=spec["total_steps"],
        num_envs=num_envs,
        episode_length=spec["episode_length"],
        unroll_length=spec["num_steps"],
        batch_size=num_envs // minibatches,
        num_minibatches=minibatches,
        num_updates_per_batch=spec["update_epochs"],
        learning_rate=spec["learning_rate"],  # constant: brax has no linear annealing
        entropy_cost=spec["ent_coef"],
        discounting=spec["gamma"],
        gae_lambda=spec["gae_lambda"],
        clipping_epsilon=spec["clip_eps"],
        clipping_epsilon_value=spec["clip_eps"],  # jaxpg clips the value loss with the same eps
        vf_loss_coefficient=spec["vf_coef"],
        max_grad_norm=spec["max_grad_norm"],
        normalize_advantage=True,
        normalize_observations=spec["normalize_obs"],
        network_factory=network_factory,
        num_evals=NUM_EVALS,
        num_eval_envs=spec["eval_episodes"],
        deterministic_eval=False,
        seed=0,
    )


def main() -> None:
    spec = spec_from_argv()
    disable_compilation_cache(jax)
    shims = install_jax_shims()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = envs.get_environment(spec["env"], backend=spec["backend"])
    kwargs = train_kwargs(spec)
    built = time.perf_counter()
    progress = []  # (env steps, metrics) at every evaluation
    kwargs["progress_fn"] = lambda step, metrics: progress.append((int(step), {k: float(v) for k, v in metrics.items()}))
    call_start = time.perf_counter()
    _, _, _ = ppo.train(environment=env, **kwargs)
    call_s = time.perf_counter() - call_start
    if len(progress) != NUM_EVALS:
        raise RuntimeError(f"expected {NUM_EVALS} progress reports from brax, got {len(progress)}")
    (_, initial), (steps_1, after_1), (steps_2, final) = progress
    epoch_1_s = after_1["training/walltime"]
    epoch_2_s = final["training/walltime"] - epoch_1_s
    eval_s = [m["eval/epoch_eval_time"] for _, m in progress]
    emit({
        "library": "brax",
        "versions": versions("brax", "jax", "jaxlib", "flax", "optax", "mujoco", "numpy"),
        "backend": jax.default_backend(),
        "env_backend": env.backend,
        "jax_shims": shims,
        "settings": {k: v for k, v in kwargs.items() if k not in ("network_factory", "progress_fn")},
        "env_steps_per_run": steps_2,
        "import_jax_s": T_JAX - T0,
        "import_lib_s": T_BRAX - T0,  # brax.envs and brax.training.agents.ppo: includes jax
        "build_s": built - start,
        # The whole ppo.train call in a fresh process: compiles, both epochs, 3 evaluations.
        "first_call_s": call_s,
        "imports_build_first_call_s": time.perf_counter() - T0,
        "epoch_steps": [steps_1, steps_2 - steps_1],
        "epoch_s": [epoch_1_s, epoch_2_s],
        # Epoch 1 runs the same number of steps as epoch 2 plus the training step's compile.
        "train_compile_estimate_s": epoch_1_s - epoch_2_s,
        "eval_s": eval_s,  # the first includes compiling the evaluator
        "eval_episodes": spec["eval_episodes"],
        "eval_steps_each": spec["eval_episodes"] * spec["episode_length"],
        "other_s": call_s - epoch_1_s - epoch_2_s - sum(eval_s),  # setup, init, resets, logging
        "steps_per_s": final["training/sps"],  # brax's own figure for epoch 2
        "initial_eval_return": initial["eval/episode_reward"],
        "final_eval_return": final["eval/episode_reward"],
        "final_eval_episode_length": final["eval/avg_episode_length"],
    })


if __name__ == "__main__":
    main()
