"""One experiment = one config over one or more seeds, SGAN beside its baseline.

``train_and_evaluate(cfg, workdir)`` is the importable entry point (flax-examples
style); ``sgan-jax train`` is a thin command line over :func:`run_seeds`. Each seed
writes to ``workdir/seed_<s>/``: ``config.json``, ``data.json`` (split sizes, the
selection rule and the machine, written at each start), ``labeled_indices.npy`` (indices
into the training split), ``val_indices.npy``, ``metrics_<mode>.jsonl``,
``checkpoints_<mode>/`` (orbax; a rerun resumes from them; sequential runs only),
``classifier_<mode>.msgpack`` (averaged discriminator), ``generator.msgpack`` +
``model.json`` (see :mod:`sgan_jax.generate`), ``samples/epoch_<e>.png`` (a fixed-latent
sample grid per evaluation, image data; sequential runs only) and ``summary.json``.

The seed rule (:meth:`Config.for_seed`): each seed its own parameters, batch order,
labeled subset and validation split, or with ``data_seed`` one labeled subset for all.
``parallel=True`` trains the seeds as replicas of one vmapped program
(:mod:`sgan_jax.seeds`), which computes what the sequential runs compute.
"""

from __future__ import annotations

import os
import time
from typing import Callable, Optional, Sequence

import jax
import numpy as np

from sgan_jax import data as data_lib
from sgan_jax import evaluation, generate, machine, resume, rundir, seeds as seeds_lib, table_text
from sgan_jax import train as train_lib
from sgan_jax.config import Config
from sgan_jax.sharding import is_primary


def seed_dir(workdir: Optional[str], seed: int) -> Optional[str]:
  return os.path.join(workdir, f"seed_{seed}") if workdir else None


def load_data(cfg: Config) -> data_lib.Dataset:
  return data_lib.load(cfg.dataset, data_dir=cfg.data_dir, pixel_range=cfg.pixel_range)


def modes_of(cfg: Config, modes: Optional[Sequence[str]] = None) -> list[str]:
  """The modes a run trains: ``modes``, or the SGAN and, if ``cfg.baseline``, the baseline."""
  return list(modes) if modes is not None else ["sgan"] + (["supervised"] if cfg.baseline else [])


def check_run_folder(cfg: Config, splits: data_lib.Splits, workdir: str,
                     modes: Sequence[str], flag: str = "--workdir") -> None:
  """Refuses, reading only, a run folder this run must not write: unwritable, or holding
  another run (its ``config.json``; checkpoints of another config or data). Every refusal
  comes before anything is written."""
  rundir.check_writable(workdir, flag)
  resume.check_run_config(workdir, cfg)
  for mode in modes:
    train_lib.resume_epoch(cfg, splits, mode, workdir)


def move_old_run(workdir: str, log: Callable[[str], None]) -> None:
  """``--fresh``: the whole old run folder (records, models, samples, checkpoints) is
  renamed to ``<workdir>.old-N``, never deleted."""
  rundir.check_writable(os.path.dirname(os.path.abspath(workdir)), "the folder above")
  moved = rundir.move_aside(workdir)
  if moved:
    log(f"[fresh] moved the old run in {workdir} to {moved}")


def start_run(cfg: Config, ds: data_lib.Dataset, splits: data_lib.Splits,
              workdir: Optional[str], log: Callable[[str], None]) -> dict:
  """The run's data summary; with a workdir, its config, split sizes and indices are
  written first, so an unfinished run can be read back (tables)."""
  summary = {"config": cfg.name, "dataset": ds.name, "seed": cfg.seed, "data_seed": cfg.data_seed,
             "num_labeled": int(len(splits.y_lab)), "num_unlabeled": int(len(splits.x_unl)),
             "num_val": int(len(splits.y_val)), "num_test": int(len(splits.y_test)),
             "selection": evaluation.selection_name(len(splits.y_val) > 0),
             "machine": machine.describe()}
  if workdir:
    os.makedirs(workdir, exist_ok=True)
    rundir.write_json(os.path.join(workdir, "config.json"), cfg.to_dict())
    rundir.write_json(os.path.join(workdir, "data.json"), summary)
    if is_primary():
      np.save(os.path.join(workdir, "labeled_indices.npy"), splits.lab_idx)
      np.save(os.path.join(workdir, "val_indices.npy"), splits.val_idx)
  log(f"[data] {ds.name}: {len(splits.x_unl)} unlabeled (labeled included), "
      f"{len(splits.y_lab)} labeled ({np.bincount(splits.y_lab, minlength=ds.num_classes).tolist()}"
      f" per class), {len(splits.y_val)} validation, {len(splits.y_test)} test; "
      f"seed={cfg.seed} data_seed={cfg.data_seed}")
  return summary


def finish_mode(workdir: Optional[str], mode: str, state, splits: data_lib.Splits) -> None:
  """A trained mode's exported models: the averaged classifier and, for the SGAN, the
  generator."""
  if workdir:
    rundir.atomic_write(os.path.join(workdir, f"classifier_{mode}.msgpack"),
                        evaluation.classifier_bytes(state))
    if mode == "sgan" and is_primary():
      generate.save_generator(workdir, state, splits.x_unl.shape[1:], splits.num_classes)


def train_and_evaluate(cfg: Config, workdir: Optional[str] = None,
                       dataset: Optional[data_lib.Dataset] = None,
                       log: Callable[[str], None] = print, fresh: bool = False,
                       modes: Optional[Sequence[str]] = None) -> dict:
  """Trains the SGAN (and, if ``cfg.baseline``, the supervised-only baseline) for one seed.

  ``modes`` overrides which of ``("sgan", "supervised")`` run.
  ``fresh`` moves an old run in ``workdir`` aside first (:func:`move_old_run`); otherwise
  a folder holding another run is refused before anything is written.
  Returns the summary dict also written to ``workdir/summary.json``.
  """
  t0 = time.time()
  ds = dataset if dataset is not None else load_data(cfg)
  splits = data_lib.splits_for(ds, cfg)
  if workdir:
    if fresh:
      move_old_run(workdir, log)
    else:
      check_run_folder(cfg, splits, workdir, modes_of(cfg, modes))
  summary = start_run(cfg, ds, splits, workdir, log)
  for mode in modes_of(cfg, modes):
    out = train_lib.train(cfg, splits, mode, workdir, log)
    summary[mode] = out["summary"]
    finish_mode(workdir, mode, out["state"], splits)
  summary["wall_s"] = round(time.time() - t0, 2)
  if workdir:
    rundir.write_json(os.path.join(workdir, "summary.json"), summary)
  return summary


def train_parallel(cfg: Config, ds: data_lib.Dataset, seeds: Sequence[int],
                   workdir: Optional[str], log: Callable[[str], None],
                   modes: Optional[Sequence[str]] = None,
                   data_seed: Optional[int] = None,
                   splits: Optional[list[data_lib.Splits]] = None) -> list[dict]:
  """The seeds as replicas of one vmapped program (:func:`sgan_jax.seeds.train_seeds`),
  each writing the files of its sequential run except checkpoints and sample grids.
  ``splits``: the replicas' splits, if already computed."""
  t0 = time.time()
  cfgs = [cfg.for_seed(s, data_seed) for s in seeds]
  wds = [seed_dir(workdir, s) for s in seeds]
  if splits is None:
    splits = seeds_lib.replica_splits(ds, cfg, seeds, data_seed)
  runs = [start_run(c, ds, sp, wd, log) for c, sp, wd in zip(cfgs, splits, wds)]
  for mode in modes_of(cfg, modes):
    out = seeds_lib.train_seeds(cfg, ds, seeds, mode, log, data_seed, splits)
    for r, (run, wd) in enumerate(zip(runs, wds)):
      run[mode] = {**out["summaries"][r], "parallel_seeds": len(seeds)}
      if wd:
        rundir.MetricsLog(wd, mode).rewrite(out["histories"][r])
      finish_mode(wd, mode, jax.tree.map(lambda a: a[r], out["states"]), out["splits"][r])
  for run, wd in zip(runs, wds):
    run["wall_s"] = round(time.time() - t0, 2)  # the replicas' shared wall time
    if wd:
      rundir.write_json(os.path.join(wd, "summary.json"), run)
  return runs


def run_seeds(cfg: Config, seeds: Sequence[int], workdir: Optional[str],
              log: Callable[[str], None] = print, fresh: bool = False,
              modes: Optional[Sequence[str]] = None, parallel: bool = False,
              data_seed: Optional[int] = None, dataset: Optional[data_lib.Dataset] = None) -> dict:
  """Runs every seed (:meth:`Config.for_seed`; one after another, or ``parallel`` as
  vmapped replicas) and aggregates the reported test errors.

  Every seed's data and run folder are checked before any is written; ``fresh`` moves the
  whole old ``workdir`` aside (:func:`move_old_run`).
  """
  ds = dataset if dataset is not None else load_data(cfg)
  replicas = seeds_lib.replica_splits(ds, cfg, seeds, data_seed) if parallel else None
  for i, s in enumerate(seeds):
    c = cfg.for_seed(s, data_seed)
    sp = replicas[i] if parallel else data_lib.splits_for(ds, c)
    if workdir and not fresh:
      check_run_folder(c, sp, seed_dir(workdir, s), modes_of(cfg, modes))
  if workdir and fresh:
    move_old_run(workdir, log)
  if parallel:
    per_seed = train_parallel(cfg, ds, seeds, workdir, log, modes, data_seed, replicas)
  else:
    per_seed = [train_and_evaluate(cfg.for_seed(s, data_seed), seed_dir(workdir, s), ds, log,
                                   modes=modes) for s in seeds]
  agg = {"config": cfg.name, "seeds": list(seeds), "runs": per_seed}
  for mode in ("sgan", "supervised"):
    errs = [evaluation.headline_err(r[mode]) for r in per_seed if mode in r]
    if errs:
      agg[mode] = {"test_err_mean": float(np.mean(errs)), "test_err_std": float(np.std(errs)),
                   "test_errs": errs}
  if workdir:
    rundir.write_json(os.path.join(workdir, "summary.json"), agg)
  return agg


def format_report(agg: dict) -> str:
  """Human-readable lines: per seed and mean ± std test accuracy for SGAN and baseline."""
  lines = []
  r0 = agg["runs"][0]
  lines.append(f"{agg['config']}: {r0['num_labeled']} labels, {r0['num_unlabeled']} unlabeled, "
               f"test on {r0['num_test']}; reported model: {r0['selection']}")
  for r in agg["runs"]:
    parts = [f"seed {r['seed']}:"]
    for mode, name in (("sgan", "SGAN"), ("supervised", "supervised-only")):
      if mode in r:
        parts.append(f"{name} test acc {100 * (1 - evaluation.headline_err(r[mode])):.2f}%")
    parts.append(f"({r['wall_s']:.0f}s)")
    lines.append("  " + "  ".join(parts))
  for mode, name in (("sgan", "SGAN"), ("supervised", "supervised-only")):
    if mode in agg:
      a = agg[mode]
      n = len(a["test_errs"])
      acc = table_text.mean_std(100 * (1 - a["test_err_mean"]), 100 * a["test_err_std"], n,
                                "{:.2f}%".format)
      lines.append(f"{name:>16}: test accuracy {acc} over {n} seed{'s' if n > 1 else ''}")
  return "\n".join(lines)
