"""A reference classifier trained on all labels: the feature extractor for FID / IS and
the independent judge of generated samples.

Inception-v3 weights cannot be downloaded here, so for MNIST-like data this project
trains its own extractor: the MLP discriminator architecture trained supervised-only on
*every* training label (no GAN, nothing shared with the runs it judges). FID and IS
computed with it are comparable between our runs, not with published Inception values.
"""

from __future__ import annotations

import json
import os
from typing import Optional

import jax
import numpy as np

from sgan_jax import data as data_lib
from sgan_jax import evaluation
from sgan_jax import metrics
from sgan_jax import state as state_lib
from sgan_jax import train as train_lib
from sgan_jax.config import Config
from sgan_jax.errors import SganError


def reference_config(ds: data_lib.Dataset, epochs: int = 10, seed: int = 12345) -> Config:
  """Supervised MLP on all labels (label_rate=1), 1,000 validation examples."""
  return Config(name="reference_classifier", dataset=ds.name, labels_per_class=None,
                label_rate=1.0, val_size=min(1000, len(ds.y_train) // 10), epochs=epochs,
                lr_decay_epochs=max(1, epochs // 3), avg_rate=0.01, baseline=False, seed=seed,
                num_devices=1,
                data_seed=seed)


class ReferenceClassifier:
  """``features(x) -> (N, F)``, ``probs(x) -> (N, K)``, ``accuracy(x, y)`` on images ``x``."""

  def __init__(self, models: state_lib.Models, variables: dict):
    self.models, self.variables = models, variables
    disc = models.disc

    @jax.jit
    def forward(x):
      logits, feats = disc.apply(variables, x, train=False)
      return jax.nn.softmax(logits[:, :models.num_classes], axis=-1), feats

    self._forward = forward

  def _batched(self, x: np.ndarray, batch: int = 1000):
    probs, feats = [], []
    for s in range(0, len(x), batch):
      xb = np.asarray(x[s:s + batch], np.float32)
      n = len(xb)
      if n < batch and len(x) > batch:
        xb = np.concatenate([xb, np.zeros((batch - n, *xb.shape[1:]), np.float32)])
      p, f = self._forward(xb)
      probs.append(np.asarray(p)[:n])
      feats.append(np.asarray(f)[:n])
    return np.concatenate(probs), np.concatenate(feats)

  def probs(self, x: np.ndarray) -> np.ndarray:
    return self._batched(x)[0]

  def features(self, x: np.ndarray) -> np.ndarray:
    return self._batched(x)[1]

  def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(self.probs(x), -1) == np.asarray(y)))

  def fid(self, x_real: np.ndarray, x_fake: np.ndarray) -> float:
    return float(metrics.fid(self.features(x_real), self.features(x_fake)))

  def inception_score(self, x: np.ndarray, splits: int = 10) -> tuple[float, float]:
    m, s = metrics.inception_score(self.probs(x), splits)
    return float(m), float(s)


def _cached_meta(meta_path: str, log) -> Optional[dict]:
  """The cache's metadata (``config``, ``shape``, ``test_acc``), or None, with the reason
  logged, when the file is not that: a damaged cache is rebuilt, not fatal."""
  try:
    with open(meta_path) as f:
      meta = json.load(f)
  except ValueError:
    log(f"[reference] {meta_path} is not valid JSON; retraining")
    return None
  if (not isinstance(meta, dict) or not {"config", "shape", "test_acc"} <= meta.keys()
      or not isinstance(meta["test_acc"], (int, float))):
    log(f"[reference] {meta_path} is not a reference classifier's metadata (a JSON object with "
        "config, shape and test_acc); retraining")
    return None
  return meta


def fit_or_load(ds: data_lib.Dataset, path: str, epochs: int = 10,
                log=print) -> ReferenceClassifier:
  """Loads the classifier cached at ``path`` (msgpack + ``.json``), or trains and saves it."""
  cfg = reference_config(ds, epochs)
  meta_path = path + ".json"
  shape = tuple(ds.x_train.shape[1:])
  m = state_lib.build_models(cfg, shape, ds.num_classes, 1)
  meta = _cached_meta(meta_path, log) if os.path.exists(path) and os.path.exists(meta_path) else None
  if meta is not None:
    # Compare as JSON sees it (tuples come back as lists): a cached model must be found.
    if (meta["config"] == json.loads(json.dumps(cfg.to_dict())) and meta["shape"] == list(shape)):
      with open(path, "rb") as f:
        blob = f.read()
      try:
        variables = evaluation.classifier_from_bytes(m, shape, blob, path)
      except SganError as e:  # a damaged cache is rebuilt, not fatal
        log(f"[reference] {e} Retraining.")
      else:
        log(f"[reference] loaded {path} (test accuracy {100 * meta['test_acc']:.2f}%)")
        return ReferenceClassifier(m, variables)
    else:
      log(f"[reference] {path} was trained with another config or image shape; retraining")
  splits = data_lib.make_splits(ds, labels_per_class=None, label_rate=1.0,
                                val_size=cfg.val_size, data_seed=cfg.data_seed)
  out = train_lib.train(cfg, splits, "supervised", None, log)
  state = out["state"]
  variables = state.classifier_variables()
  ref = ReferenceClassifier(out["models"], variables)
  acc = ref.accuracy(ds.x_test, ds.y_test)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "wb") as f:
    f.write(evaluation.classifier_bytes(state))
  with open(meta_path, "w") as f:
    json.dump({"config": cfg.to_dict(), "shape": list(shape), "test_acc": acc}, f)
  log(f"[reference] trained on all {len(splits.y_lab)} labels: test accuracy {100 * acc:.2f}%")
  return ReferenceClassifier(m, variables)


def judge_samples(ref: ReferenceClassifier, x: np.ndarray, y: np.ndarray,
                  real_x: np.ndarray, real_y: np.ndarray, num_classes: int) -> dict:
  """Per-class and overall: reference accuracy on labeled samples, FID against the real
  examples of the same class, and the Inception Score of all samples."""
  if len(x) != len(y):
    raise SganError(f"{len(x)} samples but {len(y)} labels.")
  probs, feats = ref._batched(x)
  _, real_feats = ref._batched(real_x)
  pred = np.argmax(probs, -1)
  out = {"accuracy": float(np.mean(pred == y)),
         "fid_all": float(metrics.fid(real_feats, feats)),
         # Shuffled: samples arrive grouped by class, and IS splits into consecutive chunks.
         "inception_score": float(metrics.inception_score(
             probs[np.random.default_rng(0).permutation(len(probs))], 10)[0]),
         "per_class": []}
  for c in range(num_classes):
    mine, real = y == c, real_y == c
    out["per_class"].append({
        "class": c, "n": int(mine.sum()), "accuracy": float(np.mean(pred[mine] == c)),
        "fid": float(metrics.fid(real_feats[real], feats[mine]))})
  return out
