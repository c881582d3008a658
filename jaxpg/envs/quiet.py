"""Silence the import-time noise of the MuJoCo-based backends (brax, MuJoCo Playground).

brax warns that it is unmaintained (a UserWarning from ``mjcf.load``, i.e. every time an
environment is built), its import pulls in jaxopt (a DeprecationWarning), and ``mujoco.mjx``
*prints* "Failed to import warp/mujoco_warp" when the optional GPU package ``warp-lang`` is
absent. None of it is actionable for jaxpg users; any other output is passed on.
"""

from __future__ import annotations

import contextlib
import io
import sys
import warnings

QUIET_MESSAGES = (
    r"Brax System, piplines and environments are not actively",
    r"JAXopt is no longer maintained",
)
QUIET_PRINTS = ("Failed to import warp", "Failed to import mujoco_warp")


@contextlib.contextmanager
def quiet_mujoco_backends():
    """Within the block: the warnings above are ignored and printed lines that start with
    ``QUIET_PRINTS`` are dropped; every other printed line is written out at the end."""
    buffer = io.StringIO()
    with warnings.catch_warnings():
        for message in QUIET_MESSAGES:
            warnings.filterwarnings("ignore", message=message)
        try:
            with contextlib.redirect_stdout(buffer):
                yield
        finally:
            kept = [line for line in buffer.getvalue().splitlines() if not line.startswith(QUIET_PRINTS)]
            if kept:
                sys.stdout.write("\n".join(kept) + "\n")
