"""Issue 14's learning results: the systems of jaxpg's scope that are not log-prob losses.

    python benchmarks/beyond_losses.py                      # every part (about 25 minutes here)
    python benchmarks/beyond_losses.py --parts hdpo,parl    # some parts; the others keep their stored results

Parts (each a module ``benchmarks/beyond_<part>.py`` with ``run`` and ``plot``, runnable alone):

* ``hdpo``: HDPO against the best base-stock and capped base-stock policies, one store, lead
  time 4, lost sales (Alvo, Russo & Kanoria 2023);
* ``optimizers``: SinkGD against Adam on PPO CartPole-v1 and a supervised MLP on digits, 5
  seeds, each at its best learning rate of one grid (Scetbon et al. 2025);
* ``natural_pg``: natural policy gradient with the gradient-normalized-smoothness step against
  plain policy gradient on a softmax bandit and CartPole-v1 (Semenov, Jaggi & Doikov 2025);
* ``parl``: PARL's bilevel reward design on a tabular bandit (closed-form optimum) and a grid
  world (Chakraborty et al. 2023);
* ``n2n``: N2N's REINFORCE layer-removal controller compressing an MLP teacher on digits
  (Ashok et al. 2018).

Writes benchmarks/results/beyond_losses.{json,md,png}; the JSON keeps one entry per part with the
date and the command that produced it.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import sys

import numpy as np

RESULTS = os.path.join(os.path.dirname(__file__), "results")
PARTS = ("hdpo", "optimizers", "natural_pg", "parl", "n2n")
PANELS = {"hdpo": 1, "optimizers": 2, "natural_pg": 2, "parl": 1, "n2n": 1}


def _module(part: str):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    return importlib.import_module(f"beyond_{part}")


def _mean_std(values) -> str:
    values = np.asarray([v for v in values if v is not None], np.float64)
    if values.size == 0:
        return "not reached"
    return f"{values.mean():.4g} +- {values.std():.2g}"


def _rows(part: str, r: dict) -> list[str]:
    """Markdown table rows ``| part | setting | result |`` of one part's stored result."""
    if part == "hdpo":
        return [
            f"| HDPO | lead time 4, lost sales, {r['seeds']} seeds x {r['steps']} steps of {r['train_batch']} paths | "
            f"test cost {_mean_std(r['hdpo_test_cost'])}; best base stock {r['base_stock']['test_cost']:.3f} "
            f"(gap {np.mean(r['hdpo_gap_to_base_stock_percent']):+.2f}%); best capped base stock "
            f"{r['capped_base_stock']['test_cost']:.3f} (gap {np.mean(r['hdpo_gap_to_capped_base_stock_percent']):+.2f}%) |"]
    if part == "optimizers":
        ppo, mlp = r["ppo_cartpole"], r["digits_mlp"]
        rows = []
        for name in ("adam", "sinkgd"):
            reached = [s for s in ppo[name]["steps_to_threshold"] if s is not None]
            rows.append(f"| {name} | PPO CartPole-v1, {ppo['env_steps']:,} steps, lr {ppo[name]['best_lr']:g} (best of "
                        f"{', '.join(f'{x:g}' for x in ppo['lr_grid'])}) | final return {_mean_std(ppo[name]['final_return'])}; "
                        f"{len(reached)}/{len(ppo[name]['final_return'])} seeds reach {ppo['threshold']:g}, after "
                        f"{_mean_std(reached)} steps |")
        for name in ("adam", "sinkgd"):
            rows.append(f"| {name} | MLP on digits, {mlp['steps']} steps of {mlp['batch']}, lr {mlp[name]['best_lr']:g} | "
                        f"test accuracy {_mean_std(mlp[name]['test_accuracy'])} |")
        return rows
    if part == "natural_pg":
        b, cp = r["bandit"], r["cartpole"]
        sampled_note = f" ({b['batch']} actions per iteration)"
        rows = []
        for kind in ("sampled", "exact"):
            for name, label in (("plain_pg", "plain PG"), ("natural_pg", "natural PG (GNS step)")):
                x = b[kind][name]
                rows.append(f"| {label} | softmax bandit ({b['arms']} arms), {kind} gradients"
                            f"{sampled_note if kind == 'sampled' else ''}, "
                            f"lr {x['best_lr']:g} | iterations to J >= {b['threshold']:g}: {_mean_std(x['iterations_to_threshold'])} |")
        for name, label in (("sgd", "plain PG (REINFORCE, sgd)"), ("gns", "natural PG (REINFORCE, gns)"),
                            ("adam", "REINFORCE, Adam (reference)")):
            x = cp[name]
            rows.append(f"| {label} | CartPole-v1, {cp['env_steps']:,} steps, lr {x['best_lr']:g} (best of "
                        f"{', '.join(f'{v:g}' for v in cp['lr_grid'][name])}) | iterations to a {cp['window']}-iteration "
                        f"mean return of {cp['threshold']:g}: {_mean_std(x['iterations_to_threshold'])}; final return "
                        f"{_mean_std(x['final_return'])} |")
        return rows
    if part == "parl":
        b, g = r["bandit"], r["grid"]["variants"]
        rows = [f"| PARL | softmax bandit, target behaviour, Phi = I, {b['identity_features']['iterations']} outer "
                f"iterations | ‖pi* - p_target‖₁ from {_mean_std(b['identity_features']['start'])} to "
                f"{_mean_std(b['identity_features']['final'])} (closed-form optimum: 0); hypergradient vs finite "
                f"differences: max relative error {b['hypergradient_vs_fd_max_rel_error']:.1e} |",
                f"| PARL | softmax bandit, 3 reward features | moment-matching residual ‖Phi^T (p - pi*)‖ from "
                f"{_mean_std(b['three_features']['start'])} to {_mean_std(b['three_features']['final'])} |"]
        for name, label in (("designed", "PARL"), ("flipped_sign", "PARL, flipped hypergradient"),
                            ("zero_lr", "PARL, zero upper learning rate")):
            rows.append(f"| {label} | 5x5 grid-world goal design, {r['grid']['iterations']} outer iterations | "
                        f"P(agent at target at T) {_mean_std(g[name]['final'])} (reward 0: "
                        f"{r['grid']['uniform_policy_at_nu_0']:.4f}) |")
        return rows
    summarize = getattr(_module(part), "table_rows", None)
    return summarize(r) if summarize else [f"| {part} | | see beyond_losses.json |"]


def write_markdown(results: dict, path: str) -> None:
    lines = ["# Beyond the log-prob loss (issue 14)", "",
             "Produced by `python benchmarks/beyond_losses.py`; per part: the date and command in beyond_losses.json.", "",
             "| method | setting | result (mean +- std over seeds) |", "|---|---|---|"]
    for part in PARTS:
        if part in results:
            lines += _rows(part, results[part]["result"])
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")


def plot_all(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = [p for p in PARTS if p in results]
    panels = sum(PANELS[p] for p in parts)
    cols = 4 if panels > 4 else panels
    rows = -(-panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.8 * rows), squeeze=False)
    flat = list(axes.ravel())
    for part in parts:
        mine, flat = flat[:PANELS[part]], flat[PANELS[part]:]
        _module(part).plot(mine[0] if len(mine) == 1 else mine, results[part]["result"])
    for ax in flat:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, from: {', '.join(PARTS)}")
    parser.add_argument("--seeds", type=int, default=None, help="seeds of every part run (default: each part's own)")
    parser.add_argument("--steps", type=int, default=1500, help="HDPO's training steps")
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; valid choices: {', '.join(PARTS)}")
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, "beyond_losses.json")
    results = {}
    if os.path.exists(path):
        with open(path) as fh:
            stored = json.load(fh)
        results = {p: stored[p] for p in PARTS if isinstance(stored.get(p), dict) and "result" in stored[p]}
    for part in parts:
        kwargs = {} if args.seeds is None else {"seeds": args.seeds}
        if part == "hdpo":
            kwargs["steps"] = args.steps
        flags = "".join(f" --{k} {v}" for k, v in kwargs.items())
        results[part] = {"date": datetime.date.today().isoformat(), "result": _module(part).run(**kwargs),
                         "command": f"python benchmarks/beyond_losses.py --parts {part}{flags}"}
        with open(path, "w") as fh:  # after every part: a later failure keeps what is done
            json.dump(results, fh, indent=1)
    write_markdown(results, os.path.join(RESULTS, "beyond_losses.md"))
    plot_all(results, os.path.join(RESULTS, "beyond_losses.png"))
    print(open(os.path.join(RESULTS, "beyond_losses.md")).read())


if __name__ == "__main__":
    main()
