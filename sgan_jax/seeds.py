"""Several seeds trained in one program: ``vmap`` over replicas.

The papers report mean ± std over seeds. :func:`train_seeds` trains S replicas with one
jitted ``vmap(scan(...))`` per epoch, so small models fill the device instead of running
S times in sequence. The seed rule is the command line's (:meth:`Config.for_seed`):
replica ``s`` is the run of seed ``s`` -- its own parameters, noise, batch order, labeled
subset and validation split -- and computes what :func:`sgan_jax.train.train` computes for
that seed, up to floating-point reassociation. One copy of the training images is
resident; each replica carries index arrays for its labeled, unlabeled and validation rows.
Runs on one device, without checkpoints (use the sequential runner for those).
"""

from __future__ import annotations

import time
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sgan_jax import data as data_lib
from sgan_jax import evaluation, guards, step, table_text
from sgan_jax.config import Config
from sgan_jax.errors import SganError
from sgan_jax.state import build_models, initial_state


def replica_splits(ds: data_lib.Dataset, cfg: Config, seeds: Sequence[int],
                   data_seed: Optional[int] = None) -> list[data_lib.Splits]:
  """Each seed's splits (the sequential runs' own); refuses replicas of different sizes."""
  splits = [data_lib.splits_for(ds, cfg.for_seed(s, data_seed)) for s in seeds]
  sizes = {len(s.y_lab) for s in splits}
  if len(sizes) > 1:
    raise SganError(f"Seeds trained in parallel need labeled subsets of one size; label_rate="
                    f"{cfg.label_rate} gives {sorted(sizes)} labels depending on the seed's "
                    "validation split. Use labels_per_class or num_labeled, or run the seeds "
                    "one after another (without --parallel_seeds).")
  return splits


def train_seeds(cfg: Config, ds: data_lib.Dataset, seeds: Sequence[int], mode: str = "sgan",
                log: Callable[[str], None] = print, data_seed: Optional[int] = None,
                splits: Optional[Sequence[data_lib.Splits]] = None) -> dict:
  """Trains one replica per seed at once.

  Returns ``{"seeds", "histories": [S lists of records], "summaries": [S dicts], "states": a
  TrainState with a leading S axis, "splits": [S Splits], "replica_it_per_s",
  "compile_s"}``; record and summary fields are those of :func:`sgan_jax.train.train`.
  ``splits``: :func:`replica_splits` of these seeds, when the caller has them already.
  """
  if not seeds:
    raise SganError("Give at least one seed.")
  splits = splits if splits is not None else replica_splits(ds, cfg, seeds, data_seed)
  s0 = splits[0]
  epochs, iters = cfg.epochs_for(mode), cfg.iters_for(len(s0.x_unl))
  m = build_models(cfg, s0.x_unl.shape[1:], ds.num_classes, iters, epochs)
  states = jax.tree.map(lambda *xs: jnp.stack(xs),
                        *[initial_state(m, s, sp.x_unl, mode) for s, sp in zip(seeds, splits)])
  n = len(ds.x_train)
  data = {"x": jnp.asarray(ds.x_train), "y_lab": jnp.stack([sp.y_lab for sp in splits]),
          "lab": jnp.asarray(np.stack([sp.lab_idx for sp in splits]), jnp.int32),
          "unl": jnp.asarray(np.stack([data_lib.unlabeled_indices(n, sp.val_idx)
                                       for sp in splits]), jnp.int32)}
  chunk = step.make_seeds_chunk(m, mode)
  logits = jax.jit(jax.vmap(lambda p, f, x: m.disc.apply({"params": p, **f}, x, train=False)[0],
                            in_axes=(0, 0, 0)))
  x_val = np.stack([sp.x_val for sp in splits])
  y_val = np.stack([sp.y_val for sp in splits])

  def errors(params, x, y):
    """Per-replica errors; ``x`` ``(S, N, *shape)`` (own rows) or ``(N, *shape)`` (shared)."""
    if not y.shape[-1]:
      return [None] * len(seeds)
    x = np.broadcast_to(x, (len(seeds), *x.shape)) if x.ndim == s0.x_test.ndim else x
    out = np.concatenate([np.asarray(logits(params, states.d_frozen, x[:, i:i + 1000]))
                          for i in range(0, x.shape[1], 1000)], axis=1)
    return [float(e) for e in evaluation.errors_from_outputs(out, y, cfg)]

  histories, bests = [[] for _ in seeds], [None for _ in seeds]
  t_train, compile_s, timed = 0.0, None, 0
  for epoch in range(epochs):
    idx = [data_lib.epoch_indices(seed, epoch, len(s0.y_lab), len(s0.x_unl), iters,
                                  cfg.batch_size) for seed in seeds]
    t0 = time.time()
    states, per_step = chunk(states, data, {k: np.stack([i[k] for i in idx]) for k in idx[0]})
    per_step = {k: np.asarray(v) for k, v in jax.device_get(per_step).items()}
    dt = time.time() - t0
    if compile_s is None:
      compile_s = dt
    else:
      t_train, timed = t_train + dt, timed + iters
    for r, seed in enumerate(seeds):
      bad = guards.first_nonfinite({k: v[r] for k, v in per_step.items()})
      if bad is not None:
        raise SganError(f"[{mode}] replica seed={seed}: non-finite {bad[1]}={bad[2]} at step "
                        f"{epoch * iters + bad[0] + 1} (epoch {epoch + 1}).")
    if (epoch + 1) % cfg.eval_every and epoch + 1 != epochs:
      continue
    val, test = errors(states.d_avg, x_val, y_val), errors(states.d_avg, s0.x_test, s0.y_test)
    live = errors(states.d_params, s0.x_test, s0.y_test)
    for r in range(len(seeds)):
      rec = {"mode": mode, "epoch": epoch + 1, "step": (epoch + 1) * iters,
             **{k: round(float(np.mean(v[r])), 5) for k, v in per_step.items()},
             "val_err": val[r], "test_err": test[r], "test_err_live": live[r]}
      histories[r].append(rec)
      if evaluation.is_better(rec, bests[r]):
        bests[r] = {"val_err": rec["val_err"], "epoch": rec["epoch"], "test_err": rec["test_err"]}
    speed = f"{len(seeds) * timed / t_train:.1f} replica-it/s" if t_train else f"compiled in {dt:.1f}s"
    log(f"[{mode} x{len(seeds)}] epoch {epoch + 1}/{epochs} | {speed} | test_err "
        + table_text.mean_std(100 * np.mean(test), 100 * np.std(test), len(seeds), "{:.2f}%".format))
  rate = len(seeds) * timed / t_train if t_train else None
  summaries = [{"mode": mode, "epochs": epochs, "steps": epochs * iters, "iters_per_epoch": iters,
                **evaluation.summarize(h, b if len(s0.y_val) else None),
                "train_s": round(t_train, 2), "compile_s": round(compile_s, 2),
                "it_per_s": round(rate / len(seeds), 2) if rate else None}
               for h, b in zip(histories, bests)]
  return {"seeds": list(seeds), "summaries": summaries, "histories": histories, "states": states,
          "splits": splits, "replica_it_per_s": rate, "compile_s": compile_s}
