"""PARL's bilevel trainer on its two known-answer problems (Chakraborty et al., "PARL: A Unified
Framework for Policy Alignment in Reinforcement Learning from Human Feedback", arXiv 2308.02585,
2023; reference notes: shared/reference/loss-catalog.md, A27), on the CPU.

    python benchmarks/beyond_parl.py [--seeds 5]

* bandit: 6 actions, tau = 1, the designer's upper objective is the cross-entropy to a random
  Dirichlet(3) target behaviour. Phi = I: the bilevel optimum is pi*(nu) = p_target (reported:
  ||pi*(nu) - p_target||_1 per seed, with pi* the closed form softmax(Phi nu / tau)); 3 random
  features: the optimum is moment matching (reported: ||Phi^T (p_target - pi*)||). Plus the
  implicit hypergradient's largest relative error against central finite differences (float64).
* grid world: 5x5, a wall across row 2 with a gap at the right, slip 0.05, gamma 0.9, tau 0.3; the
  designer sets one reward weight per cell so that the agent (entropy-regularized soft-optimal
  policy, K = 20 exact PG steps per outer iteration) is in the far corner at T = 12 from the
  start corner. Variants: designed (Adam on the hypergradient), flipped hypergradient sign, zero
  upper learning rate; and the reward nu = 0 (uniform policy). Curve: P(s_T = goal) per outer
  iteration, mean over seeds; final values also for the exact soft-optimal policy of the final nu.

``run(seeds)`` returns a JSON-ready dict; ``plot(ax_or_axes, result)`` draws the grid-world curves.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxpg.algos import parl

NUM_ACTIONS, NUM_FEATURES, TAU = 6, 3, 1.0
BANDIT = dict(num_outer=400, num_inner=10, inner_step_size=2.0, upper_lr=0.5, num_cg_iters=NUM_ACTIONS, tol=1e-6)
GRID = dict(tau=0.3, gamma=0.9, slip=0.05, horizon=12, ridge=1e-3, walls=((2, 0), (2, 1), (2, 2), (2, 3)))
GRID_TRAIN = dict(num_outer=200, num_inner=20, inner_step_size=15.0, num_cg_iters=50)
GRID_LR = 0.05
VARIANTS = ("designed", "flipped_sign", "zero_lr")


def _bandit(keys, num_features):
    def one(key):
        features, target, nu0 = parl.random_bandit(key, NUM_ACTIONS, num_features)
        lower, upper = parl.bandit_objectives(features, target, TAU)

        def distances(theta, nu):
            del theta
            pi = jax.nn.softmax(parl.bandit_optimal_logits(features, nu, TAU))
            return {"l1": jnp.abs(pi - target).sum(), "moment": jnp.linalg.norm(features.T @ (target - pi))}

        _, metrics = parl.train_parl(lower, upper, jnp.zeros(NUM_ACTIONS), nu0, metrics_fn=distances, **BANDIT)
        return metrics

    return jax.jit(jax.vmap(one))(keys)


def _hypergradient_fd_error(seeds: int) -> float:
    with jax.enable_x64(True):
        worst = 0.0
        for seed in range(seeds):
            features, target, nu = (jnp.asarray(x, jnp.float64) for x in
                                    parl.random_bandit(jax.random.key(100 + seed), NUM_ACTIONS, NUM_FEATURES, nu_scale=1.0))
            lower, upper = parl.bandit_objectives(features, target, TAU)
            theta = parl.bandit_optimal_logits(features, nu, TAU)
            cg, _ = parl.implicit_hypergradient(lower, upper, theta, nu, num_cg_iters=20, tol=1e-13)
            total = lambda n: upper(parl.bandit_optimal_logits(features, n, TAU), n)  # noqa: E731,B023
            eps = 1e-5
            fd = np.array([(total(nu + eps * e) - total(nu - eps * e)) / (2 * eps) for e in jnp.eye(NUM_FEATURES)])
            worst = max(worst, float(np.abs(np.asarray(cg) - fd).max() / np.abs(fd).max()))
        return worst


def _grid(keys):
    design = parl.grid_design(5, **GRID)

    def one(key, sign, lr):
        nu0 = 0.1 * jax.random.normal(key, (25,))
        state, metrics, designed = parl.grid_goal_design(design, nu0, optax.chain(optax.scale(sign), optax.adam(lr)),
                                                         **GRID_TRAIN)
        return metrics, designed, state.nu

    signs, lrs = jnp.array([1.0, -1.0, 1.0]), jnp.array([GRID_LR, GRID_LR, 0.0])
    runs = jax.jit(jax.vmap(lambda s, lr: jax.vmap(one, in_axes=(0, None, None))(keys, s, lr)))(signs, lrs)
    uniform = parl.grid_target_probability(design, parl.grid_soft_optimal_logits(design, jnp.zeros(25)))
    return runs, float(uniform)


def run(seeds: int = 5) -> dict:
    """Both problems over ``seeds`` keys; JSON-serializable."""
    start = time.perf_counter()
    keys = jax.random.split(jax.random.key(0), seeds)
    bandit = {}
    for name, num_features in (("identity_features", None), ("three_features", NUM_FEATURES)):
        metrics = jax.tree.map(np.asarray, _bandit(keys, num_features))
        distance = metrics["l1"] if num_features is None else metrics["moment"]
        below = distance < 1e-2
        bandit[name] = {
            "criterion": "||pi* - p_target||_1" if num_features is None else "||Phi^T (p_target - pi*)||",
            "start": distance[:, 0].tolist(), "final": distance[:, -1].tolist(),
            "first_iteration_below_1e-2": [int(np.argmax(b)) if b.any() else None for b in below],
            "all_finite": bool(metrics["finite"].all()), "iterations": BANDIT["num_outer"]}
    bandit["hypergradient_vs_fd_max_rel_error"] = _hypergradient_fd_error(seeds)
    bandit_seconds = time.perf_counter() - start

    (metrics, oracle, nus), uniform = _grid(keys)
    metrics, oracle, nus = jax.tree.map(np.asarray, (metrics, oracle, nus))
    grid = {"uniform_policy_at_nu_0": uniform, "iterations": GRID_TRAIN["num_outer"], "variants": {}}
    for i, name in enumerate(VARIANTS):
        p = metrics["p"][i]  # [seed, iteration]
        grid["variants"][name] = {"curve_mean": p.mean(0).tolist(), "curve_min": p.min(0).tolist(),
                                  "curve_max": p.max(0).tolist(), "final": p[:, -1].tolist(),
                                  "final_soft_optimal": oracle[i].tolist(),
                                  "all_finite": bool(metrics["finite"][i].all())}
    grid["designed_reward_seed0"] = np.round(nus[0, 0].reshape(5, 5), 3).tolist()
    total = time.perf_counter() - start
    return {"seeds": seeds, "bandit": bandit, "grid": grid,
            "settings": {"bandit": {**BANDIT, "tau": TAU, "num_actions": NUM_ACTIONS},
                         "grid": {**{k: v for k, v in GRID.items() if k != "walls"},
                                  "walls": [list(w) for w in GRID["walls"]], **GRID_TRAIN, "upper": f"adam({GRID_LR})"}},
            "wall_seconds": {"bandit_with_compile": round(bandit_seconds, 2), "total_with_compile": round(total, 2)}}


def plot(ax_or_axes, result: dict) -> None:
    """The grid-world target probability P(s_T = goal) against the outer iteration (mean over
    seeds, band: min-max), per variant, and the nu = 0 level. Draws on the first axes given."""
    ax = np.ravel(np.asarray(ax_or_axes, dtype=object))[0]
    grid = result["grid"]
    labels = {"designed": "PARL (designed reward)", "flipped_sign": "flipped hypergradient sign",
              "zero_lr": "zero upper learning rate"}
    for i, name in enumerate(VARIANTS):
        v = grid["variants"][name]
        x = np.arange(1, len(v["curve_mean"]) + 1)
        ax.plot(x, v["curve_mean"], color=f"C{i}", label=labels[name])
        ax.fill_between(x, v["curve_min"], v["curve_max"], color=f"C{i}", alpha=0.2, lw=0)
    ax.axhline(grid["uniform_policy_at_nu_0"], color="0.4", ls="--", lw=0.8, label="reward nu = 0 (uniform policy)")
    ax.set_xlabel("outer iteration")
    ax.set_ylabel("P(agent at target cell at T)")
    ax.set_title(f"PARL grid-world goal design ({result['seeds']} seeds)", fontsize=9)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    result = run(args.seeds)
    b, g = result["bandit"], result["grid"]
    fmt = lambda xs: " ".join(f"{x:.2e}" for x in xs)  # noqa: E731
    print(f"bandit Phi = I, ||pi* - p||_1 per seed: start {fmt(b['identity_features']['start'])}; "
          f"after {b['identity_features']['iterations']} iterations {fmt(b['identity_features']['final'])}")
    print(f"bandit 3 features, ||Phi^T (p - pi*)|| per seed: start {fmt(b['three_features']['start'])}; "
          f"final {fmt(b['three_features']['final'])}")
    print(f"hypergradient vs central finite differences: max relative error {b['hypergradient_vs_fd_max_rel_error']:.1e}")
    print(f"grid world: P(goal at T) with nu = 0 (uniform policy): {g['uniform_policy_at_nu_0']:.4f}")
    for name in VARIANTS:
        v = g["variants"][name]
        print(f"  {name:13s} final per seed {' '.join(f'{x:.3f}' for x in v['final'])}  (soft-optimal policy of "
              f"the final nu: {' '.join(f'{x:.3f}' for x in v['final_soft_optimal'])})  finite {v['all_finite']}")
    print(f"wall time {result['wall_seconds']['total_with_compile']:.1f} s (with compilation)")


if __name__ == "__main__":
    main()
