"""Reproduce a paper table: every label count x seed, resumable, with the published column.

  python experiments/run_table.py mnist_fm_table --seeds 1,2,3 --epochs 30 \
      --set dataset=../shared/datasets/mnist.npz
  python experiments/run_table.py mnist_odena_table --seeds 1,2,3 --epochs 10 \
      --set dataset=../shared/datasets/mnist.npz --labels 100,1000

Writes <workdir>/{results.csv,results.json,table.md,error_vs_labels.png} and one run
folder per cell (labels_<n>/seed_<s>/ with metrics, checkpoints, curves.png and sample
grids). Rerun the same command after an interruption to resume; a larger --epochs
continues the finished runs. ``--report_budget N`` trains nothing and writes the table as
the runs stood after N epochs (runs of different lengths compared at one budget) to
<workdir>/budget_<N>/. ``--merge N=DIR`` (repeated) trains nothing and writes one table from
cells reported in different folders, each cell N from DIR's results.json at its own
budget, to --workdir:

  python experiments/run_table.py mnist_fm_table --workdir results/tables/mnist_fm_largest \
      --merge 100=results/tables/mnist_fm_100labels_80ep --merge 200=results/tables/mnist_fm_200labels_300ep
"""

import argparse
import importlib.util
import os
import re
import sys

from sgan_jax.config import from_dict, parse_int_list, parse_override
from sgan_jax.errors import SganError
from sgan_jax.tables import CELL_FIELDS, merge_results, report_at_budget, run_table
from sgan_jax.train import Preempted

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


def load_table(name: str):
  path = os.path.join(CONFIG_DIR, name + ".py")
  tables = sorted(f[:-3] for f in os.listdir(CONFIG_DIR)
                  if f.endswith(".py") and re.search(r"^TABLE\b", open(os.path.join(CONFIG_DIR, f)).read(),
                                                     re.M))
  if not os.path.exists(path):
    raise SganError(f"No table {name!r}; choose one of {tables}.")
  spec = importlib.util.spec_from_file_location("_sgan_table", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  if not hasattr(mod, "TABLE"):
    raise SganError(f"{path} is a config without a TABLE; tables: {tables}.")
  return mod.TABLE, mod.get_config()


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("table", help="table config name in experiments/configs (e.g. mnist_fm_table)")
  p.add_argument("--seeds", default="1,2,3", help="comma-separated seeds (each its own labeled subset)")
  p.add_argument("--epochs", type=int, default=None, help="epoch budget per run (default: the config's)")
  p.add_argument("--labels", default=None, help="comma-separated subset of the table's label counts")
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
  p.add_argument("--workdir", default=None, help="output folder (default: runs/tables/<table>)")
  p.add_argument("--report_budget", type=int, default=None, metavar="N",
                 help="train nothing: write the table as the existing runs stood after N epochs "
                      "(validation-selected within them) to <workdir>/budget_<N>/")
  p.add_argument("--merge", action="append", default=[], metavar="N=DIR",
                 help="train nothing: take cell N from DIR/results.json (repeat per cell) and "
                      "write the merged table to --workdir")
  a = p.parse_args(argv)
  try:
    table, cfg = load_table(a.table)
    overrides = dict(parse_override(s) for s in a.set)
    fixed = [k for k in overrides if k in CELL_FIELDS]
    if fixed:
      raise SganError(f"--set {', '.join(fixed)}: each table cell sets these from its label count "
                      "and seed (data_seed = seed: each seed its own labeled subset), so a --set "
                      "would be ignored. Choose them with --seeds and --labels.")
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
          raise SganError(f"--merge {m!r}: expected N=DIR, e.g. 200=results/tables/mnist_fm_200labels_300ep.")
        parts.append((int(n), d))
      merge_results(table, parts, root)
    elif a.report_budget is not None:
      report_at_budget(table, root, seeds, a.report_budget, labels=labels)
      root = os.path.join(root, f"budget_{a.report_budget}")
    else:
      run_table(table, cfg, seeds, root, a.epochs, labels=labels)
  except SganError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  except Preempted as e:
    print(f"{e}. Rerun the same command to resume.", file=sys.stderr)
    return 75
  with open(os.path.join(root, "table.md")) as f:
    print("\n" + f.read())
  return 0


if __name__ == "__main__":
  sys.exit(main())
