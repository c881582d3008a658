"""The jaxpg command line: outputs, one-line errors, resume == uninterrupted, eval, list."""

import json
import os

import numpy as np
import pytest

from jaxpg import cli

SMALL = ["train", "ppo", "--env", "CartPole-v1", "--total-steps", "2048", "--seeds", "2", "--eval-episodes", "2"]


def _error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    return err[-1]


def test_list_shows_algorithms_and_environments(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "ppo" in out and "reinforce" in out and "CartPole-v1" in out and "brax/hopper" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "trpo", "--env", "CartPole-v1"], "valid choices: ppo, reinforce"),
        (["train", "ppo", "--env", "CartPol-v1"], "valid choices: CartPole-v1"),
        (["train", "ppo", "--env", "CartPole-v1", "--set", "lr=0.1"], "valid choices: activation"),
        (["train", "ppo", "--env", "CartPole-v1", "--set", "learning_rate=fast"], "is not a number"),
        (["train", "ppo", "--env", "CartPole-v1", "--set", "normalize_obs=maybe"], "valid: true, false"),
        (["train", "ppo", "--env", "CartPole-v1", "--set", "activation=sigmoid"], "valid choices: tanh, relu"),
        (["train", "ppo", "--env", "CartPole-v1", "--seeds", "0"], "positive integer"),
        (["train", "ppo"], "needs --env"),
        (["eval", "/nonexistent/run"], "not a jaxpg run directory"),
    ],
)
def test_bad_input_gets_one_line_error(argv, message, capsys):
    assert cli.main(argv) == 2
    line = _error_line(capsys)
    assert line.startswith("jaxpg: error:") and message in line, line


def test_train_writes_outputs_and_resume_matches_uninterrupted(tmp_path, capsys):
    full, split = str(tmp_path / "full"), str(tmp_path / "split")
    assert cli.main(SMALL + ["--out", full]) == 0
    out = capsys.readouterr().out
    assert "eval return" in out and "env steps per second" in out
    for name in ("metrics.csv", "metrics.json", "metrics.npz", "curves.png", "run.json", "summary.json", "checkpoint"):
        assert os.path.exists(os.path.join(full, name)), name
    with open(os.path.join(full, "metrics.csv")) as f:
        lines = f.read().strip().splitlines()
    assert lines[0].startswith("seed,iteration,") and len(lines) == 1 + 2 * 4  # 2 seeds x 4 iterations

    # Interrupted after 1 iteration (checkpoint every iteration), then resumed.
    assert cli.main(SMALL + ["--out", split, "--checkpoint-every", "1", "--stop-after", "1"]) == 0
    assert "continue with" in capsys.readouterr().out
    assert json.load(open(os.path.join(split, "run.json")))["iterations_done"] == 1
    assert cli.main(["train", "--resume", split, "--eval-episodes", "2"]) == 0
    a, b = np.load(os.path.join(full, "metrics.npz")), np.load(os.path.join(split, "metrics.npz"))
    assert a["loss"].shape == b["loss"].shape == (2, 4)
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)
    np.testing.assert_array_equal(a["env_steps"], b["env_steps"])

    assert cli.main(["eval", split, "--episodes", "3"]) == 0
    out = capsys.readouterr().out
    assert "seed 0" in out and "seed 1" in out and "all seeds" in out


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
    assert "cannot run method='pg'" in _error_line(capsys)
