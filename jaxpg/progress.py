"""A host-side progress bar that training runs report to through a callback.

Trainers never import this module: a caller who wants progress passes a callback to
``trainer.run(..., progress=bar.update, progress_every=k)`` (or ``sweep.run``), and the jitted run
calls it on the host every ``k`` iterations through ``jax.debug.callback``::

    with jaxpg.progress.bar(total=train.num_iterations) as bar:
        result = jax.jit(lambda k, h: train(k, h, progress=bar.update, progress_every=10))(key, hp)

Under ``vmap`` (seed sweeps) the callback receives every run's iteration; the bar shows the
furthest one reached and the mean return.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np


class Bar:
    """A tqdm bar whose ``update(iteration, episode_return)`` is a progress callback."""

    def __init__(self, total: int, desc: str = "train", initial: int = 0, disable: bool = False):
        from tqdm.auto import tqdm

        self.done = initial
        self.tqdm = tqdm(total=total, initial=initial, desc=desc, unit="it", dynamic_ncols=True, disable=disable)

    def update(self, iteration, episode_return) -> None:
        iteration = int(np.max(iteration))  # absolute iteration; batched under vmap
        if iteration > self.done:
            self.tqdm.update(iteration - self.done)
            self.done = iteration
        value = float(np.nanmean(episode_return)) if np.any(np.isfinite(episode_return)) else math.nan
        if math.isfinite(value):
            self.tqdm.set_postfix(episode_return=f"{value:.1f}", refresh=False)

    def close(self) -> None:
        self.tqdm.close()


@contextlib.contextmanager
def bar(total: int, desc: str = "train", initial: int = 0, disable: bool = False):
    """A :class:`Bar` for the block; ``initial``: iterations already done (resumed runs)."""
    progress_bar = Bar(total, desc, initial, disable)
    try:
        yield progress_bar
    finally:
        progress_bar.close()
