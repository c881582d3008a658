"""The jaxpg command line: outputs, resume == uninterrupted, eval, list, and every bad input
getting one line on stderr, exit status 2, no traceback and nothing lost.

Bad-input cases run the real ``jaxpg`` entry point in a subprocess (a few at a time).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from jaxpg import checkpoint, cli

JAXPG = str(pathlib.Path(sys.executable).parent / "jaxpg")
SMALL = ["train", "ppo", "--env", "CartPole-v1", "--total-steps", "2048", "--seeds", "2", "--eval-episodes", "2",
         "--checkpoint-every", "1"]


def _error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    return err[-1]


def _metrics(run_dir: str) -> dict:
    with open(os.path.join(run_dir, "metrics.json")) as f:
        return {k: np.asarray(v) for k, v in json.load(f).items()}


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """An uninterrupted small run (2 seeds x 4 iterations, a checkpoint after every iteration)."""
    path = str(tmp_path_factory.mktemp("cli") / "full")
    assert cli.main(SMALL + ["--out", path]) == 0
    return path


def test_list_shows_algorithms_and_environments(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "ppo" in out and "reinforce" in out and "CartPole-v1" in out and "brax/hopper" in out


def test_train_writes_outputs(full_run, capsys):
    for name in ("metrics.csv", "metrics.json", "curves.png", "run.json", "summary.json", "checkpoints"):
        assert os.path.exists(os.path.join(full_run, name)), name
    with open(os.path.join(full_run, "metrics.csv")) as f:
        lines = f.read().strip().splitlines()
    assert lines[0].startswith("seed,iteration,") and len(lines) == 1 + 2 * 4  # 2 seeds x 4 iterations
    info = checkpoint.load_info(full_run)
    assert info["iterations_done"] == 4 and info["checkpoint"] == "checkpoints/iteration-00000004"
    # Older checkpoints are removed once a newer one is committed.
    assert os.listdir(os.path.join(full_run, "checkpoints")) == ["iteration-00000004"]
    assert cli.main(["eval", full_run, "--episodes", "3"]) == 0
    out = capsys.readouterr().out
    assert "seed 0" in out and "seed 1" in out and "all seeds" in out


def test_stop_then_resume_equals_uninterrupted(full_run, tmp_path, capsys):
    split = str(tmp_path / "split")
    assert cli.main(SMALL + ["--out", split, "--stop-after", "1"]) == 0
    assert "continue with" in capsys.readouterr().out
    assert checkpoint.load_info(split)["iterations_done"] == 1
    assert cli.main(["train", "--resume", split, "--eval-episodes", "2"]) == 0
    a, b = _metrics(full_run), _metrics(split)
    assert a["loss"].shape == b["loss"].shape == (2, 4)
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)
    np.testing.assert_array_equal(a["env_steps"], b["env_steps"])


def _killed_on_call(target, name: str, call: int, monkeypatch):
    """Make ``target.name`` raise KeyboardInterrupt (a Ctrl-C, a kill) on its ``call``-th call."""
    original, calls = getattr(target, name), []

    def patched(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, patched)


def test_saves_killed_midway_resume_from_the_previous_complete_checkpoint(full_run, tmp_path, monkeypatch,
                                                                          capsys):
    """Kill a save at two points: while the new checkpoint's files are being written, and after
    they are complete but before run.json (the commit record) names them. Each time run.json must
    still name the previous checkpoint, and the resumed run must end exactly where the
    uninterrupted run ended."""
    run = str(tmp_path / "killed")
    with monkeypatch.context() as patch:  # the second save dies while writing its metrics
        _killed_on_call(np, "savez", 2, patch)
        assert cli.main(SMALL + ["--out", run]) == 130
    assert "last complete checkpoint: iteration 1" in capsys.readouterr().err
    assert checkpoint.load_info(run)["iterations_done"] == 1
    assert len(os.listdir(os.path.join(run, "checkpoints"))) == 2  # committed + a staging leftover

    with monkeypatch.context() as patch:  # resumed; its second save (iteration 3) dies before commit
        _killed_on_call(checkpoint, "_commit", 2, patch)
        assert cli.main(["train", "--resume", run, "--eval-episodes", "2"]) == 130
    assert "last complete checkpoint: iteration 2" in capsys.readouterr().err
    assert checkpoint.load_info(run)["iterations_done"] == 2
    assert sorted(os.listdir(os.path.join(run, "checkpoints"))) == ["iteration-00000002", "iteration-00000003"]

    assert cli.main(["train", "--resume", run, "--eval-episodes", "2"]) == 0
    np.testing.assert_allclose(_metrics(full_run)["loss"], _metrics(run)["loss"], rtol=1e-5)
    assert os.listdir(os.path.join(run, "checkpoints")) == ["iteration-00000004"]  # leftovers cleaned


def test_resume_with_a_larger_budget_extends_the_run(full_run, tmp_path, capsys):
    run = str(tmp_path / "extended")
    shutil.copytree(full_run, run)
    assert cli.main(["train", "--resume", run, "--total-steps", "3072", "--eval-episodes", "2"]) == 0
    err = capsys.readouterr().err
    assert "extending the run from total_steps 2048 to 3072" in err and "4 -> 6 iterations" in err
    assert "linear learning-rate schedule now spans the new total" in err
    info = checkpoint.load_info(run)
    assert info["iterations_done"] == 6 and info["config"]["total_steps"] == 3072
    assert _metrics(run)["loss"].shape == (2, 6)


def test_overwrite_replaces_a_run_only_when_asked(full_run, tmp_path):
    run = str(tmp_path / "again")
    shutil.copytree(full_run, run)
    (pathlib.Path(run) / "notes.txt").write_text("mine")
    assert cli.main(SMALL + ["--seed", "1", "--out", run, "--overwrite"]) == 0
    info = checkpoint.load_info(run)
    assert info["seed"] == 1 and info["iterations_done"] == 4
    assert (pathlib.Path(run) / "notes.txt").read_text() == "mine"  # only jaxpg's own files were replaced


def test_nan_stops_at_the_bad_chunk_and_keeps_the_last_good_checkpoint(tmp_path):
    """Unnormalized HARPG with a huge step on Pendulum is finite at iteration 0 and NaN from
    iteration 1 on (every seed); with a checkpoint after every iteration the run must stop at
    iteration 1, say so, and keep checkpoint 1."""
    run = str(tmp_path / "nan")
    argv = ["train", "harpg", "--env", "Pendulum-v1", "--total-steps", "1600", "--set", "num_envs=2",
            "--set", "horizon=50", "--set", "hidden_sizes=8", "--set", "step_size=10", "--checkpoint-every", "1",
            "--out", run]
    proc = subprocess.run([JAXPG, *argv], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("jaxpg: error:")]
    assert len(line) == 1 and "NaN or inf in training at iteration 1" in line[0], proc.stderr
    assert "last good checkpoint (iteration 1) is kept" in line[0]
    info = checkpoint.load_info(run)
    assert info["iterations_done"] == 1
    assert os.listdir(os.path.join(run, "checkpoints")) == ["iteration-00000001"]
    # The curves up to and including the bad iteration are written for diagnosis.
    finite = _metrics(run)["finite"]
    np.testing.assert_array_equal(finite, [[True, False]])


def test_harpg_family_from_the_command_line(tmp_path, capsys):
    run = str(tmp_path / "nharpg")
    argv = ["train", "n_harpg", "--env", "CartPole-v1", "--total-steps", "8000", "--seeds", "2",
            "--set", "num_envs=2", "--set", "horizon=100", "--set", "step_size=0.3", "--eval-episodes", "2",
            "--out", run]
    assert cli.main(argv) == 0
    assert "n_harpg / CartPole-v1" in capsys.readouterr().out
    assert cli.main(["eval", run, "--episodes", "2"]) == 0
    assert "all seeds" in capsys.readouterr().out
    assert cli.main(["train", "n_harpg", "--env", "CartPole-v1", "--set", "method=pg"]) == 2
    assert "unknown setting 'method'" in _error_line(capsys)


# ---- bad input: one line, exit status 2, no traceback --------------------------------------------
NEW = ["train", "ppo", "--env", "CartPole-v1", "--total-steps", "2048"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "trpo", "--env", "CartPole-v1"], "valid choices: ppo, reinforce"),
        (["train", "ppo", "--env", "CartPol-v1"], "valid choices: CartPole-v1"),
        (NEW + ["--set", "lr=0.1"], "valid choices: activation"),
        (NEW + ["--set", "learning_rate=fast"], "is not a number"),
        (NEW + ["--set", "normalize_obs=maybe"], "valid: true, false"),
        (NEW + ["--set", "activation=sigmoid"], "valid choices: tanh, relu"),
        (NEW + ["--set", "max_grad_norm=0"], "valid: max_grad_norm > 0"),
        (["train", "n_harpg", "--env", "CartPole-v1", "--set", "step_size=-1"], "valid: step_size >= 0"),
    ],
)
def test_bad_settings_get_one_line_error_in_process(argv, message, tmp_path, capsys):
    assert cli.main(argv + ["--runs-dir", str(tmp_path)]) == 2
    line = _error_line(capsys)
    assert line.startswith("jaxpg: error:") and message in line, line
    assert os.listdir(tmp_path) == []  # nothing created


# The cases of issue 7, each through the real entry point.

# (case id, argv with {good} {trunc} {garbage} {file} placeholders, what the one line must say)
BAD_INPUT = [
    ("zero-seeds", NEW + ["--seeds", "0"], "--seeds must be a positive integer"),
    ("seeds-not-int", NEW + ["--seeds", "abc"], "invalid int value: 'abc'"),
    ("no-env", ["train", "ppo"], "needs --env"),
    ("no-algorithm", ["train"], "needs an algorithm name or --resume DIR"),
    ("num-steps-0", NEW + ["--set", "num_steps=0"], "num_steps = 0 is out of range; valid: num_steps >= 1"),
    ("minibatches-0", NEW + ["--set", "num_minibatches=0"], "valid: num_minibatches >= 1"),
    ("num-steps-negative", NEW + ["--set", "num_steps=-5"], "num_steps = -5 is out of range"),
    ("epochs-0", NEW + ["--set", "update_epochs=0"], "valid: update_epochs >= 1"),
    ("stop-after-0", NEW + ["--stop-after", "0"], "--stop-after must be a positive integer"),
    ("checkpoint-every-negative", NEW + ["--checkpoint-every", "-1"], "--checkpoint-every must be a positive integer"),
    ("eval-episodes-0", NEW + ["--eval-episodes", "0"], "--eval-episodes must be a positive integer"),
    ("negative-lr", NEW + ["--set", "learning_rate=-0.1"], "valid: learning_rate >= 0"),
    ("gamma-above-1", NEW + ["--set", "gamma=1.5"], "valid: 0 <= gamma <= 1"),
    ("negative-clip", NEW + ["--set", "clip_eps=-1"], "valid: clip_eps >= 0"),
    ("lambda-above-1", NEW + ["--set", "gae_lambda=2"], "valid: 0 <= gae_lambda <= 1"),
    ("total-steps-via-set", NEW + ["--set", "total_steps=1000"], "set it with --total-steps"),
    ("env-via-set", NEW + ["--set", "env=Acrobot-v1"], "set it with --env"),
    ("out-holds-a-run", NEW + ["--out", "{good}"], "holds a run; continue it with --resume"),
    ("out-is-a-file", NEW + ["--out", "{file}"], "is a file, not a directory"),
    ("out-not-writable", NEW + ["--out", "{file}/sub"], "cannot write to --out"),
    ("resume-missing", ["train", "--resume", "{missing}"], "does not exist"),
    ("resume-truncated-run-json", ["train", "--resume", "{trunc}"], "unreadable (truncated or edited?)"),
    ("resume-garbage-checkpoint", ["train", "--resume", "{garbage}"], "is unreadable"),
    ("resume-not-a-run", ["train", "--resume", "{empty}"], "not a jaxpg run directory"),
    ("resume-with-set", ["train", "--resume", "{good}", "--set", "learning_rate=0.1"], "--set cannot be combined with --resume"),
    ("resume-other-algorithm", ["train", "reinforce", "--resume", "{good}"], "cannot change to reinforce"),
    ("resume-other-env", ["train", "--resume", "{good}", "--env", "Acrobot-v1"], "cannot change to Acrobot-v1"),
    ("resume-other-seeds", ["train", "--resume", "{good}", "--seeds", "3"], "--seeds = 2; it cannot change to 3"),
    ("resume-other-seed", ["train", "--resume", "{good}", "--seed", "7"], "--seed = 0; it cannot change to 7"),
    ("resume-with-out", ["train", "--resume", "{good}", "--out", "{missing}"], "--out cannot be combined with --resume"),
    ("resume-smaller-budget", ["train", "--resume", "{good}", "--total-steps", "1024"], "can only be extended"),
    ("eval-missing", ["eval", "{missing}"], "does not exist"),
    ("eval-truncated-run-json", ["eval", "{trunc}"], "unreadable (truncated or edited?)"),
    ("eval-garbage-checkpoint", ["eval", "{garbage}"], "is unreadable"),
    ("eval-zero-episodes", ["eval", "{good}", "--episodes", "0"], "--episodes must be a positive integer"),
]


SUBPROCESS_CASES = ("zero-seeds", "resume-garbage-checkpoint", "eval-truncated-run-json", "out-not-writable")


@pytest.fixture(scope="module")
def bad_input_results(full_run, tmp_path_factory):
    """Run every BAD_INPUT case through the real entry point, four processes at a time."""
    root = tmp_path_factory.mktemp("bad")
    good = root / "good"
    shutil.copytree(full_run, good)
    trunc = root / "trunc"
    shutil.copytree(full_run, trunc)
    text = (trunc / "run.json").read_text()
    (trunc / "run.json").write_text(text[: len(text) // 3])
    garbage = root / "garbage"
    shutil.copytree(full_run, garbage)
    for path in (garbage / "checkpoints").rglob("*"):
        if path.is_file():
            path.write_bytes(b"\x00garbage")
    (root / "empty").mkdir()
    (root / "a-file").write_text("not a directory")
    places = {"good": good, "trunc": trunc, "garbage": garbage, "file": root / "a-file",
              "missing": root / "missing", "empty": root / "empty"}
    snapshot = {p: p.read_bytes() for p in good.rglob("*") if p.is_file()}

    def in_subprocess(case):
        name, argv, _ = case
        argv = [a.format(**places) for a in argv]
        proc = subprocess.run([JAXPG, *argv], capture_output=True, text=True, cwd=root, timeout=300)
        return name, (proc.returncode, proc.stderr)

    def in_process(case):
        name, argv, _ = case
        argv = [a.format(**places) for a in argv]
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = cli.main(argv)
            except SystemExit as exit_:  # what the console script would turn into an exit status
                code = exit_.code
        return name, (code, err.getvalue())

    # A few cases through the installed console script (the real entry point, a fresh process);
    # the rest through cli.main in this process (the same code path, without ~3 s of imports each).
    with concurrent.futures.ThreadPoolExecutor(len(SUBPROCESS_CASES)) as pool:
        results = dict(pool.map(in_subprocess, [c for c in BAD_INPUT if c[0] in SUBPROCESS_CASES]))
    cwd = os.getcwd()
    os.chdir(root)
    try:
        results.update(in_process(c) for c in BAD_INPUT if c[0] not in SUBPROCESS_CASES)
    finally:
        os.chdir(cwd)
    # Nothing was lost or changed in the run the bad commands pointed at.
    assert {p: p.read_bytes() for p in good.rglob("*") if p.is_file()} == snapshot
    assert not (root / "missing").exists()
    return results


@pytest.mark.parametrize("case", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_gets_one_line_error(case, bad_input_results):
    name, _, message = case
    returncode, stderr = bad_input_results[name]
    lines = stderr.strip().splitlines()
    assert returncode == 2, (returncode, stderr)
    assert "Traceback" not in stderr
    assert len(lines) == 1 and lines[0].startswith("jaxpg: error:"), stderr
    assert message in lines[0], lines[0]
