"""N2N layer removal: a REINFORCE controller that compresses a teacher network into a student.

Ashok, Rhinehart, Beainy, Kitani (2018), "N2N Learning: Network to Network Compression via Policy
Gradient Reinforcement Learning", ICLR 2018, arXiv:1709.06030 (stage 1, layer removal); official
code github.com/anubhavashok/N2N (``run.py``, ``rl.py``, ``controllers/LSTM.py``,
``experiments/bd_run_layer_clean.py``, ``utils.py``).

A bidirectional LSTM reads one embedding per removable layer of the teacher and outputs, per
layer, a two-way softmax over (remove, keep); a student is one sampled keep/remove mask. Each
controller epoch samples ``N = 5`` students, trains each by knowledge distillation from the
teacher's logits (L2 between logits, the code's ``nn.MSELoss`` in ``trainTeacherStudentParallel``),
scores it on held-out data and rewards it with

    R = (acc / acc_teacher) * C (2 - C),    C = 1 - params / params_teacher,

R = -1 for an invalid student. The controller is then updated by REINFORCE with Adam (lr 3e-3).

What the official code does (``run.py`` + ``rl.py`` at the repository's HEAD), implemented here
as the default, with the paper-style alternatives as options:

* ``advantage="mean"``: every sampled sequence is reinforced with the same ``mean_i R_i - b``
  (``actions.reinforce(avgR - b)``), not with its own ``R_i - b`` (``"per_rollout"``, the usual
  per-sample REINFORCE estimate).
* ``baseline="n2n"``: ``b_e = (sum_{k<e} avgR_k) / (e + 1)`` at epoch ``e = 0, 1, ...``
  (``b = R_sum/float(e+1)`` before ``R_sum += avgR``). This is *not* the running mean of the
  previous epochs' averages: the divisor is one too large (b_1 = avgR_0 / 2), which biases ``b``
  towards 0 (an off-by-one; harmless for unbiasedness, since b does not depend on this epoch's
  actions). ``baseline="running_mean"`` is the corrected ``sum_{k<e} avgR_k / e`` (b_0 = 0).
* ``update="sequential"``: ``update_controller`` does ``zero_grad(); backward(); step()`` once
  per sequence: N Adam steps per epoch, each on one sequence's gradient. The gradients here are
  all taken at the sampling-time parameters (the PyTorch graphs were built then).
  ``update="batch"``: one Adam step on the mean over the N sequences (``1/N sum_i``).

Loss per sequence (``jaxpg.losses.reinforce_surrogate`` with the layers as the time axis):

    L(theta) = -sum_l log pi_theta(a_l) * sg(A),   A = mean_i R_i - b  (or R_i - b).

Constrained reward (``rl.getConstrainedReward``): when a constraint is violated (parameters above
``max_params``, or accuracy below ``min_accuracy``), R becomes ``(eps - 1) + eps * R`` with
``eps = max(0, 1 - e/15)^4``, ``e`` the controller epoch (0-based): a soft penalty at first that
becomes the invalid-model reward -1 from epoch 15 on. The code's ``min(1, max(0, (1-e/15)**4))``
clips after the fourth power, so eps rises again after epoch 15 and is 1 (no penalty at all) from
epoch 30 on (a bug, in a 100-epoch loop); here the base is clipped at 0 first.

Students in one static architecture: the teacher is an MLP ``x -> L x [relu(W_l h + b_l)] ->
W_out h + b_out`` with every hidden layer ``width x width`` (so the input dimension must equal
``width``); a removed layer is the identity, so every mask gives the same shapes and students
vmap over masks. Removable layers are the L hidden layers; the output layer is always kept.
Invalid masks (our rule; the code's two checks, flattened size in range and params <= teacher's,
always pass here): fewer than ``min_kept`` hidden layers kept (default 1: a student with no
hidden layer is a linear model of the input, not a network). The students start from a fresh
initialization, as in the code (``resetModel``), not from the teacher's weights.

Other quirks of the official code, for the record (not reproduced): in
``experiments/bd_run_layer_clean.py`` the output projection ``Wt_softmax`` is outside the Adam
optimizer (only ``controller.parameters()``, the LSTM, are trained), in
``experiments/ar_run_layer_clean.py`` ``newModel = resetModel(newModel)`` sets every student to
None (resetModel returns None), so every reward would be -1, and its ``rolloutActions`` reads
``probs`` before assigning it; the model cache ``previousModels`` of ``rl.py`` is never filled;
``controllers/LSTM.py`` sizes its output layer ``num_layers * hidden_size``, right only because
``num_layers = 2`` equals the number of directions.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxpg import losses
from jaxpg.algos.trainer import all_finite
from jaxpg.algos.validation import NONNEGATIVE, NONNEGATIVE_INT, POSITIVE, POSITIVE_INT, bounded, check_value, validate

BASELINES = ("n2n", "running_mean")
ADVANTAGES = ("mean", "per_rollout")
UPDATES = ("sequential", "batch")


# ------------------------------------------------------------------------------------------------
# Reward


def n2n_reward(accuracy, params, teacher_accuracy, teacher_params, valid=True):
    """``R = (acc / acc_t) * C (2 - C)``, ``C = 1 - params / params_t``; ``-1`` where not ``valid``.

    Ashok et al. (2018), eqs. 3-4: ``C(2 - C)`` rewards compression concavely (C = 0: 0; C = 1: 1),
    so the accuracy ratio decides between students of similar size. Broadcasts over arrays.
    """
    accuracy = jnp.asarray(accuracy, jnp.float32)
    compression = 1.0 - jnp.asarray(params, jnp.float32) / jnp.asarray(teacher_params, jnp.float32)
    reward = accuracy / teacher_accuracy * compression * (2.0 - compression)
    return jnp.where(valid, reward, -1.0)


def constraint_epsilon(epoch, decay_epochs=15.0):
    """``eps = max(0, 1 - e / decay_epochs)^4`` (the code's ``getEpsilon``, base clipped before the
    power so that eps stays 0 after ``decay_epochs``; see the module docstring)."""
    return jnp.clip(1.0 - jnp.asarray(epoch, jnp.float32) / decay_epochs, 0.0, 1.0) ** 4


def n2n_constrained_reward(reward, violated, epoch, decay_epochs=15.0):
    """``(eps - 1) + eps * R`` where ``violated``, else ``R``; ``eps = constraint_epsilon(epoch)``.

    ``epoch``: the controller epoch (0-based); ``violated``: the student breaks a hardware
    constraint (the code: ``params > size_constraint`` or ``acc < acc_constraint``).
    """
    eps = constraint_epsilon(epoch, decay_epochs)
    return jnp.where(violated, (eps - 1.0) + eps * reward, reward)


# ------------------------------------------------------------------------------------------------
# The teacher and its masked students


def init_mlp(key, width: int, num_layers: int, num_classes: int) -> dict:
    """Teacher/student parameters: ``hidden`` (``w [L, width, width]``, ``b [L, width]``) and
    ``head`` (``w [width, classes]``, ``b [classes]``); He-normal weights, zero biases."""
    k_hidden, k_head = jax.random.split(key)
    w = jax.random.normal(k_hidden, (num_layers, width, width)) * jnp.sqrt(2.0 / width)
    head = jax.random.normal(k_head, (width, num_classes)) * jnp.sqrt(1.0 / width)
    return {"hidden": {"w": w, "b": jnp.zeros((num_layers, width))},
            "head": {"w": head, "b": jnp.zeros((num_classes,))}}


def mlp_apply(params, mask, x):
    """Logits of the student ``mask`` (``[L]``, 1 = keep): a removed layer is the identity.

    ``h <- m_l relu(W_l h + b_l) + (1 - m_l) h`` for each hidden layer, then the output layer.
    The teacher is ``mask = ones``.
    """
    mask = jnp.asarray(mask, x.dtype)

    def layer(h, layer_params):
        (w, b), m = layer_params
        return m * jax.nn.relu(h @ w + b) + (1.0 - m) * h, None

    h, _ = jax.lax.scan(layer, x, ((params["hidden"]["w"], params["hidden"]["b"]), mask))
    return h @ params["head"]["w"] + params["head"]["b"]


def student_params(mask, width: int, num_classes: int):
    """Parameter count of the student ``mask`` (``[..., L]``): ``sum_l m_l (width^2 + width) +
    width * classes + classes``. The teacher's is ``student_params(ones(L), ...)``."""
    kept = jnp.sum(jnp.asarray(mask, jnp.int32), axis=-1)
    return kept * (width * width + width) + width * num_classes + num_classes


def mask_valid(mask, min_kept: int = 1):
    """The rule for invalid students (reward -1): fewer than ``min_kept`` hidden layers kept."""
    return jnp.sum(jnp.asarray(mask, jnp.int32), axis=-1) >= min_kept


def accuracy(logits, labels):
    return jnp.mean(jnp.argmax(logits, axis=-1) == labels)


def _minibatch_adam(params, loss, key, *, num_examples: int, num_steps: int, batch_size: int, learning_rate: float):
    """``num_steps`` Adam steps on ``loss(params, idx)`` over random minibatch indices (with
    replacement) of ``num_examples`` examples, in one ``lax.scan``: the teacher's training and
    every student's distillation."""
    tx = optax.adam(learning_rate)

    def step(carry, k):
        p, s = carry
        idx = jax.random.randint(k, (batch_size,), 0, num_examples)
        u, s = tx.update(jax.grad(loss)(p, idx), s, p)
        return (optax.apply_updates(p, u), s), None

    (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), jax.random.split(key, num_steps))
    return params


def train_teacher(key, x, y, *, width: int, num_layers: int, num_classes: int, num_steps: int = 1000,
                  batch_size: int = 128, learning_rate: float = 1e-3):
    """The teacher: cross-entropy, Adam, ``num_steps`` minibatch steps inside one ``lax.scan``."""
    _check_width(x, width)
    k_init, k_batches = jax.random.split(key)
    mask = jnp.ones((num_layers,))

    def loss(p, idx):
        return optax.softmax_cross_entropy_with_integer_labels(mlp_apply(p, mask, x[idx]), y[idx]).mean()

    return _minibatch_adam(init_mlp(k_init, width, num_layers, num_classes), loss, k_batches,
                           num_examples=x.shape[0], num_steps=num_steps, batch_size=batch_size,
                           learning_rate=learning_rate)


def distill_student(key, mask, x_train, teacher_logits, *, num_steps: int, batch_size: int, learning_rate: float):
    """A fresh student ``mask`` trained to the teacher's logits by L2 (mean squared error over
    batch and classes, the code's ``nn.MSELoss``; Ba & Caruana 2014) with Adam, in ``lax.scan``."""
    width, num_classes = x_train.shape[-1], teacher_logits.shape[-1]
    k_init, k_batches = jax.random.split(key)

    def loss(p, idx):
        return jnp.mean((mlp_apply(p, mask, x_train[idx]) - teacher_logits[idx]) ** 2)

    return _minibatch_adam(init_mlp(k_init, width, mask.shape[-1], num_classes), loss, k_batches,
                           num_examples=x_train.shape[0], num_steps=num_steps, batch_size=batch_size,
                           learning_rate=learning_rate)


def _check_width(x, width):
    if x.shape[-1] != width:
        raise ValueError(f"input dimension {x.shape[-1]} must equal width = {width} (a removed layer is the identity)")


# ------------------------------------------------------------------------------------------------
# Reward functions: ``reward_fn(task, masks [N, L], epoch, key) -> (rewards [N], info)``;
# ``info`` holds ``accuracy [N]`` and ``params [N]``. ``task`` is a pytree of arrays (traced).


@struct.dataclass
class DistillationTask:
    """A teacher to compress: training inputs with the teacher's logits, held-out data, and the
    teacher's held-out accuracy and parameter count."""

    x_train: jax.Array
    teacher_logits: jax.Array
    x_test: jax.Array
    y_test: jax.Array
    teacher_accuracy: jax.Array
    teacher_params: jax.Array


def make_distillation_task(teacher_params_tree, x_train, x_test, y_test) -> DistillationTask:
    """The task for a teacher trained by :func:`train_teacher`."""
    num_layers, width, _ = teacher_params_tree["hidden"]["w"].shape
    num_classes = teacher_params_tree["head"]["b"].shape[0]
    _check_width(x_train, width)
    ones = jnp.ones((num_layers,))
    return DistillationTask(
        x_train=x_train,
        teacher_logits=mlp_apply(teacher_params_tree, ones, x_train),
        x_test=x_test,
        y_test=y_test,
        teacher_accuracy=accuracy(mlp_apply(teacher_params_tree, ones, x_test), y_test),
        teacher_params=jnp.asarray(student_params(ones, width, num_classes), jnp.float32),
    )


def distillation_reward(*, num_steps: int = 200, batch_size: int = 128, learning_rate: float = 1e-3,
                        min_kept: int = 1, max_params: float | None = None, min_accuracy: float | None = None,
                        decay_epochs: float = 15.0) -> Callable:
    """The N2N reward of students trained by distillation (vmapped over the N masks).

    With ``max_params`` or ``min_accuracy`` set, violating students get the constrained reward
    :func:`n2n_constrained_reward`; invalid students (:func:`mask_valid`) get -1 in every case.
    """
    check_value("num_steps", num_steps, POSITIVE_INT)
    check_value("batch_size", batch_size, POSITIVE_INT)
    check_value("learning_rate", learning_rate, POSITIVE)
    check_value("min_kept", min_kept, NONNEGATIVE_INT)
    check_value("decay_epochs", decay_epochs, POSITIVE)

    def reward_fn(task: DistillationTask, masks, epoch, key):
        width, num_classes = task.x_train.shape[-1], task.teacher_logits.shape[-1]
        distill = lambda k, m: distill_student(  # noqa: E731
            k, m, task.x_train, task.teacher_logits, num_steps=num_steps, batch_size=batch_size,
            learning_rate=learning_rate)
        students = jax.vmap(distill)(jax.random.split(key, masks.shape[0]), masks)
        logits = jax.vmap(mlp_apply, in_axes=(0, 0, None))(students, masks, task.x_test)
        acc = jnp.mean(jnp.argmax(logits, -1) == task.y_test, axis=-1)
        params = student_params(masks, width, num_classes).astype(jnp.float32)
        rewards = n2n_reward(acc, params, task.teacher_accuracy, task.teacher_params)
        violated = jnp.zeros(masks.shape[0], bool)
        if max_params is not None:
            violated |= params > max_params
        if min_accuracy is not None:
            violated |= acc < min_accuracy
        if max_params is not None or min_accuracy is not None:
            rewards = n2n_constrained_reward(rewards, violated, epoch, decay_epochs)
        rewards = jnp.where(mask_valid(masks, min_kept), rewards, -1.0)
        return rewards, {"accuracy": acc, "params": params}

    return reward_fn


@struct.dataclass
class TableTask:
    """The synthetic mode: reward, accuracy and parameter count of every mask, looked up by the
    mask's index ``sum_l m_l 2^l`` (tables of length ``2^L``)."""

    reward: jax.Array
    accuracy: jax.Array
    params: jax.Array


def mask_index(masks):
    """``sum_l m_l 2^l``: the row of a mask in a :class:`TableTask`."""
    masks = jnp.asarray(masks, jnp.int32)
    return jnp.sum(masks * (2 ** jnp.arange(masks.shape[-1])), axis=-1)


def all_masks(num_layers: int) -> np.ndarray:
    """Every mask, ``[2^L, L]``, row ``i`` the mask of index ``i``."""
    return (np.arange(2**num_layers)[:, None] >> np.arange(num_layers)) & 1


def redundant_layers_task(num_layers: int, essential, *, width: int = 64, num_classes: int = 10,
                          teacher_accuracy: float = 0.97, missing_factor: float = 0.3, min_kept: int = 1) -> TableTask:
    """A synthetic teacher whose accuracy needs only the ``essential`` layers: a student keeps
    ``teacher_accuracy`` while every essential layer is kept, and loses a factor ``missing_factor``
    per essential layer removed; the other layers are redundant. Parameters and reward as for the
    masked MLP (:func:`student_params`, :func:`n2n_reward`, :func:`mask_valid`), so the best
    student keeps exactly the essential layers (for the defaults)."""
    essential = np.asarray(essential, int)
    if essential.size and (essential.min() < 0 or essential.max() >= num_layers):
        raise ValueError(f"essential layers must lie in 0..{num_layers - 1}, got {essential.tolist()}")
    masks = all_masks(num_layers)
    missing = (1 - masks[:, essential]).sum(axis=1) if essential.size else np.zeros(len(masks))
    acc = teacher_accuracy * missing_factor**missing
    params = np.asarray(student_params(masks, width, num_classes), np.float32)
    teacher_params = float(student_params(np.ones(num_layers), width, num_classes))
    reward = n2n_reward(acc, params, teacher_accuracy, teacher_params, mask_valid(masks, min_kept))
    return TableTask(reward=jnp.asarray(reward, jnp.float32), accuracy=jnp.asarray(acc, jnp.float32),
                     params=jnp.asarray(params))


def table_reward(task: TableTask, masks, epoch, key):
    """The synthetic reward function: a table lookup (``epoch`` and ``key`` unused)."""
    idx = mask_index(masks)
    return task.reward[idx], {"accuracy": task.accuracy[idx], "params": task.params[idx]}


# ------------------------------------------------------------------------------------------------
# The controller


def init_policy(key, feature_dim: int, hidden_size: int = 30, num_lstm_layers: int = 2) -> dict:
    """Parameters of :func:`policy_logits`: per LSTM layer and direction, input and recurrent
    weights of the four gates (uniform in +-1/sqrt(hidden), PyTorch's ``nn.LSTM`` initialization)
    and a bias; then the output layer ``[2 hidden, 2]``."""
    bound = 1.0 / np.sqrt(hidden_size)
    keys = iter(jax.random.split(key, 6 * num_lstm_layers + 1))
    uniform = lambda shape: jax.random.uniform(next(keys), shape, minval=-bound, maxval=bound)  # noqa: E731
    layers, dim = [], feature_dim
    for _ in range(num_lstm_layers):
        layers.append({d: {"w": uniform((dim, 4 * hidden_size)), "u": uniform((hidden_size, 4 * hidden_size)),
                           "b": uniform((4 * hidden_size,))} for d in ("forward", "backward")})
        dim = 2 * hidden_size
    return {"lstm": layers, "out": {"w": uniform((dim, 2)), "b": jnp.zeros((2,))}}


def _lstm(cell, xs, reverse: bool):
    hidden = cell["u"].shape[0]

    def step(carry, x):
        h, c = carry
        i, f, g, o = jnp.split(x @ cell["w"] + h @ cell["u"] + cell["b"], 4)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    zeros = jnp.zeros((hidden,), xs.dtype)  # the code's zero initial (h, c)
    _, hs = jax.lax.scan(step, (zeros, zeros), xs, reverse=reverse)
    return hs


def policy_logits(params, features):
    """The layer-removal policy: a stacked bidirectional LSTM over the layer embeddings
    ``[L, F]`` (each layer's input the concatenated forward and backward states of the one below),
    then a dense layer to (remove, keep) logits ``[L, 2]``; the code's ``nn.LSTM(5, 30, 2,
    bidirectional=True)`` and ``Linear(60, 2)`` with a softmax (``controllers/LSTM.py``). Written
    out rather than with flax's ``nn.RNN``: it compiled about twice as fast here, inside the scans."""
    x = features
    for layer in params["lstm"]:
        x = jnp.concatenate([_lstm(layer["forward"], x, False), _lstm(layer["backward"], x, True)], axis=-1)
    return x @ params["out"]["w"] + params["out"]["b"]


def layer_embeddings(num_layers: int) -> jax.Array:
    """Per-layer inputs ``[L, 4]`` for equal-width dense layers: (dense, fan_in / width,
    fan_out / width, l / (L - 1)). The code's ``Layer.toTorchTensor`` gives (type, kernel, stride,
    channels, padding), identical for identical layers; the relative position is our addition so
    that identical layers are told apart by their input as well as by the recurrence."""
    position = jnp.arange(num_layers, dtype=jnp.float32) / max(num_layers - 1, 1)
    ones = jnp.ones((num_layers,))
    return jnp.stack([ones, ones, ones, position], axis=1)


@dataclasses.dataclass(frozen=True)
class N2NConfig:
    num_epochs: int = bounded(50, POSITIVE_INT)
    num_rollouts: int = bounded(5, POSITIVE_INT)  # N students per epoch
    hidden_size: int = bounded(30, POSITIVE_INT)
    num_lstm_layers: int = bounded(2, POSITIVE_INT)
    baseline: str = "n2n"
    advantage: str = "mean"
    update: str = "sequential"


@struct.dataclass
class N2NHParams:
    learning_rate: float = bounded(3e-3, NONNEGATIVE)


@struct.dataclass
class N2NState:
    params: Any
    opt_state: Any
    key: jax.Array
    epoch: jax.Array
    reward_sum: jax.Array  # sum of the previous epochs' average rewards


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; valid choices: {', '.join(choices)}")


class N2NController:
    """``ctrl = N2NController(config, reward_fn, features)``; ``state, metrics = jax.jit(ctrl)(key,
    hparams, task)`` runs ``config.num_epochs`` epochs in one ``lax.scan``.

    ``reward_fn(task, masks [N, L], epoch, key) -> (rewards [N], {"accuracy", "params"})``
    (:func:`distillation_reward`, :func:`table_reward`); ``features``: ``[L, F]`` layer embeddings.
    Metrics per epoch: ``mean_reward``, ``best_reward``, ``mean_kept``, ``mean_accuracy``,
    ``baseline``, ``advantage`` (``mean R - b``), ``keep_prob [L]``, ``masks [N, L]``,
    ``rewards [N]``, ``accuracy [N]``, ``params [N]``, ``finite``.
    """

    def __init__(self, config: N2NConfig, reward_fn: Callable, features):
        validate(config)
        _check_choice("baseline", config.baseline, BASELINES)
        _check_choice("advantage", config.advantage, ADVANTAGES)
        _check_choice("update", config.update, UPDATES)
        features = jnp.asarray(features, jnp.float32)
        if features.ndim != 2 or features.shape[0] < 1:
            raise ValueError(
                f"features must be [num_layers, feature_dim] with num_layers >= 1, got shape {features.shape}")
        self.config = config
        self.reward_fn = reward_fn
        self.features = features
        self.num_layers = features.shape[0]
        self.default_hparams = N2NHParams()

    def optimizer(self, hparams) -> optax.GradientTransformation:
        return optax.adam(hparams.learning_rate)

    def init(self, key, hparams=None) -> N2NState:
        hparams = self.default_hparams if hparams is None else hparams
        validate(hparams)
        key_net, key_run = jax.random.split(key)
        params = init_policy(key_net, self.features.shape[1], self.config.hidden_size, self.config.num_lstm_layers)
        return N2NState(params=params, opt_state=self.optimizer(hparams).init(params), key=key_run,
                        epoch=jnp.zeros((), jnp.int32), reward_sum=jnp.zeros((), jnp.float32))

    def log_probs(self, params, masks):
        """``[L, n]`` log-probabilities of the masks ``[n, L]`` (layers as the time axis)."""
        log_pi = jax.nn.log_softmax(policy_logits(params, self.features))  # [L, 2]
        return jnp.take_along_axis(log_pi, jnp.asarray(masks, jnp.int32).T, axis=1)

    def loss(self, params, masks, returns, baseline):
        """``reinforce_surrogate`` over the sequences ``masks [n, L]`` with per-sequence
        ``returns [n]`` and a scalar ``baseline``: ``-(1/n) sum_i sum_l log pi(a_il) (R_i - b)``."""
        logp = self.log_probs(params, masks)
        returns = jnp.broadcast_to(returns, logp.shape)
        loss, _ = losses.reinforce_surrogate(logp, returns, jnp.broadcast_to(baseline, logp.shape))
        return loss

    def baseline(self, state: N2NState):
        epoch = state.epoch.astype(jnp.float32)
        if self.config.baseline == "n2n":
            return state.reward_sum / (epoch + 1.0)  # run.py: b = R_sum/float(e+1)
        return state.reward_sum / jnp.maximum(epoch, 1.0)

    def step(self, state: N2NState, hparams, task):
        c = self.config
        key, k_sample, k_reward = jax.random.split(state.key, 3)
        keep_prob = jax.nn.softmax(policy_logits(state.params, self.features))[:, 1]
        masks = jax.random.bernoulli(k_sample, keep_prob, (c.num_rollouts, self.num_layers)).astype(jnp.int32)
        rewards, info = self.reward_fn(task, masks, state.epoch, k_reward)
        mean_reward = jnp.mean(rewards)
        b = self.baseline(state)
        # "mean": the code reinforces every sequence with the epoch's average reward.
        returns = jnp.broadcast_to(mean_reward, rewards.shape) if c.advantage == "mean" else rewards
        tx = self.optimizer(hparams)
        if c.update == "batch":
            grads = jax.grad(self.loss)(state.params, masks, returns, b)
            updates, opt_state = tx.update(grads, state.opt_state, state.params)
            params = optax.apply_updates(state.params, updates)
        else:
            # One Adam step per sequence, every gradient at the sampling-time parameters.
            per_sequence = jax.vmap(jax.grad(self.loss), in_axes=(None, 0, 0, None))(
                state.params, masks[:, None], returns[:, None], b)

            def adam_step(carry, grads):
                params, opt_state = carry
                updates, opt_state = tx.update(grads, opt_state, params)
                return (optax.apply_updates(params, updates), opt_state), None

            (params, opt_state), _ = jax.lax.scan(adam_step, (state.params, state.opt_state), per_sequence)
        new_state = N2NState(params=params, opt_state=opt_state, key=key, epoch=state.epoch + 1,
                             reward_sum=state.reward_sum + mean_reward)
        metrics = {
            "mean_reward": mean_reward,
            "best_reward": jnp.max(rewards),
            "mean_kept": jnp.mean(jnp.sum(masks, axis=1).astype(jnp.float32)),
            "mean_accuracy": jnp.mean(info["accuracy"]),
            "baseline": b,
            "advantage": mean_reward - b,
            "keep_prob": keep_prob,
            "masks": masks,
            "rewards": rewards,
            "accuracy": info["accuracy"],
            "params": info["params"],
            "finite": jnp.logical_and(all_finite(params), jnp.all(jnp.isfinite(rewards))),
        }
        return new_state, metrics

    def run(self, state: N2NState, hparams, task, num_epochs: int | None = None):
        n = self.config.num_epochs if num_epochs is None else num_epochs
        return jax.lax.scan(lambda s, _: self.step(s, hparams, task), state, None, length=n)

    def __call__(self, key, hparams=None, task=None):
        hparams = self.default_hparams if hparams is None else hparams
        return self.run(self.init(key, hparams), hparams, task)

    def keep_probabilities(self, params):
        """``[L]`` keep probabilities of the policy ``params``."""
        return jax.nn.softmax(policy_logits(params, self.features))[:, 1]


def greedy_mask(keep_prob):
    """The most likely student: keep where ``p_keep > 1/2``."""
    return (jnp.asarray(keep_prob) > 0.5).astype(jnp.int32)


__all__ = [
    "ADVANTAGES",
    "BASELINES",
    "UPDATES",
    "DistillationTask",
    "N2NConfig",
    "N2NController",
    "N2NHParams",
    "N2NState",
    "TableTask",
    "accuracy",
    "all_masks",
    "constraint_epsilon",
    "distill_student",
    "distillation_reward",
    "greedy_mask",
    "init_mlp",
    "init_policy",
    "layer_embeddings",
    "make_distillation_task",
    "mask_index",
    "mask_valid",
    "mlp_apply",
    "n2n_constrained_reward",
    "n2n_reward",
    "policy_logits",
    "redundant_layers_task",
    "student_params",
    "table_reward",
]
