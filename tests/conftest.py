"""Test-session set-up: one JAX compilation cache for the whole session.

Many tests (and the CLI and notebook subprocesses they start) compile the same small programs.
JAX's persistent compilation cache, in a fresh directory for this session only (so every run of
the suite compiles everything once, as CI does), lets each program be compiled once. It is set
here, before any test module imports jax; pytest-xdist's workers and the subprocesses tests start
inherit it through the environment, so they share it.
"""

from __future__ import annotations

import os
import shutil
import tempfile

_OWNER = "JAXPG_TEST_SESSION_CACHE" not in os.environ  # False in an xdist worker
if _OWNER:
    os.environ["JAXPG_TEST_SESSION_CACHE"] = tempfile.mkdtemp(prefix="jaxpg-test-xla-cache-")
_CACHE = os.environ["JAXPG_TEST_SESSION_CACHE"]
os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE
os.environ["JAXPG_CACHE_DIR"] = _CACHE  # what the jaxpg CLI uses
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"
# Compilation, not execution, dominates the suite's time: XLA's backend optimization level 0
# compiles about a third faster, and XLA:CPU's older loop emitters (fusion emitters off) another
# third (PPO CartPole 6.0 -> 3.9 s, SAC Pendulum 9.2 -> 6.6 s on the 2-core machine); programs run
# slower but tests run tiny budgets. Benchmarks and the library keep XLA's defaults. (Appended,
# so a user's own XLA_FLAGS stay in force.)
for _flag in ("--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false"):
    if _flag.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()


def pytest_sessionfinish(session, exitstatus):
    if _OWNER:
        shutil.rmtree(_CACHE, ignore_errors=True)

