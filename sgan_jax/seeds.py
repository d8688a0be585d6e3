"""Independent replicas trained in one program: ``vmap`` over seeds.

The papers report mean +/- std over seeds, each seed with its own labeled subset.
:func:`train_seeds` trains S replicas (different parameter seeds, noise, batch orders and
labeled subsets of the same size) sharing the unlabeled data, with one jitted
``vmap(scan(...))`` per epoch, so small models fill the device instead of running S
times in sequence. Replica ``s`` runs exactly the computation :func:`sgan_jax.train.train`
runs for seed ``s`` (same keys, same batch order), up to floating-point reassociation.
Runs on one device, without checkpoints; use :func:`sgan_jax.train.train` for those.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sgan_jax import data as data_lib
from sgan_jax import train as train_lib
from sgan_jax.config import Config
from sgan_jax.errors import SganError


def make_seeds_chunk(m: train_lib.Models, mode: str = "sgan"):
  """Jitted ``(states, data, idx) -> (states, metrics)`` for S stacked replicas.

  Args (of the returned function):
    states: a :class:`~sgan_jax.train.TrainState` whose leaves have a leading ``S`` axis.
    data: ``{"x_lab": (S, N_l, *shape), "y_lab": (S, N_l), "x_unl": (N_u, *shape)}``;
      the unlabeled set is shared.
    idx: ``{"lab" | "unl" | "unl2": (S, T, B)}`` batch indices per replica.
  Returns states (donated inputs) and per-iteration metrics of shape ``(S, T)``.
  """
  def chunk(states, data, idx):
    x_unl = data["x_unl"]

    def one(state, x_lab, y_lab, idx1):
      prior = train_lib.chunk_class_prior(m, y_lab)

      def body(st, i):
        return train_lib.train_iteration(m, st, x_lab[i["lab"]], y_lab[i["lab"]],
                                         x_unl[i["unl"]], x_unl[i["unl2"]], mode, prior)
      return jax.lax.scan(body, state, idx1)

    return jax.vmap(one)(states, data["x_lab"], data["y_lab"], idx)

  return jax.jit(chunk, donate_argnums=0)


def _check_compatible(splits_list: Sequence[data_lib.Splits]) -> None:
  s0 = splits_list[0]
  for s in splits_list[1:]:
    if s.x_unl.shape != s0.x_unl.shape or not np.array_equal(s.x_unl, s0.x_unl):
      raise SganError("Replicas trained together must share the unlabeled set: build every "
                      "seed's splits with the same validation split (val_size=0 or one "
                      "validation seed) and vary only the labeled subset.")
    if s.x_lab.shape != s0.x_lab.shape:
      raise SganError(f"Replicas need labeled subsets of one size; got {len(s0.x_lab)} and "
                      f"{len(s.x_lab)}. Use labels_per_class or num_labeled, or a label_rate "
                      "giving equal counts.")
    if not (np.array_equal(s.x_test, s0.x_test) and np.array_equal(s.x_val, s0.x_val)):
      raise SganError("Replicas must share the validation and test sets.")


def make_splits_for_seeds(ds: data_lib.Dataset, cfg: Config,
                          seeds: Sequence[int]) -> list[data_lib.Splits]:
  """One validation split (from ``cfg.data_seed``), a labeled subset per seed."""
  return [data_lib.make_splits(ds, **cfg.label_selection(), val_size=cfg.val_size,
                               data_seed=cfg.data_seed, label_seed=seed) for seed in seeds]


def train_seeds(cfg: Config, splits_list: Sequence[data_lib.Splits], seeds: Sequence[int],
                mode: str = "sgan", log: Callable[[str], None] = print) -> dict:
  """Trains ``len(seeds)`` replicas at once; returns per-replica histories and summaries."""
  if len(seeds) != len(splits_list) or not seeds:
    raise SganError("Give one splits object per seed.")
  _check_compatible(splits_list)
  s0 = splits_list[0]
  epochs = cfg.epochs if mode == "sgan" else (cfg.baseline_epochs or cfg.epochs)
  iters = cfg.iters_per_epoch or max(1, len(s0.x_unl) // cfg.batch_size)
  m = train_lib.build_models(cfg, s0.x_unl.shape[1:], s0.num_classes, iters, epochs)
  states = []
  for seed in seeds:  # the same initialisation train.train uses for this seed
    init_idx = train_lib.init_indices(seed, len(s0.x_unl), cfg.init_examples)
    states.append(train_lib.init_state(m, jax.random.key(seed), jnp.asarray(s0.x_unl[init_idx]),
                                       mode))
  states = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
  data = {"x_lab": jnp.stack([s.x_lab for s in splits_list]),
          "y_lab": jnp.stack([s.y_lab for s in splits_list]), "x_unl": jnp.asarray(s0.x_unl)}
  chunk = make_seeds_chunk(m, mode)
  logits_v = jax.jit(jax.vmap(lambda p, f, x: m.disc.apply({"params": p, **f}, x, train=False)[0],
                              in_axes=(0, 0, None)))

  def all_logits(params, frozen, x):
    return np.concatenate([np.asarray(logits_v(params, frozen, x[i:i + 1000]))
                           for i in range(0, len(x), 1000)], axis=1)

  histories = [[] for _ in seeds]
  t_train, compile_s, timed = 0.0, None, 0
  for epoch in range(epochs):
    idx = [train_lib.epoch_indices(seed, epoch, len(s0.x_lab), len(s0.x_unl), iters,
                                   cfg.batch_size) for seed in seeds]
    idx = {k: np.stack([i[k] for i in idx]) for k in idx[0]}
    t0 = time.time()
    states, per_step = chunk(states, data, idx)
    per_step = {k: np.asarray(v) for k, v in jax.device_get(per_step).items()}
    dt = time.time() - t0
    if compile_s is None:
      compile_s = dt
    else:
      t_train, timed = t_train + dt, timed + iters
    for r, seed in enumerate(seeds):
      bad = train_lib._first_nonfinite({k: v[r] for k, v in per_step.items()})
      if bad is not None:
        raise SganError(f"[{mode}] replica seed={seed}: non-finite {bad[1]}={bad[2]} at step "
                        f"{epoch * iters + bad[0] + 1} (epoch {epoch + 1}).")
    if (epoch + 1) % cfg.eval_every and epoch + 1 != epochs:
      continue
    def errors(params, x, y):
      if not len(y):
        return [None] * len(seeds)
      return [float(e) for e in
              train_lib.errors_from_outputs(all_logits(params, states.d_frozen, x), y, cfg)]

    val, test = errors(states.d_avg, s0.x_val, s0.y_val), errors(states.d_avg, s0.x_test, s0.y_test)
    avg2 = {}
    if states.d_avg2 is not None:  # as in train._evaluate: reported beside, never selected on
      avg2 = {"val_err_avg2": errors(states.d_avg2, s0.x_val, s0.y_val),
              "test_err_avg2": errors(states.d_avg2, s0.x_test, s0.y_test)}
    for r in range(len(seeds)):
      histories[r].append({"mode": mode, "epoch": epoch + 1, "val_err": val[r],
                           "test_err": test[r], **{k: v[r] for k, v in avg2.items()},
                           **{k: float(np.mean(v[r])) for k, v in per_step.items()}})
    speed = f"{len(seeds) * timed / t_train:.1f} replica-it/s" if t_train else f"compiled in {dt:.1f}s"
    log(f"[{mode} x{len(seeds)}] epoch {epoch + 1}/{epochs} | {speed} | test_err "
        f"{100 * np.mean(test):.2f}% +/- {100 * np.std(test):.2f}")
  summaries = []
  for seed, h in zip(seeds, histories):
    s = {"seed": seed, "mode": mode, "final_test_err": h[-1]["test_err"],
         "final_val_err": h[-1]["val_err"]}
    if len(s0.y_val):
      best = min(h, key=lambda r: r["val_err"])
      s.update(best_val_err=best["val_err"], best_val_epoch=best["epoch"],
               selected_test_err=best["test_err"])
    summaries.append(s)
  return {"summaries": summaries, "histories": histories, "states": states,
          "replica_it_per_s": len(seeds) * timed / t_train if t_train else None,
          "compile_s": compile_s}
