"""Tabular data: feature rows with a target column, some targets empty (unlabeled).

``load_table`` reads a CSV (or ``.npz`` with ``x (N, D)`` and ``y (N,)``, NaN = unlabeled)
and returns :class:`~sgan_jax.data.Splits` for the same training loop the images use,
plus a fitted :class:`~sgan_jax.columns.Preprocessor`:

* rows with an empty target are unlabeled; labeled rows are split into a labeled
  training part and held-out validation and test parts (stratified for classification);
* numeric columns are standardised and categorical columns one-hot encoded with
  statistics/categories from the training split only (unlabeled + labeled training rows);
* regression targets are standardised for training (``y_mean``/``y_std`` kept so
  predictions and RMSEs come back in the target's units).

Columns whose every value is non-numeric are categorical; name others with
``categorical=[...]``. A non-numeric value in a numeric column is an error naming the
column and the CSV line (for arrays, the row index); so are empty feature values, a missing
target column, no labeled rows, and a class with no labeled training row. With
``task="auto"``, a target that is numeric but for a few cells, one with more than
:data:`~sgan_jax.columns.MAX_AUTO_CLASSES` classes, or one with a class of fewer than 2
labeled rows is an error too (``task="classification"`` trains on it as it is).
"""

from __future__ import annotations

import json
import math
import os
from typing import Optional, Sequence

import numpy as np

from sgan_jax.columns import (Preprocessor, infer_task, is_number, numeric_values, read_csv,
                              row_names)
from sgan_jax.data import Splits
from sgan_jax.errors import SganError


def _split_labeled(y_lab: np.ndarray, task: str, val_fraction: float, test_fraction: float,
                   rng: np.random.RandomState) -> tuple:
  """Positions (into the labeled rows) of train / val / test, stratified for classes."""
  groups = [np.flatnonzero(y_lab == k) for k in np.unique(y_lab)] if task == "classification" \
      else [np.arange(len(y_lab))]
  tr, va, te = [], [], []
  for g in groups:
    g = rng.permutation(g)
    n_te = int(round(test_fraction * len(g)))
    n_va = int(round(val_fraction * len(g)))
    te.append(g[:n_te])
    va.append(g[n_te:n_te + n_va])
    tr.append(g[n_te + n_va:])
  return tuple(np.sort(np.concatenate(p)).astype(np.int64) for p in (tr, va, te))


def prepare(cols: dict, target: str, *, task: str = "auto",
            categorical: Optional[Sequence[str]] = None, val_fraction: float = 0.15,
            test_fraction: float = 0.15, seed: int = 0,
            features: Optional[Sequence[str]] = None,
            test_rows: Optional[Sequence[int]] = None) -> tuple[Splits, Preprocessor]:
  """Splits and encodes raw columns (``{name: list of str|number}``); see the module doc.

  ``test_rows`` (row indices, all labeled) fixes the test set instead of drawing
  ``test_fraction`` of the labeled rows.
  """
  if target not in cols:
    raise SganError(f"Target column {target!r} not found; columns are {sorted(cols)}.")
  if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
    raise SganError(f"val_fraction={val_fraction} and test_fraction={test_fraction} must be "
                    "fractions of the labeled rows that leave some for training.")
  features = list(features or [c for c in cols if c != target])
  if not features:
    raise SganError("No feature columns: the table has only the target column.")
  t_raw = ["" if (v is None or (isinstance(v, float) and math.isnan(v))) else str(v).strip()
           for v in cols[target]]
  where = row_names(cols, len(t_raw))  # messages name the CSV's lines, whatever the subset
  labeled = np.asarray([v != "" for v in t_raw])
  if not labeled.any():
    raise SganError(f"No labeled rows: every value of target column {target!r} is empty. "
                    "Semi-supervised training needs at least a few labels per class.")
  lab_vals = [v for v, m in zip(t_raw, labeled) if m]
  lab_rows = np.flatnonzero(labeled)
  if task == "auto":
    task = infer_task(target, lab_vals, [where[i] for i in lab_rows])
  if task not in ("classification", "regression"):
    raise SganError(f"task must be auto, classification or regression, got {task!r}.")
  categorical = set(categorical or [])
  unknown = categorical - set(features)
  if unknown:
    raise SganError(f"categorical names unknown column(s) {sorted(unknown)}.")
  for c in features:  # columns with no numeric value at all are categorical
    vals = [str(v) for v in cols[c]]
    if c not in categorical and vals and not any(is_number(v) for v in vals if v != ""):
      categorical.add(c)

  rng = np.random.RandomState(seed)
  if task == "classification":
    classes = sorted(set(lab_vals), key=lambda v: (not is_number(v), float(v) if is_number(v) else 0, v))
    y_all = np.asarray([classes.index(v) for v in lab_vals])
  else:
    classes = None
    y_all = numeric_values(target, lab_vals, [where[i] for i in lab_rows])
  if test_rows is None:
    tr, va, te = _split_labeled(y_all, task, val_fraction, test_fraction, rng)
  else:
    test_rows = np.asarray(test_rows, np.int64)
    if not labeled[test_rows].all():
      raise SganError("test_rows must all have a target value.")
    te = np.flatnonzero(np.isin(lab_rows, test_rows))
    rest = np.setdiff1d(np.arange(len(lab_rows)), te)
    tr_r, va_r, _ = _split_labeled(y_all[rest], task, val_fraction, 0.0, rng)
    tr, va = rest[tr_r], rest[va_r]
  if task == "classification":
    present = np.bincount(y_all[tr], minlength=len(classes))
    if (present == 0).any():
      k = int(np.flatnonzero(present == 0)[0])
      raise SganError(f"Class {classes[k]!r} has no labeled training row after holding out "
                      f"validation/test rows ({int((y_all == k).sum())} labeled in all); label "
                      "more rows of that class or lower val_fraction/test_fraction.")
  train_rows = np.sort(np.concatenate([np.flatnonzero(~labeled), lab_rows[tr]]))
  pick = lambda rows: {c: [cols[c][i] for i in rows] for c in features}
  train_cols = pick(train_rows)
  numeric = {}
  for c in features:
    if c in categorical:
      continue
    v = numeric_values(c, train_cols[c], [where[i] for i in train_rows])
    std = float(v.std())
    numeric[c] = [float(v.mean()), std if std > 0 else 1.0]
  cats = {c: sorted({str(v) for v in train_cols[c]}) for c in features if c in categorical}
  pre = Preprocessor(features, numeric, cats, target, task, classes)
  if task == "regression":
    y_tr = y_all[tr]
    pre.y_mean, pre.y_std = float(y_tr.mean()), float(y_tr.std()) or 1.0
  enc_y = (lambda idx: y_all[idx].astype(np.int32)) if task == "classification" else \
      (lambda idx: ((y_all[idx] - pre.y_mean) / pre.y_std).astype(np.float32))
  encode = lambda rows: pre.transform(pick(rows), [where[i] for i in rows])
  x_unl = encode(train_rows)
  lab_pos = np.searchsorted(train_rows, lab_rows[tr])  # labeled rows inside the training split
  splits = Splits(
      x_unl=x_unl, x_lab=x_unl[lab_pos], y_lab=enc_y(tr), lab_idx=lab_pos,
      val_idx=lab_rows[va], x_val=encode(lab_rows[va]), y_val=enc_y(va),
      x_test=encode(lab_rows[te]), y_test=enc_y(te),
      num_classes=len(classes) if classes else 1)
  return splits, pre


def load_table(path: str, target: str, **kw) -> tuple[Splits, Preprocessor]:
  """:func:`prepare` on a ``.csv`` (header row) or ``.npz`` (``x``, ``y``; NaN y = unlabeled)."""
  if path.endswith(".npz"):
    if not os.path.exists(path):
      raise SganError(f"Data file {path!r} does not exist.")
    try:
      with np.load(path, allow_pickle=False) as f:
        x, y = np.asarray(f["x"], np.float64), np.asarray(f["y"], np.float64)
    except (KeyError, OSError, ValueError) as e:
      raise SganError(f"{path!r} must be an .npz with arrays x (N, D) and y (N,), NaN for "
                      f"unlabeled rows ({type(e).__name__}: {e}).") from e
    if x.ndim != 2 or y.shape != (len(x),):
      raise SganError(f"{path!r}: x must be (N, D) and y (N,); got {x.shape} and {y.shape}.")
    cols = {f"x{j}": list(x[:, j]) for j in range(x.shape[1])}
    cols[target] = [("" if math.isnan(v) else repr(float(v))) for v in y]
    return prepare(cols, target, **kw)
  _, cols = read_csv(path)
  return prepare(cols, target, **kw)


# --------------------------------------------------------------------------- fit / predict
def default_config(task: str, **overrides):
  """A config for standardised feature vectors: MLP pair, linear generator output."""
  from sgan_jax.config import Config
  base = dict(name="tabular", dataset="table", pixel_range="none", task=task, model="mlp",
              d_hidden=(100, 100, 50), g_hidden=(100, 100), input_noise=0.1, hidden_noise=0.3,
              latent_dim=50, labels_per_class=1, batch_size=64, epochs=100, iters_per_epoch=20,
              lr=0.003, lr_decay_epochs=30, avg_rate=1e-3, init_examples=256, eval_every=5,
              num_devices=1, g_loss="feature_matching", fm_order=2)
  base.update(overrides)
  return Config(**base)


def fit(splits: Splits, pre: Preprocessor, cfg, out_dir: Optional[str] = None,
        log=print, modes=("sgan", "supervised"), fresh: bool = False) -> dict:
  """Trains SGAN and the supervised-only baseline on the same rows; saves a predictor.

  Returns ``{mode: summary}``; errors are error rates (classification) or RMSEs in the
  target's units (regression). The reported number is the test metric at the epoch with
  the best validation metric. An ``out_dir`` holding another model is refused before
  anything is written, or with ``fresh`` moved aside (``<out_dir>.old-N``).
  """
  from sgan_jax import evaluation, experiment, train as train_lib
  scale = pre.y_std if pre.task == "regression" else 1.0
  results = {}
  if out_dir:
    if fresh:
      experiment.move_old_run(out_dir, log)
    else:
      experiment.check_run_folder(cfg, splits, out_dir, modes, flag="--out")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "preprocess.json"), "w") as f:
      f.write(pre.to_json())
    with open(os.path.join(out_dir, "config.json"), "w") as f:
      f.write(cfg.to_json())
  for mode in modes:
    out = train_lib.train(cfg, splits, mode, out_dir, log)
    s = dict(out["summary"])
    for k in ("final_test_err", "final_val_err", "best_val_err", "selected_test_err"):
      if s.get(k) is not None:
        s[k] = s[k] * scale  # RMSE back in the target's units
    results[mode] = s
    if out_dir:
      with open(os.path.join(out_dir, f"model_{mode}.msgpack"), "wb") as f:
        f.write(evaluation.classifier_bytes(out["state"]))
  if out_dir:
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
      json.dump({"task": pre.task, "metric": "rmse" if pre.task == "regression" else "error",
                 **results}, f, indent=1)
  return results


def load_predictor(model_dir: str, mode: str = "sgan"):
  """``(predict_fn(cols) -> list of predictions, Preprocessor)`` from a :func:`fit` folder."""
  from sgan_jax import evaluation, step
  from sgan_jax.config import from_stored
  from sgan_jax.state import build_models
  try:
    with open(os.path.join(model_dir, "preprocess.json")) as f:
      pre = Preprocessor.from_json(f.read())
    with open(os.path.join(model_dir, "config.json")) as f:
      cfg = from_stored(json.load(f))
    with open(os.path.join(model_dir, f"model_{mode}.msgpack"), "rb") as f:
      blob = f.read()
  except (OSError, ValueError, TypeError) as e:
    raise SganError(f"{model_dir!r} is not a complete sgan_jax tabular model folder "
                    f"({type(e).__name__}: {e}); it needs preprocess.json, config.json and "
                    f"model_{mode}.msgpack as written by fit.") from e
  k = len(pre.classes) if pre.classes else 1
  m = build_models(cfg, (pre.dim,), k, 1)
  variables = evaluation.classifier_from_bytes(m, (pre.dim,), blob,
                                               f"{model_dir}/model_{mode}.msgpack")
  predict = step.make_predict(m)

  def predict_fn(cols: dict) -> list:
    x = pre.transform(cols)
    out = evaluation.predict_all(predict, variables["params"],
                                {k_: v for k_, v in variables.items() if k_ != "params"}, x)
    return pre.decode(out)

  return predict_fn, pre
