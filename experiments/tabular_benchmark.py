"""SGAN vs the same network trained supervised-only on scikit-learn's bundled tables.

  python experiments/tabular_benchmark.py --seeds 5 --fractions 0.05,0.1,0.2 --out results/tabular

Protocol, per dataset and seed: a stratified 30% of rows is the test set; of the other
70%, a fraction f of rows keeps its label (stratified for classification) and the rest
are unlabeled; 20% of the labeled rows are held out for validation, which selects the
reported epoch (the final model when a class has too few labels for a validation row).
breast_cancer and wine report test accuracy, diabetes test RMSE (target units).
"""

import argparse
import json
import os
import sys
import time

import numpy as np

from sgan_jax import evaluation, tabular
from sgan_jax.errors import SganError
from sgan_jax.table_text import mean_std
from sgan_jax.rundir import append_jsonl, read_jsonl

DATASETS = {"breast_cancer": "classification", "wine": "classification", "diabetes": "regression"}


def load(name):
  from sklearn import datasets
  d = getattr(datasets, f"load_{name}")()
  return d.data, d.target, list(d.feature_names)


def one_run(name, frac, seed, epochs):
  from sklearn.model_selection import train_test_split
  x, y, names = load(name)
  task = DATASETS[name]
  idx = np.arange(len(y))
  strat = y if task == "classification" else None
  pool, test = train_test_split(idx, test_size=0.3, random_state=seed, stratify=strat)
  n_lab = max(int(round(frac * len(pool))), 3 if task == "regression" else len(np.unique(y)))
  if task == "classification":
    lab, _ = train_test_split(pool, train_size=n_lab, random_state=seed, stratify=y[pool])
  else:
    lab = np.random.RandomState(seed).choice(pool, n_lab, replace=False)
  keep = np.zeros(len(y), bool)
  keep[lab] = True
  keep[test] = True
  cols = {n: list(x[:, j]) for j, n in enumerate(names)}
  cols["target"] = [repr(float(v)) if task == "regression" else str(int(v)) if k else ""
                    for v, k in zip(y, keep)]
  cols["target"] = [c if k else "" for c, k in zip(cols["target"], keep)]
  splits, pre = tabular.prepare(cols, "target", task=task, val_fraction=0.2, seed=seed,
                                test_rows=test)
  cfg = tabular.default_config(task, seed=seed, data_seed=seed, epochs=epochs)
  res = tabular.fit(splits, pre, cfg, None, log=lambda s: None)
  out = {"dataset": name, "task": task, "label_fraction": frac, "seed": seed,
         "num_labeled": int(len(splits.y_lab) + len(splits.y_val)), "num_train_rows": int(len(splits.x_unl)),
         "num_test": int(len(splits.y_test))}
  for mode, s in res.items():
    err = evaluation.headline_err(s)
    out[mode] = (1 - err) if task == "classification" else err
    out[mode + "_selection"] = "validation" if "selected_test_err" in s else "final"
  return out


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--datasets", default=",".join(DATASETS))
  p.add_argument("--fractions", default="0.05,0.1,0.2")
  p.add_argument("--seeds", type=int, default=5)
  p.add_argument("--epochs", type=int, default=100)
  p.add_argument("--out", default="results/tabular")
  a = p.parse_args(argv)
  names = a.datasets.split(",")
  if not set(names) <= set(DATASETS):
    p.error(f"--datasets takes some of {','.join(DATASETS)}; got {a.datasets!r}")
  try:
    fracs = [float(f) for f in a.fractions.split(",")]
  except ValueError:
    fracs = []
  if not fracs or not all(0 < f < 1 for f in fracs) or a.seeds < 1 or a.epochs < 1:
    p.error(f"--fractions takes label fractions in (0, 1) such as 0.05,0.1 (got {a.fractions!r}); "
            "--seeds and --epochs must be >= 1")
  os.makedirs(a.out, exist_ok=True)
  rows_path = os.path.join(a.out, "runs.jsonl")
  done = set()
  if os.path.exists(rows_path):  # resume: skip finished (dataset, fraction, seed)
    try:
      done = {(r["dataset"], r["label_fraction"], r["seed"]) for r in read_jsonl(rows_path)}
    except SganError as e:
      p.error(str(e))
    except KeyError as e:
      p.error(f"{rows_path}: a row lacks the field {e}; is it a tabular_benchmark runs file? "
              "Point --out at another folder.")
  t0 = time.time()
  for name in names:
    for frac in fracs:
      for seed in range(a.seeds):
        if (name, frac, seed) in done:
          continue
        r = one_run(name, frac, seed, a.epochs)
        r["wall_s"] = round(time.time() - t0, 1)
        append_jsonl(rows_path, [r])
        print(json.dumps(r), flush=True)
  write_table(rows_path, a.out)
  return 0


def write_table(rows_path, out):
  rows = read_jsonl(rows_path)
  groups = {}
  for r in rows:
    groups.setdefault((r["dataset"], r["label_fraction"]), []).append(r)
  lines = ["| dataset | metric | labeled fraction | labeled rows | seeds | SGAN | supervised-only | SGAN - baseline |",
           "|---|---|---|---|---|---|---|---|"]
  summary = []
  for (name, frac), rs in sorted(groups.items()):
    reg = rs[0]["task"] == "regression"
    sg = np.array([r["sgan"] for r in rs])
    sup = np.array([r["supervised"] for r in rs])
    scale = 1.0 if reg else 100.0
    fmt = lambda v, signed=False: mean_std(scale * v.mean(), scale * v.std(), len(v), signed=signed)
    lines.append(f"| {name} | {'test RMSE (lower is better)' if reg else 'test accuracy %'} | {frac:g} | "
                 f"{int(np.mean([r['num_labeled'] for r in rs]))} | {len(rs)} | {fmt(sg)} | {fmt(sup)} | "
                 f"{fmt(sg - sup, signed=True)} |")
    summary.append({"dataset": name, "fraction": frac, "sgan": sg.tolist(), "supervised": sup.tolist()})
  md = "\n".join(lines)
  with open(os.path.join(out, "table.md"), "w") as f:
    f.write(md + "\n")
  print(md)
  try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
  except ImportError:
    print("(matplotlib not installed: no plot; pip install matplotlib)")
    return
  names = sorted({s["dataset"] for s in summary})
  fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4))
  for ax, name in zip(np.atleast_1d(axes), names):
    ss = sorted([s for s in summary if s["dataset"] == name], key=lambda s: s["fraction"])
    fr = [s["fraction"] for s in ss]
    reg = groups[(name, fr[0])][0]["task"] == "regression"
    scale = 1.0 if reg else 100.0
    for key, label in (("sgan", "SGAN"), ("supervised", "supervised-only")):
      m = [scale * np.mean(s[key]) for s in ss]
      e = [scale * np.std(s[key]) for s in ss]
      ax.errorbar(fr, m, yerr=e, marker="o", capsize=3, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("labeled fraction of training rows")
    ax.set_ylabel("test RMSE" if reg else "test accuracy (%)")
    ax.set_title(name)
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(os.path.join(out, "tabular.png"), dpi=110)
  print(f"wrote {os.path.join(out, 'tabular.png')}")


if __name__ == "__main__":
  sys.exit(main())
