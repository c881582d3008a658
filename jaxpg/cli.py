"""The ``jaxpg`` command line: ``train``, ``eval`` and ``list``.

    jaxpg train ppo --env CartPole-v1 --seeds 8          # progress bar, summary, curves.png
    jaxpg train reinforce --env Acrobot-v1 --set learning_rate=1e-3 --set hidden_sizes=32,32
    jaxpg train ppo --resume runs/ppo-CartPole-v1-0001  # continue an interrupted run
    jaxpg eval runs/ppo-CartPole-v1-0001
    jaxpg list
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import typing
from functools import partial


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


def parse_overrides(cls, items: list[str]) -> tuple[dict, dict]:
    """Split ``key=value`` strings into config and hyperparameter overrides, typed by their field."""
    config_fields = {f.name: f for f in dataclasses.fields(cls.Config)}
    hparam_fields = {f.name: f for f in dataclasses.fields(cls.HParams)}
    config_hints = {k: str(v) for k, v in typing.get_type_hints(cls.Config).items()}
    reserved = {"env", "total_steps", "progress_every"}
    config, hparams = {}, {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"--set expects key=value, got {item!r}")
        key, text = item.split("=", 1)
        key = key.strip().replace("-", "_")
        if key in hparam_fields:
            hparams[key] = _convert(key, text, float(hparam_fields[key].default), "float")
            if hparams[key] != hparams[key] or hparams[key] in (float("inf"), float("-inf")):
                raise UsageError(f"{key}={text!r} must be a finite number")
        elif key in config_fields and key not in reserved:
            config[key] = _convert(key, text, config_fields[key].default, config_hints.get(key, ""))
        else:
            valid = sorted((set(config_fields) - reserved) | set(hparam_fields))
            raise UsageError(f"unknown setting {key!r}; valid choices: {', '.join(valid)}")
    return config, hparams


def _next_run_dir(root: str, algo: str, env: str) -> str:
    stem = f"{algo}-{env.replace('/', '_')}"
    os.makedirs(root, exist_ok=True)
    used = [d for d in os.listdir(root) if d.startswith(stem + "-")]
    numbers = [int(d.rsplit("-", 1)[1]) for d in used if d.rsplit("-", 1)[1].isdigit()]
    return os.path.join(root, f"{stem}-{max(numbers, default=0) + 1:04d}")


def _enable_compilation_cache() -> None:
    import jax

    cache = os.environ.get("JAXPG_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "jaxpg", "xla"))
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


# -- train --------------------------------------------------------------------------------------
def _summary_table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    value_width = max(32, max(len(v) for _, v in rows))
    line = "+" + "-" * (width + 2) + "+" + "-" * (value_width + 2) + "+"
    body = [f"| {k.ljust(width)} | {v.ljust(value_width)} |" for k, v in rows]
    return "\n".join([line, *body, line])


def _run_info(algo, trainer, hparams, args_seeds, seed, iterations_done) -> dict:
    return {
        "algo": algo,
        "config": dataclasses.asdict(trainer.config),
        "hparams": {k: float(v) for k, v in dataclasses.asdict(hparams).items()},
        "seeds": args_seeds,
        "seed": seed,
        "iterations_done": iterations_done,
        "num_iterations": trainer.num_iterations,
    }


def cmd_train(args) -> int:
    import jax
    import numpy as np

    import jaxpg
    from jaxpg import checkpoint, progress
    from jaxpg.algos import get_algorithm
    from jaxpg.plotting import plot_learning_curves

    _enable_compilation_cache()
    if args.resume:
        info = checkpoint.load_info(args.resume)
        cls = get_algorithm(info["algo"])
        config = checkpoint.config_from_dict(cls.Config, info["config"])
        trainer = cls(config)
        hparams = cls.HParams(**info["hparams"])
        seeds, seed, done = info["seeds"], info["seed"], info["iterations_done"]
        out_dir = args.resume
        algo = info["algo"]
    else:
        algo = args.algo
        try:
            cls = get_algorithm(algo)
        except ValueError as e:
            raise UsageError(str(e)) from None
        if args.env is None:
            raise UsageError("train needs --env NAME (see `jaxpg list`)")
        config_overrides, hparam_overrides = parse_overrides(cls, args.set or [])
        if args.total_steps is not None:
            config_overrides["total_steps"] = args.total_steps
        if args.seeds < 1:
            raise UsageError(f"--seeds must be a positive integer, got {args.seeds}")
        try:
            trainer = jaxpg.make_train(algo, env=args.env, hparams=hparam_overrides, **config_overrides)
        except (ValueError, TypeError) as e:
            raise UsageError(str(e).splitlines()[0]) from None
        iterations = trainer.num_iterations
        every = max(1, iterations // 100)
        trainer = type(trainer)(dataclasses.replace(trainer.config, progress_every=every))
        hparams = cls.HParams(**hparam_overrides)
        trainer.default_hparams = hparams
        seeds, seed, done = args.seeds, args.seed, 0
        out_dir = args.out or _next_run_dir(args.runs_dir, algo, args.env)

    total = trainer.num_iterations
    chunk = args.checkpoint_every or total
    stop_at = total if args.stop_after is None else min(total, done + args.stop_after)
    keys = jax.random.split(jax.random.key(seed), seeds)
    batched_hparams = jax.tree.map(lambda x: np.full((seeds,), x, np.float32), hparams)

    start = time.perf_counter()
    state = jax.jit(jax.vmap(trainer.init))(keys, batched_hparams)
    metrics_parts = []
    if done:
        state, old_metrics = checkpoint.restore(out_dir, state)
        metrics_parts.append(old_metrics)
    run_fns = {}  # one compiled program per chunk length

    compile_seconds = 0.0
    run_seconds = 0.0
    iterations_run = 0
    print(f"jaxpg: {algo} on {trainer.config.env}, {seeds} seed(s), {total} iterations "
          f"x {trainer.steps_per_iteration} steps -> {out_dir}", file=sys.stderr)
    with progress.bar(total=total, desc=f"{algo} {trainer.config.env}", offset=done):
        while done < stop_at:
            n = min(chunk, stop_at - done)
            progress.set_offset(done)
            t0 = time.perf_counter()
            if n not in run_fns:
                lowered = jax.jit(jax.vmap(partial(trainer.run, num_iterations=n))).lower(state, batched_hparams)
                run_fns[n] = lowered.compile()
                compile_seconds += time.perf_counter() - t0
            t0 = time.perf_counter()
            result = run_fns[n](state, batched_hparams)
            jax.block_until_ready(result)
            run_seconds += time.perf_counter() - t0
            state = result.state
            metrics_parts.append(jax.tree.map(np.asarray, result.metrics))
            done += n
            iterations_run += n
            merged = {k: np.concatenate([np.asarray(p[k]) for p in metrics_parts], axis=-1) for k in metrics_parts[0]}
            checkpoint.save(out_dir, state, merged, _run_info(algo, trainer, hparams, seeds, seed, done))
    wall = time.perf_counter() - start
    metrics = {k: np.concatenate([np.asarray(p[k]) for p in metrics_parts], axis=-1) for k in metrics_parts[0]}
    final = jaxpg.Result(params=state.params, metrics=metrics, state=state, algo=algo, config=trainer.config)

    _write_metrics(out_dir, metrics)
    plot = plot_learning_curves(metrics, os.path.join(out_dir, "curves.png"), f"{algo} on {trainer.config.env}")
    try:
        jaxpg.check_finite(final)
    except FloatingPointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if done < total:
        print(f"stopped after {done}/{total} iterations; continue with: jaxpg train {algo} --resume {out_dir}")
        return 0

    eval_returns = np.asarray(jaxpg.evaluate(final, jax.random.key(seed + 10_000), args.eval_episodes))
    per_seed_eval = eval_returns.reshape(seeds, -1).mean(-1)
    train_return = np.asarray(metrics["episode_return"])[:, -1]
    env_steps = int(np.asarray(metrics["env_steps"])[0, -1])
    run_seconds = max(run_seconds, 1e-9)
    rows = [
        ("algorithm / env", f"{algo} / {trainer.config.env}"),
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


# -- eval / list --------------------------------------------------------------------------------
def cmd_eval(args) -> int:
    import jax
    import numpy as np

    import jaxpg
    from jaxpg import checkpoint
    from jaxpg.algos import get_algorithm

    _enable_compilation_cache()
    try:
        info = checkpoint.load_info(args.run_dir)
    except FileNotFoundError as e:
        raise UsageError(str(e)) from None
    cls = get_algorithm(info["algo"])
    trainer = cls(checkpoint.config_from_dict(cls.Config, info["config"]))
    seeds = info["seeds"]
    keys = jax.random.split(jax.random.key(info["seed"]), seeds)
    hparams = jax.tree.map(lambda x: np.full((seeds,), x, np.float32), cls.HParams(**info["hparams"]))
    state_like = jax.jit(jax.vmap(trainer.init))(keys, hparams)
    state, metrics = checkpoint.restore(args.run_dir, state_like)
    result = jaxpg.Result(params=state.params, metrics=metrics, state=state, algo=info["algo"], config=trainer.config)
    returns = np.asarray(jaxpg.evaluate(result, jax.random.key(args.seed), args.episodes, deterministic=not args.stochastic))
    per_seed = returns.reshape(seeds, -1)
    rows = [("run", args.run_dir), ("iterations trained", f"{info['iterations_done']}/{info['num_iterations']}")]
    rows += [(f"seed {i}", f"{r.mean():.1f} +- {r.std():.1f} ({args.episodes} ep)") for i, r in enumerate(per_seed)]
    rows.append(("all seeds", f"{per_seed.mean():.1f} +- {per_seed.mean(-1).std():.1f}"))
    print(_summary_table(rows))
    return 0


def cmd_list(args) -> int:
    import jaxpg

    print("algorithms:   " + ", ".join(jaxpg.ALGORITHMS))
    print("environments: " + ", ".join(jaxpg.envs.list_envs()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxpg", description="JAX-native policy-gradient algorithms")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train an agent")
    train.add_argument("algo", nargs="?", help="algorithm (see `jaxpg list`)")
    train.add_argument("--env", help="environment name (see `jaxpg list`)")
    train.add_argument("--total-steps", type=int, help="environment-step budget per seed")
    train.add_argument("--seeds", type=int, default=1, help="number of seeds, vmapped in one program")
    train.add_argument("--seed", type=int, default=0, help="base seed")
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help="config or hyperparameter override")
    train.add_argument("--out", help="run directory (default runs/ALGO-ENV-NNNN)")
    train.add_argument("--runs-dir", default="runs", help="where new run directories go")
    train.add_argument("--checkpoint-every", type=int, help="iterations between checkpoints (default: at the end)")
    train.add_argument("--stop-after", type=int, help="stop after this many more iterations (resume later)")
    train.add_argument("--resume", metavar="DIR", help="continue the run saved in DIR")
    train.add_argument("--eval-episodes", type=int, default=10)
    train.add_argument("--threshold", type=float, help="count seeds whose eval return reaches this")
    ev = sub.add_parser("eval", help="evaluate a saved run")
    ev.add_argument("run_dir")
    ev.add_argument("--episodes", type=int, default=20)
    ev.add_argument("--seed", type=int, default=1)
    ev.add_argument("--stochastic", action="store_true", help="sample actions instead of the mode")
    sub.add_parser("list", help="list algorithms and environments")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {"train": cmd_train, "eval": cmd_eval, "list": cmd_list}
    try:
        if args.command == "train" and not args.resume and not args.algo:
            raise UsageError("train needs an algorithm name or --resume DIR (see `jaxpg list`)")
        return commands[args.command](args)
    except UsageError as e:
        print(f"jaxpg: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
