"""A sweep across two processes (``jax.distributed`` on loopback) equals the same sweep in one.

Two worker processes with one CPU device each run the same script after
``jaxpg.distributed.initialize``; a third, single process runs it on two host devices, so every
device runs the same program on the same runs as in the two-process sweep and the results can be
compared bit for bit. Each process writes what it got to an ``.npz``.
"""

import os
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import jaxpg

WORKER = textwrap.dedent(
    """
    import sys
    import jax, numpy as np, jaxpg
    process_id, address, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    if process_id >= 0:  # -1: the single-process reference
        jaxpg.distributed.initialize(address, num_processes=2, process_id=process_id)
        assert jax.process_count() == 2 and len(jax.local_devices()) == 1, jax.devices()
    assert len(jax.devices()) == 2, jax.devices()

    # Policy gradient on a small random MDP (cheap to compile): what is tested is the distribution.
    train = jaxpg.make_train("pg", env="tabular/random", num_envs=1, hidden_sizes=(), total_steps=2 * 5,
                             env_kwargs=(("num_states", 4), ("num_actions", 3), ("horizon", 5)))
    hp = jaxpg.sweep.grid(train.default_hparams, step_size=[0.1, 0.3, 1.0])
    swept = jaxpg.sweep.run(train, seeds=3, hparams=hp, key=jax.random.key(1))  # 9 runs, padded to 10
    # Chunked, as the CLI runs: 3 runs padded to 4, the state passed back in between chunks.
    states, flat_hparams = jaxpg.sweep.init(train, seeds=3, key=jax.random.key(2))
    chunk = jaxpg.sweep.runner(train, num_iterations=1)
    chunked = chunk(states, flat_hparams)
    chunked = chunk(chunked.state, flat_hparams)

    leaves = jax.tree_util.tree_flatten_with_path({"run": swept, "chunked": chunked})[0]
    assert all(x.is_fully_addressable for _, x in leaves), "a leaf was left spread over processes"
    raw = lambda x: jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x
    np.savez(out, **{jax.tree_util.keystr(path): np.asarray(raw(x)) for path, x in leaves})

    if process_id >= 0:  # refused on both processes alike, before anything is compiled
        try:
            jaxpg.sweep.run(train, seeds=3, key=jax.random.key(process_id))
            raise SystemExit("processes with different keys were not refused")
        except ValueError as e:
            assert "differ between processes" in str(e), e
        try:
            jaxpg.distributed.initialize(address, num_processes=2, process_id=process_id)
            raise SystemExit("a second initialize was not refused")
        except RuntimeError as e:
            assert "call it once" in str(e), e
    """
)

TIMEOUT_S = 300  # a hang (a process waiting for a peer that died) fails the test instead of CI


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(device_count: int | None) -> dict:
    """The test session's environment for a worker, less what would change or break it.

    Kept: XLA_FLAGS' optimization level from conftest.py (faster to compile; all three processes
    get the same flags, so their results stay comparable bit for bit). Dropped: the session's
    compilation cache (these programs are compiled nowhere else), any host device count (set
    here), and proxies (gRPC, which carries the coordinator's traffic, may route loopback
    through them).
    """
    env = {k: v for k, v in os.environ.items()
           if k not in ("JAX_COMPILATION_CACHE_DIR", "JAX_NUM_CPU_DEVICES") and "proxy" not in k.lower()}
    flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith("--xla_force_host_platform_device_count")]
    if device_count:
        flags.append(f"--xla_force_host_platform_device_count={device_count}")
    env.update(XLA_FLAGS=" ".join(flags), JAX_PLATFORMS="cpu")
    return env


def _wait_all(procs: dict, logs: dict) -> None:
    """Wait for every process; fail at the first one that fails or at the deadline, killing the rest."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        failed = [name for name, p in procs.items() if p.poll() not in (None, 0)]
        running = [name for name, p in procs.items() if p.poll() is None]
        if failed or (running and time.monotonic() > deadline):
            break
        if not running:
            return
        time.sleep(0.2)
    for p in procs.values():
        if p.poll() is None:
            p.kill()
            p.wait()
    reason = f"{failed[0]} exited with {procs[failed[0]].returncode}" if failed else f"timed out after {TIMEOUT_S} s"
    pytest.fail(reason + "".join(f"\n--- {name}:\n{logs[name].read_text()[-2000:]}" for name in procs))


def test_two_process_sweep_equals_single_process_sweep(tmp_path):
    address = f"127.0.0.1:{_free_port()}"
    jobs = {"process 0": (0, None), "process 1": (1, None), "single process": (-1, 2)}
    procs, logs = {}, {}
    try:
        for name, (process_id, device_count) in jobs.items():
            logs[name] = tmp_path / f"{process_id}.log"
            with open(logs[name], "w") as log:
                procs[name] = subprocess.Popen(
                    [sys.executable, "-c", WORKER, str(process_id), address, str(tmp_path / f"{process_id}.npz")],
                    env=_env(device_count), stdout=log, stderr=subprocess.STDOUT)
        _wait_all(procs, logs)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
    reference = np.load(tmp_path / "-1.npz")
    assert reference["['run'].metrics['episode_return']"].shape == (3, 3, 2)  # [H, S, iterations]
    assert reference["['chunked'].metrics['episode_return']"].shape == (3, 1)  # [S, iterations]
    for process_id in (0, 1):  # every process got the whole Result
        got = np.load(tmp_path / f"{process_id}.npz")
        assert sorted(got) == sorted(reference)
        for name in reference:
            assert got[name].shape == reference[name].shape, name
            np.testing.assert_array_equal(got[name], reference[name], err_msg=f"process {process_id}: {name}")


@pytest.mark.parametrize(
    "args, message",
    [
        (("127.0.0.1:1234", 0, 0), "num_processes must be a positive integer, got 0"),
        (("127.0.0.1:1234", 2.0, 0), "num_processes must be a positive integer, got 2.0"),
        (("127.0.0.1:1234", 2, 2), r"process_id must be one of 0 \.\. 1, got 2"),
        (("127.0.0.1:1234", 2, -1), r"process_id must be one of 0 \.\. 1, got -1"),
        (("127.0.0.1", 2, 0), "coordinator_address must be 'host:port'"),
        (("127.0.0.1:0", 2, 0), r"coordinator_address must be 'host:port' \(port 1-65535\), got '127.0.0.1:0'"),
    ],
)
def test_initialize_refuses_bad_arguments(args, message):
    """Checked before JAX is touched, so a bad call leaves this process as it was."""
    with pytest.raises(ValueError, match=message):
        jaxpg.distributed.initialize(*args)


def test_distributed_module_imports_no_jaxpg_module():
    """``jax.distributed.initialize`` must come before anything starts JAX's backend, and jaxpg
    modules may do so when imported; ``jaxpg.distributed`` imports none, so it can come first."""
    import ast
    import pathlib

    tree = ast.parse(pathlib.Path(jaxpg.distributed.__file__).read_text())
    modules = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    modules += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and not n.level]
    assert not [m for m in modules if m.split(".")[0] == "jaxpg"]
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level]
