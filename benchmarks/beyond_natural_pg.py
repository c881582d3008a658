"""Natural policy gradient with the gradient-normalized-smoothness (GNS) step against plain PG:
a softmax bandit with sampled (and exact) gradients, and REINFORCE on CartPole-v1 (Semenov,
Jaggi & Doikov 2025, arXiv 2506.13710; Kakade 2001; reference notes:
shared/reference/loss-catalog.md, A36).

    python benchmarks/beyond_natural_pg.py [--seeds 5]

The natural step is ``(G + lambda I)^{-1} g`` with ``lambda = ||g|| / gamma`` (``jaxpg.optim.gns``),
G a Fisher matrix: on the bandit the empirical Fisher of the sampled actions (the exact Fisher
``diag(pi) - pi pi^T`` for exact gradients); in REINFORCE (``optimizer="gns"``) the empirical
Fisher of the batch's actions plus ``vf_coef`` times the value Gauss-Newton matrix.

Fairness: every arm takes the best learning rate of its own small grid (stated in the output),
chosen on the mean over seeds of the statistic reported (bandit: iterations to the threshold,
not reached counted as the limit; CartPole: the mean return over the run, i.e. the area under
the learning curve); each (learning rate, seed) grid of one arm runs as one compiled program
(``jaxpg.sweep``), and everything else is the same: seeds, budget, network, clipping to
``max_grad_norm = 1`` before every optimizer, ``gns_gamma`` at its default. The learning-rate
grids differ per optimizer because their steps differ in scale (Adam's is about lr per
coordinate, the clipped SGD step at most lr long).
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxpg import optim
from jaxpg.algos.reinforce import ReinforceHParams

from _curves import first_at_least, learning_rate_sweep, moving_mean  # noqa: E402  (benchmarks/_curves.py)

# ---- (a) softmax bandit ------------------------------------------------------------------------
ARMS = 10
REWARDS = np.linspace(0.0, 1.0, ARMS).astype(np.float32)  # arm a pays a/9; arm 0 is the worst
REWARD_NOISE = 0.1  # Gaussian noise of each observed reward
BANDIT_BATCH = 16  # actions sampled per iteration
BANDIT_THRESHOLD = 0.9  # expected reward J(theta) = pi_theta . r to reach
BANDIT_LIMIT = 1000  # iterations
BANDIT_GAMMA = 10.0  # GNS radius on the bandit (the exact-gradient test's value)
BANDIT_LR = {"plain_pg": (0.3, 1.0, 3.0, 10.0), "natural_pg": (0.3, 1.0, 3.0, 10.0)}  # the same grid

# ---- (b) REINFORCE on CartPole-v1 --------------------------------------------------------------
CARTPOLE_STEPS = 160_000  # simulated steps per run: 40 iterations of 8 episodes x 500 steps
CARTPOLE_THRESHOLD = 195.0  # mean training return over a moving window of WINDOW iterations
WINDOW = 5
# Centred on each optimizer's best of a wider 2-seed probe (sgd 0.1-3: best 1; gns 0.1-3 at
# gamma 30: best 1; adam 1e-3-1e-2: best 1e-2, the edge, hence 3e-2 here).
CARTPOLE_LR = {"sgd": (0.3, 1.0, 3.0), "gns": (0.3, 1.0, 3.0), "adam": (3e-3, 1e-2, 3e-2)}
CARTPOLE_LABELS = {"sgd": "plain PG (sgd)", "gns": "natural PG (gns)", "adam": "Adam (reference)"}


def _bandit_start() -> jnp.ndarray:
    """A policy stuck on the worst arm: logit 3 on arm 0 (pi(0) = 0.69)."""
    return jnp.zeros(ARMS).at[0].set(3.0)


def _expected_reward(theta):
    return jax.nn.softmax(theta) @ REWARDS


def _sampled_gradient(theta, key):
    """REINFORCE's estimate of grad J from BANDIT_BATCH sampled actions with the leave-one-out
    baseline (unbiased), and the sampled actions (for the empirical Fisher)."""
    key_a, key_r = jax.random.split(key)
    actions = jax.random.categorical(key_a, theta, shape=(BANDIT_BATCH,))
    rewards = jnp.asarray(REWARDS)[actions] + REWARD_NOISE * jax.random.normal(key_r, (BANDIT_BATCH,))
    baseline = (rewards.sum() - rewards) / (BANDIT_BATCH - 1)
    scores = jax.nn.one_hot(actions, ARMS) - jax.nn.softmax(theta)  # grad log pi(a) of softmax logits
    return ((rewards - baseline)[:, None] * scores).mean(0), actions


def _bandit_step(kind: str, sampled: bool):
    def step(theta, key, lr):
        if sampled:
            g, actions = _sampled_gradient(theta, key)
            fvp = optim.fisher_vector_product(lambda t, a: jax.nn.log_softmax(t)[a], theta, (actions,))
        else:
            g = jax.grad(_expected_reward)(theta)
            fvp = optim.fisher_vector_product(jax.nn.log_softmax, theta, weights=jax.nn.softmax(theta))
        if kind == "plain_pg":
            return theta + lr * g
        lam = optim.gns_lambda(g, BANDIT_GAMMA)
        return theta + lr * optim.gns_direction(g, fvp, lam, num_cg_iters=ARMS)

    return step


def bandit(seeds: int) -> dict:
    """Plain PG (``theta += lr g``) against natural PG with the GNS step (``theta += lr (F +
    lambda I)^{-1} g``) from :func:`_bandit_start`: iterations until J >= BANDIT_THRESHOLD, per seed,
    with sampled gradients, and (one deterministic run) with exact gradients."""
    out = {"arms": ARMS, "batch": BANDIT_BATCH, "reward_noise": REWARD_NOISE, "threshold": BANDIT_THRESHOLD,
           "limit": BANDIT_LIMIT, "gns_gamma": BANDIT_GAMMA, "lr_grid": {k: list(v) for k, v in BANDIT_LR.items()}}
    keys = jax.random.split(jax.random.key(3), seeds)
    for sampled in (True, False):
        part = out.setdefault("sampled" if sampled else "exact", {})
        for kind, grid in BANDIT_LR.items():
            step = _bandit_step(kind, sampled)

            def run(lr, key):
                def body(theta, k):
                    return step(theta, k, lr), _expected_reward(theta)

                return jax.lax.scan(body, _bandit_start(), jax.random.split(key, BANDIT_LIMIT))[1]

            t0 = time.perf_counter()
            curves = np.asarray(jax.jit(jax.vmap(jax.vmap(run, (None, 0)), (0, None)))(
                jnp.asarray(grid, jnp.float32), keys if sampled else keys[:1]), np.float64)  # [lr, seed, iteration]
            reach = [[first_at_least(c, BANDIT_THRESHOLD) for c in by_seed] for by_seed in curves]
            cost = np.array([[BANDIT_LIMIT if r is None else r for r in by_seed] for by_seed in reach], np.float64)
            best = int(np.argmin(cost.mean(-1)))
            part[kind] = {
                "iterations_by_lr": cost.mean(-1).round(1).tolist(),
                "best_lr": grid[best],
                "iterations_to_threshold": reach[best],  # per seed; None: not reached in BANDIT_LIMIT
                "final_expected_reward": curves[best, :, -1].round(4).tolist(),
                "curve_mean": curves[best].mean(0)[::5].round(4).tolist(),  # every 5th iteration
                "wall_seconds": round(time.perf_counter() - t0, 1),
            }
            print(f"bandit ({'sampled' if sampled else 'exact'} gradients) {kind}: iterations to J >= "
                  f"{BANDIT_THRESHOLD:g} by lr {dict(zip(grid, part[kind]['iterations_by_lr']))}; best lr "
                  f"{grid[best]:g}: {reach[best]}", flush=True)
    return out


def cartpole(seeds: int) -> dict:
    """REINFORCE (jaxpg's defaults: 8 episodes of up to 500 steps per iteration, a learned
    baseline, clipping to 1) with ``optimizer`` in (sgd, gns, adam) for CARTPOLE_STEPS simulated
    steps: per learning rate and seed the mean training return, the iterations until the moving
    mean (WINDOW iterations) of the training return first reaches CARTPOLE_THRESHOLD, and the
    final return (mean of the last WINDOW iterations)."""
    out = {"env_steps": CARTPOLE_STEPS, "threshold": CARTPOLE_THRESHOLD, "window": WINDOW,
           "gns_gamma": float(ReinforceHParams().gns_gamma), "lr_grid": {k: list(v) for k, v in CARTPOLE_LR.items()}}
    for name, grid in CARTPOLE_LR.items():
        returns, steps, wall, metrics = learning_rate_sweep("reinforce", name, CARTPOLE_STEPS, grid, seeds,
                                                            jax.random.key(7))  # returns [lr, seed, iteration]
        best = int(np.argmax(returns.mean((1, 2))))
        reach = [first_at_least(m, CARTPOLE_THRESHOLD) for m in moving_mean(returns[best], WINDOW)]
        out[name] = {
            "mean_return_by_lr": returns.mean((1, 2)).round(1).tolist(),
            "best_lr": grid[best],
            # The iteration at the end of the first window whose mean reaches the threshold (1-based).
            "iterations_to_threshold": [None if r is None else r + WINDOW for r in reach],
            "final_return": returns[best, :, -WINDOW:].mean(-1).round(1).tolist(),
            "curve_mean": returns[best].mean(0).round(1).tolist(),
            "curve_std": returns[best].std(0).round(1).tolist(),
            "curve_steps": steps.tolist(),
            "wall_seconds": round(wall, 1),
        }
        if name == "gns":
            out[name]["gns_lambda_mean"] = float(np.mean(metrics["gns_lambda"][best]))
            out[name]["cg_residual_mean"] = float(np.mean(metrics["cg_residual"][best]))
        final = np.asarray(out[name]["final_return"])
        print(f"CartPole {name}: mean return by lr {dict(zip(grid, out[name]['mean_return_by_lr']))}; best lr "
              f"{grid[best]:g}: final {final.mean():.1f} +- {final.std():.1f}, iterations to "
              f"{CARTPOLE_THRESHOLD:g}: {out[name]['iterations_to_threshold']} ({wall:.0f} s)", flush=True)
    return out


def run(seeds: int = 5) -> dict:
    return {"bandit": bandit(seeds), "cartpole": cartpole(seeds)}


def plot(axes, result: dict) -> None:
    """Two panels: CartPole training return per optimizer at its best learning rate (mean +- std
    over seeds), and the bandit's iterations to the threshold per seed (sampled gradients)."""
    ax_rl, ax_bandit = axes
    cp = result["cartpole"]
    for name in CARTPOLE_LR:
        r = cp[name]
        steps, mean, std = (np.asarray(r[k], np.float64) for k in ("curve_steps", "curve_mean", "curve_std"))
        ax_rl.plot(steps, mean, label=f"{CARTPOLE_LABELS[name]}, lr {r['best_lr']:g}")
        ax_rl.fill_between(steps, mean - std, mean + std, alpha=0.2)
    ax_rl.axhline(cp["threshold"], color="gray", lw=0.8, ls="--")
    ax_rl.set(title="REINFORCE on CartPole-v1", xlabel="env steps", ylabel="training return")
    ax_rl.legend()
    bd = result["bandit"]
    limit = bd["limit"]
    for i, kind in enumerate(BANDIT_LR):
        reach = bd["sampled"][kind]["iterations_to_threshold"]
        values = [limit if r is None else r for r in reach]
        ax_bandit.scatter(np.full(len(values), i) + np.linspace(-0.15, 0.15, len(values)), values,
                          label=f"{kind}, lr {bd['sampled'][kind]['best_lr']:g}")
    ax_bandit.set_xticks(range(len(BANDIT_LR)), list(BANDIT_LR))
    ax_bandit.set(title=f"softmax bandit, {bd['batch']} sampled actions/iteration",
                  ylabel=f"iterations to J >= {bd['threshold']:g} ({limit}: not reached)", yscale="log")
    ax_bandit.legend()


def _summary(result: dict) -> str:
    lines = []
    bd = result["bandit"]
    for part in ("sampled", "exact"):
        for kind in BANDIT_LR:
            r = bd[part][kind]
            lines.append(f"bandit {part:7s} {kind:10s} lr {r['best_lr']:<5g} iterations to J>={bd['threshold']:g}: "
                         f"{['not reached' if x is None else x for x in r['iterations_to_threshold']]}")
    cp = result["cartpole"]
    for name in CARTPOLE_LR:
        r = cp[name]
        final = np.asarray(r["final_return"])
        lines.append(f"CartPole {CARTPOLE_LABELS[name]:18s} lr {r['best_lr']:<6g} final {final.mean():6.1f} +- "
                     f"{final.std():5.1f}  iterations to {cp['threshold']:g}: "
                     f"{['not reached' if x is None else x for x in r['iterations_to_threshold']]}")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args()
    t0 = time.perf_counter()
    result = run(args.seeds)
    print(_summary(result))
    print(f"total {time.perf_counter() - t0:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
