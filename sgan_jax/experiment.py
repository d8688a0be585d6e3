"""One experiment = one config over one or more seeds, SGAN beside its baseline.

``train_and_evaluate(cfg, workdir)`` is the importable entry point (flax-examples
style); ``experiments/main.py`` is a thin command line over it. Each seed writes to
``workdir/seed_<s>/``: ``config.json``, ``data.json`` (split sizes and the selection rule,
written at the start), ``labeled_indices.npy`` (indices into the
training split), ``val_indices.npy``, ``metrics_<mode>.jsonl``, ``checkpoints_<mode>/``
(orbax; a rerun resumes from them), ``classifier_<mode>.msgpack`` (averaged
discriminator), ``generator.msgpack`` + ``model.json`` (see :mod:`sgan_jax.generate`),
``samples/epoch_<e>.png`` (a fixed-latent sample grid per evaluation, image data) and
``summary.json``.
"""

from __future__ import annotations

import json
import os
import time
from typing import Callable, Optional, Sequence

import jax
import numpy as np

from sgan_jax import data as data_lib
from sgan_jax import generate
from sgan_jax import train as train_lib
from sgan_jax.config import Config


def _primary() -> bool:
  """Only the first process writes run files when several train together."""
  return jax.process_index() == 0


def _atomic_write(path: str, payload: bytes) -> None:
  if not _primary():
    return
  tmp = path + ".tmp"
  with open(tmp, "wb") as f:
    f.write(payload)
  os.replace(tmp, path)


def _write_json(path: str, obj) -> None:
  _atomic_write(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def load_data(cfg: Config) -> data_lib.Dataset:
  return data_lib.load(cfg.dataset, data_dir=cfg.data_dir, pixel_range=cfg.pixel_range)


def train_and_evaluate(cfg: Config, workdir: Optional[str] = None,
                       dataset: Optional[data_lib.Dataset] = None,
                       log: Callable[[str], None] = print, fresh: bool = False,
                       modes: Optional[Sequence[str]] = None) -> dict:
  """Trains the SGAN (and, if ``cfg.baseline``, the supervised-only baseline) for one seed.

  ``modes`` overrides which of ``("sgan", "supervised")`` run.

  Returns the summary dict also written to ``workdir/summary.json``.
  """
  t0 = time.time()
  ds = dataset if dataset is not None else load_data(cfg)
  splits = data_lib.make_splits(ds, **cfg.label_selection(), val_size=cfg.val_size,
                                data_seed=cfg.data_seed)
  summary = {"config": cfg.name, "dataset": ds.name, "seed": cfg.seed, "data_seed": cfg.data_seed,
             "num_labeled": int(len(splits.y_lab)), "num_unlabeled": int(len(splits.x_unl)),
             "num_val": int(len(splits.y_val)), "num_test": int(len(splits.y_test)),
             "selection": "best validation epoch" if len(splits.y_val) else
                          "final model (no validation split)"}
  if workdir:
    os.makedirs(workdir, exist_ok=True)
    _write_json(os.path.join(workdir, "config.json"), cfg.to_dict())
    # The split sizes at the start, so an unfinished run can be read back (tables).
    _write_json(os.path.join(workdir, "data.json"), summary)
    if _primary():
      np.save(os.path.join(workdir, "labeled_indices.npy"), splits.lab_idx)
      np.save(os.path.join(workdir, "val_indices.npy"), splits.val_idx)
  log(f"[data] {ds.name}: {len(splits.x_unl)} unlabeled (labeled included), "
      f"{len(splits.y_lab)} labeled ({np.bincount(splits.y_lab, minlength=ds.num_classes).tolist()}"
      f" per class), {len(splits.y_val)} validation, {len(splits.y_test)} test; "
      f"seed={cfg.seed} data_seed={cfg.data_seed}")
  if modes is None:
    modes = ["sgan"] + (["supervised"] if cfg.baseline else [])
  for mode in modes:
    out = train_lib.train(cfg, splits, mode, workdir, log, fresh=fresh)
    summary[mode] = out["summary"]
    if workdir:
      _atomic_write(os.path.join(workdir, f"classifier_{mode}.msgpack"),
                    train_lib.classifier_bytes(out["state"]))
      if mode == "sgan" and _primary():
        generate.save_generator(workdir, out["state"], splits.x_unl.shape[1:], ds.num_classes)
  summary["wall_s"] = round(time.time() - t0, 2)
  if workdir:
    _write_json(os.path.join(workdir, "summary.json"), summary)
  return summary


def headline_err(s: dict) -> float:
  """The reported test error of one mode's summary: validation-selected when available."""
  return s["selected_test_err"] if "selected_test_err" in s else s["final_test_err"]


# What a seed sets in a multi-seed run: the parameters' keys and the labeled subset
# (each seed its own), whatever the base config says.
SEED_FIELDS = ("seed", "data_seed")


def for_seed(cfg: Config, seed: int) -> Config:
  """``cfg`` for one seed of a multi-seed run: ``seed`` picks the keys and the subset."""
  return cfg.replace(seed=seed, data_seed=seed)


def run_seeds(cfg: Config, seeds: Sequence[int], workdir: Optional[str],
              log: Callable[[str], None] = print, fresh: bool = False,
              modes: Optional[Sequence[str]] = None) -> dict:
  """Runs ``train_and_evaluate`` per seed (each seed its own labeled subset) and aggregates."""
  ds = load_data(cfg)
  per_seed = []
  for s in seeds:
    c = for_seed(cfg, s)
    wd = os.path.join(workdir, f"seed_{s}") if workdir else None
    per_seed.append(train_and_evaluate(c, wd, ds, log, fresh, modes))
  agg = {"config": cfg.name, "seeds": list(seeds), "runs": per_seed}
  for mode in ("sgan", "supervised"):
    errs = [headline_err(r[mode]) for r in per_seed if mode in r]
    if errs:
      agg[mode] = {"test_err_mean": float(np.mean(errs)), "test_err_std": float(np.std(errs)),
                   "test_errs": errs}
  if workdir:
    _write_json(os.path.join(workdir, "summary.json"), agg)
  return agg


def format_report(agg: dict) -> str:
  """Human-readable lines: per seed and mean +/- std test accuracy for SGAN and baseline."""
  lines = []
  r0 = agg["runs"][0]
  lines.append(f"{agg['config']}: {r0['num_labeled']} labels, {r0['num_unlabeled']} unlabeled, "
               f"test on {r0['num_test']}; reported model: {r0['selection']}")
  for r in agg["runs"]:
    parts = [f"seed {r['seed']}:"]
    for mode, name in (("sgan", "SGAN"), ("supervised", "supervised-only")):
      if mode in r:
        parts.append(f"{name} test acc {100 * (1 - headline_err(r[mode])):.2f}%")
    parts.append(f"({r['wall_s']:.0f}s)")
    lines.append("  " + "  ".join(parts))
  for mode, name in (("sgan", "SGAN"), ("supervised", "supervised-only")):
    if mode in agg:
      a = agg[mode]
      lines.append(f"{name:>16}: test accuracy {100 * (1 - a['test_err_mean']):.2f}% "
                   f"+/- {100 * a['test_err_std']:.2f} over {len(a['test_errs'])} seed(s)")
  return "\n".join(lines)
