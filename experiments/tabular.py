"""Semi-supervised GAN on your own table: rows with an empty target are unlabeled.

  python experiments/tabular.py fit --data patients.csv --target outcome --out runs/patients
  python experiments/tabular.py predict --model runs/patients --data new.csv --out preds.csv

`fit` trains the SGAN and the same discriminator on the labeled rows alone, prints
their validation/test accuracy (classification) or RMSE (regression), and saves a model
folder that `predict` uses on new rows (same columns; the target column may be absent).
"""

import argparse
import csv
import sys

from sgan_jax import tabular
from sgan_jax.config import from_dict, parse_override
from sgan_jax.errors import SganError


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = p.add_subparsers(dest="cmd", required=True)
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
  q = sub.add_parser("predict", help="predict the target for new rows")
  q.add_argument("--model", required=True)
  q.add_argument("--data", required=True)
  q.add_argument("--out", required=True)
  q.add_argument("--mode", default="sgan", choices=["sgan", "supervised"])
  a = p.parse_args(argv)
  try:
    if a.cmd == "fit":
      splits, pre = tabular.load_table(
          a.data, a.target, task=a.task,
          categorical=[c for c in a.categorical.split(",") if c],
          val_fraction=a.val_fraction, test_fraction=a.test_fraction, seed=a.seed)
      print(f"[data] task={pre.task}; {len(splits.y_lab)} labeled training rows, "
            f"{len(splits.x_unl)} training rows in all, {len(splits.y_val)} validation, "
            f"{len(splits.y_test)} test; {pre.dim} encoded features"
            + (f"; classes {pre.classes}" if pre.classes else ""))
      cfg = tabular.default_config(pre.task, seed=a.seed, data_seed=a.seed)
      cfg = from_dict({**cfg.to_dict(), **dict(parse_override(s) for s in a.set)})
      res = tabular.fit(splits, pre, cfg, a.out)
      name = "RMSE" if pre.task == "regression" else "accuracy"
      conv = (lambda e: f"{e:.4g}") if pre.task == "regression" else (lambda e: f"{100 * (1 - e):.2f}%")
      print()
      for mode, label in (("sgan", "SGAN"), ("supervised", "supervised-only")):
        s = res[mode]
        print(f"{label:>16}: validation {name} {conv(s['best_val_err'])}, test {name} "
              f"{conv(s['selected_test_err'])} (epoch {s['best_val_epoch']} selected on validation)")
      print(f"\nmodel saved in {a.out}; predict with: python experiments/tabular.py predict "
            f"--model {a.out} --data NEW.csv --out predictions.csv")
    else:
      predict, pre = tabular.load_predictor(a.model, a.mode)
      header, cols = tabular.read_csv(a.data)
      preds = predict(cols)
      n = len(preds)
      with open(a.out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header + ["prediction"])
        for i in range(n):
          w.writerow([cols[h][i] for h in header] + [preds[i]])
      print(f"wrote {n} predictions of {pre.target!r} to {a.out}")
  except SganError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
