"""Where a PPO iteration's time goes: rollout, GAE, minibatch updates, and what is in them.

    python benchmarks/ppo_profile.py [--out benchmarks/results] [--label after]
    PYTHONPATH=/path/to/older/checkout python benchmarks/ppo_profile.py --label before

At the default CartPole settings (4 envs x 128 steps, 4 epochs x 4 minibatches of 128, 64x64
tanh), each phase of ``PPO.step`` is compiled on its own inside a ``lax.scan`` of ``N``
repetitions (so per-call dispatch is amortized, as in training) and timed (best of 3, wall
clock, ms per PPO iteration):

* ``rollout``: 128 steps of the 4 environments with the policy network sampling actions;
* ``rollout, random actions``: the same without the network (the environment's and the
  random-number generator's share);
* ``gae``: the bootstrap values and GAE(lambda) of one rollout;
* ``update``: 4 epochs x 4 minibatches: shuffling, loss, gradient, clipping, Adam;
* ``step``: one whole ``PPO.step`` (what training runs 1,024 times for 524,288 steps);

then one minibatch step taken apart (microseconds): the networks' forward pass, forward and
backward of a plain squared loss, the PPO objective's gradient, plus clipping and Adam; and the
number of XLA operations in the rollout's and the minibatch's loop bodies of the compiled
``train`` (fewer operations, less per-step overhead on CPU). It reads only interfaces the PPO
trainer has had since the contracts redesign, so an older checkout can be profiled with
``PYTHONPATH`` for a before/after table. Writes ``ppo_profile-<label>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import time

import jax
import jax.numpy as jnp
import optax

import jaxpg
from jaxpg import losses
from jaxpg.algos.rollout import rollout

REPEATS_PER_CALL = 64  # phases per compiled call
MINIBATCH_STEPS_PER_CALL = 1000


def _best_ms(fn, *args, per_call: int) -> float:
    """Best of 3 wall-clock times of the compiled ``fn(*args)``, in ms per repetition."""
    compiled = jax.jit(fn)
    jax.block_until_ready(compiled(*args))
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        best = min(best, time.perf_counter() - start)
    return 1e3 * best / per_call


def phases(train, hparams, state) -> dict:
    c, n = train.config, REPEATS_PER_CALL

    def act_with(params):
        def act(obs, key):
            policy, value = train.network.apply(params, obs)
            return policy.sample_and_log_prob(key), {"value": value}

        return act

    def random_act(obs, key):
        action = jax.random.randint(key, obs.shape[:1], 0, train.env.action_spec.n)
        return jaxpg.policies.ActionSample(latent=action, action=action, log_prob=jnp.zeros(obs.shape[:1])), {}

    def rollouts(state, act):
        def body(carry, key):
            env_state, obs = carry
            env_state, obs, traj = rollout(train.venv, act, key, env_state, obs, c.num_steps, state.env_params)
            return (env_state, obs), traj.reward.sum()

        return jax.lax.scan(body, (state.env_state, state.obs), jax.random.split(state.key, n))[1]

    traj = jax.jit(lambda s: rollout(train.venv, act_with(s.params), s.key, s.env_state, s.obs, c.num_steps,
                                     s.env_params)[2])(state)

    def gaes(traj, params):
        def body(_, shift):  # a different input each repetition, so nothing is hoisted out
            next_values = train.network.apply(params, traj.final_obs + shift, method="value")
            adv, targets = losses.gae(traj.reward, traj.extras["value"], next_values, terminated=traj.terminated,
                                      truncated=traj.truncated, gamma=hparams.gamma, lam=hparams.gae_lambda)
            return None, adv.sum() + targets.sum()

        return jax.lax.scan(body, None, jnp.arange(n, dtype=jnp.float32))[1]

    batch = train.steps_per_iteration
    flat = lambda x: x.reshape((batch,) + x.shape[2:])  # noqa: E731
    data = (jax.tree.map(flat, traj), flat(jnp.ones(traj.reward.shape)), flat(jnp.ones(traj.reward.shape)))
    tx = train.optimizer(hparams)

    def updates(params, opt_state, key):
        def minibatch_step(carry, minibatch):
            params, opt_state = carry
            grads, _ = jax.grad(train.loss, has_aux=True)(params, hparams, *minibatch)
            delta, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, delta), opt_state), None

        def epoch(carry, epoch_key):
            perm = jax.random.permutation(epoch_key, batch)
            shuffled = jax.tree.map(lambda x: x[perm].reshape((c.num_minibatches, -1) + x.shape[1:]), data)
            return jax.lax.scan(minibatch_step, carry, shuffled)[0], None

        def iteration(carry, key):
            return jax.lax.scan(epoch, carry, jax.random.split(key, c.update_epochs))[0], None

        params, _ = jax.lax.scan(iteration, (params, opt_state), jax.random.split(key, n))[0]
        return jax.tree.map(jnp.sum, params)

    def steps(state):
        final, _ = jax.lax.scan(lambda s, _: train.step(s, hparams), state, None, n)
        return jax.tree.map(jnp.sum, final.params)

    return {
        "rollout_ms": _best_ms(lambda s: rollouts(s, act_with(s.params)), state, per_call=n),
        "rollout_random_actions_ms": _best_ms(lambda s: rollouts(s, random_act), state, per_call=n),
        "gae_ms": _best_ms(gaes, traj, state.params, per_call=n),
        "update_ms": _best_ms(updates, state.params, state.opt_state, state.key, per_call=n),
        "step_ms": _best_ms(steps, state, per_call=n),
    }


def minibatch_parts(train, hparams, state) -> dict:
    """One minibatch step taken apart, in microseconds."""
    m = MINIBATCH_STEPS_PER_CALL
    traj = jax.jit(lambda s: rollout(
        train.venv, lambda obs, key: (lambda p, v: (p.sample_and_log_prob(key), {"value": v}))(
            *train.network.apply(s.params, obs)), s.key, s.env_state, s.obs, train.config.num_steps,
        s.env_params)[2])(state)
    size = train.steps_per_iteration // train.config.num_minibatches
    mb = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:])[:size], traj)
    adv, targets = jnp.linspace(-1.0, 1.0, size), jnp.linspace(0.0, 2.0, size)
    tx = train.optimizer(hparams)

    def scan_us(step, carry):
        def run(carry):
            return jax.lax.scan(lambda c, i: (step(c, i), None), carry, jnp.arange(m, dtype=jnp.float32))[0]

        return 1e3 * _best_ms(run, carry, per_call=m)

    def forward(params, i):
        policy, values = train.network.apply(params, mb.obs + 1e-6 * i)
        return jax.tree.map(lambda p: p + 1e-9 * (values.sum() + jax.tree.leaves(policy)[0].sum()), params)

    def squared_loss_sgd(params, i):
        def loss(p):
            policy, values = train.network.apply(p, mb.obs + 1e-6 * i)
            return jnp.mean((values - targets) ** 2) + jnp.mean(jax.tree.leaves(policy)[0] ** 2)

        return jax.tree.map(lambda p, g: p - 1e-4 * g, params, jax.grad(loss)(params))

    def ppo_sgd(params, i):
        grads, _ = jax.grad(train.loss, has_aux=True)(params, hparams, mb, adv + 1e-6 * i, targets)
        return jax.tree.map(lambda p, g: p - 1e-4 * g, params, grads)

    def ppo_adam(carry, i):
        params, opt_state = carry
        grads, _ = jax.grad(train.loss, has_aux=True)(params, hparams, mb, adv + 1e-6 * i, targets)
        delta, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, delta), opt_state

    return {
        "forward_us": scan_us(forward, state.params),
        "forward_backward_squared_loss_sgd_us": scan_us(squared_loss_sgd, state.params),
        "ppo_objective_gradient_sgd_us": scan_us(ppo_sgd, state.params),
        "ppo_objective_gradient_clip_adam_us": scan_us(ppo_adam, (state.params, state.opt_state)),
    }


def loop_body_op_counts(train, hparams) -> dict:
    """Operations in each while-loop body of the optimized HLO of ``train``, keyed by trip count
    (the rollout's body runs num_steps times per iteration, the minibatch step num_minibatches)."""
    text = jax.jit(train).lower(jax.random.key(0), hparams).compile().as_text()
    bodies, current = {}, None
    for line in text.splitlines():
        if line.endswith("{") and not line.startswith(" "):
            current = line.split(" ")[0].lstrip("%")
            bodies[current] = 0
        elif line.startswith("}"):
            current = None
        elif current is not None and " = " in line:
            bodies[current] += 1
    counts = {}
    for line in text.splitlines():
        match = re.search(r'while\(.*body=%?([\w.\-]+).*known_trip_count":\{"n":"(\d+)"', line)
        if match:
            counts.setdefault(int(match.group(2)), []).append(bodies.get(match.group(1), 0))
    return {"while_bodies_by_trip_count": {str(k): v for k, v in sorted(counts.items())},
            "total_hlo_lines": text.count("\n")}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(pathlib.Path(__file__).resolve().parent / "results"))
    parser.add_argument("--label", default="after", help="suffix of the JSON file (e.g. before / after)")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_compilation_cache", False)

    train = jaxpg.make_train("ppo", env="CartPole-v1", total_steps=524_288, lr_schedule="constant")
    hparams = train.default_hparams
    state = jax.jit(lambda key: train.init(key, hparams))(jax.random.key(0))
    load_before = os.getloadavg()
    result = {"label": args.label, "jaxpg_path": str(pathlib.Path(jaxpg.__file__).parent),
              "per_iteration": phases(train, hparams, state),
              "minibatch_step": minibatch_parts(train, hparams, state),
              "ops": loop_body_op_counts(train, hparams),
              "loadavg_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)]}
    it = result["per_iteration"]
    it["step_steps_per_s"] = train.steps_per_iteration / (it["step_ms"] / 1e3)
    for key, value in {**result["per_iteration"], **result["minibatch_step"]}.items():
        print(f"  {key:45s} {value:10.3f}")
    print(f"  while-loop body sizes by trip count: {result['ops']['while_bodies_by_trip_count']}")
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"ppo_profile-{args.label}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
