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
import math
import os
import time
from typing import Any, Callable, Optional

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from sgan_jax import data as data_lib
from sgan_jax import losses
from sgan_jax.config import Config
from sgan_jax.errors import SganError
from sgan_jax.models import ConvDiscriminator, ConvGenerator, MLPDiscriminator, MLPGenerator
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

PyTree = Any
MODES = ("sgan", "supervised")


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training. ``g_*`` are None in supervised mode."""

  step: jax.Array            # () int32, iterations done
  d_params: PyTree           # trainable discriminator parameters
  d_frozen: PyTree           # {"weightnorm": ...} frozen weight-norm scales
  d_opt: PyTree
  d_avg: PyTree              # Polyak average of d_params, started at zero
  g_params: Optional[PyTree]
  g_state: Optional[PyTree]  # {"batch_stats": ...}
  g_opt: Optional[PyTree]
  key: jax.Array             # PRNG key for the next iteration


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
  act = "sigmoid" if cfg.pixel_range == "0,1" else "tanh"
  fake = cfg.parameterization == "k+1"
  if cfg.model == "mlp":
    disc = MLPDiscriminator(num_classes, tuple(cfg.d_hidden), cfg.input_noise, cfg.hidden_noise,
                            fake, dtype)
    gen = MLPGenerator(tuple(example_shape), tuple(cfg.g_hidden), act, dtype)
  else:
    if len(example_shape) != 3:
      raise SganError(f"model='conv' needs images (H, W, C); the data has examples of shape "
                      f"{example_shape}. Use model='mlp' for feature vectors.")
    disc = ConvDiscriminator(num_classes, cfg.d_width, fake, dtype)
    gen = ConvGenerator(tuple(example_shape), cfg.g_width, act, dtype)
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
                           mutable=["params", "weightnorm"], rngs={"noise": k_noise})
  d_params = d_vars["params"]
  d_frozen = {k: v for k, v in d_vars.items() if k != "params"}
  g_params = g_state = g_opt = None
  if mode == "sgan":
    z = sample_z(k_z, init_batch.shape[0], m.cfg.latent_dim)
    g_vars = m.gen.init({"params": k_g, "noise": k_gnoise}, z[:2], train=False)
    # Only layers that take init_mode (the conv generator's output layer) change here.
    _, g_vars = m.gen.apply(g_vars, z, train=True, init_mode=True,
                            mutable=["params", "batch_stats"])
    g_params = g_vars["params"]
    g_state = {k: v for k, v in g_vars.items() if k != "params"}
    g_opt = m.tx_g.init(g_params)
  return TrainState(step=jnp.zeros((), jnp.int32), d_params=d_params, d_frozen=d_frozen,
                    d_opt=m.tx_d.init(d_params), d_avg=jax.tree.map(jnp.zeros_like, d_params),
                    g_params=g_params, g_state=g_state, g_opt=g_opt, key=k_run)


def sample_z(key: jax.Array, n: int, latent_dim: int) -> jax.Array:
  """Latent codes ``z ~ U(0, 1)^latent_dim`` as in the reference: ``(n, latent_dim)``."""
  return jax.random.uniform(key, (n, latent_dim))


def _check_mode(mode):
  if mode not in MODES:
    raise SganError(f"mode must be one of {MODES}, got {mode!r}.")


def make_mesh(num_devices: int = 0, batch_size: Optional[int] = None) -> Mesh:
  """A 1-D ``("data",)`` mesh over the first ``num_devices`` devices (0 = all).

  Every stream's batch is split across this axis; parameters are replicated.
  """
  devices = jax.devices()
  n = num_devices or len(devices)
  if n > len(devices):
    raise SganError(f"num_devices={n} but only {len(devices)} {devices[0].platform} device(s) "
                    "are visible; lower num_devices (0 uses all).")
  if batch_size is not None and batch_size % n:
    raise SganError(f"batch_size={batch_size} does not divide across {n} devices; use a "
                    f"multiple of {n} (e.g. {max(n, batch_size // n * n)}) or set num_devices.")
  return Mesh(np.asarray(devices[:n]), ("data",))


# --------------------------------------------------------------------------- one iteration
def train_iteration(m: Models, state: TrainState, x_lab: jax.Array, y_lab: jax.Array,
                    x_unl: jax.Array, x_unl2: jax.Array, mode: str = "sgan"):
  """One discriminator step, then (in ``"sgan"`` mode) one generator step.

  Args:
    x_lab: ``(B, *shape)`` labeled batch; y_lab: ``(B,)``.
    x_unl: ``(B, *shape)`` unlabeled batch for the D step.
    x_unl2: ``(B, *shape)`` a second unlabeled batch for the G step.
  Returns ``(new_state, metrics)`` with scalar metrics.
  """
  cfg = m.cfg
  param = cfg.parameterization
  key, k_z, k_d, k_z2, k_g = jax.random.split(state.key, 5)
  b_lab, b_unl = x_lab.shape[0], x_unl.shape[0]
  g_state = state.g_state

  if mode == "sgan":
    z = sample_z(k_z, b_unl, cfg.latent_dim)
    x_fake, g_upd = m.gen.apply({"params": state.g_params, **g_state}, z, train=True,
                                mutable=["batch_stats"])
    g_state = {**g_state, **g_upd}
    x_fake = jax.lax.stop_gradient(x_fake)
    x_all = jnp.concatenate([x_lab, x_unl, x_fake.astype(x_lab.dtype)])
  else:
    x_all = x_lab

  def d_loss_fn(d_params):
    # One forward pass over all streams: the discriminator has no batch statistics and
    # its noise is per example, so this equals three separate passes.
    logits, _ = m.disc.apply({"params": d_params, **state.d_frozen}, x_all, train=True,
                             rngs={"noise": k_d})
    l_lab = logits[:b_lab]
    sup = losses.supervised_xent(l_lab, y_lab, param)
    out = {"loss_lab": sup, "train_err": losses.error_rate(l_lab, y_lab, param)}
    total = sup
    if mode == "sgan":
      unsup = losses.d_unsupervised(logits[b_lab:b_lab + b_unl], logits[b_lab + b_unl:], param)
      total = sup + cfg.unlabeled_weight * unsup
      out["loss_unl"] = unsup
    return total, out

  d_grads, metrics = jax.grad(d_loss_fn, has_aux=True)(state.d_params)
  d_updates, d_opt = m.tx_d.update(d_grads, state.d_opt, state.d_params)
  d_params = optax.apply_updates(state.d_params, d_updates)
  d_avg = optax.incremental_update(d_params, state.d_avg, cfg.avg_rate)
  new = state.replace(step=state.step + 1, d_params=d_params, d_opt=d_opt, d_avg=d_avg, key=key)
  if mode == "supervised":
    return new, metrics

  z2 = sample_z(k_z2, x_unl2.shape[0], cfg.latent_dim)

  def g_loss_fn(g_params):
    x_gen, upd = m.gen.apply({"params": g_params, **g_state}, z2, train=True,
                             mutable=["batch_stats"])
    both = jnp.concatenate([x_unl2, x_gen.astype(x_unl2.dtype)])
    logits, feats = m.disc.apply({"params": d_params, **state.d_frozen}, both, train=True,
                                 rngs={"noise": k_g})
    n = x_unl2.shape[0]
    if cfg.g_loss == "feature_matching":
      loss = losses.feature_matching(feats[:n], feats[n:], cfg.fm_order)
    elif cfg.g_loss == "non_saturating":
      loss = losses.g_non_saturating(logits[n:], param)
    else:
      loss = losses.g_minimax(logits[n:], param)
    return loss, upd

  (g_loss, g_upd), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(state.g_params)
  g_updates, g_opt = m.tx_g.update(g_grads, state.g_opt, state.g_params)
  g_params = optax.apply_updates(state.g_params, g_updates)
  metrics["loss_gen"] = g_loss
  return new.replace(g_params=g_params, g_state={**g_state, **g_upd}, g_opt=g_opt), metrics


def make_train_chunk(m: Models, mode: str = "sgan", mesh: Optional[Mesh] = None):
  """Jitted ``(state, data, idx) -> (state, metrics)`` running ``T`` iterations on device.

  Args (of the returned function):
    data: ``{"x_lab": (N_l, *shape), "y_lab": (N_l,), "x_unl": (N_u, *shape)}``, resident
      and replicated.
    idx: ``{"lab": (T, B), "unl": (T, B), "unl2": (T, B)}`` int32 batch indices.
  Returns the new state (input buffers donated) and metrics averaged over the chunk.

  With a ``mesh``, the state and data are replicated and every batch is split over the
  ``"data"`` axis (``jit`` over ``NamedSharding``; XLA inserts the gradient all-reduce,
  and the generator's batch-norm statistics are over the global batch), so N devices
  compute what one device would.
  """
  _check_mode(mode)
  shard = (lambda x: x) if mesh is None else (
      lambda x: jax.lax.with_sharding_constraint(x, NamedSharding(mesh, P("data"))))

  def chunk(state, data, idx):
    def body(st, i):
      get = lambda name, key: shard(data[name][i[key]])
      return train_iteration(m, st, get("x_lab", "lab"), get("y_lab", "lab"),
                             get("x_unl", "unl"), get("x_unl", "unl2"), mode)

    state, metrics = jax.lax.scan(body, state, idx)
    return state, jax.tree.map(jnp.mean, metrics)

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


def error_count(predict, params, frozen, x: np.ndarray, y: np.ndarray, param: str,
                batch: int = 1000) -> int:
  """Number of misclassified examples, evaluated in fixed-size (padded) batches."""
  if len(x) == 0:
    return 0
  wrong = 0
  for s in range(0, len(x), batch):
    xb = x[s:s + batch]
    n = len(xb)
    if n < batch and len(x) > batch:  # pad to one compiled shape
      xb = np.concatenate([xb, np.zeros((batch - n, *xb.shape[1:]), xb.dtype)])
    logits = predict(params, frozen, xb)[:n]
    pred = np.asarray(jnp.argmax(losses.class_logits(logits, param), -1))
    wrong += int((pred != y[s:s + n]).sum())
  return wrong


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


def _fmt_time(s: float) -> str:
  s = int(s)
  return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def train(cfg: Config, splits: data_lib.Splits, mode: str = "sgan", workdir: Optional[str] = None,
          log: Callable[[str], None] = print) -> dict:
  """Trains one model (``mode`` "sgan" or "supervised") and evaluates it every epoch.

  Evaluation always uses the Polyak-averaged discriminator in deterministic mode.
  Returns a summary with the final model's errors and, when a validation split exists,
  the test error of the epoch selected on validation.
  """
  _check_mode(mode)
  epochs = cfg.epochs if mode == "sgan" else (cfg.baseline_epochs or cfg.epochs)
  iters = cfg.iters_per_epoch or max(1, len(splits.x_unl) // cfg.batch_size)
  m = build_models(cfg, splits.x_unl.shape[1:], splits.num_classes, iters, epochs)
  mesh = make_mesh(cfg.num_devices, cfg.batch_size)
  rep = NamedSharding(mesh, P())
  key = jax.random.key(cfg.seed)
  init_rng = np.random.default_rng([cfg.seed, 10**6])
  init_idx = init_rng.permutation(len(splits.x_unl))[: cfg.init_examples]
  state = jax.device_put(init_state(m, key, jnp.asarray(splits.x_unl[init_idx]), mode), rep)
  device_data = jax.device_put({"x_lab": splits.x_lab, "y_lab": splits.y_lab,
                                "x_unl": splits.x_unl}, rep)
  chunk = make_train_chunk(m, mode, mesh if mesh.size > 1 else None)
  predict = make_predict(m)
  param = cfg.parameterization
  n_val, n_test = len(splits.y_val), len(splits.y_test)

  metrics_f = open(os.path.join(workdir, f"metrics_{mode}.jsonl"), "w") if workdir else None
  best = {"val_err": math.inf}
  history = []
  t_start = time.time()
  t_train = 0.0
  compile_s = None
  for epoch in range(epochs):
    idx = epoch_indices(cfg.seed, epoch, len(splits.x_lab), len(splits.x_unl), iters,
                        cfg.batch_size)
    t0 = time.time()
    state, mets = chunk(state, device_data, idx)
    mets = {k: float(v) for k, v in mets.items()}  # blocks until the chunk is done
    dt = time.time() - t0
    if compile_s is None:  # first chunk includes compilation; keep it out of throughput
      compile_s = dt
    else:
      t_train += dt
    for k, v in mets.items():
      if not math.isfinite(v):
        raise SganError(f"[{mode}] non-finite {k}={v} in epoch {epoch + 1} (steps "
                        f"{epoch * iters + 1}-{(epoch + 1) * iters}); lower lr or check the data.")
    if (epoch + 1) % cfg.eval_every and epoch + 1 != epochs:
      continue
    val_err = (error_count(predict, state.d_avg, state.d_frozen, splits.x_val, splits.y_val,
                           param) / n_val) if n_val else None
    test_err = error_count(predict, state.d_avg, state.d_frozen, splits.x_test, splits.y_test,
                           param) / n_test
    # The live (non-averaged) weights' error: a diagnostic only, never used for selection.
    test_err_live = error_count(predict, state.d_params, state.d_frozen, splits.x_test,
                                splits.y_test, param) / n_test
    steady = epoch  # epochs timed without compile
    it_s = steady * iters / t_train if steady else float("nan")
    elapsed = time.time() - t_start
    eta = (epochs - epoch - 1) * iters / it_s if steady else float("nan")
    rec = {"mode": mode, "epoch": epoch + 1, "step": int(state.step), "wall_s": round(elapsed, 2),
           "it_per_s": round(it_s, 2) if steady else None, **{k: round(v, 5) for k, v in mets.items()},
           "val_err": val_err, "test_err": test_err, "test_err_live": test_err_live}
    history.append(rec)
    if metrics_f:
      metrics_f.write(json.dumps(rec) + "\n")
      metrics_f.flush()
    if val_err is not None and val_err < best["val_err"]:
      best = {"val_err": val_err, "epoch": epoch + 1, "test_err": test_err}
    losses_txt = " ".join(f"{k}={v:.4f}" for k, v in mets.items() if k.startswith("loss"))
    val_txt = f" val_err={100 * val_err:.2f}%" if val_err is not None else ""
    speed = f"{it_s:.1f} it/s, ETA {_fmt_time(eta)}" if steady else f"compiled+ran in {dt:.1f}s"
    log(f"[{mode}] epoch {epoch + 1}/{epochs} step {int(state.step)} | {speed} | {losses_txt} |"
        f"{val_txt} test_err={100 * test_err:.2f}% (live weights {100 * test_err_live:.2f}%)")
  if metrics_f:
    metrics_f.close()
  final = history[-1]
  summary = {
      "mode": mode, "epochs": epochs, "steps": int(state.step), "iters_per_epoch": iters,
      "final_test_err": final["test_err"], "final_val_err": final["val_err"],
      "wall_s": round(time.time() - t_start, 2), "compile_s": round(compile_s, 2),
      "it_per_s": round((epochs - 1) * iters / t_train, 2) if t_train else None,
  }
  if n_val:
    summary.update(best_val_err=best["val_err"], best_val_epoch=best["epoch"],
                   selected_test_err=best["test_err"])
  return {"summary": summary, "history": history, "state": state, "models": m}
