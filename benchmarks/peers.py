"""jaxpg next to peer libraries, at identical settings, in one invocation; prints jaxpg/peer ratios.

    python benchmarks/peers.py [--quick] [--only cartpole|brax] [--out benchmarks/results]

Two comparisons (issue 9):

* ``cartpole``: PPO on gymnax CartPole-v1, jaxpg against rejax 0.1.3, at PureJaxRL's CartPole
  settings: 4 envs x 128 steps, 4 epochs x 4 minibatches, 64x64 tanh actor and critic, constant
  lr 2.5e-4 (no annealing, for both), gamma 0.99, lambda 0.95, clip 0.2, vf 0.5, entropy 0.01,
  max_grad_norm 0.5, 524,288 env steps. rejax needs gymnax 0.0.9 (jaxpg pins gymnax 1.0.1), so it
  runs from its own virtual environment, built on first use under ``benchmarks/.peer-venvs/``
  with the pinned versions below (the same jax/jaxlib/flax/optax as jaxpg: the same XLA compiles
  both, so the ratios measure the libraries).
* ``brax``: PPO on brax inverted_pendulum (generalized pipeline), jaxpg against brax's own
  trainer ``brax.training.agents.ppo.train`` (from the jaxpg venv), at jaxpg's inverted_pendulum
  settings of benchmarks/learning.py: 32 envs x 64 steps (brax: unroll_length 64, batch_size 8 x
  4 minibatches, i.e. one unroll per env per update), 4 epochs, 64x64 tanh, constant lr 1e-3,
  no entropy bonus, observation normalization, value clipping, 299,008 env steps.

Every measurement runs in a fresh worker process (benchmarks/peers/*_worker.py; one JSON line
back) with the persistent compilation cache disabled, libraries interleaved (jaxpg, peer, jaxpg,
peer for ``--rounds 2``) so that drift in the machine's load hits both alike. Per process:

(a) import times (``import jax`` alone, then the library, both counted from process start) and
    the process's first ``jax.jit(train)(key, ...)`` (compile + full run);
(b) trace+lower and XLA compile of a freshly built trainer (``jit(train).lower(...).compile()``);
(c) env steps/s of 1 seed: best of ``--repeats`` calls of that executable;
(d) total env steps/s of 8 seeds, ``jax.jit(jax.vmap(train))``;
(e) the final return: 128 fresh episodes per seed with actions sampled from the final policy
    (rejax's and brax's own evaluation protocol), averaged over seeds; outside all timed regions.

brax's trainer is a Python loop around jitted pieces and cannot be compiled apart from running;
it is timed as a whole and with its own per-epoch timings (see benchmarks/peers/brax_worker.py).
Times are the best over rounds; every value of every round is in the JSON file.

Writes ``peers.json`` and ``peers.md`` to ``--out`` (``peers-quick.*`` with ``--quick``, tiny
budgets for a smoke test). ``--only`` runs one comparison and keeps the other's previous results.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import time

from machine import cpu_model, cpus_available  # benchmarks/machine.py (this script's folder)

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
WORKERS = HERE / "peers"
PEER_VENVS = HERE / ".peer-venvs"

# rejax 0.1.3 and what it needs. jax/jaxlib/flax/optax/chex/distrax (and distrax's tfp-nightly)
# are jaxpg's own pins (pyproject.toml): with them rejax's PPO runs unchanged and both libraries
# compile with the same XLA. gymnax 0.0.9 is the version rejax 0.1.3 was built against; its
# hard dependencies (gymnasium, matplotlib, seaborn) are pinned to jaxpg's versions too.
REJAX_VERSION = "0.1.3"
REJAX_PINS = (
    f"rejax=={REJAX_VERSION}",
    "gymnax==0.0.9",
    "jax==0.10.2",
    "jaxlib==0.10.2",
    "flax==0.12.8",
    "optax==0.2.8",
    "chex==0.1.92",
    "distrax==0.1.9",
    "tfp-nightly==0.26.0.dev20261027",
    "numpy==2.4.6",
    "PyYAML==6.0.4",
    "gymnasium==1.3.0",
    "matplotlib==3.11.2",
    "seaborn==0.13.2",
)

NUM_SEEDS = 8
EVAL_EPISODES = 128
SOLVED_CARTPOLE = 400.0  # of CartPole-v1's maximum 500

# PureJaxRL's CartPole PPO, once; each library's spelling is derived from it.
CARTPOLE = dict(
    total_steps=524_288, num_envs=4, num_steps=128, update_epochs=4, num_minibatches=4,
    hidden_sizes=(64, 64), activation="tanh", learning_rate=2.5e-4, gamma=0.99, gae_lambda=0.95,
    clip_eps=0.2, vf_coef=0.5, ent_coef=0.01, max_grad_norm=0.5,
)
# jaxpg's inverted_pendulum settings (benchmarks/learning.py), lr kept constant (brax's only
# non-adaptive schedule); total steps a whole number of 2048-step iterations, and even, so that
# brax's two training epochs (see brax_worker.py) are equal halves.
INVERTED_PENDULUM = dict(
    total_steps=146 * 2048, num_envs=32, num_steps=64, update_epochs=4, num_minibatches=4,
    hidden_sizes=(64, 64), activation="tanh", learning_rate=1e-3, gamma=0.99, gae_lambda=0.95,
    clip_eps=0.2, vf_coef=0.5, ent_coef=0.0, max_grad_norm=0.5, normalize_obs=True,
    backend="generalized", episode_length=1000,
)
QUICK_STEPS = {"cartpole": 16 * 512, "brax": 4 * 2048}
QUICK_EVAL_EPISODES = 16


# -- the settings in each library's terms -------------------------------------------------------

def jaxpg_cartpole_spec(s: dict, seeds: int, repeats: int, episodes: int) -> dict:
    # The PPOConfig/PPOHParams defaults are these settings already; spelled out so that a change
    # of a default cannot silently change the comparison.
    overrides = {k: s[k] for k in ("total_steps", "num_envs", "num_steps", "update_epochs", "num_minibatches",
                                   "hidden_sizes", "activation", "learning_rate", "gamma", "gae_lambda",
                                   "clip_eps", "vf_coef", "ent_coef", "max_grad_norm")}
    overrides["lr_schedule"] = "constant"  # jaxpg anneals linearly by default; rejax cannot
    return {"env": "CartPole-v1", "overrides": overrides, "seeds": seeds, "repeats": repeats, "eval_episodes": episodes}


def rejax_cartpole_spec(s: dict, seeds: int, repeats: int, episodes: int) -> dict:
    config = dict(
        env="CartPole-v1",
        num_envs=s["num_envs"],
        num_steps=s["num_steps"],
        num_epochs=s["update_epochs"],  # rejax's default is 8
        num_minibatches=s["num_minibatches"],
        learning_rate=s["learning_rate"],  # a constant in rejax's Adam
        gamma=s["gamma"],
        gae_lambda=s["gae_lambda"],
        clip_eps=s["clip_eps"],
        vf_coef=s["vf_coef"],
        ent_coef=s["ent_coef"],
        max_grad_norm=s["max_grad_norm"],  # rejax: optax.clip, element-wise (jaxpg: global norm)
        total_timesteps=s["total_steps"],
        # One evaluation period spanning the whole run: the training loop is a single fori_loop of
        # total/batch iterations (the worker replaces the evaluation itself by a no-op).
        eval_freq=s["total_steps"],
        skip_initial_evaluation=True,
        # rejax's default activation is swish.
        agent_kwargs={"activation": s["activation"], "hidden_layer_sizes": list(s["hidden_sizes"])},
        normalize_observations=False,
        normalize_rewards=False,
    )
    return {"config": config, "seeds": seeds, "repeats": repeats, "eval_episodes": episodes}


def jaxpg_brax_spec(s: dict, repeats: int, episodes: int) -> dict:
    overrides = {k: s[k] for k in ("total_steps", "num_envs", "num_steps", "update_epochs", "num_minibatches",
                                   "hidden_sizes", "activation", "learning_rate", "gamma", "gae_lambda",
                                   "clip_eps", "vf_coef", "ent_coef", "max_grad_norm", "normalize_obs")}
    overrides["lr_schedule"] = "constant"
    overrides["env_kwargs"] = [["backend", s["backend"]], ["episode_length", s["episode_length"]]]
    return {"env": "brax/inverted_pendulum", "overrides": overrides, "seeds": 0, "repeats": repeats,
            "eval_episodes": episodes}


def brax_spec(s: dict, episodes: int) -> dict:
    return {**s, "hidden_sizes": list(s["hidden_sizes"]), "env": "inverted_pendulum", "eval_episodes": episodes}


# -- processes -------------------------------------------------------------------------------

def worker_environment(own_checkout: bool) -> dict:
    """The environment of a worker: no persistent compilation cache, whatever the caller set.

    ``own_checkout``: the jaxpg worker imports this working tree's jaxpg; a peer's worker gets no
    PYTHONPATH at all, so that nothing from the jaxpg venv or checkout can leak into it."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE")) and k != "PYTHONPATH"}
    env["JAX_ENABLE_COMPILATION_CACHE"] = "false"
    if own_checkout:
        env["PYTHONPATH"] = str(REPO)
    return env


def ensure_peer_venv(name: str, pins: tuple[str, ...]) -> pathlib.Path:
    """The Python of ``benchmarks/.peer-venvs/<name>``, built with ``pins`` unless it already was.

    A marker file records the pins it was built with; other pins rebuild it from scratch, so a
    stale venv can never be measured by mistake."""
    root = PEER_VENVS / name
    python = root / "bin" / "python"
    marker = root / "peers-pins.json"
    if python.exists() and marker.exists() and json.loads(marker.read_text()) == list(pins):
        return python
    if root.exists():
        shutil.rmtree(root)
    print(f"building {root.relative_to(REPO)} ({len(pins)} pinned packages; a few minutes, once)", flush=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q", *pins],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"pip could not install the {name} venv:\n{(proc.stdout + proc.stderr)[-4000:]}")
    marker.write_text(json.dumps(list(pins)) + "\n")
    print(f"  built in {time.perf_counter() - start:.0f} s", flush=True)
    return python


def run_worker(python: pathlib.Path | str, script: str, spec: dict, own_checkout: bool) -> dict:
    """One fresh process; its RESULT line as a dict, plus the process's wall time."""
    start = time.perf_counter()
    proc = subprocess.run([str(python), str(WORKERS / script), json.dumps(spec)], cwd=REPO,
                          env=worker_environment(own_checkout), capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    lines = proc.stdout.splitlines()
    results = [line for line in lines if line.startswith("RESULT ")]
    if proc.returncode != 0 or not results:
        raise RuntimeError(f"{script} failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-6000:]}")
    for line in lines:
        if line.startswith("  "):  # the worker's own progress notes
            print(line, flush=True)
    result = json.loads(results[-1][len("RESULT "):])
    result["process_wall_s"] = wall
    return result


def interleaved(runs: dict, rounds: int) -> dict:
    """``runs``: label -> zero-argument function running one worker. Returns label -> results of
    every round, the labels alternating within each round (jaxpg, peer, jaxpg, peer, ...)."""
    out = {label: [] for label in runs}
    for r in range(rounds):
        for label, run in runs.items():
            print(f"[round {r + 1}/{rounds}] {label} ...", flush=True)
            out[label].append(run())
            print(f"  {label}: process {out[label][-1]['process_wall_s']:.0f} s", flush=True)
    return out


# -- summaries ------------------------------------------------------------------------------

def best(runs: list[dict], path: str, larger: bool = False) -> float | None:
    """The best value over rounds of ``a.b.c`` (smallest time, or largest rate with ``larger``)."""
    values = []
    for run in runs:
        value = run
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            values.append(value)
    if not values:
        return None
    return max(values) if larger else min(values)


def row(name: str, ours, peer, target: str = "", met: bool | None = None, ratio: bool = True, unit: str = "s") -> dict:
    return {
        "measurement": name,
        "jaxpg": ours,
        "peer": peer,
        "ratio": ours / peer if ratio and ours is not None and peer else None,
        "unit": unit,
        "target": target,
        "met": met,
    }


def cartpole_rows(ours: list[dict], peer: list[dict]) -> list[dict]:
    o = lambda path, larger=False: best(ours, path, larger)  # noqa: E731
    p = lambda path, larger=False: best(peer, path, larger)  # noqa: E731
    single, vmap = o("single.steps_per_s", True), o("vmap.steps_per_s", True)
    peer_single, peer_vmap = p("single.steps_per_s", True), p("vmap.steps_per_s", True)
    rows = [
        row("`import jax` (fresh process)", o("import_jax_s"), p("import_jax_s")),
        row("`import jaxpg` alone (lazy facade; incl. jax)", o("import_lib_facade_s"), None, ratio=False),
        row("`import jaxpg; jaxpg.make_train` / `import rejax` (incl. jax)", o("import_lib_s"), p("import_lib_s"),
            target="jaxpg <= import jax + 0.5 s",
            met=_le(o("import_lib_s"), _add(o("import_jax_s"), 0.5))),
        # jaxpg imports gymnax when a trainer is built, rejax when it is imported: compare the sum.
        row("build the trainer (`make_train` / `PPO.create`)", o("build_s"), p("build_s"), ratio=False),
        row("imports + build (ready to train)", _add(o("import_lib_s"), o("build_s")),
            _add(p("import_lib_s"), p("build_s"))),
        row("first call in the process, compile + full run (`train.jit()(key)` / `jit(algo.train)(key)`)", o("first_call_s"), p("first_call_s"),
            target="ratio <= 0.6", met=_le(_ratio(o("first_call_s"), p("first_call_s")), 0.6)),
        row("imports + build + first call", o("imports_build_first_call_s"), p("imports_build_first_call_s")),
        row("1 seed: trace + lower", o("single.lower_s"), p("single.lower_s")),
        row("1 seed: XLA compile", o("single.compile_s"), p("single.compile_s")),
        row("1 seed: run time (best)", o("single.run_s"), p("single.run_s")),
        row("1 seed: env steps/s", single, peer_single, target="ratio >= 1.5",
            met=_ge(_ratio(single, peer_single), 1.5), unit="steps/s"),
        row(f"{NUM_SEEDS} vmapped seeds: trace + lower + compile", o("vmap.lower_compile_s"), p("vmap.lower_compile_s")),
        row(f"{NUM_SEEDS} vmapped seeds: run time (best)", o("vmap.run_s"), p("vmap.run_s")),
        row(f"{NUM_SEEDS} vmapped seeds: total env steps/s", vmap, peer_vmap, target="ratio >= 1.5",
            met=_ge(_ratio(vmap, peer_vmap), 1.5), unit="steps/s"),
        row(f"{NUM_SEEDS} seeds' throughput / 1 seed's", _ratio(vmap, single), _ratio(peer_vmap, peer_single),
            target="jaxpg >= 1.3", met=_ge(_ratio(vmap, single), 1.3), ratio=False, unit="x"),
        # jaxpg's sweep API: the same vmapped program, its runs split across one CPU device per
        # core (jaxpg.use_all_cpu_cores()); the peer's figure is its jit(vmap) on one device.
        row(f"{NUM_SEEDS} seeds, `jaxpg.sweep.run` on {o('sweep.devices') or '?'} CPU devices: first call (compile + run)",
            o("sweep.first_call_s"), None, ratio=False),
        row(f"{NUM_SEEDS} seeds, `jaxpg.sweep.run`: total env steps/s (vs the peer's jit(vmap))", o("sweep.steps_per_s", True),
            peer_vmap, target="ratio >= 1.5", met=_ge(_ratio(o("sweep.steps_per_s", True), peer_vmap), 1.5), unit="steps/s"),
        row(f"{NUM_SEEDS} seeds via `sweep.run` / 1 seed's throughput", _ratio(o("sweep.steps_per_s", True), single), None,
            target="jaxpg >= 1.3", met=_ge(_ratio(o("sweep.steps_per_s", True), single), 1.3), ratio=False, unit="x"),
    ]
    final_ours, final_peer = ours[0]["vmap"]["final_eval_return"], peer[0]["vmap"]["final_eval_return"]
    rows += [
        row("final return, 1 seed", ours[0]["single"]["final_eval_return"], peer[0]["single"]["final_eval_return"],
            unit="return"),
        row(f"final return, mean of {NUM_SEEDS} seeds", final_ours, final_peer,
            target=f"both >= {SOLVED_CARTPOLE:.0f} (solved)",
            met=final_ours >= SOLVED_CARTPOLE and final_peer >= SOLVED_CARTPOLE, unit="return"),
        row(f"jaxpg's training return (last iteration), mean of {NUM_SEEDS} seeds",
            float(sum(ours[0]["vmap"]["final_train_return_per_seed"]) / NUM_SEEDS), None, ratio=False, unit="return"),
    ]
    return rows


def brax_rows(ours: list[dict], peer: list[dict]) -> list[dict]:
    o = lambda path, larger=False: best(ours, path, larger)  # noqa: E731
    p = lambda path, larger=False: best(peer, path, larger)  # noqa: E731
    first_without_evals = min(run["first_call_s"] - sum(run["eval_s"]) for run in peer)
    return [
        row("`import jax` (fresh process)", o("import_jax_s"), p("import_jax_s")),
        row("`import jaxpg; jaxpg.make_train` / brax.envs + brax PPO trainer (incl. jax)",
            o("import_lib_s"), p("import_lib_s")),
        row("build (`make_train` incl. env / `envs.get_environment`)", o("build_s"), p("build_s")),
        row("imports + build (ready to train)", _add(o("import_lib_s"), o("build_s")),
            _add(p("import_lib_s"), p("build_s"))),
        row("first call in the process (jaxpg: compile + run; brax: `ppo.train`, with its 3 evaluations)",
            o("first_call_s"), p("first_call_s")),
        row("first call, brax without its evaluations' time", o("first_call_s"), first_without_evals),
        row("compile (jaxpg: lower + compile; brax: epoch 1 - epoch 2)", o("single.lower_compile_s"),
            p("train_compile_estimate_s")),
        row("brax's 3 evaluations (the first two include compiling the evaluator)", None,
            min(sum(run["eval_s"]) for run in peer), ratio=False),
        row("env steps/s after compile (jaxpg: whole run, best; brax: its `training/sps` of epoch 2)",
            o("single.steps_per_s", True), p("steps_per_s", True), unit="steps/s"),
        row(f"final return ({peer[0]['eval_episodes']} sampled episodes of up to 1000 steps)",
            ours[0]["single"]["final_eval_return"], peer[0]["final_eval_return"], unit="return"),
    ]


def _ratio(a, b):
    return a / b if a is not None and b else None


def _add(a, b):
    return None if a is None else a + b


def _le(a, b):
    return None if a is None or b is None else a <= b


def _ge(a, b):
    return None if a is None or b is None else a >= b


# -- report ---------------------------------------------------------------------------------

def machine_info() -> dict:
    return {
        "cpu_model": cpu_model() or platform.processor(),
        "cpu_count": os.cpu_count(),
        "cpus_available": cpus_available(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _fmt(x, unit: str) -> str:
    if x is None:
        return "-"
    if unit == "steps/s":
        return f"{x:,.0f}"
    if unit == "return":
        return f"{x:.1f}"
    if unit == "x":
        return f"{x:.2f}x"
    return f"{x:.2f} s"


def table(rows: list[dict], peer: str) -> list[str]:
    lines = [f"| Measurement | jaxpg | {peer} | jaxpg / {peer} | Target | Met |", "|---|---|---|---|---|---|"]
    for r in rows:
        met = "" if r["met"] is None else ("yes" if r["met"] else "**NO**")
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        lines.append(f"| {r['measurement']} | {_fmt(r['jaxpg'], r['unit'])} | {_fmt(r['peer'], r['unit'])} | "
                     f"{ratio} | {r['target']} | {met} |")
    return lines


def _versions(section: dict) -> str:
    return "; ".join(f"{lib}: " + ", ".join(f"{k} {v}" for k, v in runs[0]["versions"].items() if v)
                     for lib, runs in section["runs"].items())


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        "# jaxpg next to peer libraries" + (" (--quick: tiny budgets, a smoke test only)" if results["quick"] else ""),
        "",
        f"Machine: {m['cpu_model']}, {m['cpus_available']} of {m['cpu_count']} CPUs; Python {m['python']}; "
        f"{m['platform']}. `python benchmarks/peers.py{' --quick' if results['quick'] else ''}`.",
        "",
        "Every figure comes from fresh worker processes without a persistent compilation cache; times are "
        "the best over the interleaved rounds, ratios are jaxpg / peer (for times, below 1 means jaxpg is "
        "faster; for steps/s, above 1). The final return is the mean over seeds of 128 fresh episodes "
        "(--quick: 16) with actions sampled from the final policy, computed outside the timed regions.",
    ]
    if "cartpole" in results:
        c = results["cartpole"]
        s = c["settings"]
        solved = {lib: runs[0]["vmap"]["final_eval_return"] >= SOLVED_CARTPOLE for lib, runs in c["runs"].items()}
        lines += [
            "",
            f"## PPO on CartPole-v1: jaxpg vs rejax {REJAX_VERSION}",
            "",
            f"{c['date']}; {c['rounds']} round(s) of (jaxpg, rejax) processes, best of {c['repeats']} calls "
            f"each; load average before/after {c['loadavg_before']} / {c['loadavg_after']}.",
            "",
            f"Settings (both): {s['num_envs']} envs x {s['num_steps']} steps, {s['update_epochs']} epochs x "
            f"{s['num_minibatches']} minibatches, {s['hidden_sizes'][0]}x{s['hidden_sizes'][1]} {s['activation']}, "
            f"constant lr {s['learning_rate']}, gamma {s['gamma']}, lambda {s['gae_lambda']}, clip {s['clip_eps']}, "
            f"vf {s['vf_coef']}, entropy {s['ent_coef']}, max_grad_norm {s['max_grad_norm']}, "
            f"{s['total_steps']:,} env steps per seed; {NUM_SEEDS} seeds vmapped.",
            "",
            f"Versions: {_versions(c)}.",
            "",
            *table(c["rows"], "rejax"),
            "",
            "Solved (final return >= 400 of 500): " + ", ".join(
                f"{lib} {'yes' if ok else '**NOT SOLVED**'}" for lib, ok in solved.items()) + "."
            + (" (--quick budgets are far too small to solve CartPole: this only checks the plumbing.)"
               if results["quick"] else ""),
        ]
    if "brax" in results:
        b = results["brax"]
        s = b["settings"]
        lines += [
            "",
            "## PPO on brax inverted_pendulum: jaxpg vs brax's own PPO trainer",
            "",
            f"{b['date']}; {b['rounds']} round(s) of (jaxpg, brax) processes; load average before/after "
            f"{b['loadavg_before']} / {b['loadavg_after']}.",
            "",
            f"Settings (both): {s['backend']} pipeline, {s['num_envs']} envs x {s['num_steps']} steps "
            f"(brax: unroll_length {s['num_steps']}, batch_size {s['num_envs'] // s['num_minibatches']} x "
            f"{s['num_minibatches']} minibatches), {s['update_epochs']} epochs, {s['hidden_sizes'][0]}x"
            f"{s['hidden_sizes'][1]} {s['activation']}, constant lr {s['learning_rate']}, entropy {s['ent_coef']}, "
            f"observation normalization, value clipping {s['clip_eps']}, max_grad_norm {s['max_grad_norm']}, "
            f"episodes of {s['episode_length']} steps, {s['total_steps']:,} env steps; 1 seed.",
            "",
            "brax's `ppo.train` evaluates the initial policy, trains half the steps (epoch 1, which includes "
            "compiling the training step), evaluates, trains the other half (epoch 2: its steady-state "
            "throughput) and evaluates again (the final return). Its first-call time includes all of that; "
            "the row below it subtracts the three evaluations.",
            "",
            f"Versions: {_versions(b)}.",
            "",
            *table(b["rows"], "brax"),
        ]
    return "\n".join(lines) + "\n"


# -- main -----------------------------------------------------------------------------------

def run_cartpole(quick: bool, rounds: int, repeats: int) -> dict:
    settings = dict(CARTPOLE, total_steps=QUICK_STEPS["cartpole"]) if quick else dict(CARTPOLE)
    episodes = QUICK_EVAL_EPISODES if quick else EVAL_EPISODES
    rejax_python = ensure_peer_venv(f"rejax-{REJAX_VERSION}", REJAX_PINS)
    ours = jaxpg_cartpole_spec(settings, NUM_SEEDS, repeats, episodes)
    peer = rejax_cartpole_spec(settings, NUM_SEEDS, repeats, episodes)
    loadavg_before = [round(x, 2) for x in os.getloadavg()]
    runs = interleaved({
        "jaxpg": lambda: run_worker(sys.executable, "jaxpg_worker.py", ours, own_checkout=True),
        "rejax": lambda: run_worker(rejax_python, "rejax_worker.py", peer, own_checkout=False),
    }, rounds)
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "settings": settings, "rounds": rounds, "repeats": repeats, "seeds": NUM_SEEDS, "eval_episodes": episodes,
        "rejax_pins": list(REJAX_PINS), "specs": {"jaxpg": ours, "rejax": peer},
        "loadavg_before": loadavg_before, "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "rows": cartpole_rows(runs["jaxpg"], runs["rejax"]), "runs": runs,
    }


def run_brax(quick: bool, rounds: int, repeats: int) -> dict:
    settings = dict(INVERTED_PENDULUM, total_steps=QUICK_STEPS["brax"]) if quick else dict(INVERTED_PENDULUM)
    episodes = QUICK_EVAL_EPISODES if quick else EVAL_EPISODES
    ours, peer = jaxpg_brax_spec(settings, repeats, episodes), brax_spec(settings, episodes)
    loadavg_before = [round(x, 2) for x in os.getloadavg()]
    runs = interleaved({
        "jaxpg": lambda: run_worker(sys.executable, "jaxpg_worker.py", ours, own_checkout=True),
        "brax": lambda: run_worker(sys.executable, "brax_worker.py", peer, own_checkout=False),
    }, rounds)
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "settings": settings, "rounds": rounds, "repeats": repeats, "eval_episodes": episodes,
        "specs": {"jaxpg": ours, "brax": peer},
        "loadavg_before": loadavg_before, "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "rows": brax_rows(runs["jaxpg"], runs["brax"]), "runs": runs,
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budgets, 1 round, 1 repeat: a smoke test")
    parser.add_argument("--only", choices=("cartpole", "brax"), help="run one comparison (keeps the other's results)")
    parser.add_argument("--out", default=str(HERE / "results"), help="directory for peers.json and peers.md")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved process rounds (default 2; --quick 1)")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per process (default 2; --quick 1)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 2)
    repeats = args.repeats or (1 if args.quick else 2)

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "peers-quick" if args.quick else "peers"
    path = out / f"{stem}.json"
    previous = json.loads(path.read_text()) if path.exists() and args.only else {}
    results = {"quick": args.quick, "machine": machine_info()}
    for name, run in (("cartpole", run_cartpole), ("brax", run_brax)):
        if args.only in (None, name):
            print(f"== {name}", flush=True)
            results[name] = run(args.quick, rounds, repeats)
        elif name in previous:
            results[name] = previous[name]

    path.write_text(json.dumps(results, indent=2) + "\n")
    report = markdown(results)
    (out / f"{stem}.md").write_text(report)
    print(report)
    print(f"wrote {path} and {out / stem}.md", flush=True)
    return results


if __name__ == "__main__":
    main()
