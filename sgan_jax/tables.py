"""Paper tables: one command per table, over label counts x seeds, resumable.

Running lives here; reading runs back into tables and merging in :mod:`sgan_jax.reports`,
the figures in :mod:`sgan_jax.plots`.

A :class:`Table` names the label counts of its cells and the published numbers beside
them. :func:`run_table` trains every (label count, seed) cell with
:func:`sgan_jax.experiment.train_and_evaluate` in ``<root>/labels_<n>/seed_<s>/`` (each
seed its own labeled subset, chosen by ``data_seed = seed``; model selection on the
validation split, test error reported), so an interrupted table resumes from the cells'
checkpoints, and finished cells are read back instead of retrained. Rerunning with a
larger epoch budget continues the existing runs. It writes

* ``results.csv`` / ``results.json``: one row per (cell, seed, mode);
* ``table.md``: mean ± std per cell beside the published number (validation-selected,
  and for SGAN also the last epoch's error, unselected);
* ``error_vs_labels.png``: test error against labels, SGAN vs supervised-only, error bars;
* per run, ``curves.png``: validation/test error and the losses per epoch.
"""

from __future__ import annotations

import json
import os
import time
from typing import Callable, Optional, Sequence

from sgan_jax import data as data_lib
from sgan_jax import evaluation, experiment, rundir
from sgan_jax.config import CELL, MODES, Config, fields_with
from sgan_jax.errors import SganError
from sgan_jax.plots import plot_run_curves
from sgan_jax.reports import Table, aggregate, run_speed, write_outputs


# Config fields every cell sets from its (label count, seed), whatever the base config says;
# overriding them for a whole table would be silently undone (the CLI refuses them).
CELL_FIELDS = fields_with(CELL)


def cell_config(base: Config, n_labels: int, num_classes: int, seed: int,
                epochs: Optional[int], data_seed: Optional[int] = None) -> Config:
  """The config of one (label count, seed) cell: ``n_labels // K`` per class when ``K``
  divides ``n_labels`` (the reference's rule), else ``num_labeled=n_labels`` (as balanced
  as the count allows); the seed chooses the parameters and, unless ``data_seed`` fixes
  one subset for every seed, the labeled subset (:meth:`Config.for_seed`)."""
  if n_labels % num_classes:
    kw = dict(labels_per_class=None, num_labeled=n_labels)
  else:
    kw = dict(labels_per_class=n_labels // num_classes, num_labeled=None)
  kw.update(label_rate=None, name=f"{base.name}_l{n_labels}")
  if epochs:
    kw["epochs"] = epochs
    if base.baseline_epochs:
      kw["baseline_epochs"] = min(base.baseline_epochs, epochs)
  return base.replace(**kw).for_seed(seed, data_seed)


def _summary(wd: str) -> Optional[dict]:
  path = os.path.join(wd, "summary.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def _finished(summary: Optional[dict], cfg: Config, modes) -> bool:
  return summary is not None and all(
      m in summary and summary[m].get("epochs") == cfg.epochs_for(m) for m in modes)


def run_table(table: Table, base: Config, seeds: Sequence[int], root: str,
              epochs: Optional[int] = None, dataset: Optional[data_lib.Dataset] = None,
              labels: Optional[Sequence[int]] = None, log: Callable[[str], None] = print,
              data_seed: Optional[int] = None, modes: Optional[Sequence[str]] = None) -> dict:
  """Trains (or reads back) every cell and writes the table files; returns the results.
  ``data_seed``: one labeled subset (and validation split) for every seed of a cell, which
  then varies only the training seed; the table's title says "one subset". ``modes``: a
  subset of the table's modes to train (e.g. the supervised-only column alone, into its
  own folder, for :func:`sgan_jax.reports.merge_results`)."""
  ds = dataset if dataset is not None else experiment.load_data(base)
  labels = tuple(labels or table.labels)
  modes = tuple(modes or table.modes)
  unknown = [m for m in modes if m not in table.modes]
  if unknown:
    raise SganError(f"Table {table.name} has the modes {list(table.modes)}; {unknown} is not "
                    "one of them.")
  rows = []
  cells = [(n, s) for n in labels for s in seeds]
  t0 = time.time()
  for i, (n, s) in enumerate(cells):
    cfg = cell_config(base, n, ds.num_classes, s, epochs, data_seed)
    wd = os.path.join(root, f"labels_{n}", f"seed_{s}")
    summary = _summary(wd)
    done = _finished(summary, cfg, modes)
    log(f"[table {table.name}] cell {i + 1}/{len(cells)}: {n} labels, seed {s} "
        f"({'done, read back' if done else 'training'}; {time.time() - t0:.0f}s so far)")
    if not done:
      before = summary or {}
      summary = experiment.train_and_evaluate(cfg, wd, ds, log, modes=modes)
      # A column trained on its own (--modes) keeps the folder's other finished columns.
      kept = {m: before[m] for m in MODES if m in before and m not in summary}
      if kept:
        summary.update(kept)
        rundir.write_json(os.path.join(wd, "summary.json"), summary)
    for mode in modes:
      r = summary[mode]
      rows.append({"table": table.name, "labels": n, "seed": s, "mode": mode,
                   "test_err": evaluation.headline_err(r), "final_test_err": r["final_test_err"],
                   "best_val_err": r.get("best_val_err"), "best_val_epoch": r.get("best_val_epoch"),
                   "epochs": r["epochs"], "train_s": r["train_s"], "wall_s": r["wall_s"],
                   **run_speed(wd, mode),
                   "num_test": summary["num_test"], "selection": summary["selection"]})
    try:
      plot_run_curves(wd, modes)
    except ImportError:
      pass
  title = table.title + (f" (one subset: data_seed={data_seed} for every seed)"
                         if data_seed is not None else "")
  result = {"table": table.name, "title": title, "source": table.source,
            "seeds": list(seeds), "labels": list(labels), "rows": rows,
            "cells": aggregate(rows)}
  write_outputs(table, result, root, lambda n, s: os.path.join(root, f"labels_{n}", f"seed_{s}"))
  return result
