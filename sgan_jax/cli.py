"""The ``sgan-jax`` command: train, reproduce a paper table, fit a table, export samples.

  sgan-jax train --config digits --seeds 0,1,2
  sgan-jax train --config mnist_fm --set dataset=mnist.npz --seeds 1,2,3 --parallel_seeds
  sgan-jax table mnist_fm_table --seeds 1,2,3 --epochs 300 --set dataset=mnist.npz
  sgan-jax tabular fit --data patients.csv --target outcome --out runs/patients
  sgan-jax export --run runs/mnist_cond/seed_1 --per_class 1000 --out synthetic.npz

Bad input ends in ``error: <what is wrong and how to fix it>`` and exit status 2, with
nothing written; a run stopped by SIGTERM saves a checkpoint and exits with 75, by Ctrl-C
with 130 (rerun the command to resume).
"""

from __future__ import annotations

import argparse
import csv
import errno
import json
import os
import sys
from typing import Optional, Sequence

from sgan_jax import configs
from sgan_jax.config import SEED, fields_with, from_dict, parse_int_list, parse_override
from sgan_jax.errors import SganError


def _overrides(sets: Sequence[str]) -> dict:
  return dict(parse_override(s) for s in sets)


def _add_seed_args(p: argparse.ArgumentParser) -> None:
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                 help="override a config field (repeatable), e.g. --set epochs=40")
  p.add_argument("--data_seed", type=int, default=None,
                 help="one labeled subset and validation split for every seed (default: each "
                      "seed its own, data_seed = seed)")


# ----------------------------------------------------------------------------- train
def _train_args(p: argparse.ArgumentParser) -> None:
  p.add_argument("--config", default="digits", help=f"config name ({', '.join(configs.names())}) "
                                                    "or a .py path defining get_config()")
  p.add_argument("--seeds", default=None, help="comma-separated seeds (default: the config's seed)")
  _add_seed_args(p)
  p.add_argument("--parallel_seeds", action="store_true",
                 help="train the seeds as replicas of one vmapped program (one device, no "
                      "checkpoints); each replica computes what its sequential run computes")
  p.add_argument("--workdir", default=None,
                 help="output folder (default: runs/<config name>, or runs/<data file>_<config "
                      "name> with --set dataset=<file>)")
  p.add_argument("--modes", default=None,
                 help="which models to train: sgan, supervised or sgan,supervised "
                      "(default: sgan, plus supervised when the config's baseline is true)")
  p.add_argument("--fresh", action="store_true",
                 help="do not resume: move the old run folder aside (kept as <workdir>.old-N)")
  p.add_argument("--distributed", action="store_true",
                 help="one of several processes training together (jax.distributed); with no "
                      "--coordinator JAX detects the cluster (TPU pod, SLURM, Open MPI)")
  p.add_argument("--coordinator", default=None, help="process 0's host:port (with --distributed)")
  p.add_argument("--num_processes", type=int, default=None)
  p.add_argument("--process_id", type=int, default=None)


def _train(a) -> int:
  from sgan_jax import rundir
  from sgan_jax.experiment import format_report, run_seeds
  if not a.distributed and (a.coordinator or a.num_processes is not None or a.process_id is not None):
    raise SganError("--coordinator, --num_processes and --process_id need --distributed.")
  overrides = _overrides(a.set)
  # A run's seed fields are set per seed (Config.for_seed), so these overrides would be
  # silently replaced. Checked before joining a cluster.
  fixed = [k for k in overrides if k in fields_with(SEED)]
  if fixed and (a.seeds or "data_seed" in fixed):
    raise SganError(f"--set {', '.join(fixed)}: each run's seed picks its keys and (data_seed = "
                    "seed) its labeled subset and validation split. Choose seeds with --seeds "
                    "and one subset for all of them with --data_seed.")
  if a.parallel_seeds and a.distributed:
    raise SganError("--parallel_seeds trains the replicas on one device; it does not combine "
                    "with --distributed. Drop one of them.")
  if a.distributed:
    from sgan_jax import sharding
    sharding.initialize(a.coordinator, a.num_processes, a.process_id)
  cfg = from_dict({**configs.load_config(a.config).to_dict(), **overrides})
  seeds = parse_int_list(a.seeds, "--seeds") if a.seeds else [cfg.seed]
  modes = a.modes.split(",") if a.modes else None
  if modes and not set(modes) <= {"sgan", "supervised"}:
    raise SganError(f"--modes takes sgan and/or supervised, got {a.modes!r}.")
  workdir = a.workdir or default_workdir(cfg, overrides)
  agg = run_seeds(cfg, seeds, workdir, fresh=a.fresh, modes=modes, parallel=a.parallel_seeds,
                  data_seed=a.data_seed)
  print("\n" + format_report(agg))
  print(f"\nwrote {os.path.join(workdir, 'summary.json')}; {rundir.disk_text(workdir)}")
  return 0


def default_workdir(cfg, overrides: dict) -> str:
  """``runs/<config name>``; a run on one's own data file (``--set dataset=path``) gets
  ``runs/<file name>_<config name>``, so it never shares a folder with the config's own
  dataset."""
  dataset = overrides.get("dataset")
  if isinstance(dataset, str) and (dataset.endswith(".npz") or os.path.isfile(dataset)):
    stem = os.path.splitext(os.path.basename(dataset))[0]
    return os.path.join("runs", f"{stem}_{cfg.name}")
  return os.path.join("runs", cfg.name)


# ----------------------------------------------------------------------------- table
def _table_args(p: argparse.ArgumentParser) -> None:
  p.add_argument("table", help=f"table config ({', '.join(configs.names(tables_only=True))})")
  p.add_argument("--seeds", default="1,2,3", help="comma-separated seeds (each its own labeled "
                                                  "subset unless --data_seed)")
  p.add_argument("--epochs", type=int, default=None, help="epoch budget per run (default: the config's)")
  p.add_argument("--labels", default=None, help="comma-separated subset of the table's label counts")
  p.add_argument("--modes", default=None,
                 help="comma-separated subset of the table's modes to train (sgan, supervised), "
                      "e.g. the supervised-only column alone into its own --workdir")
  _add_seed_args(p)
  p.add_argument("--workdir", default=None, help="output folder (default: runs/tables/<table>)")
  p.add_argument("--report_budget", type=int, default=None, metavar="N",
                 help="train nothing: write the table as the existing runs stood after N epochs "
                      "(validation-selected within them) to <workdir>/budget_<N>/")
  p.add_argument("--merge", action="append", default=[], metavar="N=DIR",
                 help="train nothing: take cell N from DIR/results.json (repeat per cell) and "
                      "write the merged table to --workdir")


def _table(a) -> int:
  from sgan_jax.reports import merge_results, report_at_budget
  from sgan_jax.tables import CELL_FIELDS, run_table
  table, cfg = configs.load_table(a.table)
  overrides = _overrides(a.set)
  fixed = [k for k in overrides if k in CELL_FIELDS]
  if fixed:
    raise SganError(f"--set {', '.join(fixed)}: each table cell sets these from its label count "
                    "and seed (data_seed = seed: each seed its own labeled subset), so a --set "
                    "would be ignored. Choose them with --seeds, --labels and --data_seed.")
  cfg = from_dict({**cfg.to_dict(), **overrides})
  seeds = parse_int_list(a.seeds, "--seeds")
  labels = parse_int_list(a.labels, "--labels", minimum=1) if a.labels else None
  for flag, value in (("--epochs", a.epochs), ("--report_budget", a.report_budget)):
    if value is not None and value < 1:
      raise SganError(f"{flag} must be at least 1 epoch, got {value}.")
  root = a.workdir or os.path.join("runs", "tables", table.name)
  if a.merge:
    if not a.workdir:
      raise SganError("--merge writes a new table: give its folder with --workdir.")
    parts = []
    for m in a.merge:
      n, sep, d = m.partition("=")
      if not sep or not n.strip().isdigit() or not d:
        raise SganError(f"--merge {m!r}: expected N=DIR, e.g. 200=results/tables/mnist_fm_200labels_300ep "
                        "(repeat a cell's N for its columns from other folders).")
      parts.append((int(n), d))
    merge_results(table, parts, root)
  elif a.report_budget is not None:
    report_at_budget(table, root, seeds, a.report_budget, labels=labels)
    root = os.path.join(root, f"budget_{a.report_budget}")
  else:
    modes = [m.strip() for m in a.modes.split(",") if m.strip()] if a.modes else None
    run_table(table, cfg, seeds, root, a.epochs, labels=labels, data_seed=a.data_seed, modes=modes)
  with open(os.path.join(root, "table.md")) as f:
    print("\n" + f.read())
  return 0


# ----------------------------------------------------------------------------- tabular
def _tabular_args(p: argparse.ArgumentParser) -> None:
  sub = p.add_subparsers(dest="tabular_cmd", required=True)
  f = sub.add_parser("fit", help="train on a CSV/npz with some empty targets")
  f.add_argument("--data", required=True)
  f.add_argument("--target", required=True, help="target column (npz: any name)")
  f.add_argument("--task", default="auto", choices=["auto", "classification", "regression"])
  f.add_argument("--categorical", default="", help="comma-separated categorical columns")
  f.add_argument("--val-fraction", type=float, default=0.15)
  f.add_argument("--test-fraction", type=float, default=0.15)
  f.add_argument("--seed", type=int, default=0)
  f.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
  f.add_argument("--out", required=True, help="model folder to write")
  f.add_argument("--fresh", action="store_true",
                 help="move a model already in --out aside (kept as <out>.old-N) instead of "
                      "resuming its training")
  q = sub.add_parser("predict", help="predict the target for new rows")
  q.add_argument("--model", required=True)
  q.add_argument("--data", required=True)
  q.add_argument("--out", required=True)
  q.add_argument("--mode", default="sgan", choices=["sgan", "supervised"])


def _tabular(a) -> int:
  from sgan_jax import rundir, tabular
  rundir.check_writable(a.out if a.tabular_cmd == "fit" else os.path.dirname(a.out) or ".",
                        "--out")
  if a.tabular_cmd == "predict":
    predict, pre = tabular.load_predictor(a.model, a.mode)
    header, cols = tabular.read_csv(a.data)
    preds = predict(cols)
    with open(a.out, "w", newline="") as fh:
      w = csv.writer(fh)
      w.writerow(header + ["prediction"])
      for i in range(len(preds)):
        w.writerow([cols[h][i] for h in header] + [preds[i]])
    print(f"wrote {len(preds)} predictions of {pre.target!r} to {a.out}")
    return 0
  splits, pre = tabular.load_table(
      a.data, a.target, task=a.task, categorical=[c for c in a.categorical.split(",") if c],
      val_fraction=a.val_fraction, test_fraction=a.test_fraction, seed=a.seed)
  print(f"[data] task={pre.task}; {len(splits.y_lab)} labeled training rows, "
        f"{len(splits.x_unl)} training rows in all, {len(splits.y_val)} validation, "
        f"{len(splits.y_test)} test; {pre.dim} encoded features"
        + (f"; classes {pre.classes}" if pre.classes else ""))
  cfg = tabular.default_config(pre.task, seed=a.seed, data_seed=a.seed)
  cfg = from_dict({**cfg.to_dict(), **_overrides(a.set)})
  res = tabular.fit(splits, pre, cfg, a.out, fresh=a.fresh)
  name = "RMSE" if pre.task == "regression" else "accuracy"
  conv = (lambda e: f"{e:.4g}") if pre.task == "regression" else (lambda e: f"{100 * (1 - e):.2f}%")
  print()
  for mode, label in (("sgan", "SGAN"), ("supervised", "supervised-only")):
    s = res[mode]
    print(f"{label:>16}: validation {name} {conv(s['best_val_err'])}, test {name} "
          f"{conv(s['selected_test_err'])} (epoch {s['best_val_epoch']} selected on validation)")
  print(f"\nmodel saved in {a.out}; predict with: sgan-jax tabular predict "
        f"--model {a.out} --data NEW.csv --out predictions.csv")
  return 0


# ----------------------------------------------------------------------------- export
def _export_args(p: argparse.ArgumentParser) -> None:
  p.add_argument("--run", required=True, help="seed folder of a finished conditional SGAN run")
  p.add_argument("--per_class", type=int, default=1000)
  p.add_argument("--out", required=True, help="output .npz path")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--checkpoint", default="final",
                 help="which generator: final (last epoch), best (saved with the epoch selected "
                      "on validation) or an epoch number among the kept checkpoints")
  p.add_argument("--judge", default=None, help="dataset (.npz path or name) to judge the samples against")
  p.add_argument("--reference", default="runs/reference/classifier.msgpack",
                 help="where the reference classifier is cached")


def _export(a) -> int:
  import numpy as np
  from sgan_jax import data, evaluator, generate
  info = generate.export_labeled(a.run, a.out, a.per_class, a.seed, checkpoint=a.checkpoint)
  print(f"wrote {info['num_samples']} samples ({info['num_classes']} classes) to {info['npz']}"
        + (f" and {info['grid']}" if info["grid"] else ""))
  if not a.judge:
    return 0
  ds = data.load(a.judge)
  synth = data.load_npz(a.out, num_classes=ds.num_classes)
  ref = evaluator.fit_or_load(ds, a.reference)
  rep = evaluator.judge_samples(ref, synth.x_train, synth.y_train, ds.x_test, ds.y_test,
                                ds.num_classes)
  # What real data scores in the same feature space: as many real training images (a
  # random subset; the reference was trained on them) against the test set.
  n = min(len(ds.x_train), len(synth.x_train))
  pick = np.random.default_rng(a.seed).permutation(len(ds.x_train))[:n]
  rep["fid_all_real_train_vs_test"] = ref.fid(ds.x_test, ds.x_train[pick])
  rep.update(run=a.run, samples_per_class=a.per_class, seed=a.seed, checkpoint=a.checkpoint,
             reference_test_acc=ref.accuracy(ds.x_test, ds.y_test))
  with open(os.path.splitext(a.out)[0] + ".json", "w") as f:
    json.dump(rep, f, indent=1)
  print(f"reference classifier (test acc {100 * rep['reference_test_acc']:.2f}%) says "
        f"{100 * rep['accuracy']:.2f}% of the samples are their intended class; "
        f"FID all {rep['fid_all']:.2f} (real training images: "
        f"{rep['fid_all_real_train_vs_test']:.2f}), IS {rep['inception_score']:.2f}")
  for r in rep["per_class"]:
    print(f"  class {r['class']}: accuracy {100 * r['accuracy']:.1f}%  FID {r['fid']:.2f}")
  return 0


COMMANDS = {
    "train": (_train_args, _train, "train a config over seeds: SGAN beside its supervised-only baseline"),
    "table": (_table_args, _table, "reproduce a paper table: label counts x seeds, resumable"),
    "tabular": (_tabular_args, _tabular, "semi-supervised GAN on your own CSV/npz table"),
    "export": (_export_args, _export, "labeled synthetic samples from a conditional run"),
}


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="sgan-jax", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = p.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")
  for name, (add, _, help_) in COMMANDS.items():
    add(sub.add_parser(name, help=help_, description=help_))
  return p


def main(argv: Optional[Sequence[str]] = None) -> int:
  a = parser().parse_args(argv)
  from sgan_jax.train import Preempted  # after parsing: --help needs no JAX
  try:
    return COMMANDS[a.command][1](a)
  except SganError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  except Preempted as e:
    print(f"{e}. Rerun the same command to resume.", file=sys.stderr)
    return e.exit_code  # 75 (EX_TEMPFAIL: try again) or 130 (Ctrl-C)
  except KeyboardInterrupt:  # outside the training loop, which handles Ctrl-C itself
    print("interrupted (Ctrl-C) outside training; checkpoints already written are kept. Rerun "
          "the same command to resume.", file=sys.stderr)
    return 130
  except OSError as e:
    print(f"error: {os_error_text(e)}", file=sys.stderr)
    return 2


def os_error_text(e: OSError) -> str:
  """A failed read or write as a message: the file, the reason and what to do."""
  where = f" {e.filename}" if e.filename else ""
  if e.errno == errno.ENOSPC:
    fix = "Free disk space and rerun the same command to resume."
  elif e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
    fix = "Choose a folder you can write (--workdir / --out) or fix its permissions."
  else:
    fix = "Check the path and rerun the same command."
  return f"could not access{where}: {e.strerror or e}. {fix}"


if __name__ == "__main__":
  sys.exit(main())
