"""Sampling from a trained generator, and labeled synthetic data export.

A run folder (``train_and_evaluate`` with a workdir) holds ``generator.msgpack``
(parameters + batch-norm statistics) and ``model.json`` (example shape, class count)
beside ``config.json``; :func:`load_generator` rebuilds the generator from them.
:func:`export_labeled` writes ``N`` samples per class of a class-conditional generator
to an ``.npz`` in the format :func:`sgan_jax.data.load_npz` reads (``x_train``,
``y_train``, ``x_test``, ``y_test``; images as uint8 in [0, 255] like MNIST), plus a
per-class grid PNG (one row per class).
"""

from __future__ import annotations

import json
import os

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from sgan_jax import images
from sgan_jax import state as state_lib
from sgan_jax.sharding import to_host
from sgan_jax.config import from_stored
from sgan_jax.errors import SganError


def make_sampler(m: state_lib.Models):
  """Jitted ``(g_vars, key, n, labels) -> (n, *shape)`` samples in inference mode.

  ``labels``: ``(n,)`` class ids for a conditional generator, else None. Batch norm
  uses its running statistics, so samples do not depend on the rest of the batch.
  """

  def sample(g_vars, key, labels=None, n=None):
    n = labels.shape[0] if labels is not None else n
    z = state_lib.sample_z(key, n, m.cfg.latent_dim)
    return m.gen.apply(g_vars, z, labels, train=False)

  return jax.jit(sample, static_argnames="n")


def generator_bytes(state: state_lib.TrainState) -> bytes:
  """The generator's parameters and batch-norm statistics as flax msgpack."""
  return flax.serialization.to_bytes(
      jax.tree.map(to_host, {"params": state.g_params, **state.g_state}))


def save_generator(workdir: str, state: state_lib.TrainState, example_shape: tuple,
                   num_classes: int) -> None:
  with open(os.path.join(workdir, "generator.msgpack"), "wb") as f:
    f.write(generator_bytes(state))
  with open(os.path.join(workdir, "model.json"), "w") as f:
    json.dump({"example_shape": list(example_shape), "num_classes": int(num_classes)}, f)


def load_generator(run_dir: str, checkpoint: str = "final") -> tuple[state_lib.Models, dict]:
  """``(models, g_vars)`` of a finished run folder (``seed_<s>`` of an experiment).

  ``checkpoint``: ``"final"`` (``generator.msgpack``, the last epoch), ``"best"`` (the
  generator saved with the epoch selected on validation, i.e. beside the reported
  classifier) or an epoch number among the kept checkpoints.
  """
  m, generator_path = run_models(run_dir)
  if checkpoint != "final":
    state, _ = checkpoint_state(m, run_dir, checkpoint)
    return m, {"params": state.g_params, **state.g_state}
  c = state_lib.sample_classes(m, jax.random.key(0), 2)
  template = m.gen.init(jax.random.key(0), jnp.zeros((2, m.cfg.latent_dim)), c, train=False)
  with open(generator_path, "rb") as f:
    try:
      g_vars = flax.serialization.from_bytes(template, f.read())
    except Exception as e:
      raise SganError(f"{generator_path} does not match the run's config "
                      f"({type(e).__name__}: {e}).") from e
  return m, g_vars


def run_models(run_dir: str) -> tuple[state_lib.Models, str]:
  """The models of a finished run folder and the path of its final generator."""
  paths = {k: os.path.join(run_dir, k) for k in ("config.json", "model.json", "generator.msgpack")}
  missing = [k for k, p in paths.items() if not os.path.exists(p)]
  if missing:
    raise SganError(f"{run_dir} has no {', '.join(missing)}: pass the seed folder of a "
                    "finished SGAN run (e.g. runs/mnist_cond/seed_1).")
  with open(paths["config.json"]) as f:
    cfg = from_stored(json.load(f))
  with open(paths["model.json"]) as f:
    info = json.load(f)
  m = state_lib.build_models(cfg, tuple(info["example_shape"]), info["num_classes"], 1)
  return m, paths["generator.msgpack"]


def checkpoint_state(m: state_lib.Models, run_dir: str, which,
                     mode: str = "sgan") -> tuple[state_lib.TrainState, int]:
  """The training state of a kept checkpoint of a run folder's ``mode``, on one device,
  and its epoch.

  ``m``: the run's models (:func:`run_models`); ``which``: "best" or an epoch number.
  """
  from sgan_jax import checkpoint as ckpt_lib  # orbax: only needed here
  cdir = os.path.join(run_dir, f"checkpoints_{mode}")
  if not os.path.isdir(cdir):
    raise SganError(f"{run_dir} has no checkpoints_{mode}/; use the final model instead.")
  ck = ckpt_lib.Checkpointer(cdir)
  try:
    kept = ck.all_epochs()
    if not kept:
      raise SganError(f"{cdir} holds no checkpoints; use the final model instead.")
    if which == "best":
      epoch = ck.read_meta(max(kept))["best"].get("epoch")
      if epoch is None:
        raise SganError(f"{run_dir} was trained without a validation split, so no epoch was "
                        "selected; use 'final' or an epoch number instead.")
    elif str(which).isdigit():
      epoch = int(which)
    else:
      raise SganError(f"checkpoint must be 'final', 'best' or an epoch number, got {which!r}.")
    if epoch not in kept:
      raise SganError(f"Epoch {epoch} is not among the kept checkpoints {kept} in {cdir}.")
    template = state_lib.init_state(m, jax.random.key(0), jnp.zeros((2, *m.example_shape)))
    files = {"lab_idx": "labeled_indices.npy", "val_idx": "val_indices.npy"}
    extra = {k: np.load(os.path.join(run_dir, f)).astype(np.int64) for k, f in files.items()}
    state, _ = ck.restore(epoch, template, extra,
                          jax.sharding.SingleDeviceSharding(jax.devices()[0]))
  finally:
    ck.close()
  return state, epoch


def to_uint8(x: np.ndarray, pixel_range: str) -> np.ndarray:
  """Generator output in the config's pixel range -> uint8 images in [0, 255]."""
  lo = -1.0 if pixel_range == "-1,1" else 0.0
  return np.clip(np.round((np.asarray(x) - lo) / (1.0 - lo) * 255), 0, 255).astype(np.uint8)


def sample_per_class(m: state_lib.Models, g_vars, per_class: int, seed: int = 0,
                     batch: int = 500) -> tuple[np.ndarray, np.ndarray]:
  """``per_class`` samples of every class: ``x (K * per_class, *shape)``, ``y (K * per_class,)``."""
  if not m.cfg.conditional:
    raise SganError("This generator is not class-conditional (config conditional=false), so it "
                    "cannot produce labeled samples. Train with --set conditional=true.")
  if per_class < 1:
    raise SganError(f"per_class must be >= 1, got {per_class}.")
  y = np.repeat(np.arange(m.num_classes, dtype=np.int32), per_class)
  sampler = make_sampler(m)
  out = []
  for i, s in enumerate(range(0, len(y), batch)):
    yb = y[s:s + batch]
    pad = batch - len(yb)
    yb_p = np.concatenate([yb, np.zeros(pad, np.int32)]) if pad else yb
    out.append(np.asarray(sampler(g_vars, jax.random.fold_in(jax.random.key(seed), i), jnp.asarray(yb_p)))[:len(yb)])
  return np.concatenate(out), y


def export_labeled(run_dir: str, out_path: str, per_class: int, seed: int = 0,
                   grid_per_class: int = 10, checkpoint: str = "final") -> dict:
  """Writes labeled synthetic data (``.npz``) and a per-class grid PNG beside it.

  ``checkpoint`` picks the generator: see :func:`load_generator`.
  """
  m, g_vars = load_generator(run_dir, checkpoint)
  x, y = sample_per_class(m, g_vars, per_class, seed)
  if m.cfg.pixel_range == "none":
    xs = x.astype(np.float32)
  else:
    xs = to_uint8(x, m.cfg.pixel_range)
  os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
  # The loaders need a test split; the synthetic set is all "train", with a copy of the
  # first sample of each class as a placeholder test split.
  first = np.arange(m.num_classes) * per_class
  np.savez_compressed(out_path, x_train=xs, y_train=y, x_test=xs[first], y_test=y[first])
  k = min(grid_per_class, per_class)
  grid_idx = (np.arange(m.num_classes)[:, None] * per_class + np.arange(k)[None]).ravel()
  lo = -1.0 if m.cfg.pixel_range == "-1,1" else 0.0
  png = os.path.splitext(out_path)[0] + "_grid.png"
  if x.ndim == 4:
    images.save_grid(png, x[grid_idx], rows=m.num_classes, value_range=(lo, 1.0))
  else:
    png = None
  return {"npz": out_path, "grid": png, "num_samples": int(len(y)), "num_classes": m.num_classes}
