"""Host-side progress bar fed from inside jitted training runs via ``jax.debug.callback``.

Training functions built with ``progress_every > 0`` call :func:`update` every that many
iterations. Nothing is shown unless a bar is open::

    with jaxpg.progress.bar(total=num_iterations):
        result = jax.jit(train)(key, hparams)

Under ``vmap`` (seed sweeps) each member reports; the bar shows the furthest iteration reached.
"""

from __future__ import annotations

import contextlib
import math

_active = None


class _Bar:
    def __init__(self, total: int, desc: str, offset: int = 0):
        from tqdm.auto import tqdm

        self.offset = offset
        self.done = offset
        self.tqdm = tqdm(total=total, initial=offset, desc=desc, unit="it", dynamic_ncols=True)

    def update(self, iteration, episode_return):
        iteration = self.offset + int(iteration)
        if iteration > self.done:
            self.tqdm.update(iteration - self.done)
            self.done = iteration
        value = float(episode_return.mean()) if hasattr(episode_return, "mean") else float(episode_return)
        if math.isfinite(value):
            self.tqdm.set_postfix(episode_return=f"{value:.1f}", refresh=False)


@contextlib.contextmanager
def bar(total: int, desc: str = "train", offset: int = 0):
    """Open a progress bar for the jitted runs inside the block; ``offset`` for resumed runs."""
    global _active
    previous, _active = _active, _Bar(total, desc, offset)
    try:
        yield _active
    finally:
        _active.tqdm.close()
        _active = previous


def set_offset(offset: int) -> None:
    """Iterations already done before the next jitted call (chunked or resumed training)."""
    if _active is not None:
        _active.offset = offset


def update(iteration, episode_return) -> None:
    if _active is not None:
        _active.update(iteration, episode_return)
