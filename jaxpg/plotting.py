"""Learning-curve figures: mean and spread over seeds against environment steps."""

from __future__ import annotations

import numpy as np

PANELS = (
    ("episode_return", "episode return"),
    ("loss", "total loss"),
    ("entropy", "policy entropy"),
    ("grad_norm", "gradient norm"),
    ("critic_loss", "critic loss"),
    ("alpha", "temperature alpha"),
    ("decoder_loss", "decoder flow-matching loss"),
)
# Mixture-of-experts metrics, one line per expert: expert collapse shows as lines going to 0.
EXPERT_PANELS = (
    ("gate_probability", "gate probability per expert"),
    ("selection_frequency", "selected as best, per expert"),
)


def _experts(metrics: dict, name: str) -> list[str]:
    """The ``name/<k>`` keys of ``metrics`` in expert order."""
    keys = [k for k in metrics if k.startswith(name + "/") and k.rsplit("/", 1)[1].isdigit()]
    return sorted(keys, key=lambda k: int(k.rsplit("/", 1)[1]))


def plot_learning_curves(metrics: dict, path: str, title: str = "") -> str:
    """Write a PNG of per-iteration metrics shaped ``[seeds, iterations]``.

    Each panel shows the mean over seeds (line), the interquartile range (dark band) and the
    min-max range (light band) against environment steps. Mixture-of-experts runs get a panel
    per ``gate_probability/<k>``, ``selection_frequency/<k>`` family: one line per expert
    (mean over seeds). A ``stage`` metric (GoRL) draws a dashed line where each stage begins.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(k, label) for k, label in PANELS if k in metrics]
    expert_panels = [(_experts(metrics, k), label) for k, label in EXPERT_PANELS if _experts(metrics, k)]
    steps = np.asarray(metrics["env_steps"], np.float64)
    steps = steps.reshape(-1, steps.shape[-1]).mean(0)
    count = len(panels) + len(expert_panels)
    fig, axes = plt.subplots(1, count, figsize=(4.2 * count, 3.4), squeeze=False)
    for ax, (keys, label) in zip(axes[0, len(panels):], expert_panels):
        for i, key in enumerate(keys):
            values = np.asarray(metrics[key], np.float64)
            ax.plot(steps, values.reshape(-1, values.shape[-1]).mean(0), color=f"C{i % 10}", lw=1.2,
                    label=f"expert {key.rsplit('/', 1)[1]}")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("environment steps")
        ax.set_title(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    for ax, (key, label) in zip(axes[0], panels):
        values = np.asarray(metrics[key], np.float64)
        values = values.reshape(-1, values.shape[-1])
        ax.fill_between(steps, values.min(0), values.max(0), alpha=0.15, color="C0", lw=0)
        ax.fill_between(steps, *np.percentile(values, [25, 75], axis=0), alpha=0.3, color="C0", lw=0)
        ax.plot(steps, values.mean(0), color="C0", lw=1.5)
        ax.set_xlabel("environment steps")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    if "stage" in metrics:  # staged algorithms (GoRL): a dashed line where each stage begins
        stage = np.asarray(metrics["stage"]).reshape(-1, steps.shape[0])[0]
        for start in np.flatnonzero(np.diff(stage)) + 1:
            for ax in axes[0]:
                ax.axvline(steps[start], color="0.4", ls="--", lw=0.8)
            axes[0, 0].annotate(f"stage {stage[start]}", (steps[start], 1.0), xycoords=("data", "axes fraction"),
                                fontsize=7, ha="left", va="top", color="0.3")
    seeds = np.asarray(metrics["episode_return"]).reshape(-1, steps.shape[0]).shape[0]
    fig.suptitle(f"{title}  ({seeds} seed{'s' if seeds > 1 else ''}: mean, IQR, min-max)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


META_PANELS = (
    ("meta_loss", "meta-objective L_meta"),
    ("return", "return in the agents' last rollout"),
    ("policy_entropy", "agents' policy entropy"),
)
# Level scores exist only where lifetimes ended: drawn as points.
META_SCORE_PANELS = (
    ("regret", "algorithmic regret of finished levels"),
    ("positive_value_loss", "positive value loss of finished levels"),
    ("lifetime_return", "finished agents' return"),
)


def plot_meta_training(metrics: dict, path: str, title: str = "") -> str:
    """Write a PNG of a meta-training run's per-meta-step metrics (1-D arrays) against meta-steps:
    the meta-objective, the agents' returns and entropy, and the curriculum's level scores at
    lifetime ends (panels without any finite value are left out)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(k, label, False) for k, label in META_PANELS if k in metrics]
    panels += [(k, label, True) for k, label in META_SCORE_PANELS
               if k in metrics and np.isfinite(np.asarray(metrics[k], np.float64)).any()]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.8 * len(panels), 3.2), squeeze=False)
    for ax, (key, label, points) in zip(axes[0], panels):
        values = np.asarray(metrics[key], np.float64)
        steps = np.arange(1, values.shape[0] + 1)
        if points:
            keep = np.isfinite(values)
            ax.plot(steps[keep], values[keep], "o-", ms=3)
        else:
            ax.plot(steps, values, lw=1)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("meta-steps")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
