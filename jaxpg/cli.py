"""The ``jaxpg`` command line: ``train``, ``eval``, ``meta-train`` and ``list``.

    jaxpg train ppo --env CartPole-v1 --seeds 8          # progress bar, summary, curves.png
    jaxpg train reinforce --env Acrobot-v1 --set learning_rate=1e-3 --set hidden_sizes=32,32
    jaxpg train ppo --resume runs/ppo-CartPole-v1-0001  # continue an interrupted run
    jaxpg eval runs/ppo-CartPole-v1-0001
    jaxpg meta-train --curriculum regret --meta-steps 200   # GROOVE; writes rule.msgpack
    jaxpg train lpg --env gridworld/dense --set rule=runs/meta-train-regret-0001/rule.msgpack
    jaxpg list
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
import typing

from jaxpg.runtime import enable_compilation_cache, use_all_cpu_cores


class UsageError(Exception):
    """A bad command line: printed as one line, exit status 2."""


# -- parsing ------------------------------------------------------------------------------------
def _convert(name: str, text: str, default, hint: str):
    if isinstance(default, bool) or "bool" in hint:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise UsageError(f"{name}={text!r} is not a boolean; valid: true, false")
    if isinstance(default, tuple) or "tuple" in hint:
        try:
            return tuple(int(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise UsageError(f"{name}={text!r} must be comma-separated integers, e.g. 64,64") from None
    if isinstance(default, int) or hint.startswith("int"):
        if text.lower() in ("none",) and "None" in hint:
            return None
        try:
            return int(float(text)) if float(text).is_integer() else int(text)
        except ValueError:
            raise UsageError(f"{name}={text!r} is not an integer") from None
    if isinstance(default, float) or hint == "float":
        try:
            return float(text)
        except ValueError:
            raise UsageError(f"{name}={text!r} is not a number") from None
    return text


# Config fields the CLI sets itself, and the option that sets each.
CLI_OWNED = {
    "env": "--env NAME",
    "total_steps": "--total-steps N",
}


def parse_overrides(cls, items: list[str]) -> tuple[dict, dict]:
    """Split ``key=value`` strings into config and hyperparameter overrides, typed by their field."""
    config_fields = {f.name: f for f in dataclasses.fields(cls.Config)}
    hparam_fields = {f.name: f for f in dataclasses.fields(cls.HParams)}
    config_hints = {k: str(v) for k, v in typing.get_type_hints(cls.Config).items()}
    config, hparams = {}, {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"--set expects key=value, got {item!r}")
        key, text = item.split("=", 1)
        key = key.strip().replace("-", "_")
        if key in CLI_OWNED:
            raise UsageError(f"{key} is not a --set setting; set it with {CLI_OWNED[key]}")
        if key in hparam_fields:
            hparams[key] = _convert(key, text, float(hparam_fields[key].default), "float")
            if hparams[key] != hparams[key] or hparams[key] in (float("inf"), float("-inf")):
                raise UsageError(f"{key}={text!r} must be a finite number")
        elif key in config_fields:
            config[key] = _convert(key, text, config_fields[key].default, config_hints.get(key, ""))
        else:
            valid = sorted((set(config_fields) - set(CLI_OWNED)) | set(hparam_fields))
            raise UsageError(f"unknown setting {key!r}; valid choices: {', '.join(valid)}")
    return config, hparams


# Files a run directory may hold (what --overwrite removes; nothing else is touched).
RUN_FILES = ("run.json", "checkpoints", "metrics.json", "metrics.csv", "curves.png", "summary.json")


def _claim_new_run_dir(root: str, algo: str, env: str) -> str:
    """Create and return ``root/ALGO-ENV-NNNN`` with the next free number."""
    stem = f"{algo}-{env.replace('/', '_')}"
    try:
        os.makedirs(root, exist_ok=True)
        used = [d for d in os.listdir(root) if d.startswith(stem + "-")]
    except OSError as e:
        raise UsageError(f"cannot use --runs-dir {root}: {e.strerror or e}") from None
    number = max([int(d.rsplit("-", 1)[1]) for d in used if d.rsplit("-", 1)[1].isdigit()], default=0) + 1
    while True:
        path = os.path.join(root, f"{stem}-{number:04d}")
        try:
            os.makedirs(path)
            return path
        except FileExistsError:  # another run took it meanwhile
            number += 1
        except OSError as e:
            raise UsageError(f"cannot create a run directory in {root}: {e.strerror or e}") from None


def _check_out_dir(path: str, overwrite: bool) -> None:
    """``--out`` must be a directory we may write, and not hold a run unless ``--overwrite``."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"--out {path} is a file, not a directory")
    if os.path.isdir(path) and os.listdir(path):
        if not overwrite:
            if os.path.exists(os.path.join(path, "run.json")):
                raise UsageError(f"--out {path} holds a run; continue it with --resume {path}, or pass --overwrite to replace it")
            raise UsageError(f"--out {path} is not empty; choose a new directory or pass --overwrite")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent if not os.path.isdir(path) else path, os.W_OK):
        raise UsageError(f"cannot write to --out {path}: {parent} is not a writable directory")


def _prepare_out_dir(path: str, overwrite: bool) -> str:
    """Create ``--out`` (checked by :func:`_check_out_dir`), clearing a replaced run's files."""
    _check_out_dir(path, overwrite)
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".jaxpg-write-test-{os.getpid()}")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as e:
        raise UsageError(f"cannot write to --out {path}: {e.strerror or e}") from None
    if overwrite:
        for name in RUN_FILES:
            target = os.path.join(path, name)
            if os.path.isdir(target):
                shutil.rmtree(target)
            elif os.path.exists(target):
                os.remove(target)
    return path


# -- train --------------------------------------------------------------------------------------
def _summary_table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    value_width = max(32, max(len(v) for _, v in rows))
    line = "+" + "-" * (width + 2) + "+" + "-" * (value_width + 2) + "+"
    body = [f"| {k.ljust(width)} | {v.ljust(value_width)} |" for k, v in rows]
    return "\n".join([line, *body, line])


@dataclasses.dataclass
class RunPlan:
    """What ``jaxpg train`` is about to do: a new run or the continuation of a saved one."""

    algo: str
    trainer: typing.Any
    hparams: typing.Any
    seeds: int
    seed: int
    done: int  # iterations already trained (restored from the checkpoint)
    out_dir: str
    checkpoint_every: int | None = None  # iterations per chunk (None: one chunk to the end)
    info: dict | None = None  # run.json of a resumed run


def _positive(name: str, value) -> None:
    if value is not None and value < 1:
        raise UsageError(f"{name} must be a positive integer, got {value}")


def _check_options(args) -> None:
    """Checks that need no JAX: they run before anything is imported or trained."""
    _positive("--seeds", args.seeds)
    _positive("--total-steps", args.total_steps)
    _positive("--checkpoint-every", args.checkpoint_every)
    _positive("--stop-after", args.stop_after)
    _positive("--eval-episodes", args.eval_episodes)
    if args.resume:
        if args.out:
            raise UsageError(f"--out cannot be combined with --resume: the run continues in {args.resume}")
        if args.set:
            raise UsageError(
                "--set cannot be combined with --resume: a resumed run keeps its settings "
                f"({args.resume}/run.json); start a new run to change them"
            )
        if args.overwrite:
            raise UsageError("--overwrite cannot be combined with --resume (it would discard the run)")
    elif not args.algo:
        raise UsageError("train needs an algorithm name or --resume DIR (see `jaxpg list`)")
    elif args.env is None:
        raise UsageError("train needs --env NAME (see `jaxpg list`)")


def _new_plan(args) -> RunPlan:
    from jaxpg.algos import get_algorithm, make_train

    try:
        cls = get_algorithm(args.algo)
    except ValueError as e:
        raise UsageError(str(e)) from None
    config_overrides, hparam_overrides = parse_overrides(cls, args.set or [])
    if args.total_steps is not None:
        config_overrides["total_steps"] = args.total_steps
    if args.out:  # before building anything: a bad --out costs nothing
        _check_out_dir(args.out, args.overwrite)
    try:
        trainer = make_train(args.algo, env=args.env, hparams=hparam_overrides, **config_overrides)
    except (ValueError, TypeError) as e:
        raise UsageError(str(e).splitlines()[0]) from None
    hparams = trainer.default_hparams
    if args.out:
        out_dir = _prepare_out_dir(args.out, args.overwrite)
    else:
        out_dir = _claim_new_run_dir(args.runs_dir, args.algo, args.env)
    seeds = 1 if args.seeds is None else args.seeds
    seed = 0 if args.seed is None else args.seed
    return RunPlan(args.algo, trainer, hparams, seeds, seed, 0, out_dir, args.checkpoint_every)


def _resume_plan(args) -> RunPlan:
    from jaxpg import checkpoint
    from jaxpg.algos import get_algorithm

    directory = args.resume
    try:
        info = checkpoint.load_info(directory)
        cls = get_algorithm(info["algo"])
        config = checkpoint.config_from_dict(cls.Config, info["config"])
        hparams = cls.HParams(**info["hparams"])
    except (checkpoint.CheckpointError, ValueError, TypeError) as e:
        raise UsageError(f"cannot resume {directory}: {str(e).splitlines()[0]}") from None
    algo = info["algo"]
    for option, given, saved in (
        ("the algorithm", args.algo, algo),
        ("--env", args.env, config.env),
        ("--seeds", args.seeds, info["seeds"]),
        ("--seed", args.seed, info["seed"]),
    ):
        if given is not None and given != saved:
            raise UsageError(
                f"--resume {directory} continues a run with {option} = {saved}; it cannot change to {given} "
                "(start a new run for that)"
            )
    notice = None
    if args.total_steps is not None and args.total_steps != config.total_steps:
        if args.total_steps < config.total_steps:
            raise UsageError(
                f"--total-steps {args.total_steps} is below the run's {config.total_steps}; "
                "a resumed run can only be extended (use --stop-after N to stop early)"
            )
        notice = f"extending the run from total_steps {config.total_steps} to {args.total_steps}"
        if getattr(config, "lr_schedule", "constant") != "constant":
            notice += f" (the {config.lr_schedule} learning-rate schedule now spans the new total)"
        config = dataclasses.replace(config, total_steps=args.total_steps)
    try:
        trainer = cls(config)
    except ValueError as e:
        raise UsageError(f"cannot resume {directory}: {str(e).splitlines()[0]}") from None
    trainer.default_hparams = hparams
    if notice:
        print(f"jaxpg: {notice}: {info['num_iterations']} -> {trainer.num_iterations} iterations", file=sys.stderr)
    # A resumed run keeps checkpointing as it did unless told otherwise.
    every = args.checkpoint_every if args.checkpoint_every is not None else info.get("checkpoint_every")
    return RunPlan(algo, trainer, hparams, info["seeds"], info["seed"], info["iterations_done"], directory, every, info)


def _merge(parts: list[dict]) -> dict:
    """Concatenate per-chunk metric dicts along the iteration axis (the last one)."""
    import numpy as np

    return {k: np.concatenate([np.asarray(p[k]) for p in parts], axis=-1) for k in parts[0]}


def _run_info(plan: RunPlan, iterations_done: int) -> dict:
    return {
        "algo": plan.algo,
        "config": dataclasses.asdict(plan.trainer.config),
        "hparams": {k: float(v) for k, v in dataclasses.asdict(plan.hparams).items()},
        "seeds": plan.seeds,
        "seed": plan.seed,
        "iterations_done": iterations_done,
        "num_iterations": plan.trainer.num_iterations,
        "checkpoint_every": plan.checkpoint_every,
    }


def cmd_train(args) -> int:
    _check_options(args)
    import jax
    import numpy as np

    from jaxpg import checkpoint, progress, sweep
    from jaxpg.algos.trainer import Result, first_nonfinite
    from jaxpg.evaluation import evaluate
    from jaxpg.plotting import plot_learning_curves

    try:  # seeds run in parallel, one shard per core (only possible before JAX's first computation)
        use_all_cpu_cores()
    except RuntimeError:
        pass
    enable_compilation_cache()
    plan = _resume_plan(args) if args.resume else _new_plan(args)
    trainer, seeds, out_dir, done = plan.trainer, plan.seeds, plan.out_dir, plan.done
    total = trainer.num_iterations
    chunk = plan.checkpoint_every or total
    stop_at = total if args.stop_after is None else min(total, done + args.stop_after)
    start = time.perf_counter()
    # Seeds run as one vmapped sweep (sharded over devices when there are several).
    state, batched_hparams = sweep.init(trainer, seeds, plan.hparams, key=jax.random.key(plan.seed))
    metrics_parts = []
    if done:
        try:
            state, old_metrics = checkpoint.restore(out_dir, state, plan.info)
        except checkpoint.CheckpointError as e:
            raise UsageError(f"cannot resume {out_dir}: {e}") from None
        metrics_parts.append(old_metrics)
    saved_at = done if done else None
    runners = {}  # one compiled program per chunk length
    compile_seconds = run_seconds = 0.0
    iterations_run = 0
    nonfinite = None
    title = f"{plan.algo} on {trainer.config.env}"
    print(f"jaxpg: {plan.algo} on {trainer.config.env}, {seeds} seed(s), {total} iterations "
          f"x {trainer.steps_per_iteration} steps -> {out_dir}", file=sys.stderr)
    try:
        with progress.bar(total=total, desc=f"{plan.algo} {trainer.config.env}", initial=done,
                          disable=args.progress == "off") as bar:
            # A live bar only on a terminal: a program with a host callback cannot be stored in
            # the persistent compilation cache, so piped and scripted runs go without one.
            callback = bar.update if (args.progress == "on" or (args.progress == "auto" and sys.stderr.isatty())) else None
            while done < stop_at:
                n = min(chunk, stop_at - done)
                t0 = time.perf_counter()
                if n not in runners:
                    runners[n] = sweep.runner(trainer, n, progress=callback,
                                              progress_every=max(1, total // 100)).compile(state, batched_hparams)
                    compile_seconds += time.perf_counter() - t0
                t0 = time.perf_counter()
                result = runners[n](state, batched_hparams)
                chunk_metrics = jax.tree.map(np.asarray, result.metrics)  # waits for the chunk
                run_seconds += time.perf_counter() - t0
                nonfinite = first_nonfinite(chunk_metrics["finite"])
                if nonfinite is not None:
                    break  # this chunk's state is not saved: the last good checkpoint stays
                state = result.state
                metrics_parts.append(chunk_metrics)
                bar.update(done + n, chunk_metrics["episode_return"][..., -1])  # at least once per chunk
                done += n
                iterations_run += n
                checkpoint.save(out_dir, state, _merge(metrics_parts), _run_info(plan, done))
                saved_at = done
    except KeyboardInterrupt:
        where = f"iteration {saved_at}" if saved_at is not None else "none saved yet"
        print(f"\njaxpg: interrupted; last complete checkpoint: {where}; "
              f"continue with: jaxpg train --resume {out_dir}", file=sys.stderr)
        return 130
    if nonfinite is not None:
        # Show the curves up to and including the bad chunk; the checkpoint set is untouched.
        all_metrics = _merge(metrics_parts + [chunk_metrics])
        _write_metrics(out_dir, all_metrics)
        plot_learning_curves(all_metrics, os.path.join(out_dir, "curves.png"), title)
        kept = (f"the last good checkpoint (iteration {saved_at}) is kept in {out_dir}" if saved_at is not None
                else "no checkpoint had been saved yet (--checkpoint-every N saves earlier states)")
        print(f"jaxpg: error: NaN or inf in training at iteration {done + nonfinite[0]} in {nonfinite[1]} of "
              f"{seeds} seed(s); stopped; {kept}; try a smaller learning rate", file=sys.stderr)
        return 1
    wall = time.perf_counter() - start
    metrics = _merge(metrics_parts)
    final = Result(params=state.params, metrics=metrics, state=state, algo=plan.algo, config=trainer.config)

    _write_metrics(out_dir, metrics)
    plot_learning_curves(metrics, os.path.join(out_dir, "curves.png"), title)
    if done < total:
        print(f"stopped after {done}/{total} iterations; continue with: jaxpg train --resume {out_dir}")
        return 0

    eval_returns = np.asarray(evaluate(final, jax.random.key(plan.seed + 10_000), args.eval_episodes))
    per_seed_eval = eval_returns.reshape(seeds, -1).mean(-1)
    train_return = np.asarray(metrics["episode_return"])[:, -1]
    env_steps = int(np.asarray(metrics["env_steps"])[0, -1])
    run_seconds = max(run_seconds, 1e-9)
    rows = [
        ("algorithm / env", f"{plan.algo} / {trainer.config.env}"),
        ("seeds x env steps", f"{seeds} x {env_steps:,}"),
        ("final train return", f"{train_return.mean():.1f} +- {train_return.std():.1f}"),
        (f"eval return ({args.eval_episodes} ep, mode)", f"{per_seed_eval.mean():.1f} +- {per_seed_eval.std():.1f}"),
        ("seeds with eval >= threshold", f"{int((per_seed_eval >= args.threshold).sum())}/{seeds} (>= {args.threshold:g})")
        if args.threshold is not None else ("eval return min / max", f"{per_seed_eval.min():.1f} / {per_seed_eval.max():.1f}"),
        ("compile / run / total time", f"{compile_seconds:.1f} s / {run_seconds:.1f} s / {wall:.1f} s"),
        ("env steps per second", f"{seeds * trainer.steps_per_iteration * iterations_run / run_seconds:,.0f} (all seeds)"),
        ("outputs", out_dir),
    ]
    print(_summary_table(rows))
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump({"eval_return_per_seed": per_seed_eval.tolist(), "train_return_per_seed": train_return.tolist(),
                   "compile_seconds": compile_seconds, "run_seconds": run_seconds, "env_steps": env_steps}, f, indent=2)
    return 0


def _write_metrics(out_dir: str, metrics: dict) -> None:
    import numpy as np

    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump({k: np.asarray(v).tolist() for k, v in metrics.items()}, f)
    names = sorted(metrics)
    seeds, iterations = np.asarray(metrics["episode_return"]).shape
    with open(os.path.join(out_dir, "metrics.csv"), "w") as f:
        f.write("seed,iteration," + ",".join(names) + "\n")
        for s in range(seeds):
            for i in range(iterations):
                values = [np.asarray(metrics[k])[s, i] for k in names]
                f.write(f"{s},{i}," + ",".join(f"{float(v):.6g}" for v in values) + "\n")


# -- meta-train ---------------------------------------------------------------------------------
def _meta_config(args, base: dict):
    from jaxpg.meta import MetaConfig

    fields = {f.name: f for f in dataclasses.fields(MetaConfig)}
    values = dict(base)
    for name, option in (("curriculum", args.curriculum), ("env", args.env), ("meta_steps", args.meta_steps)):
        if option is not None:
            values[name] = option
    for item in args.set or []:
        key, sep, text = item.partition("=")
        if not sep:
            raise UsageError(f"--set expects KEY=VALUE, got {item!r}")
        if key not in fields:
            raise UsageError(f"unknown setting {key!r}; valid choices: {', '.join(sorted(fields))}")
        values[key] = _convert(key, text, fields[key].default, str(fields[key].type))
    try:
        return MetaConfig(**values)
    except TypeError as e:
        raise UsageError(str(e)) from None


def cmd_meta_train(args) -> int:
    """Meta-train an LPG update rule (GROOVE: ``--curriculum regret``; LPG: ``uniform``), with
    checkpoints, resume and the rule saved as ``rule.msgpack`` at every checkpoint."""
    import jax
    import numpy as np

    from jaxpg import checkpoint, meta, progress
    from jaxpg.plotting import plot_meta_training

    enable_compilation_cache()
    if args.resume:
        try:
            info = checkpoint.load_info(args.resume)
        except checkpoint.CheckpointError as e:
            raise UsageError(f"cannot resume {args.resume}: {e}") from None
        if info["algo"] != "meta-train":
            raise UsageError(f"{args.resume} holds a `jaxpg train` run, not a meta-training run")
        config, out_dir, done, seed = _meta_config(args, info["config"]), args.resume, info["iterations_done"], info["seed"]
    else:
        config = _meta_config(args, {})
        seed = 0 if args.seed is None else args.seed
        out_dir = _prepare_out_dir(args.out, args.overwrite) if args.out else _claim_new_run_dir(
            args.runs_dir, "meta-train", config.curriculum)
        done = 0
    for name in ("checkpoint_every", "stop_after"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    try:
        trainer = meta.MetaTrainer(config)
    except ValueError as e:
        raise UsageError(str(e)) from None
    total = config.meta_steps
    stop_at = total if args.stop_after is None else min(total, done + args.stop_after)
    chunk = args.checkpoint_every or total
    state = jax.jit(trainer.init)(jax.random.key(seed))
    parts = []
    if done:
        try:
            state, old = checkpoint.restore(out_dir, state)
        except checkpoint.CheckpointError as e:
            raise UsageError(f"cannot resume {out_dir}: {e}") from None
        parts.append(old)
    record = lambda n: {"algo": "meta-train", "config": dataclasses.asdict(config), "hparams": {},  # noqa: E731
                        "seeds": 1, "seed": seed, "iterations_done": n, "num_iterations": total}
    print(f"jaxpg: meta-train ({config.curriculum} levels, {config.env}), {total} meta-steps x {config.num_agents} "
          f"agents -> {out_dir}", file=sys.stderr)
    runners = {}
    with progress.bar(total=total, desc=f"meta-train {config.curriculum}", initial=done,
                      disable=args.progress == "off") as bar:
        while done < stop_at:
            n = min(chunk, stop_at - done)
            if n not in runners:
                runners[n] = jax.jit(lambda s, n=n: trainer.run(s, n))
            state, metrics = runners[n](state)
            metrics = jax.tree.map(np.asarray, metrics)
            if not all(np.isfinite(metrics[k]).all() for k in ("meta_loss", "meta_pg")):
                bad = int(np.argwhere(~np.isfinite(metrics["meta_loss"]))[0, 0]) if not np.isfinite(
                    metrics["meta_loss"]).all() else 0
                print(f"jaxpg: error: NaN or inf in meta-training at meta-step {done + bad}; the last good "
                      f"checkpoint is kept in {out_dir}", file=sys.stderr)
                return 1
            parts.append(metrics)
            done += n
            bar.update(done, metrics["meta_loss"][-1])
            merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
            checkpoint.save(out_dir, state, merged, record(done))
            meta.save_rule(os.path.join(out_dir, "rule.msgpack"), trainer.network, state.eta,
                           {"config": dataclasses.asdict(config), "meta_steps": done, "seed": seed})
    merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    plot_meta_training(merged, os.path.join(out_dir, "curves.png"), f"meta-train ({config.curriculum} levels)")
    last = merged["meta_loss"][-max(1, done // 10):]
    rows = [("curriculum / env", f"{config.curriculum} / {config.env}"), ("meta-steps", f"{done}/{total}"),
            ("meta-loss (last 10%)", f"{last.mean():.4f}"),
            ("rule", os.path.join(out_dir, "rule.msgpack")),
            ("train an agent with it", f"jaxpg train lpg --env gridworld/dense --set rule={out_dir}/rule.msgpack")]
    print(_summary_table(rows))
    if done < total:
        print(f"stopped after {done}/{total} meta-steps; continue with: jaxpg meta-train --resume {out_dir}")
    return 0


# -- eval / list --------------------------------------------------------------------------------
def cmd_eval(args) -> int:
    _positive("--episodes", args.episodes)
    import jax
    import numpy as np

    from jaxpg import checkpoint, sweep
    from jaxpg.algos import get_algorithm
    from jaxpg.algos.trainer import Result
    from jaxpg.evaluation import evaluate

    enable_compilation_cache()
    try:
        info = checkpoint.load_info(args.run_dir)
        cls = get_algorithm(info["algo"])
        trainer = cls(checkpoint.config_from_dict(cls.Config, info["config"]))
        hparams = cls.HParams(**info["hparams"])
        seeds = info["seeds"]
        state_like, _ = sweep.init(trainer, seeds, hparams, key=jax.random.key(info["seed"]))
        state, metrics = checkpoint.restore(args.run_dir, state_like, info)
    except (checkpoint.CheckpointError, ValueError, TypeError) as e:
        raise UsageError(f"cannot evaluate {args.run_dir}: {str(e).splitlines()[0]}") from None
    result = Result(params=state.params, metrics=metrics, state=state, algo=info["algo"], config=trainer.config)
    returns = np.asarray(evaluate(result, jax.random.key(args.seed), args.episodes, deterministic=not args.stochastic))
    per_seed = returns.reshape(seeds, -1)
    rows = [("run", args.run_dir), ("iterations trained", f"{info['iterations_done']}/{info['num_iterations']}")]
    rows += [(f"seed {i}", f"{r.mean():.1f} +- {r.std():.1f} ({args.episodes} ep)") for i, r in enumerate(per_seed)]
    rows.append(("all seeds", f"{per_seed.mean():.1f} +- {per_seed.mean(-1).std():.1f}"))
    print(_summary_table(rows))
    return 0


def cmd_list(args) -> int:
    from jaxpg.algos import ALGORITHMS
    from jaxpg.envs import list_envs

    print("algorithms:   " + ", ".join(ALGORITHMS))
    print("environments: " + ", ".join(list_envs()))
    from jaxpg.envs.tokens import TASKS
    from jaxpg.losses.sequence import RECIPES

    print("token tasks (grpo --env): " + ", ".join(f"seq/{name}" for name in TASKS))
    from jaxpg.envs.inventory import TASKS as INVENTORY_TASKS

    print("inventory tasks (hdpo --env): " + ", ".join(f"inventory/{name}" for name in INVENTORY_TASKS))
    print("sequence recipes (grpo --set recipe=NAME): " + ", ".join(sorted(RECIPES)))
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line in one line (exit status 2), like our own errors."""

    def error(self, message):
        self.exit(2, f"jaxpg: error: {message} (see `{self.prog} --help`)\n")


def _add_run_directory_options(parser: argparse.ArgumentParser, stem: str, unit: str) -> None:
    """Where a run goes and how it is checkpointed, stopped and resumed (``train`` and ``meta-train``)."""
    parser.add_argument("--out", help=f"run directory (default runs/{stem}-NNNN); must be new or empty")
    parser.add_argument("--overwrite", action="store_true", help="let --out replace the run already in it")
    parser.add_argument("--runs-dir", default="runs", help="where new run directories go")
    parser.add_argument("--checkpoint-every", type=int, help=f"{unit} between checkpoints (default: at the end)")
    parser.add_argument("--stop-after", type=int, help=f"stop after this many more {unit} (resume later)")
    parser.add_argument("--resume", metavar="DIR", help="continue the run saved in DIR")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="jaxpg", description="JAX-native policy-gradient algorithms")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    train = sub.add_parser("train", help="train an agent")
    train.add_argument("algo", nargs="?", help="algorithm (see `jaxpg list`)")
    train.add_argument("--env", help="environment name (see `jaxpg list`)")
    train.add_argument("--total-steps", type=int, help="environment-step budget per seed")
    train.add_argument("--seeds", type=int, help="number of seeds, vmapped in one program (default 1)")
    train.add_argument("--seed", type=int, help="base seed (default 0)")
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help="config or hyperparameter override")
    _add_run_directory_options(train, "ALGO-ENV", "iterations")
    train.add_argument("--eval-episodes", type=int, default=10, help="evaluation episodes per seed at the end")
    train.add_argument("--threshold", type=float, help="count seeds whose eval return reaches this")
    train.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                       help="live progress from inside the run: auto = when stderr is a terminal")
    ev = sub.add_parser("eval", help="evaluate a saved run")
    ev.add_argument("run_dir")
    ev.add_argument("--episodes", type=int, default=20)
    ev.add_argument("--seed", type=int, default=1)
    ev.add_argument("--stochastic", action="store_true", help="sample actions instead of the mode")
    mt = sub.add_parser("meta-train", help="meta-train a learned update rule (GROOVE / LPG)")
    mt.add_argument("--curriculum", help="uniform (LPG: random levels), regret (GROOVE) or pvl (positive value "
                    "loss); default uniform")
    mt.add_argument("--env", help="level family (default gridworld/small)")
    mt.add_argument("--meta-steps", type=int, help="meta-gradient steps (default 100)")
    mt.add_argument("--set", action="append", metavar="KEY=VALUE", help="a MetaConfig field")
    mt.add_argument("--seed", type=int, help="seed (default 0)")
    _add_run_directory_options(mt, "meta-train-CURRICULUM", "meta-steps")
    mt.add_argument("--progress", choices=("auto", "on", "off"), default="auto", help="progress bar")
    sub.add_parser("list", help="list algorithms and environments")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {"train": cmd_train, "eval": cmd_eval, "list": cmd_list, "meta-train": cmd_meta_train}
    try:
        return commands[args.command](args)
    except UsageError as e:
        print(f"jaxpg: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
