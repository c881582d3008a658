"""Learning-curve figures: mean and spread over seeds against environment steps."""

from __future__ import annotations

import numpy as np

PANELS = (
    ("episode_return", "episode return"),
    ("loss", "total loss"),
    ("entropy", "policy entropy"),
    ("grad_norm", "gradient norm"),
)


def plot_learning_curves(metrics: dict, path: str, title: str = "") -> str:
    """Write a PNG of per-iteration metrics shaped ``[seeds, iterations]``.

    Each panel shows the mean over seeds (line), the interquartile range (dark band) and the
    min-max range (light band) against environment steps.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(k, label) for k, label in PANELS if k in metrics]
    steps = np.asarray(metrics["env_steps"], np.float64)
    steps = steps.reshape(-1, steps.shape[-1]).mean(0)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels):
        values = np.asarray(metrics[key], np.float64)
        values = values.reshape(-1, values.shape[-1])
        ax.fill_between(steps, values.min(0), values.max(0), alpha=0.15, color="C0", lw=0)
        ax.fill_between(steps, *np.percentile(values, [25, 75], axis=0), alpha=0.3, color="C0", lw=0)
        ax.plot(steps, values.mean(0), color="C0", lw=1.5)
        ax.set_xlabel("environment steps")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    seeds = np.asarray(metrics["episode_return"]).reshape(-1, steps.shape[0]).shape[0]
    fig.suptitle(f"{title}  ({seeds} seed{'s' if seeds > 1 else ''}: mean, IQR, min-max)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
