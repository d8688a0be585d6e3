"""Training: explicit state, one jitted multi-step chunk, evaluation on averaged weights.

Per iteration (the reference's order): one discriminator step on a labeled, an
unlabeled and a generated batch, then one generator step on its own unlabeled batch.
Iterations run inside ``lax.scan`` over a chunk (an epoch) with the data resident on
device, so small models are not bound by Python dispatch; the host only supplies the
per-epoch batch indices (which it draws from ``(seed, epoch)``, so any epoch's order is
reproducible on its own).

Two modes share every function: ``"sgan"`` (the semi-supervised GAN) and
``"supervised"`` (the same discriminator trained on the labeled stream alone, the
baseline that every result is reported beside).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import signal
import sys
import threading
import time
from typing import Any, Callable, Optional, Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.experimental import multihost_utils
import numpy as np
import optax
import tqdm

from sgan_jax import checkpoint as ckpt_lib
from sgan_jax import images
from sgan_jax import memory
from sgan_jax import tblog
from sgan_jax import data as data_lib
from sgan_jax import losses
from sgan_jax.config import Config
from sgan_jax.errors import SganError
from sgan_jax.models import (ConvDiscriminator, ConvGenerator, DCGANDiscriminator, DCGANGenerator,
                             MLPDiscriminator, MLPGenerator)
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

PyTree = Any
MODES = ("sgan", "supervised")


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training. ``g_*`` are None in supervised mode."""

  step: jax.Array            # () int32, iterations done
  d_params: PyTree           # trainable discriminator parameters
  d_frozen: PyTree           # not trained by gradient: {"weightnorm": frozen scales} and/or
                             # {"batch_stats": running averages} (DCGAN discriminator)
  d_opt: PyTree
  d_avg: PyTree              # Polyak average of d_params, started at zero
  g_params: Optional[PyTree]
  g_state: Optional[PyTree]  # {"batch_stats": ...}
  g_opt: Optional[PyTree]
  key: jax.Array             # PRNG key for the next iteration
  d_avg2: Optional[PyTree] = None  # a second Polyak average (cfg.second_avg_rate), or None


@dataclasses.dataclass(frozen=True)
class Models:
  disc: nn.Module
  gen: nn.Module
  tx_d: optax.GradientTransformation
  tx_g: optax.GradientTransformation
  cfg: Config
  example_shape: tuple
  num_classes: int
  iters_per_epoch: int


# --------------------------------------------------------------------------- building
def build_models(cfg: Config, example_shape: tuple, num_classes: int, iters_per_epoch: int,
                 epochs: Optional[int] = None) -> Models:
  """Modules and optimisers for a config. ``example_shape`` excludes the batch axis."""
  dtype = jnp.bfloat16 if cfg.compute_dtype == "bfloat16" else None
  act = {"0,1": "sigmoid", "-1,1": "tanh", "none": "linear"}[cfg.pixel_range]
  fake = cfg.parameterization == "k+1"
  cond = num_classes if cfg.conditional else 0
  # Regression: output 0 is the regression head, output 1 the real/fake logit Z.
  outputs = 2 if cfg.task == "regression" else num_classes
  if cfg.model == "mlp":
    disc = MLPDiscriminator(outputs, tuple(cfg.d_hidden), cfg.input_noise, cfg.hidden_noise,
                            fake, dtype, cfg.noise_rng)
    gen = MLPGenerator(tuple(example_shape), tuple(cfg.g_hidden), act, dtype, cond)
  else:
    if len(example_shape) != 3:
      raise SganError(f"model={cfg.model!r} needs images (H, W, C); the data has examples of "
                      f"shape {example_shape}. Use model='mlp' for feature vectors.")
    h, w = example_shape[:2]
    # The conv pair upsamples from H/8 and the critic's valid 3x3 conv needs >= 3x3 after two
    # stride-2 stages; smaller images would give an empty feature map and NaN losses.
    step, least = (8, 16) if cfg.model == "conv" else (4, 4)
    if h % step or w % step or min(h, w) < least:
      raise SganError(f"model={cfg.model!r} needs images whose height and width are multiples "
                      f"of {step} and at least {least}; the data has {h}x{w}. Resize or pad the "
                      "images, or use model='mlp'" + (" or 'dcgan'" if cfg.model == "conv" else "") + ".")
    if cfg.model == "conv":
      disc = ConvDiscriminator(outputs, cfg.d_width, fake, dtype)
      gen = ConvGenerator(tuple(example_shape), cfg.g_width, act, dtype, cond)
    else:
      disc = DCGANDiscriminator(outputs, cfg.d_width, fake, dtype)
      gen = DCGANGenerator(tuple(example_shape), cfg.g_width, act, dtype, cond)
  epochs = epochs or cfg.epochs
  sched = lr_schedule(cfg.lr, iters_per_epoch, epochs, cfg.lr_decay_epochs)
  tx = lambda: optax.adam(sched, b1=cfg.b1, b2=cfg.b2, eps=0.0, eps_root=cfg.eps_root)
  return Models(disc, gen, tx(), tx(), cfg, tuple(example_shape), num_classes, iters_per_epoch)


def lr_schedule(base_lr: float, iters_per_epoch: int, epochs: int,
                decay_epochs: int) -> Callable[[jax.Array], jax.Array]:
  """The reference's per-epoch schedule: constant, then linear to 0 over the last epochs.

  ``lr(step) = base_lr * min((epochs - epoch) / decay_epochs, 1)`` with
  ``epoch = step // iters_per_epoch`` (MNIST: ``min(3 - epoch/100, 1)`` for 300 epochs).
  """
  if decay_epochs == 0:
    return optax.constant_schedule(base_lr)

  def schedule(step):
    epoch = (step // iters_per_epoch).astype(jnp.float32)
    return base_lr * jnp.clip((epochs - epoch) / decay_epochs, 0.0, 1.0)

  return schedule


def init_state(m: Models, key: jax.Array, init_batch: jax.Array, mode: str = "sgan") -> TrainState:
  """Random init, then data-dependent weight-norm init on ``init_batch`` with noise on.

  Args:
    init_batch: ``(n, *example_shape)`` real training examples (the reference uses 500).
  """
  _check_mode(mode)
  k_d, k_g, k_noise, k_gnoise, k_z, k_run = jax.random.split(key, 6)
  x0 = init_batch[:1]
  d_vars = m.disc.init({"params": k_d, "noise": k_noise}, x0, train=False)
  # Data-dependent init runs in training mode (noise/dropout on), as the reference does.
  _, d_vars = m.disc.apply(d_vars, init_batch, train=True, init_mode=True,
                           mutable=["params", "weightnorm", "batch_stats"],
                           rngs={"noise": k_noise})
  d_params = d_vars["params"]
  d_frozen = {k: v for k, v in d_vars.items() if k != "params"}
  g_params = g_state = g_opt = None
  if mode == "sgan":
    z = sample_z(k_z, init_batch.shape[0], m.cfg.latent_dim)
    c = sample_classes(m, jax.random.fold_in(k_z, 1), init_batch.shape[0])
    g_vars = m.gen.init({"params": k_g, "noise": k_gnoise}, z[:2],
                        None if c is None else c[:2], train=False)
    # Only layers that take init_mode (the conv generator's output layer) change here.
    _, g_vars = m.gen.apply(g_vars, z, c, train=True, init_mode=True,
                            mutable=["params", "batch_stats"])
    g_params = g_vars["params"]
    g_state = {k: v for k, v in g_vars.items() if k != "params"}
    g_opt = m.tx_g.init(g_params)
  return TrainState(step=jnp.zeros((), jnp.int32), d_params=d_params, d_frozen=d_frozen,
                    d_opt=m.tx_d.init(d_params), d_avg=jax.tree.map(jnp.zeros_like, d_params),
                    g_params=g_params, g_state=g_state, g_opt=g_opt, key=k_run,
                    d_avg2=(jax.tree.map(jnp.zeros_like, d_params) if m.cfg.second_avg_rate
                            else None))


def sample_z(key: jax.Array, n: int, latent_dim: int) -> jax.Array:
  """Latent codes ``z ~ U(0, 1)^latent_dim`` as in the reference: ``(n, latent_dim)``."""
  return jax.random.uniform(key, (n, latent_dim))


def sample_classes(m: "Models", key: jax.Array, n: int) -> Optional[jax.Array]:
  """Uniform class ids ``(n,)`` for a conditional generator; None for an unconditional one."""
  if not m.cfg.conditional:
    return None
  return jax.random.randint(key, (n,), 0, m.num_classes)


def _check_mode(mode):
  if mode not in MODES:
    raise SganError(f"mode must be one of {MODES}, got {mode!r}.")


def make_mesh(num_devices: int = 0, batch_size: Optional[int] = None) -> Mesh:
  """A 1-D ``("data",)`` mesh over the first ``num_devices`` devices (0 = all).

  Every stream's batch is split across this axis; parameters are replicated.
  """
  devices = jax.devices()
  n = num_devices or len(devices)
  if jax.process_count() > 1 and n != len(devices):
    raise SganError(f"num_devices={num_devices} with {jax.process_count()} processes: a "
                    f"multi-process run uses all {len(devices)} devices; set num_devices=0.")
  if n > len(devices):
    raise SganError(f"num_devices={n} but only {len(devices)} {devices[0].platform} device(s) "
                    "are visible; lower num_devices (0 uses all).")
  if batch_size is not None and batch_size % n:
    raise SganError(f"batch_size={batch_size} does not divide across {n} devices; use a "
                    f"multiple of {n} (e.g. {max(n, batch_size // n * n)}) or set num_devices.")
  return Mesh(np.asarray(devices[:n]), ("data",))


def place(tree, sharding: NamedSharding):
  """Puts host or single-device values, the same on every process, onto ``sharding``.

  One process: ``jax.device_put``. Several (after ``jax.distributed.initialize``): each
  process builds only its own devices' shards from its copy
  (``jax.make_array_from_callback``), and together they form one global array; this is
  how the replicated state, the resident data and every batch's indices are assembled.
  """
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)

  def one(x):
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      return jax.random.wrap_key_data(one(jax.random.key_data(x)), impl=jax.random.key_impl(x))
    a = np.asarray(x)
    return jax.make_array_from_callback(a.shape, sharding, lambda i: a[i])

  return jax.tree.map(one, tree)


def to_host(x) -> np.ndarray:
  """A replicated (possibly multi-process) array as a host NumPy array."""
  if isinstance(x, jax.Array) and not x.is_fully_addressable:
    if not x.is_fully_replicated:
      raise ValueError(f"to_host needs a replicated array, got sharding {x.sharding}")
    return np.asarray(x.addressable_data(0))  # every shard is the whole value
  return np.asarray(x)


# --------------------------------------------------------------------------- one iteration
def train_iteration(m: Models, state: TrainState, x_lab: jax.Array, y_lab: jax.Array,
                    x_unl: jax.Array, x_unl2: jax.Array, mode: str = "sgan",
                    class_prior: Optional[jax.Array] = None):
  """One discriminator step, then (in ``"sgan"`` mode) one generator step.

  Args:
    x_lab: ``(B, *shape)`` labeled batch; y_lab: ``(B,)``.
    x_unl: ``(B, *shape)`` unlabeled batch for the D step.
    x_unl2: ``(B, *shape)`` a second unlabeled batch for the G step.
    class_prior: ``(K,)`` target of the ``balance_weight`` term (default uniform); the
      chunk functions pass :func:`chunk_class_prior` of the whole labeled set.
  Returns ``(new_state, metrics)`` with scalar metrics.
  """
  cfg = m.cfg
  param = cfg.parameterization
  key, k_z, k_d, k_z2, k_g = jax.random.split(state.key, 5)
  b_lab, b_unl = x_lab.shape[0], x_unl.shape[0]
  g_state = state.g_state

  if mode == "sgan":
    z = sample_z(k_z, b_unl, cfg.latent_dim)
    c_fake = sample_classes(m, jax.random.fold_in(k_z, 1), b_unl)
    x_fake, g_upd = m.gen.apply({"params": state.g_params, **g_state}, z, c_fake, train=True,
                                mutable=["batch_stats"])
    g_state = {**g_state, **g_upd}
    x_fake = jax.lax.stop_gradient(x_fake).astype(x_lab.dtype)
    x_all = jnp.concatenate([x_lab, x_unl, x_fake])
  else:
    x_all = x_lab

  def d_apply(d_params, x, key, groups):
    """Training-mode forward; returns ``((logits, features), batch_stats updates)``."""
    return m.disc.apply({"params": d_params, **state.d_frozen}, x, train=True, groups=groups,
                        rngs={"noise": key}, mutable=["batch_stats"])

  def real_fake_part(logits):
    # Regression: output 1 is the real/fake logit Z, so D(x) = sigmoid(Z).
    return logits[:, 1:] if cfg.task == "regression" else logits

  def d_loss_fn(d_params):
    # One forward pass over all streams. Noise is per example and batch norm (DCGAN
    # discriminator only) normalises each stream on its own, so this equals one pass
    # per stream.
    (logits, _), d_upd = d_apply(d_params, x_all, k_d, x_all.shape[0] // b_lab)
    l_lab = logits[:b_lab]
    if cfg.task == "regression":
      sup = losses.regression_loss(l_lab[:, 0], y_lab, cfg.regression_loss, cfg.huber_delta)
      out = {"loss_lab": sup, "train_err": jnp.sqrt(jnp.mean(jnp.square(l_lab[:, 0] - y_lab)))}
    else:
      sup = losses.supervised_xent(l_lab, y_lab, param)
      out = {"loss_lab": sup, "train_err": losses.error_rate(l_lab, y_lab, param)}
    total = sup
    if mode == "sgan":
      rf = real_fake_part(logits)
      rf_unl, rf_fake = rf[b_lab:b_lab + b_unl], rf[b_lab + b_unl:]
      if cfg.d_objective == "wasserstein":
        unsup = losses.d_wasserstein(rf_unl, rf_fake, param)
        k_eps, k_gp = jax.random.split(jax.random.fold_in(k_d, 1))
        x_hat = losses.interpolate(k_eps, x_unl, x_fake)
        critic = lambda t: losses.critic_value(
            real_fake_part(d_apply(d_params, t, k_gp, 1)[0][0]), param)
        gp = losses.gradient_penalty(critic, x_hat)
        out["loss_gp"] = gp
        unsup = unsup + cfg.gp_weight * gp
      else:
        unsup = losses.d_unsupervised(rf_unl, rf_fake, param)
      out["loss_unl"] = unsup
      total = total + cfg.unlabeled_weight * unsup
      l_unl = logits[b_lab:b_lab + b_unl]
      if cfg.entropy_weight > 0:
        ent = losses.conditional_entropy(l_unl, param)
        out["loss_ent"] = ent
        total = total + cfg.entropy_weight * ent
      if cfg.balance_weight > 0:
        bal = losses.class_balance(l_unl, param, class_prior)
        out["loss_bal"] = bal
        total = total + cfg.balance_weight * bal
    return total, (out, d_upd)

  d_grads, (metrics, d_upd) = jax.grad(d_loss_fn, has_aux=True)(state.d_params)
  d_updates, d_opt = m.tx_d.update(d_grads, state.d_opt, state.d_params)
  d_params = optax.apply_updates(state.d_params, d_updates)
  d_avg = optax.incremental_update(d_params, state.d_avg, cfg.avg_rate)
  d_avg2 = (None if state.d_avg2 is None else
            optax.incremental_update(d_params, state.d_avg2, cfg.second_avg_rate))
  new = state.replace(step=state.step + 1, d_params=d_params, d_opt=d_opt, d_avg=d_avg, key=key,
                      d_frozen={**state.d_frozen, **d_upd}, d_avg2=d_avg2)
  if mode == "supervised":
    return new, metrics

  z2 = sample_z(k_z2, x_unl2.shape[0], cfg.latent_dim)
  c2 = sample_classes(m, jax.random.fold_in(k_z2, 1), x_unl2.shape[0])

  uses_fm = "feature_matching" in cfg.g_loss
  if uses_fm:
    # The real half does not depend on G: one forward pass, no backward through it (a
    # joint pass would backpropagate through D for both halves).
    (_, feats_real), _ = d_apply(d_params, x_unl2, k_g, 1)
    feats_real = jax.lax.stop_gradient(feats_real)

  def g_loss_fn(g_params):
    x_gen, upd = m.gen.apply({"params": g_params, **g_state}, z2, c2, train=True,
                             mutable=["batch_stats"])
    # The generator step reads D's running statistics but does not update them.
    (logits_fake, feats_fake), _ = d_apply(d_params, x_gen.astype(x_unl2.dtype),
                                           jax.random.fold_in(k_g, 1), 1)
    fake_rf = real_fake_part(logits_fake)
    parts = {}
    if cfg.g_loss == "feature_matching":
      loss = losses.feature_matching(feats_real, feats_fake, cfg.fm_order)
    elif cfg.g_loss == "non_saturating":
      loss = losses.g_non_saturating(fake_rf, param)
    elif cfg.g_loss == "non_saturating+feature_matching":  # Odena-style DCGAN recipe
      loss = (losses.g_non_saturating(fake_rf, param)
              + losses.feature_matching(feats_real, feats_fake, cfg.fm_order))
    elif cfg.g_loss == "wasserstein":
      loss = losses.g_wasserstein(fake_rf, param)
    else:
      loss = losses.g_minimax(fake_rf, param)
    if cfg.pullaway_weight > 0:
      parts["loss_pt"] = losses.pull_away(feats_fake)
      loss = loss + cfg.pullaway_weight * parts["loss_pt"]
    if cfg.conditional:
      parts["loss_cond"] = losses.conditional_xent(logits_fake, c2, param)
      loss = loss + cfg.cond_weight * parts["loss_cond"]
    return loss, (upd, parts)

  (g_loss, (g_upd, g_parts)), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(state.g_params)
  g_updates, g_opt = m.tx_g.update(g_grads, state.g_opt, state.g_params)
  g_params = optax.apply_updates(state.g_params, g_updates)
  metrics = {**metrics, **g_parts, "loss_gen": g_loss}
  return new.replace(g_params=g_params, g_state={**g_state, **g_upd}, g_opt=g_opt), metrics


def chunk_class_prior(m: Models, y_lab: jax.Array) -> Optional[jax.Array]:
  """The ``balance_weight`` term's target: the labeled set's smoothed class frequencies
  (:func:`sgan_jax.losses.label_prior`), ``(K,)``; None when the term is off. Labels of
  the labeled set only: the unlabeled stream's labels are never seen."""
  if m.cfg.balance_weight == 0:  # Config refuses the term for regression
    return None
  return losses.label_prior(y_lab, m.num_classes)


def make_train_chunk(m: Models, mode: str = "sgan", mesh: Optional[Mesh] = None):
  """Jitted ``(state, data, idx) -> (state, metrics)`` running ``T`` iterations on device.

  Args (of the returned function):
    data: ``{"x_lab": (N_l, *shape), "y_lab": (N_l,), "x_unl": (N_u, *shape)}``, resident
      and replicated.
    idx: ``{"lab": (T, B), "unl": (T, B), "unl2": (T, B)}`` int32 batch indices.
  Returns the new state (input buffers donated) and per-iteration metrics, shape ``(T,)``.

  With a ``mesh``, the state and data are replicated and every batch is split over the
  ``"data"`` axis (``jit`` over ``NamedSharding``; XLA inserts the gradient all-reduce,
  and the generator's batch-norm statistics are over the global batch), so N devices
  compute what one device would.
  """
  _check_mode(mode)
  shard = (lambda x: x) if mesh is None else (
      lambda x: jax.lax.with_sharding_constraint(x, NamedSharding(mesh, P("data"))))

  def chunk(state, data, idx):
    prior = chunk_class_prior(m, data["y_lab"])

    def body(st, i):
      get = lambda name, key: shard(data[name][i[key]])
      return train_iteration(m, st, get("x_lab", "lab"), get("y_lab", "lab"),
                             get("x_unl", "unl"), get("x_unl", "unl2"), mode, prior)

    return jax.lax.scan(body, state, idx)  # metrics: per-iteration (T,) arrays

  if mesh is None:
    return jax.jit(chunk, donate_argnums=0)
  rep = NamedSharding(mesh, P())
  return jax.jit(chunk, in_shardings=(rep, rep, NamedSharding(mesh, P(None, "data"))),
                 out_shardings=(rep, rep), donate_argnums=0)


# --------------------------------------------------------------------------- evaluation
def make_predict(m: Models):
  """Jitted ``(params, frozen, x) -> logits``, deterministic (no noise)."""

  @jax.jit
  def predict(params, frozen, x):
    logits, _ = m.disc.apply({"params": params, **frozen}, x, train=False)
    return logits

  return predict


def predict_all(predict, params, frozen, x: np.ndarray, batch: int = 1000) -> np.ndarray:
  """Logits for all of ``x`` in fixed-size (padded) batches: ``(N, outputs)``."""
  out = []
  for s in range(0, len(x), batch):
    xb = x[s:s + batch]
    n = len(xb)
    if n < batch and len(x) > batch:  # pad to one compiled shape
      xb = np.concatenate([xb, np.zeros((batch - n, *xb.shape[1:]), xb.dtype)])
    out.append(np.asarray(predict(params, frozen, xb))[:n])
  return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def errors_from_outputs(outputs: np.ndarray, y: np.ndarray, cfg: Config) -> np.ndarray:
  """Error per leading index of discriminator outputs ``(..., N, out)`` against ``y (N,)``.

  Classification: error rate of the argmax over the K class logits (for ``"k+1"`` the
  fake column is dropped; subtracting it would not change the argmax). Regression: RMSE
  of output 0. Returns shape ``outputs.shape[:-2]`` (a scalar array for one model).
  """
  outputs = np.asarray(outputs)
  if cfg.task == "regression":
    return np.sqrt(np.mean(np.square(outputs[..., 0] - y), axis=-1))
  k = outputs.shape[-1] - (cfg.parameterization == "k+1")
  return np.mean(np.argmax(outputs[..., :k], axis=-1) != y, axis=-1)


def eval_error(predict, params, frozen, x: np.ndarray, y: np.ndarray, cfg: Config) -> Optional[float]:
  """Classification: error rate. Regression: RMSE of the regression head (in y's units)."""
  if len(x) == 0:
    return None
  return float(errors_from_outputs(predict_all(predict, params, frozen, x), y, cfg))


def init_indices(seed: int, n: int, k: int) -> np.ndarray:
  """The ``k`` training examples used for data-dependent init, a function of ``seed``."""
  return np.random.default_rng([seed, 10**6]).permutation(n)[:k]


def classifier_bytes(state: TrainState) -> bytes:
  """The averaged discriminator (``params`` + frozen collections) as flax msgpack."""
  import flax.serialization
  return flax.serialization.to_bytes(jax.tree.map(to_host, {"params": state.d_avg, **state.d_frozen}))


# --------------------------------------------------------------------------- host loop
def stream_indices(rng: np.random.Generator, n: int, total: int) -> np.ndarray:
  """``total`` indices into ``n`` examples: concatenated fresh permutations (tiling)."""
  reps = -(-total // n)
  return np.concatenate([rng.permutation(n) for _ in range(reps)])[:total]


def epoch_indices(seed: int, epoch: int, n_lab: int, n_unl: int, iters: int,
                  batch: int) -> dict:
  """Batch indices for one epoch, a pure function of ``(seed, epoch)``.

  The labeled subset is tiled to the epoch's length and reshuffled each epoch; the two
  unlabeled streams are independent permutations.
  """
  rng = np.random.default_rng([seed, epoch])
  t = iters * batch
  return {k: stream_indices(rng, n, t).reshape(iters, batch).astype(np.int32)
          for k, n in (("lab", n_lab), ("unl", n_unl), ("unl2", n_unl))}


def _graph_config(cfg: Config) -> Config:
  """The config with fields that do not change the compiled program zeroed out."""
  return cfg.replace(name="", seed=0, data_seed=0, dataset="", data_dir=None, val_size=0,
                     labels_per_class=1, label_rate=None, num_labeled=None, eval_every=1,
                     baseline=True)


@functools.lru_cache(maxsize=16)
def _compiled(cfg: Config, example_shape: tuple, num_classes: int, iters: int, epochs: int,
              mode: str, mesh: Mesh):
  """Models and jitted functions, shared by runs that differ only in seed or data.

  Reusing the same jitted callables lets seeds after the first skip compilation.
  """
  m = build_models(cfg, example_shape, num_classes, iters, epochs)
  chunk = make_train_chunk(m, mode, mesh if mesh.size > 1 else None)
  return m, chunk, make_predict(m), make_sample_grid(m)


def make_sample_grid(m: Models):
  """Jitted ``(g_params, g_state) -> (100, *shape)`` samples from a fixed latent batch.

  The same ``z`` (and, for a conditional generator, classes ``0..K-1`` repeated) at
  every evaluation, so successive grids show how the generator evolves.
  """
  z = sample_z(jax.random.key(20161), 100, m.cfg.latent_dim)
  labels = jnp.arange(100) % m.num_classes if m.cfg.conditional else None

  @jax.jit
  def grid(g_params, g_state):
    return m.gen.apply({"params": g_params, **g_state}, z, labels, train=False)

  return grid


def _fmt_time(s: float) -> str:
  s = int(s)
  return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def speed_text(iters: int, dt: float, epochs_left: int, compiled: bool) -> str:
  """Progress text for an epoch block of ``iters`` iterations that took ``dt`` seconds.

  The ETA assumes the rest runs at this block's speed, not the run's mean: a run that
  shared its cores for a while would otherwise report an ETA several times too long.
  A block that included compilation (``compiled``) says so instead.
  """
  if compiled or dt <= 0:
    return f"compiled+ran in {dt:.1f}s"
  return f"{iters / dt:.1f} it/s, ETA {_fmt_time(epochs_left * dt)}"


class Preempted(Exception):
  """Raised after SIGTERM, once a checkpoint has been saved; rerun the command to resume."""


def _first_nonfinite(per_step: dict) -> Optional[tuple]:
  """``(index, name, value)`` of the first non-finite per-step metric, or None."""
  first = None
  for name, values in per_step.items():
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size and (first is None or bad[0] < first[0]):
      first = (int(bad[0]), name, float(values[bad[0]]))
  return first


# An epoch-mean unlabeled D loss under this: D tells real from generated almost perfectly.
# Healthy MNIST runs stay near 0.1-0.45; runs whose GAN failed sat at 1e-5-0.015 for many
# epochs (4 of 43 MNIST feature-matching runs in session 7's logs).
D_WINS_LOSS = 0.02


def d_wins(mets: dict) -> bool:
  """Whether an epoch's mean metrics (or its record) show D winning the GAN game outright.

  Args: ``mets`` with ``loss_unl``, D's unsupervised GAN loss (absent: False).
  """
  unl = mets.get("loss_unl")
  return unl is not None and unl < D_WINS_LOSS


def d_wins_warning(mets: dict) -> Optional[str]:
  """A warning when the discriminator wins the GAN game outright (:func:`d_wins`), else None."""
  if not d_wins(mets):
    return None
  return (f"the discriminator tells real from generated almost perfectly "
          f"(loss_unl={mets['loss_unl']:.4f}; healthy runs stay near 0.1-0.45), so the generator "
          "has stopped teaching it. Runs like this have stayed stuck for many epochs: set "
          "on_d_wins=rollback (with a workdir) to restart from an earlier checkpoint with a new "
          "key, or try another seed.")


# How far back a D-wins rollback goes. Measured on the MNIST run that failed at epoch 11
# (results/d_wins): continuing from epoch 10 with new keys failed again within one epoch,
# from epochs 9 and 8 it recovered; the last checkpoint is already on the way down. A
# 20-label run failed again twice from 2 epochs back, so each further rollback of a run
# goes one epoch further.
D_WINS_ROLLBACK_EPOCHS = 2
MAX_ROLLBACKS = 3


def rollback_target(kept: Sequence[int], failed_epoch: int, d_won: Sequence[int] = (),
                    previous: int = 0) -> Optional[int]:
  """The newest kept checkpoint ``D_WINS_ROLLBACK_EPOCHS + previous`` or more epochs back.

  Args: ``kept``, the epochs with a checkpoint; ``failed_epoch``, the (1-based) epoch whose
  mean losses showed D winning; ``d_won``, earlier epochs that showed it too (never
  targets); ``previous``, the run's D-wins rollbacks so far. None when none qualifies.
  """
  back = D_WINS_ROLLBACK_EPOCHS + previous
  old = [e for e in kept if e <= failed_epoch - back and e not in d_won]
  return max(old) if old else None


def train(cfg: Config, splits: data_lib.Splits, mode: str = "sgan", workdir: Optional[str] = None,
          log: Callable[[str], None] = print, fresh: bool = False) -> dict:
  """Trains one model (``mode`` "sgan" or "supervised"), evaluating every ``eval_every`` epochs.

  Evaluation always uses the Polyak-averaged discriminator in deterministic mode.
  With a ``workdir``, checkpoints go to ``workdir/checkpoints_<mode>`` after every epoch
  and a run finding compatible checkpoints there resumes from the latest (bitwise
  identical to an uninterrupted run on CPU); ``fresh=True`` moves them aside instead.
  SIGTERM saves a checkpoint and raises :class:`Preempted`.

  Returns ``{"summary", "history", "state", "models"}``; the summary has the final model's
  errors and, with a validation split, the test error of the epoch selected on validation.
  """
  _check_mode(mode)
  t_start = time.time()
  epochs = cfg.epochs if mode == "sgan" else (cfg.baseline_epochs or cfg.epochs)
  iters = cfg.iters_per_epoch or max(1, len(splits.x_unl) // cfg.batch_size)
  mesh = make_mesh(cfg.num_devices, cfg.batch_size)
  m, chunk, predict, sample_grid = _compiled(_graph_config(cfg), tuple(splits.x_unl.shape[1:]),
                                             splits.num_classes, iters, epochs, mode, mesh)
  # With several processes (jax.distributed) every one computes the same records; the
  # first writes the files (orbax coordinates the checkpoints itself).
  primary = jax.process_index() == 0
  write_samples = bool(workdir) and mode == "sgan" and splits.x_unl.ndim == 4
  rep = NamedSharding(mesh, P())
  init_idx = init_indices(cfg.seed, len(splits.x_unl), cfg.init_examples)
  state = place(
      init_state(m, jax.random.key(cfg.seed), jnp.asarray(splits.x_unl[init_idx]), mode), rep)
  device_data = place({"x_lab": splits.x_lab, "y_lab": splits.y_lab, "x_unl": splits.x_unl}, rep)
  batch_sharding = NamedSharding(mesh, P(None, "data"))
  n_val = len(splits.y_val)

  # ---- checkpoints: resume, or refuse to touch an incompatible folder
  history, best, t_train, compile_s, epoch = [], {"val_err": None}, 0.0, None, 0
  timed_iters = 0  # iterations whose time is in t_train (compilation excluded)
  # Rollbacks so far (non-finite, D wins): saved with every checkpoint so a resumed run
  # keeps counting (and salting keys) where the uninterrupted one would.
  rollbacks = d_rollbacks = 0
  ckpt = None
  extra = {"lab_idx": np.asarray(splits.lab_idx, np.int64),
           "val_idx": np.asarray(splits.val_idx, np.int64)}
  if workdir:
    # Hashing the data costs a pass over it; only checkpointed runs need it.
    fingerprint = ckpt_lib.data_fingerprint(splits.x_lab, splits.y_lab, splits.x_unl,
                                            splits.x_val, splits.y_val)
    cdir = os.path.join(workdir, f"checkpoints_{mode}")
    if fresh and primary and os.path.isdir(cdir) and os.listdir(cdir):
      log(f"[{mode}] --fresh: moved existing checkpoints to {ckpt_lib.move_aside(cdir)}")
    if fresh and jax.process_count() > 1:  # the others wait until the folder is moved
      multihost_utils.sync_global_devices(f"sgan_jax fresh {cdir}")
    ckpt = ckpt_lib.Checkpointer(cdir, cfg.keep_checkpoints)
    latest = ckpt.latest_epoch()
    if latest is not None:
      meta = ckpt.read_meta(latest)
      diff = ckpt_lib.config_differences(meta.get("config", {}), cfg.to_dict())
      if meta.get("mode") != mode or diff:
        what = ", ".join(f"{k}: {a!r} there vs {b!r} now" for k, (a, b) in diff.items())
        raise SganError(
            f"{cdir} holds checkpoints of a different run ({what or 'mode ' + str(meta.get('mode'))}). "
            "Nothing was changed. Use another --workdir, or pass --fresh to move them aside "
            "(they are kept, renamed to .old-N).")
      if meta.get("data_fingerprint") != fingerprint:
        raise SganError(f"{cdir} was written for different data (fingerprint "
                        f"{meta.get('data_fingerprint')} vs {fingerprint}: another dataset, "
                        "labeled subset or validation split). Use another --workdir or --fresh.")
      state = restore_state(ckpt, latest, meta, state, extra, rep, cfg, log)
      epoch, best = meta["epoch"], meta["best"]
      history = _history_at(os.path.join(workdir, f"metrics_{mode}.jsonl"), meta, log)
      t_train, compile_s, timed_iters = meta["t_train"], meta["compile_s"], meta["timed_iters"]
      rollbacks, d_rollbacks = meta.get("rollbacks", [0, 0])  # absent before session 9
      log(f"[{mode}] resumed from {cdir}/{latest}: epoch {epoch}, step {int(state.step)}")

  metrics_path = os.path.join(workdir, f"metrics_{mode}.jsonl") if workdir else None

  def rewrite_metrics(records: list):  # the checkpoint's history: a resumed log has no duplicates
    if metrics_path and primary:  # atomically: other processes may be reading it
      with open(metrics_path + ".tmp", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
      os.replace(metrics_path + ".tmp", metrics_path)

  rewrite_metrics(history)

  def save(ep, val_err):
    if ckpt is not None:
      # The metrics file holds the history; the checkpoint records how much of it is
      # its own (and the last record), so saves stay O(1) however long the run.
      meta = {"mode": mode, "epoch": ep, "step": int(state.step), "config": cfg.to_dict(),
              "data_fingerprint": fingerprint, "n_history": len(history),
              "last_record": history[-1] if history else None, "best": best,
              "t_train": t_train, "compile_s": compile_s, "timed_iters": timed_iters,
              "rollbacks": [rollbacks, d_rollbacks]}
      # Checkpoint buffers would otherwise stay in glibc heaps (measured on MNIST: +250
      # MB over the first 50 minutes); small thresholds only while saving keep training
      # at full speed (sgan_jax/memory.py). The write finishes inside the block.
      with memory.while_saving():
        ckpt.save(ep, state, extra, meta, val_err)
        ckpt.wait()

  tb = (tblog.SummaryWriter(os.path.join(workdir, "tb", mode))
        if workdir and cfg.tensorboard and primary else None)
  # A progress bar over epochs on an interactive terminal; log lines print above it.
  bar = tqdm.tqdm(total=epochs, initial=epoch, desc=mode, unit="epoch", leave=False,
                  disable=not sys.stderr.isatty())
  if not bar.disable and log is print:
    log = tqdm.tqdm.write
  preempt = {"flag": False}
  old_handler = None
  if threading.current_thread() is threading.main_thread():
    old_handler = signal.signal(signal.SIGTERM, lambda *a: preempt.update(flag=True))
  d_winning = False

  def rewind(target: int, salt: int):
    """``(state, epoch, best, history)`` of checkpoint ``target``, with a new key."""
    meta = ckpt.read_meta(target)
    st = restore_state(ckpt, target, meta, state, extra, rep, cfg, log)
    hist = _history_at(metrics_path, meta, log)
    rewrite_metrics(hist)
    return st.replace(key=jax.random.fold_in(st.key, salt)), meta["epoch"], meta["best"], hist

  try:
    while epoch < epochs:
      idx = epoch_indices(cfg.seed, epoch, len(splits.x_lab), len(splits.x_unl), iters,
                          cfg.batch_size)
      t0 = time.time()
      state, per_step = chunk(state, device_data, place(idx, batch_sharding))
      per_step = {k: to_host(v) for k, v in per_step.items()}
      dt = time.time() - t0
      compiled = compile_s is None
      if compiled:  # first chunk includes compilation; keep it out of throughput
        compile_s = dt
      else:
        t_train += dt
        timed_iters += iters
      bad = _first_nonfinite(per_step)
      if bad is not None:
        i, name, value = bad
        where = f"step {epoch * iters + i + 1} (epoch {epoch + 1})"
        latest = ckpt.latest_epoch() if ckpt else None
        if cfg.on_nonfinite == "rollback" and latest is not None and rollbacks < MAX_ROLLBACKS:
          rollbacks += 1
          state, epoch, best, history = rewind(latest, 7919 * rollbacks)
          log(f"[{mode}] non-finite {name}={value} at {where}: rolled back to epoch {latest} "
              f"with a new key (rollback {rollbacks}/{MAX_ROLLBACKS})")
          continue
        kept = (f"the last good checkpoint {ckpt.directory}/{latest} is kept" if latest is not None
                else "no checkpoint was written (pass a workdir to keep one)")
        raise SganError(f"[{mode}] non-finite {name}={value} at {where}; stopped, {kept}. Lower "
                        "lr, check the data for extreme values, or set on_nonfinite=rollback.")
      mets = {k: float(np.mean(v)) for k, v in per_step.items()}
      logged = {k: round(v, 5) for k, v in mets.items()}  # as the metric records hold them
      warning = d_wins_warning(mets) if mode == "sgan" and cfg.d_objective == "gan" else None
      if warning and cfg.on_d_wins == "rollback":
        failed = epoch + 1
        won = [r["epoch"] for r in history if d_wins(r)]
        target = rollback_target(ckpt.all_epochs() if ckpt else [], failed, won, d_rollbacks)
        if target is not None and d_rollbacks < MAX_ROLLBACKS:
          d_rollbacks += 1
          abandoned = history
          state, epoch, best, history = rewind(target, 104729 * d_rollbacks)
          if metrics_path and primary:  # the abandoned branch's records, kept for inspection
            with open(os.path.join(workdir, f"metrics_{mode}_abandoned.jsonl"), "a") as f:
              failed_rec = {"mode": mode, "epoch": failed, "evaluated": False, **logged}
              f.writelines(json.dumps({**r, "rollback": d_rollbacks}) + "\n"
                           for r in abandoned[len(history):] + [failed_rec])
          moved = ckpt.discard_after(target)
          bar.reset(total=epochs)
          bar.update(epoch)
          log(f"[{mode}] epoch {failed}: the discriminator won (loss_unl={mets['loss_unl']:.4f}): "
              f"rolled back to epoch {target} with a new key (D-wins rollback {d_rollbacks}/"
              f"{MAX_ROLLBACKS}); checkpoints {moved} moved to {ckpt.directory}.abandoned")
          d_winning = False
          continue
        if not d_winning:
          why = ("no rollbacks left" if d_rollbacks >= MAX_ROLLBACKS else
                 f"no kept checkpoint is {D_WINS_ROLLBACK_EPOCHS + d_rollbacks}+ epochs old and healthy"
                 if ckpt else "no workdir, so no checkpoints")
          warning += f" (on_d_wins=rollback: cannot roll back, {why})"
      epoch += 1
      bar.update(1)
      if warning and not d_winning:  # once when it starts, again only after a recovery
        log(f"[{mode}] epoch {epoch}: warning: {warning}")
      d_winning = warning is not None
      val_err = None
      if epoch % cfg.eval_every == 0 or epoch == epochs:
        val_err, rec = _evaluate(predict, state, splits, cfg)
        it_s = timed_iters / t_train if t_train > 0 else None
        rec = {"mode": mode, "epoch": epoch, "step": int(state.step),
               "wall_s": round(time.time() - t_start, 2), "it_per_s": round(it_s, 2) if it_s else None,
               **logged, **rec}
        history.append(rec)
        if metrics_path and primary:
          with open(metrics_path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        if write_samples:  # every process runs the (global) computation; the first saves
          grid = to_host(sample_grid(state.g_params, state.g_state))
          if primary:
            os.makedirs(os.path.join(workdir, "samples"), exist_ok=True)
            lo = -1.0 if cfg.pixel_range == "-1,1" else 0.0
            images.save_grid(os.path.join(workdir, "samples", f"epoch_{epoch:04d}.png"), grid,
                             rows=10, value_range=(lo, 1.0))
        if tb is not None:
          tb.scalars(rec["step"], {k: v for k, v in rec.items() if k not in ("mode", "step")})
        if val_err is not None and (best["val_err"] is None or val_err < best["val_err"]):
          best = {"val_err": val_err, "epoch": epoch, "test_err": rec["test_err"]}
        losses_txt = " ".join(f"{k}={v:.4f}" for k, v in mets.items() if k.startswith("loss"))
        if cfg.task == "regression":
          name, fmt = "rmse", (lambda e: f"{e:.4f}")
        else:
          name, fmt = "err", (lambda e: f"{100 * e:.2f}%")
        val_txt = f" val_{name}={fmt(val_err)}" if val_err is not None else ""
        speed = speed_text(iters, dt, epochs - epoch, compiled)
        avg2_txt = ""
        if "test_err_avg2" in rec:
          v2 = rec["val_err_avg2"]
          avg2_txt = ("; second average:" + (f" val {fmt(v2)}" if v2 is not None else "")
                      + f" test {fmt(rec['test_err_avg2'])}")
        log(f"[{mode}] epoch {epoch}/{epochs} step {int(state.step)} | {speed} | {losses_txt} |"
            f"{val_txt} test_{name}={fmt(rec['test_err'])} "
            f"(live weights {fmt(rec['test_err_live'])}{avg2_txt})")
      # Decide once per epoch, on a snapshot: the handler may set the flag at any moment,
      # and a signal landing after the processes agreed must wait for the next epoch's
      # agreement (measured: otherwise one process stops alone and the others hang).
      stop = preempt["flag"]
      if jax.process_count() > 1:
        # Processes get the signal at different times; all stop after the same epoch, or
        # one would wait in a collective the others never join.
        stop = bool(np.any(multihost_utils.process_allgather(np.int32(stop))))
      if epoch % cfg.checkpoint_every == 0 or epoch == epochs or stop:
        save(epoch, val_err)
      if stop:  # every save above has finished writing (save() waits)
        raise Preempted(f"[{mode}] SIGTERM received"
                        + (" (by this or another process)" if jax.process_count() > 1 else "")
                        + f": stopped after epoch {epoch}"
                        + (f", checkpoint saved in {ckpt.directory}" if ckpt else
                           " (no workdir, nothing saved)"))
  finally:
    bar.close()
    if tb is not None:
      tb.close()
    if old_handler is not None:
      signal.signal(signal.SIGTERM, old_handler)
    if ckpt is not None:
      ckpt.close()
  final = history[-1]
  summary = {
      "mode": mode, "epochs": epochs, "steps": int(state.step), "iters_per_epoch": iters,
      "final_test_err": final["test_err"], "final_val_err": final["val_err"],
      "wall_s": round(time.time() - t_start, 2), "train_s": round(t_train, 2),
      "compile_s": round(compile_s, 2) if compile_s is not None else None,
      "it_per_s": round(timed_iters / t_train, 2) if t_train else None,
  }
  if n_val:
    summary.update(best_val_err=best["val_err"], best_val_epoch=best["epoch"],
                   selected_test_err=best["test_err"])
  return {"summary": summary, "history": history, "state": state, "models": m}


def _history_at(metrics_path: str, meta: dict, log) -> list:
  """The metrics records a checkpoint had written: the first ``n_history`` of the file."""
  n = meta["n_history"]
  recs = []
  if os.path.exists(metrics_path):
    with open(metrics_path) as f:
      for line in f:
        if len(recs) == n:
          break
        try:
          recs.append(json.loads(line))
        except json.JSONDecodeError:
          break  # a line cut by a kill: everything after it is newer than the checkpoint
  if len(recs) < n:
    log(f"[warning] {metrics_path} has {len(recs)} of the checkpoint's {n} metric records; "
        "the missing ones are lost (training state is unaffected)")
    last = meta.get("last_record")
    if last is not None and (not recs or recs[-1] != last):
      recs.append(last)
  return recs


def restore_state(ckpt, epoch: int, meta: dict, template: TrainState, extra: dict, sharding,
                  cfg: Config, log: Callable[[str], None] = print) -> TrainState:
  """Checkpoint ``epoch`` (its ``meta`` already read) onto ``template``'s arrays and ``sharding``.

  ``second_avg_rate`` may be turned on or off between a checkpoint and its resume (it
  changes evaluation only): turned on, the second average starts from the restored
  first one; turned off, it is dropped.
  """
  saved = meta.get("config", {}).get("second_avg_rate", 0.0)
  like = template.d_avg2 if template.d_avg2 is not None else template.d_avg
  st, _ = ckpt.restore(epoch, template.replace(d_avg2=like if saved else None), extra, sharding)
  if cfg.second_avg_rate and st.d_avg2 is None:
    log(f"[resume] checkpoint {epoch} has no second average: it starts from the first "
        f"(avg_rate={cfg.avg_rate}) and continues at second_avg_rate={cfg.second_avg_rate}")
    st = st.replace(d_avg2=jax.tree.map(jnp.copy, st.d_avg))  # its own buffers (donation)
  elif not cfg.second_avg_rate:
    st = st.replace(d_avg2=None)
  return st


def _evaluate(predict, state, splits, cfg):
  """Validation/test error of the averaged weights (+ the live weights' test error).

  Errors are error rates for classification and RMSEs for regression.
  """
  val_err = eval_error(predict, state.d_avg, state.d_frozen, splits.x_val, splits.y_val, cfg)
  test_err = eval_error(predict, state.d_avg, state.d_frozen, splits.x_test, splits.y_test, cfg)
  # The live (non-averaged) weights' error: a diagnostic only, never used for selection.
  live = eval_error(predict, state.d_params, state.d_frozen, splits.x_test, splits.y_test, cfg)
  rec = {"val_err": val_err, "test_err": test_err, "test_err_live": live}
  if state.d_avg2 is not None:  # the second average: reported beside, never selected on
    rec["val_err_avg2"] = eval_error(predict, state.d_avg2, state.d_frozen, splits.x_val,
                                     splits.y_val, cfg)
    rec["test_err_avg2"] = eval_error(predict, state.d_avg2, state.d_frozen, splits.x_test,
                                      splits.y_test, cfg)
  return val_err, rec
