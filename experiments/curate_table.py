"""Copy a table's finished runs into a results folder, small files only, and write the
table from the copies.

  python experiments/curate_table.py runs/tables/mnist_fm results/tables/mnist_fm_20labels_300ep \
      --table mnist_fm_table --labels 20 --seeds 1,2,3 --budget 300

Per run (``labels_<n>/seed_<s>``): ``config.json``, ``data.json``, the labeled and
validation indices, every ``metrics_*.jsonl``, ``summary.json``, ``curves.png`` and the
sample grid of epoch ``budget`` (as ``samples_epoch_<budget>.png``); never checkpoints or
weights. The table files (``results.json``, ``table.md``, plots) are then computed from the
copies at ``budget`` (:func:`sgan_jax.reports.report_at_budget`), so the folder holds its
own evidence and can be merged (``sgan-jax table ... --merge N=DST``).
"""

import argparse
import os
import shutil
import sys

from sgan_jax.configs import load_table
from sgan_jax.errors import SganError
from sgan_jax.reports import report_at_budget, run_rows_at

SMALL = ("config.json", "data.json", "labeled_indices.npy", "val_indices.npy", "summary.json",
         "curves.png")


def copy_run(src: str, dst: str, budget: int) -> list[str]:
  """The run's small files from ``src`` into ``dst``; returns the names copied."""
  if not any(f.startswith("metrics_") for f in os.listdir(src)):
    raise SganError(f"{src} has no metrics_*.jsonl; is it a run folder?")
  os.makedirs(dst, exist_ok=True)
  names = [f for f in sorted(os.listdir(src))
           if f in SMALL or (f.startswith("metrics_") and f.endswith(".jsonl"))]
  for f in names:
    shutil.copy2(os.path.join(src, f), os.path.join(dst, f))
  grid = os.path.join(src, "samples", f"epoch_{budget:04d}.png")
  if os.path.exists(grid):
    names.append(f"samples_epoch_{budget:04d}.png")
    shutil.copy2(grid, os.path.join(dst, names[-1]))
  return names


def curate(table, src: str, dst: str, labels, seeds, budget: int,
           log=print) -> dict:
  """Copies every (label count, seed) run of ``src`` into ``dst`` and writes the table
  there at ``budget``; returns the table's results."""
  if os.path.realpath(src) == os.path.realpath(dst):
    raise SganError(f"{src} is both source and destination; curate into a new folder.")
  for n in labels:
    for s in seeds:
      sub = os.path.join(f"labels_{n}", f"seed_{s}")
      if not os.path.exists(os.path.join(src, sub, "config.json")):
        raise SganError(f"{os.path.join(src, sub)} holds no run; run the cell first or "
                        "leave its seed out of --seeds.")
      # Only finished runs are copied: a run still training (or one that decays its
      # learning rate) would land in the folder without a row in its table.
      _, missing = run_rows_at(table, os.path.join(src, sub), n, s, budget)
      if missing:
        raise SganError(f"{missing[0]}. Curate a run that has an evaluation at epoch "
                        f"{budget}, or leave its seed out of --seeds.")
  for n in labels:
    for s in seeds:
      sub = os.path.join(f"labels_{n}", f"seed_{s}")
      log(f"{sub}: {', '.join(copy_run(os.path.join(src, sub), os.path.join(dst, sub), budget))}")
  return report_at_budget(table, dst, seeds, budget, labels=labels, log=log, out=dst)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("src", help="the table's run root (holds labels_<n>/seed_<s>)")
  p.add_argument("dst", help="the results folder to write")
  p.add_argument("--table", required=True, help="table config, e.g. mnist_fm_table")
  p.add_argument("--labels", required=True, help="comma-separated label counts")
  p.add_argument("--seeds", required=True, help="comma-separated seeds")
  p.add_argument("--budget", type=int, required=True, help="the epoch the table is read at")
  a = p.parse_args(argv)
  try:
    labels = [int(n) for n in a.labels.split(",")]
    seeds = [int(s) for s in a.seeds.split(",")]
  except ValueError:
    p.error("--labels and --seeds take comma-separated integers, e.g. --labels 20 --seeds 1,2,3")
  try:
    table, _ = load_table(a.table)
    curate(table, a.src, a.dst, labels, seeds, a.budget)
  except (SganError, OSError, ValueError) as e:  # ValueError: a damaged config.json
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"wrote {a.dst}/table.md")
  return 0


if __name__ == "__main__":
  sys.exit(main())
