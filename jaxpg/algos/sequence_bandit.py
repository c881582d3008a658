"""The smallest sequence task: a multi-armed Bernoulli bandit per prompt, one-token responses,
tabular softmax policies, trained by any group recipe of :mod:`jaxpg.losses.sequence`.

Each of ``num_prompts`` prompts is a bandit with ``num_arms`` arms of success probability
``means[q, a]``; each iteration samples ``group_size`` arms per prompt from
``pi(a | q) = softmax(theta_q)``, draws Bernoulli rewards, and takes ``update_epochs`` Adam steps on
the recipe's loss (the catalog's learning test: 16 prompts x 8 samples, PPO dual clip). The
whole run is one ``lax.scan``, so ``jax.vmap`` over keys gives a spread of runs in one program.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxpg.losses import sequence as seq


def bandit_means(key: jax.Array, num_prompts: int, num_arms: int = 10) -> jax.Array:
    """Success probabilities ``[num_prompts, num_arms]``, uniform in [0, 1] (a random bandit per prompt)."""
    return jax.random.uniform(key, (num_prompts, num_arms))


def train_bandit(recipe, key: jax.Array, means: jax.Array, *, group_size: int = 8, num_steps: int = 200,
                 learning_rate: float = 0.1, update_epochs: int = 2, recipe_key: bool = False):
    """Train tabular policies on the bandits ``means`` with ``recipe``; returns
    ``(p_best [num_steps], final_probs [num_prompts, num_arms])`` where ``p_best`` is the
    probability the policy gives each prompt's best arm, averaged over prompts."""
    num_prompts, num_arms = means.shape
    best = jnp.argmax(means, axis=1)
    group_ids = jnp.repeat(jnp.arange(num_prompts), group_size)
    mask = jnp.ones((num_prompts * group_size, 1))
    tx = optax.adam(learning_rate)

    def log_probs(theta, arms):
        return jnp.take_along_axis(jax.nn.log_softmax(theta)[group_ids], arms[:, None], axis=1)

    def step(carry, key):
        theta, opt_state = carry
        key_arms, key_reward, key_loss = jax.random.split(key, 3)
        arms = jax.random.categorical(key_arms, theta[group_ids])
        rewards = jax.random.bernoulli(key_reward, means[group_ids, arms]).astype(jnp.float32)
        old = log_probs(theta, arms)
        batch = seq.SequenceBatch(logp=old, old_logp=old, mask=mask, rewards=rewards, group_ids=group_ids,
                                  ref_logp=old)

        def epoch(carry, epoch_key):
            theta, opt_state = carry
            loss_fn = lambda t: recipe(batch.replace(logp=log_probs(t, arms)), epoch_key if recipe_key else None)[0]
            grads = jax.grad(loss_fn)(theta)
            updates, opt_state = tx.update(grads, opt_state, theta)
            return (optax.apply_updates(theta, updates), opt_state), None

        (theta, opt_state), _ = jax.lax.scan(epoch, (theta, opt_state), jax.random.split(key_loss, update_epochs))
        probs = jax.nn.softmax(theta)
        return (theta, opt_state), jnp.mean(probs[jnp.arange(num_prompts), best])

    theta = jnp.zeros((num_prompts, num_arms))
    (theta, _), p_best = jax.lax.scan(step, (theta, tx.init(theta)), jax.random.split(key, num_steps))
    return p_best, jax.nn.softmax(theta)
