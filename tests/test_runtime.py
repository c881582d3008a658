"""``jaxpg.enable_compilation_cache``: the one-line opt-in writes compiled programs where asked,
and a second process finds them there."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import jaxpg

SCRIPT = """
import sys, jax, jax.numpy as jnp, jaxpg
hits = []
jax.monitoring.register_event_listener(lambda event, **kw: hits.append(event) if "cache_hits" in event else None)
path = jaxpg.enable_compilation_cache(sys.argv[1], min_compile_time_secs=0)
assert path == sys.argv[1], path
jax.block_until_ready(jax.jit(lambda x: jnp.tanh(x) @ x.T + 1.0)(jnp.ones((3, 3))))
print("hit" if hits else "miss")
"""


def _run(path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(path)], check=True, env=env, timeout=120,
                          capture_output=True, text=True)
    return done.stdout.strip().splitlines()[-1]


def test_programs_are_written_to_the_chosen_directory_and_reused(tmp_path):
    assert _run(tmp_path) == "miss"
    assert any(tmp_path.iterdir()), "nothing was written to the cache directory"
    assert _run(tmp_path) == "hit"  # a fresh process finds the program


def test_bad_threshold_is_rejected():
    with pytest.raises(ValueError, match="min_compile_time_secs"):
        jaxpg.enable_compilation_cache("/tmp/unused", min_compile_time_secs=-1)


CORES_SCRIPT = """
import jax, jaxpg
print(jaxpg.use_all_cpu_cores(2), len(jax.devices()))
try:
    jaxpg.use_all_cpu_cores(3)
except RuntimeError as error:
    print("late:", error)
"""


def test_cpu_cores_become_devices_only_before_the_first_computation():
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    done = subprocess.run([sys.executable, "-c", CORES_SCRIPT], check=True, env=env, timeout=120,
                          capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "2 2"
    assert lines[1].startswith("late: use_all_cpu_cores must run before the first JAX computation")


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_device_count_is_rejected(bad):
    with pytest.raises(ValueError, match="num_devices must be a positive integer"):
        jaxpg.use_all_cpu_cores(bad)


def test_compiler_options_level_1_on_cpu_unless_xla_flags_choose(monkeypatch):
    from jaxpg.algos.trainer import compiler_options

    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false")
    assert compiler_options() == {}
    monkeypatch.setenv("XLA_FLAGS", "")
    assert compiler_options() == {"xla_backend_optimization_level": 1, "xla_cpu_use_fusion_emitters": True}


def test_trainer_jit_is_cached_and_equals_jax_jit():
    import jax
    import numpy as np

    train = jaxpg.make_train("pg", env="tabular/random", total_steps=400)
    assert train.jit() is train.jit()
    key = jax.random.key(0)
    ours, plain = train.jit()(key, train.default_hparams), jax.jit(train)(key, train.default_hparams)
    for a, b in zip(jax.tree.leaves(ours.params), jax.tree.leaves(plain.params)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
