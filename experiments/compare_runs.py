"""Compare groups of runs (objectives, subsets) at one epoch budget: validation-selected
test error per seed.

  python experiments/compare_runs.py --budget 10 --out results/toolbox/mnist100_10ep.md \\
      "FM (reference)=runs/tables/mnist_fm/labels_100" \\
      "FM + entropy + pull-away=runs/tables/mnist_badgan/labels_100" \\
      "Wasserstein + GP=runs/tables/mnist_wgan/labels_100"

Each NAME=DIR holds seed_<s>/ run folders. A run longer than the budget counts as the
run it would have been with that budget (its first ``budget`` epochs, selection on
validation within them; a run without a validation split, ``val_size=0``, reports the
budget epoch's model): exact here because these configs use a constant learning rate;
runs with a decaying schedule are refused. Beside it: the test error at the budget's last
epoch and its mean over the budget's last ``--window`` epochs (less noisy than one epoch),
each mean ± std over seeds, e.g. one labeled subset for every seed against each seed its
own (``sgan-jax table ... --data_seed``):

  python experiments/compare_runs.py --budget 300 --window 100 \\
      "each seed its own subset=results/tables/mnist_fm_200labels_300ep/labels_200" \\
      "one subset=results/tables/mnist_fm_200_onesubset/labels_200"
"""

import argparse
import glob
import json
import os
import sys

import numpy as np

from sgan_jax.config import from_stored
from sgan_jax.errors import SganError
from sgan_jax.reports import has_validation, reported_within, train_seconds_to
from sgan_jax.table_text import mean_std
from sgan_jax.rundir import read_jsonl


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("groups", nargs="+", metavar="NAME=DIR")
  p.add_argument("--budget", type=int, required=True, help="epochs")
  p.add_argument("--window", type=int, default=None,
                 help="epochs at the budget's end whose test errors are averaged "
                      "(default: 10, or the budget if shorter)")
  p.add_argument("--out", default=None, help="also write the markdown (and a .json beside it)")
  a = p.parse_args(argv)
  a.window = min(10, a.budget) if a.window is None else a.window
  if not 1 <= a.window <= a.budget:
    print(f"error: --window must be in [1, --budget]; got {a.window}", file=sys.stderr)
    return 2
  lines = [f"Test error % at a {a.budget}-epoch budget (model selected on the validation split "
           "within those epochs, reported on test; a run without a validation split reports "
           f"epoch {a.budget}'s model), mean ± std over seeds; beside it the last epoch's and "
           f"the mean over epochs {a.budget - a.window + 1}-{a.budget}.", "",
           "| group | test error %, selected | seeds | per seed (selected epoch) | "
           f"at epoch {a.budget} | per seed | mean of the last {a.window} epochs | per seed | "
           "train min per run |", "|---|---|---|---|---|---|---|---|---|"]
  out = {}
  for g in a.groups:
    name, d = g.split("=", 1)
    rows = []
    seed_dirs = sorted(glob.glob(os.path.join(d, "seed_*")))
    if not seed_dirs:
      print(f"error: {d} has no seed_<s> run folders (pass a table's labels_<n> folder)",
            file=sys.stderr)
      return 2
    for sd in seed_dirs:
      try:
        cfg = from_stored(json.load(open(os.path.join(sd, "config.json"))))
        recs = read_jsonl(os.path.join(sd, "metrics_sgan.jsonl"))
        validated = has_validation(sd, cfg)
      except (OSError, ValueError, SganError) as e:
        print(f"[skip] {sd}: unreadable run folder ({e})", file=sys.stderr)
        continue
      if cfg.lr_decay_epochs:
        print(f"error: {sd} decays its learning rate (lr_decay_epochs={cfg.lr_decay_epochs}); "
              "a shorter budget is not a prefix of it", file=sys.stderr)
        return 2
      sel = reported_within(recs, a.budget, validated)
      if sel is None:
        print(f"[skip] {sd}: no evaluation at epoch {a.budget} (not reached, or eval_every "
              "skips it)", file=sys.stderr)
        continue
      wall = train_seconds_to(recs, a.budget)
      by_epoch = {r["epoch"]: r["test_err"] for r in recs}
      tail = [t for e, t in by_epoch.items() if a.budget - a.window < e <= a.budget]
      rows.append({"seed": int(sd.rsplit("_", 1)[1]), "epoch": sel["epoch"],
                   "val_err": sel.get("val_err"), "test_err": sel["test_err"], "wall_s": wall,
                   "last_test_err": by_epoch[a.budget],
                   "window_test_err": float(np.mean(tail)), "window_epochs": len(tail)})
    if not rows:
      continue
    e, last, win = (np.array([r[k] for r in rows]) * 100
                    for k in ("test_err", "last_test_err", "window_test_err"))
    per = ", ".join(f"s{r['seed']}: {100 * r['test_err']:.2f} ({r['epoch']})" for r in rows)
    per_last, per_win = (", ".join(f"s{r['seed']}: {100 * r[k]:.2f}" for r in rows)
                         for k in ("last_test_err", "window_test_err"))
    walls = "/".join(f"{r['wall_s'] / 60:.0f}" for r in rows)
    ms = lambda v: mean_std(v.mean(), v.std(), len(v))
    lines.append(f"| {name} | {ms(e)} | {len(rows)} | {per} | "
                 f"{ms(last)} | {per_last} | {ms(win)} | {per_win} | {walls} |")
    out[name] = {"dir": d, "budget": a.budget, "window": a.window, "runs": rows,
                 "test_err_mean": float(e.mean() / 100), "test_err_std": float(e.std() / 100),
                 "last_test_err_mean": float(last.mean() / 100),
                 "last_test_err_std": float(last.std() / 100),
                 "window_test_err_mean": float(win.mean() / 100),
                 "window_test_err_std": float(win.std() / 100)}
  text = "\n".join(lines) + "\n"
  print(text)
  if a.out:
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w") as f:
      f.write(text)
    with open(os.path.splitext(a.out)[0] + ".json", "w") as f:
      json.dump(out, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
