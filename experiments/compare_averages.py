"""The two Polyak averages of runs trained with ``second_avg_rate``, side by side.

  python experiments/compare_averages.py runs/tables/mnist_fm/labels_200/seed_{1,2,3} \
      --out results/tables/mnist_fm_200labels_300ep/averages.md

Per run: test error at the last epoch for the first average (``avg_rate``), the second
(``second_avg_rate``) and the live weights, and each average's test error at its own
validation-selected epoch (the first epoch with the lowest validation error, as training
selects; the second average only among the epochs where it was evaluated -- it may have
been turned on at a resume, which the ``from epoch`` column shows).
"""

import argparse
import json
import os
import sys
from typing import Optional

import numpy as np

from sgan_jax.errors import SganError
from sgan_jax.tables import selected_within


def compare(run_dir: str, mode: str = "sgan", budget: Optional[int] = None) -> dict:
  """One run's row; with ``budget``, as the run stood after that many epochs (a run still
  training, or continued past the table's budget, is read only up to it)."""
  path = os.path.join(run_dir, f"metrics_{mode}.jsonl")
  try:
    with open(path) as f:
      recs = [json.loads(line) for line in f if line.strip()]
    with open(os.path.join(run_dir, "config.json")) as f:
      cfg = json.load(f)
  except OSError as e:
    raise SganError(f"{run_dir}: not a finished run folder ({e}).") from None
  if budget is not None:
    if not any(r["epoch"] == budget for r in recs):
      raise SganError(f"{path} has no evaluation at epoch {budget} (it reached epoch "
                      f"{recs[-1]['epoch'] if recs else 0}); pick a budget every run reached.")
    recs = [r for r in recs if r["epoch"] <= budget]
  second = [{"epoch": r["epoch"], "val_err": r["val_err_avg2"], "test_err": r["test_err_avg2"]}
            for r in recs if r.get("val_err_avg2") is not None]
  if not second:
    raise SganError(f"{path} has no second average with a validation error; train with "
                    "--set second_avg_rate=R and a validation split (val_size > 0).")
  last = recs[-1]
  if second[-1]["epoch"] != last["epoch"]:
    raise SganError(f"{path}: the second average stops at epoch {second[-1]['epoch']} of "
                    f"{last['epoch']} (turned off at a resume); nothing to compare at the end.")
  first_sel = selected_within(recs, last["epoch"])
  second_sel = selected_within(second, second[-1]["epoch"])
  return {"run": run_dir, "epoch": last["epoch"], "avg_rate": cfg["avg_rate"],
          "second_avg_rate": cfg["second_avg_rate"], "second_from": second[0]["epoch"],
          "final": last["test_err"], "final_avg2": second[-1]["test_err"],
          "final_live": last.get("test_err_live"),
          "selected": first_sel["test_err"], "selected_epoch": first_sel["epoch"],
          "selected_avg2": second_sel["test_err"], "selected_avg2_epoch": second_sel["epoch"]}


def markdown(rows: list[dict], num_test: int = 10000) -> str:
  n = lambda e: f"{e * num_test:.0f}"
  r0 = rows[0]
  lines = [f"Test errors of {num_test}: first average (rate {r0['avg_rate']:g}) vs second "
           f"(rate {r0['second_avg_rate']:g}) vs live weights.", "",
           "| run | epochs | second average from epoch | last epoch: first / second / live | "
           "validation-selected: first (epoch) | second (epoch) |", "|---|---|---|---|---|---|"]
  for r in rows:
    live = "-" if r["final_live"] is None else n(r["final_live"])
    lines.append(f"| {r['run']} | {r['epoch']} | {r['second_from']} | {n(r['final'])} / "
                 f"{n(r['final_avg2'])} / {live} | {n(r['selected'])} ({r['selected_epoch']}) | "
                 f"{n(r['selected_avg2'])} ({r['selected_avg2_epoch']}) |")

  def ms(key: str) -> str:
    v = np.array([r[key] for r in rows]) * num_test
    return f"{v.mean():.0f} ± {v.std():.0f}"

  lines += ["", f"Over the {len(rows)} runs (mean ± std):", "",
            "| average | last epoch | validation-selected |", "|---|---|---|",
            f"| first (rate {r0['avg_rate']:g}) | {ms('final')} | {ms('selected')} |",
            f"| second (rate {r0['second_avg_rate']:g}) | {ms('final_avg2')} | {ms('selected_avg2')} |"]
  return "\n".join(lines) + "\n"


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("runs", nargs="+", help="run folders (with metrics_<mode>.jsonl and config.json)")
  p.add_argument("--mode", default="sgan")
  p.add_argument("--num_test", type=int, default=10000, help="test-set size (errors are counted)")
  p.add_argument("--out", default=None, help="also write the markdown here")
  p.add_argument("--budget", type=int, default=None,
                 help="read every run as it stood after this many epochs (default: its last)")
  a = p.parse_args(argv)
  try:
    md = markdown([compare(r, a.mode, a.budget) for r in a.runs], a.num_test)
  except SganError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(md)
  if a.out:
    with open(a.out, "w") as f:
      f.write(md)
  return 0


if __name__ == "__main__":
  sys.exit(main())
