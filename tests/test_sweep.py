"""Sweeps: seeds x hyperparameters in one program; sharding over devices equals the unsharded run."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

import jaxpg


# The notebook's sweep (3 learning rates x 2 seeds, PPO CartPole at this budget): one program,
# compiled once per session through tests/conftest.py's compilation cache.
SMALL_PPO_STEPS = 4 * 512
LEARNING_RATES = [1e-4, 3e-4, 1e-3]


def test_grid_is_cartesian_product_and_validates():
    hp = jaxpg.sweep.grid(jaxpg.algos.PPOHParams(), learning_rate=[1e-4, 1e-3], clip_eps=[0.1, 0.2, 0.3])
    assert hp.learning_rate.shape == (6,)
    np.testing.assert_allclose(hp.learning_rate, [1e-4] * 3 + [1e-3] * 3, rtol=1e-6)
    np.testing.assert_allclose(hp.clip_eps, [0.1, 0.2, 0.3] * 2, rtol=1e-6)
    np.testing.assert_allclose(hp.gamma, [0.99] * 6, rtol=1e-6)
    with pytest.raises(ValueError, match="valid choices:.*learning_rate"):
        jaxpg.sweep.grid(jaxpg.algos.PPOHParams(), lr=[1e-3])
    with pytest.raises(TypeError, match=r"learning_rate needs a list of values, got 0.001 \(one value: learning_rate=\[0.001\]"):
        jaxpg.sweep.grid(jaxpg.algos.PPOHParams(), learning_rate=1e-3)
    with pytest.raises(ValueError, match=r"learning_rate = -0.001 \(sweep entry 1\) is out of range; valid: learning_rate >= 0"):
        jaxpg.sweep.grid(jaxpg.algos.PPOHParams(), learning_rate=[1e-3, -1e-3])


def test_old_style_keys_and_bad_keys():
    """An old-style uint32[2] PRNGKey works like a typed key (same runs); batches of keys do not."""
    train = jaxpg.make_train("ppo", env="CartPole-v1", total_steps=SMALL_PPO_STEPS)
    hp = jaxpg.sweep.grid(train.default_hparams, learning_rate=LEARNING_RATES)
    typed = jaxpg.sweep.run(train, seeds=2, hparams=hp, key=jax.random.key(3))
    old = jaxpg.sweep.run(train, seeds=2, hparams=hp, key=jax.random.PRNGKey(3))
    assert old.metrics["loss"].shape == (3, 2, 4)
    np.testing.assert_array_equal(typed.metrics["loss"], old.metrics["loss"])
    with pytest.raises(ValueError, match="key must be a single PRNG key"):
        jaxpg.sweep.run(train, seeds=2, key=jax.random.split(jax.random.key(0), 2))
    with pytest.raises(ValueError, match="key must be jax.random.key"):
        jaxpg.sweep.run(train, seeds=2, key=3)
    with pytest.raises(ValueError, match="seeds must be a positive integer"):
        jaxpg.sweep.run(train, seeds=0)
    # Batched values are checked entry by entry before anything is compiled.
    with pytest.raises(ValueError, match=r"gamma = 1.5 \(sweep entry 1\) is out of range; valid: 0 <= gamma <= 1"):
        jaxpg.sweep.run(train, hparams=jaxpg.sweep.stack([train.default_hparams, train.default_hparams.replace(gamma=1.5)]))


def test_sweep_matches_individual_runs():
    """Each (hparams, seed) cell of the vmapped sweep equals the same run made on its own."""
    train = jaxpg.make_train("ppo", env="CartPole-v1", total_steps=SMALL_PPO_STEPS)
    hp = jaxpg.sweep.grid(train.default_hparams, learning_rate=LEARNING_RATES)
    key = jax.random.key(7)
    out = jaxpg.sweep.run(train, seeds=2, hparams=hp, key=key)
    assert out.metrics["loss"].shape == (3, 2, 4)
    seed_keys = jax.random.split(key, 2)
    single = jax.jit(train)(seed_keys[1], jax.tree.map(lambda x: x[1], hp))
    cell = jax.tree.map(lambda x: x[1, 1], out)
    for a, b in zip(jax.tree.leaves(cell.params), jax.tree.leaves(single.params)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # Different learning rates really produced different runs.
    assert not np.allclose(out.metrics["loss"][0, 1], out.metrics["loss"][1, 1])


SHARDED_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import jax, numpy as np, jaxpg
    assert len(jax.devices()) == 4, jax.devices()
    # A small REINFORCE (cheap to compile): what is tested is the sharding, not the algorithm.
    train = jaxpg.make_train("reinforce", env="CartPole-v1", num_envs=2, horizon=50, hidden_sizes=(8,),
                             total_steps=2 * 2 * 50)
    hp = jaxpg.sweep.grid(train.default_hparams, learning_rate=[1e-3, 1e-2, 3e-2])
    sharded = jaxpg.sweep.run(train, seeds=2, hparams=hp, key=jax.random.key(1), shard=True)
    assert sharded.params["params"]["value_head"]["Dense_0"]["bias"].sharding.num_devices == 4
    plain = jaxpg.sweep.run(train, seeds=2, hparams=hp, key=jax.random.key(1), shard=False)
    diff = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
               for a, b in zip(jax.tree.leaves(sharded.params), jax.tree.leaves(plain.params)))
    print(json.dumps({"shape": list(sharded.metrics["loss"].shape), "max_abs_diff": diff,
                      "loss_equal": bool(np.allclose(sharded.metrics["loss"], plain.metrics["loss"], rtol=1e-4))}))
    """
)


def test_sharded_sweep_equals_unsharded_on_four_host_devices():
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    env = dict(os.environ, XLA_FLAGS=flags.strip(), JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", SHARDED_SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["shape"] == [3, 2, 2]  # 6 runs padded to 8 over 4 devices, then trimmed
    assert report["max_abs_diff"] < 1e-4
    assert report["loss_equal"]
