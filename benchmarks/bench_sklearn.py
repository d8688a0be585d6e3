"""SGANClassifier / SGANRegressor against scikit-learn's semi-supervised learners.

  python benchmarks/bench_sklearn.py --datasets digits,breast_cancer,wine --fractions 0.05,0.1,0.2
  python benchmarks/bench_sklearn.py --datasets mnist --labels 100,1000 --mnist ../shared/datasets/mnist.npz
  python benchmarks/bench_sklearn.py --datasets diabetes --fractions 0.05,0.1,0.2
  python benchmarks/bench_sklearn.py --datasets friedman1 --labels 100,1000
  python benchmarks/bench_sklearn.py --table          # results/sklearn/table.md from runs.jsonl

Protocol, per dataset, label setting and seed (seeds 0, 1, 2 by default):

* test rows: a stratified 30% of the rows (seeded), MNIST's own 10,000 test images;
  the other rows are the training pool, every method sees all of them;
* labeled rows: a class-balanced subset of the pool (``data.select_labeled``, the
  library's rule: ``--fractions`` per class, ``--labels`` in total; regression: a seeded
  random subset); the rest of the pool has ``y = -1`` (``NaN`` for regression);
* every method gets the same ``fit(X_pool, y_pool)`` and is scored on the test rows. The
  SGAN estimators select their epoch on a held-out 15% of those labeled rows (their
  ``validation_fraction``); no method sees a test label;
* features: the raw columns for the bundled tables (LabelSpreading and logistic regression
  behind a ``StandardScaler``, the SGAN standardises inside); MNIST pixels divided by 255
  for every method (the SGAN with ``standardize=False``: a per-pixel standardisation blows
  up pixels that are almost always 0).

Classifiers: SGANClassifier, the same network on the labeled rows (``supervised_only``),
LabelSpreading (k-NN graph, 7 neighbours: the RBF default of gamma=20 gives all-zero
affinities on standardised tables), SelfTrainingClassifier over LogisticRegression and over
HistGradientBoostingClassifier, and HistGradientBoostingClassifier on the labeled rows.
Regressors: SGANRegressor, its supervised-only network, HistGradientBoostingRegressor on
the labeled rows. Every fit is timed (the first SGAN fit of a shape includes compilation).
On a shared machine, run with ``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1``: scikit-learn's
two-thread OpenMP/BLAS regions wait at every barrier for a core that other processes hold
(gradient boosting on 60 rows took minutes); XLA's own thread pool is unaffected.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from sgan_jax import data  # noqa: E402
from sgan_jax.machine import host_cpu  # noqa: E402
from sgan_jax.errors import SganError  # noqa: E402
from sgan_jax.table_text import mean_std  # noqa: E402
from sgan_jax.rundir import append_jsonl, read_jsonl  # noqa: E402

CLASSIFICATION = ("digits", "breast_cancer", "wine", "mnist")
REGRESSION = ("diabetes", "friedman1")
CLASSIFIERS = ("sgan", "sgan_supervised_only", "label_spreading", "self_training_logreg",
               "self_training_hgb", "hgb_labeled_only")
REGRESSORS = ("sgan", "sgan_supervised_only", "hgb_labeled_only")
# Run on request (--methods), to measure two defaults: the SGAN on the raw columns
# (standardize=False), and the SGAN with no validation split (every labeled row trains, the
# final epoch is kept).
# "sgan_reference_mlp": MNIST's reference pair through the estimator (Salimans et al.'s
# 1000-500-250-250-250 discriminator and 500-500 generator, their noise, batch 100, 600
# iterations an epoch), with the cheaper hash noise and a 1e-3 average (docs/performance.md).
EXTRA = ("sgan_unstandardized", "sgan_no_validation", "sgan_reference_mlp")
REFERENCE_MLP = dict(hidden_layer_sizes=(1000, 500, 250, 250, 250), generator_layer_sizes=(500, 500),
                     latent_dim=100, input_noise=0.3, hidden_noise=0.5, batch_size=100,
                     iters_per_epoch=600, standardize=False,
                     config_overrides={"noise_rng": "hash", "init_examples": 500})
# MNIST's unlabeled set is 60,000 rows: an epoch of 200 iterations (batch 64) and 100 epochs
# see every row ~21 times; the tables train the defaults (100 epochs x 20 iterations).
SGAN_PARAMS = {"mnist": dict(iters_per_epoch=200, standardize=False)}


def load(name: str, mnist_path: str):
  """``(x (N, D) float, y (N,), test_mask (N,) bool or None)``; None: draw a 30% test split."""
  if name == "mnist":
    with np.load(mnist_path, allow_pickle=False) as f:
      x = np.concatenate([f["x_train"], f["x_test"]]).reshape(70000, -1).astype(np.float32) / 255
      y = np.concatenate([f["y_train"], f["y_test"]]).astype(np.int64)
    return x, y, np.arange(70000) >= 60000
  if name == "friedman1":
    from sklearn.datasets import make_friedman1
    # Simulated: y = 10 sin(pi x0 x1) + 20 (x2 - 0.5)^2 + 10 x3 + 5 x4 + N(0, 1), five of the
    # ten uniform features irrelevant (Friedman 1991). One fixed draw of 10,000 rows.
    x, y = make_friedman1(n_samples=10000, n_features=10, noise=1.0, random_state=0)
    return x, y, None
  from sklearn import datasets
  x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
  return x.astype(np.float64), y, None


def split(name: str, x, y, test_mask, setting: tuple, seed: int):
  """``(pool rows, test rows, y_pool with -1/NaN on unlabeled rows)``."""
  from sklearn.model_selection import train_test_split
  task = "regression" if name in REGRESSION else "classification"
  idx = np.arange(len(y))
  if test_mask is None:
    pool, test = train_test_split(idx, test_size=0.3, random_state=seed,
                                  stratify=y if task == "classification" else None)
  else:
    pool, test = idx[~test_mask], idx[test_mask]
  kind, amount = setting
  y_pool = y[pool]
  if task == "classification":
    k = int(y.max()) + 1
    lab = data.select_labeled(y_pool, k, rate=amount if kind == "fraction" else None,
                              total=amount if kind == "labels" else None, seed=seed)
    y_out = np.full(len(pool), -1, np.int64)
  else:
    n = int(round(amount * len(pool))) if kind == "fraction" else int(amount)
    lab = np.sort(np.random.RandomState(seed).choice(len(pool), n, replace=False))
    y_out = np.full(len(pool), np.nan)
  y_out[lab] = y_pool[lab]
  return pool, test, y_out


def make_method(method: str, name: str, seed: int, epochs: int, verbose: int = 0):
  from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
  from sklearn.linear_model import LogisticRegression
  from sklearn.pipeline import make_pipeline
  from sklearn.preprocessing import StandardScaler
  from sklearn.semi_supervised import LabelSpreading, SelfTrainingClassifier

  from sgan_jax import SGANClassifier, SGANRegressor
  scaled = (lambda est: est) if name == "mnist" else (lambda est: make_pipeline(StandardScaler(), est))
  if method.startswith("sgan"):
    cls = SGANRegressor if name in REGRESSION else SGANClassifier
    variant = {"sgan_unstandardized": {"standardize": False},
               "sgan_no_validation": {"validation_fraction": 0.0},
               "sgan_reference_mlp": REFERENCE_MLP}.get(method, {})
    params = {**SGAN_PARAMS.get(name, {}), **variant}
    return cls(random_state=seed, max_epochs=epochs, supervised_only=method == "sgan_supervised_only",
               verbose=verbose, **params)
  if method == "label_spreading":
    return scaled(LabelSpreading(kernel="knn", n_neighbors=7))
  if method == "self_training_logreg":
    return scaled(SelfTrainingClassifier(LogisticRegression(max_iter=1000)))
  if method == "self_training_hgb":
    return SelfTrainingClassifier(HistGradientBoostingClassifier(random_state=seed))
  if method == "hgb_labeled_only":
    return (HistGradientBoostingRegressor if name in REGRESSION else
            HistGradientBoostingClassifier)(random_state=seed)
  raise ValueError(method)


def one_run(name, x, y, test_mask, setting, seed, method, epochs, verbose=0) -> dict:
  pool, test, y_pool = split(name, x, y, test_mask, setting, seed)
  labeled = ~np.isnan(y_pool) if name in REGRESSION else y_pool != -1
  est = make_method(method, name, seed, epochs, verbose)
  fit_x, fit_y = (x[pool][labeled], y_pool[labeled]) if method == "hgb_labeled_only" else (x[pool], y_pool)
  t0 = time.time()
  est.fit(fit_x, fit_y)
  fit_s = time.time() - t0
  pred = est.predict(x[test])
  out = {"dataset": name, "setting": list(setting), "seed": seed, "method": method,
         "num_labeled": int(labeled.sum()), "num_pool": len(pool), "num_test": len(test),
         "fit_s": round(fit_s, 2)}
  if name in REGRESSION:
    out["test_rmse"] = float(np.sqrt(np.mean((pred - y[test]) ** 2)))
  else:
    out["test_error"] = float(np.mean(pred != y[test]))
  if method.startswith("sgan"):
    out["epochs"], out["selected_epoch"] = est.config_.epochs, int(est.best_epoch_)
  return out


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--datasets", default="digits,breast_cancer,wine")
  p.add_argument("--fractions", default="", help="label fractions of the pool, e.g. 0.05,0.1")
  p.add_argument("--labels", default="", help="label counts, e.g. 100,1000")
  p.add_argument("--seeds", default="0,1,2")
  p.add_argument("--methods", default="", help="a subset of the methods (default: all)")
  p.add_argument("--epochs", type=int, default=100, help="SGAN max_epochs")
  p.add_argument("--mnist", default=os.path.join(ROOT, "..", "shared", "datasets", "mnist.npz"))
  p.add_argument("--out", default=os.path.join(ROOT, "results", "sklearn"))
  p.add_argument("--table", action="store_true", help="only write table.md from runs.jsonl")
  p.add_argument("--verbose", type=int, default=0, help="the SGAN estimators' verbose (2: every epoch)")
  a = p.parse_args(argv)
  os.makedirs(a.out, exist_ok=True)
  rows_path = os.path.join(a.out, "runs.jsonl")
  if a.table:
    try:
      write_table(rows_path, os.path.join(a.out, "table.md"))
    except (SganError, OSError) as e:
      p.error(str(e))
    except KeyError as e:
      p.error(f"{rows_path}: a row lacks the field {e}; is it a bench_sklearn runs file?")
    return 0
  names = a.datasets.split(",")
  unknown = set(names) - set(CLASSIFICATION + REGRESSION)
  if unknown:
    p.error(f"unknown datasets {sorted(unknown)}; choose from {CLASSIFICATION + REGRESSION}")
  settings = [("fraction", float(f)) for f in a.fractions.split(",") if f] + \
             [("labels", int(n)) for n in a.labels.split(",") if n]
  if not settings:
    p.error("give --fractions and/or --labels")
  seeds = [int(s) for s in a.seeds.split(",")]
  done = set()
  if os.path.exists(rows_path):  # resumable: finished runs are skipped
    try:
      done = {(r["dataset"], tuple(r["setting"]), r["seed"], r["method"])
              for r in read_jsonl(rows_path)}
    except SganError as e:
      p.error(str(e))
    except KeyError as e:
      p.error(f"{rows_path}: a row lacks the field {e}; is it a bench_sklearn runs file? "
              "Point --out at another folder.")
  machine = (f"{host_cpu()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
  for name in names:
    x, y, test_mask = load(name, a.mnist)
    methods = REGRESSORS if name in REGRESSION else CLASSIFIERS
    if a.methods:
      methods = [m for m in methods + EXTRA if m in a.methods.split(",")]
    for setting in settings:
      for seed in seeds:
        for method in methods:
          if (name, setting, seed, method) in done:
            continue
          r = one_run(name, x, y, test_mask, setting, seed, method, a.epochs, a.verbose)
          r["machine"] = machine
          append_jsonl(rows_path, [r])
          print(json.dumps(r), flush=True)
  write_table(rows_path, os.path.join(a.out, "table.md"))
  return 0


def write_table(rows_path: str, out_path: str) -> None:
  """Mean ± std over seeds of each method's test error (%) or RMSE, and its median fit time."""
  rows = read_jsonl(rows_path)
  cells = {}
  for r in rows:
    cells.setdefault((r["dataset"], tuple(r["setting"])), {}).setdefault(r["method"], []).append(r)
  order = {n: i for i, n in enumerate(CLASSIFICATION + REGRESSION)}
  lines = []
  present = {r["method"] for r in rows}
  for task, methods, metric in (("classification", CLASSIFIERS, "test error %"),
                                ("regression", REGRESSORS, "test RMSE")):
    methods = methods + tuple(m for m in EXTRA if m in present)
    keys = sorted((k for k in cells if (k[0] in REGRESSION) == (task == "regression")),
                  key=lambda k: (order[k[0]], k[1][0], k[1][1]))
    if not keys:
      continue
    lines += [f"| dataset | labels | {' | '.join(methods)} |",
              "|---|---|" + "---|" * len(methods)]
    for key in keys:
      cell, labeled = cells[key], None
      texts = []
      for m in methods:
        rs = cell.get(m, [])
        if not rs:
          texts.append("–")
          continue
        labeled = rs[0]["num_labeled"]
        v = np.array([r["test_rmse"] if task == "regression" else 100 * r["test_error"] for r in rs])
        secs = np.median([r["fit_s"] for r in rs])  # a first fit's compilation skews the mean
        texts.append(f"{mean_std(v.mean(), v.std(), len(v))} ({secs:.0f} s, {len(rs)} seeds)")
      kind, amount = key[1]
      label_txt = f"{labeled} ({amount:g} of pool)" if kind == "fraction" else f"{labeled}"
      lines.append(f"| {key[0]} | {label_txt} | " + " | ".join(texts) + " |")
    lines.append("")
    lines.append(f"({metric}: mean ± std over seeds, lower is better; in brackets the median "
                 "fit wall time and the number of seeds)")
    lines.append("")
  with open(out_path, "w") as f:
    f.write("\n".join(lines))
  print("\n".join(lines))


if __name__ == "__main__":
  sys.exit(main())
