"""What a trained classifier gets wrong, class by class.

:func:`confusion` counts true -> predicted classes; :func:`class_report` turns the counts
into per-class error, each class's share of the predictions and the largest confusions;
:func:`run_report` applies both to a run folder's averaged discriminator (the final one,
the validation-selected epoch or any kept epoch) on its dataset's test set, beside its
accuracy on the run's own labeled examples. With very few labels a whole class can be
absorbed by a neighbour while the labeled examples stay perfectly fit; the predicted
shares show it (``experiments/confusions.py`` prints them).
"""

from __future__ import annotations

import json
import os
from typing import Union

import numpy as np

from sgan_jax import data as data_lib
from sgan_jax import evaluation, generate, step
from sgan_jax.config import Config, from_stored
from sgan_jax.errors import SganError
from sgan_jax.state import build_models


def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
  """``(K, K)`` counts of ``y_true (N,)`` -> ``y_pred (N,)``: row the true class, column
  the predicted one."""
  y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
  if y_true.shape != y_pred.shape or y_true.ndim != 1:
    raise SganError(f"confusion needs two label vectors of one length, got shapes "
                    f"{y_true.shape} and {y_pred.shape}.")
  for name, y in (("true", y_true), ("predicted", y_pred)):
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
      raise SganError(f"{name} labels must lie in 0..{num_classes - 1}; got {y.min()}..{y.max()}.")
  k = num_classes
  return np.bincount(y_true.astype(np.int64) * k + y_pred, minlength=k * k).reshape(k, k)


def class_report(conf: np.ndarray, top: int = 4) -> dict:
  """From a confusion matrix ``(K, K)``: ``err`` (overall error rate), ``n``,
  ``per_class_err (K,)`` (None for a class with no examples, so the report stays valid
  JSON), ``predicted_share (K,)``
  (the fraction of all predictions that go to each class) and ``top``, the ``top``
  largest off-diagonal counts as ``{"true", "pred", "count"}``."""
  conf = np.asarray(conf)
  n = int(conf.sum())
  rows = conf.sum(axis=1)
  with np.errstate(invalid="ignore", divide="ignore"):
    per_class = np.where(rows > 0, 1.0 - np.diag(conf) / rows, np.nan)
  off = conf.copy()
  np.fill_diagonal(off, 0)
  order = np.argsort(-off, axis=None, kind="stable")[:top]
  pairs = [np.unravel_index(i, off.shape) for i in order]
  return {"err": 1.0 - np.trace(conf) / n if n else None, "n": n,
          "per_class_err": [None if np.isnan(x) else float(x) for x in per_class],
          "predicted_share": (conf.sum(axis=0) / max(n, 1)).tolist(),
          "top": [{"true": int(t), "pred": int(p), "count": int(off[t, p])}
                  for t, p in pairs if off[t, p] > 0]}


def run_config(run_dir: str) -> Config:
  """A run folder's ``config.json``."""
  try:
    with open(os.path.join(run_dir, "config.json")) as f:
      return from_stored(json.load(f))
  except (OSError, ValueError) as e:
    raise SganError(f"{run_dir} holds no readable config.json ({type(e).__name__}: {e}); "
                    "pass the seed folder of a run, e.g. runs/mnist_fm/seed_1.") from e


def load_classifier(run_dir: str, ds: data_lib.Dataset, mode: str = "sgan",
                    checkpoint: str = "final"):
  """``(logits_fn(x (N, ...)) -> (N, outputs), cfg, epoch)`` for a run folder's averaged
  discriminator of ``mode``: ``checkpoint`` "final" (``classifier_<mode>.msgpack``),
  "best" (the epoch selected on validation) or an epoch number among the kept
  checkpoints. ``ds`` is the data the run trained on (its shapes build the models);
  ``epoch`` is None for "final"."""
  cfg = run_config(run_dir)
  shape = ds.x_train.shape[1:]
  m = build_models(cfg, shape, ds.num_classes, 1)
  epoch = None
  if checkpoint == "final":
    path = os.path.join(run_dir, f"classifier_{mode}.msgpack")
    if not os.path.exists(path):
      raise SganError(f"{path} does not exist: the {mode} model has not finished; read "
                      "checkpoint 'best' or a kept epoch number instead.")
    with open(path, "rb") as f:
      variables = evaluation.classifier_from_bytes(m, shape, f.read(), path)
    params = variables.pop("params")
    frozen = variables
  else:
    state, epoch = generate.checkpoint_state(m, run_dir, checkpoint, mode)
    params, frozen = state.d_avg, state.d_frozen
  predict = step.make_predict(m)
  return (lambda x: evaluation.predict_all(predict, params, frozen, x)), cfg, epoch


def run_report(run_dir: str, mode: str = "sgan", checkpoint: str = "final",
               dataset: Union[str, data_lib.Dataset, None] = None, top: int = 4) -> dict:
  """:func:`class_report` of a run's classifier on the test set, with ``labeled_acc`` (on
  the run's own labeled examples, ``labeled_indices.npy``), ``epoch`` (None for "final")
  and the checkpoint and dataset read. ``dataset`` (a path or a loaded Dataset) overrides
  the path the run recorded (``config.json``'s ``dataset``, relative to where the run was
  started)."""
  cfg = run_config(run_dir)
  if cfg.task != "classification":
    raise SganError(f"{run_dir} is a {cfg.task} run; class confusions need a classifier.")
  if isinstance(dataset, data_lib.Dataset):
    ds, name = dataset, dataset.name
  else:
    name = dataset or cfg.dataset
    try:
      ds = data_lib.load(name, data_dir=cfg.data_dir, pixel_range=cfg.pixel_range)
    except (OSError, ValueError) as e:
      raise SganError(f"Cannot load the run's dataset {name!r} ({type(e).__name__}: {e}); "
                      "give the dataset's path as it resolves from here.") from e
  logits, _, epoch = load_classifier(run_dir, ds, mode, checkpoint)
  pred = evaluation.predicted_classes(logits(ds.x_test), cfg)
  rep = class_report(confusion(ds.y_test, pred, ds.num_classes), top)
  try:
    lab = np.load(os.path.join(run_dir, "labeled_indices.npy"))
  except (OSError, ValueError) as e:
    raise SganError(f"{run_dir} holds no readable labeled_indices.npy ({type(e).__name__}: "
                    f"{e}); every run folder writes one, so is this a run's seed folder?") from e
  lab_pred = evaluation.predicted_classes(logits(ds.x_train[lab]), cfg)
  rep.update(labeled_acc=float(np.mean(lab_pred == ds.y_train[lab])), epoch=epoch,
             checkpoint=checkpoint, mode=mode, dataset=name)
  return rep


def format_report(rep: dict) -> str:
  """One line: error, labeled accuracy, per-class error, predicted shares, top confusions."""
  f2 = lambda v: " ".join("-" if x is None else f"{x:.2f}" for x in v)
  top = ", ".join(f"{t['true']}->{t['pred']} {t['count']}" for t in rep["top"])
  return (f"{rep['checkpoint']}{'' if rep['epoch'] is None else ' (epoch %d)' % rep['epoch']} "
          f"{rep['mode']}: err {rep['err']:.4f} labeled acc {rep['labeled_acc']:.2f} | "
          f"per class {f2(rep['per_class_err'])} | predicted share {f2(rep['predicted_share'])}"
          f" | top true->pred {top}")
