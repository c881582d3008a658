"""What the benchmark scripts record about the machine they ran on (standard library only)."""

from __future__ import annotations

import os
import pathlib


def cpu_model() -> str | None:
    """The CPU's model name from ``/proc/cpuinfo`` (None where there is none)."""
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpus_available() -> int | None:
    """The cores this process may run on (its affinity), or None where that is unknown."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
