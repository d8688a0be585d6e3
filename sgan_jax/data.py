"""Datasets, the fixed labeled subset, and the validation split.

A :class:`Dataset` holds numpy arrays ``x_train (N, *shape)``, ``y_train (N,)``,
``x_test``, ``y_test``, already scaled to the model's pixel range. :func:`make_splits`
turns it into the three streams a semi-supervised run uses:

* ``x_unl`` - the whole training split minus the validation hold-out, labeled examples
  included (as in the reference). It carries **no labels**: the labels of the
  unlabeled stream never leave this module.
* ``x_lab, y_lab`` - a fixed, class-balanced labeled subset of ``x_unl``, chosen once
  from ``data_seed`` and recorded by index (``lab_idx``, into the training split).
* ``x_val, y_val`` - an optional stratified hold-out used for model selection.

Sources: local ``.npz`` files (``x_train``, ``y_train``, ``x_test``, ``y_test``), TFDS
(``mnist``, ``cifar10``, ``svhn_cropped``) and scikit-learn's bundled 8x8 digits.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from typing import Optional

import numpy as np

from sgan_jax.errors import SganError

TFDS_NAMES = ("mnist", "cifar10", "svhn_cropped")


@dataclasses.dataclass(frozen=True)
class Dataset:
  x_train: np.ndarray  # (N, *shape) float32 in the configured pixel range
  y_train: np.ndarray  # (N,) int32 in [0, K)
  x_test: np.ndarray
  y_test: np.ndarray
  num_classes: int
  name: str = "dataset"


@dataclasses.dataclass(frozen=True)
class Splits:
  x_unl: np.ndarray    # (N_u, *shape) training split minus validation; no labels
  x_lab: np.ndarray    # (N_l, *shape) the fixed labeled subset
  y_lab: np.ndarray    # (N_l,)
  lab_idx: np.ndarray  # (N_l,) indices of the labeled subset in the training split
  val_idx: np.ndarray  # (N_v,) indices of the validation hold-out in the training split
  x_val: np.ndarray
  y_val: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  num_classes: int


# --------------------------------------------------------------------------- checks
def _to_nhwc(x: np.ndarray, what: str) -> np.ndarray:
  if x.ndim == 3:        # (N, H, W) grayscale
    return x[..., None]
  if x.ndim in (2, 4):   # (N, D) vectors or (N, H, W, C) images
    return x
  raise SganError(f"{what} has shape {x.shape}; expected (N, H, W), (N, H, W, C) images or "
                  "(N, D) feature vectors.")


def _scale(x: np.ndarray, pixel_range: str, what: str) -> np.ndarray:
  if x.dtype == np.uint8 and pixel_range != "none":
    x = x.astype(np.float32)
    return x / 255.0 if pixel_range == "0,1" else (x - 127.5) / 128.0
  if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
    raise SganError(f"{what} has dtype {x.dtype}; pass uint8 pixels (0-255) or floats "
                    "already scaled to the configured pixel_range.")
  x = x.astype(np.float32)
  bad = ~np.isfinite(x)
  if bad.any():
    first = np.argwhere(bad)[0]
    raise SganError(f"{what} contains {int(bad.sum())} NaN/inf values (first at index "
                    f"{tuple(int(i) for i in first)}); clean or drop those examples first.")
  if pixel_range == "none":  # feature vectors, already standardised by the caller
    return x
  lo, hi = (0.0, 1.0) if pixel_range == "0,1" else (-1.0, 1.0)
  if x.size and (x.min() < lo - 1e-3 or x.max() > hi + 1e-3):
    raise SganError(f"{what} holds floats in [{x.min():.3g}, {x.max():.3g}] but pixel_range is "
                    f"[{lo:g}, {hi:g}]; pass uint8 pixels, rescale the floats, or set "
                    "pixel_range to match.")
  return x


def _labels(y: np.ndarray, n: int, num_classes: Optional[int], what: str) -> np.ndarray:
  y = np.asarray(y)
  if y.ndim == 2 and y.shape[1] == 1:
    y = y[:, 0]
  if y.ndim != 1:
    raise SganError(f"{what} has shape {y.shape}; expected integer class ids of shape (N,).")
  if len(y) != n:
    raise SganError(f"{what} has {len(y)} labels but the matching images have {n}; "
                    "they must have the same length.")
  if y.dtype.kind == "f":
    if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
      raise SganError(f"{what} has non-integer or NaN values; labels must be class ids 0..K-1.")
  elif y.dtype.kind not in "iu":
    raise SganError(f"{what} has dtype {y.dtype}; labels must be integer class ids 0..K-1.")
  y = y.astype(np.int64)
  if y.size and y.min() < 0:
    raise SganError(f"{what} contains negative label {y.min()}; labels must be 0..K-1.")
  if num_classes is not None and y.size and y.max() >= num_classes:
    raise SganError(f"{what} contains label {y.max()} but num_classes is {num_classes}; "
                    "labels must be 0..num_classes-1.")
  return y.astype(np.int32)


def from_arrays(x_train, y_train, x_test, y_test, *, pixel_range: str = "0,1",
                num_classes: Optional[int] = None, name: str = "arrays") -> Dataset:
  """Validates and scales user arrays into a :class:`Dataset`.

  Args:
    x_train: ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, D)``; uint8 pixels are scaled to
      ``pixel_range``, floats must already lie in it.
    y_train: ``(N,)`` integer class ids.
    x_test, y_test: the same for the test split (same per-example shape).
    num_classes: K; inferred as ``max(label) + 1`` when None.
  """
  x_train = _to_nhwc(np.asarray(x_train), "x_train")
  x_test = _to_nhwc(np.asarray(x_test), "x_test")
  if x_train.shape[1:] != x_test.shape[1:]:
    raise SganError(f"x_train examples have shape {x_train.shape[1:]} but x_test examples have "
                    f"{x_test.shape[1:]}; both splits must share one example shape.")
  if len(x_train) == 0:
    raise SganError("x_train is empty.")
  y_train = _labels(y_train, len(x_train), num_classes, "y_train")
  y_test = _labels(y_test, len(x_test), num_classes, "y_test")
  _check_test_classes(y_train, y_test)
  if num_classes is None:
    num_classes = int(max(y_train.max(), y_test.max() if y_test.size else 0)) + 1
  if num_classes < 2:
    raise SganError(f"Need at least 2 classes, found {num_classes}.")
  return Dataset(_scale(x_train, pixel_range, "x_train"), y_train,
                 _scale(x_test, pixel_range, "x_test"), y_test, num_classes, name)


def _check_test_classes(y_train: np.ndarray, y_test: np.ndarray) -> None:
  """Every class of the test set must occur in the training set: a class the classifier
  never saw cannot be learned, and the labeled-subset error would blame the training set."""
  unseen = sorted(set(np.unique(y_test).tolist()) - set(np.unique(y_train).tolist()))
  if unseen:
    n = int(np.isin(y_test, unseen).sum())
    raise SganError(f"y_test holds class(es) {unseen} ({n} test example(s)) that y_train never "
                    f"has (training classes: {np.unique(y_train).tolist()}); a class without "
                    "training examples cannot be learned. Drop those test examples, add "
                    "training examples of the class, or check that both label arrays use the "
                    "same class ids.")


# --------------------------------------------------------------------------- sources
def load_npz(path: str, *, pixel_range: str = "0,1", num_classes: Optional[int] = None) -> Dataset:
  """Loads a local ``.npz`` with arrays ``x_train``, ``y_train``, ``x_test``, ``y_test``.

  This is the format of ``shared/datasets/mnist.npz`` and the way to bring your own images.
  """
  if not os.path.exists(path):
    raise SganError(f"Data file {path!r} does not exist; pass the path of an .npz with "
                    "x_train, y_train, x_test, y_test.")
  try:
    with np.load(path, allow_pickle=False) as f:
      arrays = {k: f[k] for k in f.files}
  except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
    raise SganError(f"Could not read {path!r} as an .npz file ({type(e).__name__}: {e}); "
                    "save it with numpy.savez(path, x_train=..., y_train=..., x_test=..., "
                    "y_test=...).") from e
  missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
  if missing:
    raise SganError(f"{path!r} lacks arrays {missing} (it has {sorted(arrays)}); an .npz for "
                    "sgan_jax needs x_train, y_train, x_test and y_test.")
  return from_arrays(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                     pixel_range=pixel_range, num_classes=num_classes,
                     name=os.path.basename(path))


def load_digits(*, pixel_range: str = "0,1", test_size: int = 497) -> Dataset:
  """scikit-learn's bundled 8x8 digits (1797 images, no download).

  Split once into a fixed stratified train/test split (seed 0) so every run and every
  user sees the same test set: 1300 train / 497 test by default.
  """
  from sklearn.datasets import load_digits as _load
  from sklearn.model_selection import train_test_split
  d = _load()
  x = (d.images / 16.0).astype(np.float32)
  if pixel_range == "-1,1":
    x = x * 2.0 - 1.0
  xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=test_size, random_state=0,
                                        stratify=d.target)
  return from_arrays(xtr, ytr, xte, yte, pixel_range=pixel_range, num_classes=10, name="digits")


def load_tfds(name: str, *, data_dir: Optional[str] = None, pixel_range: str = "0,1") -> Dataset:
  """Loads ``mnist``, ``cifar10`` or ``svhn_cropped`` through TFDS (no TensorFlow needed to read).

  Downloads and prepares on first use (preparing needs network access and, for these
  datasets, TensorFlow); reads with ``tfds.data_source`` afterwards.
  """
  import tensorflow_datasets as tfds
  try:
    builder = tfds.builder(name, data_dir=data_dir)
    builder.download_and_prepare()
    splits = {s: tfds.data_source(name, split=s, data_dir=data_dir) for s in ("train", "test")}
  except Exception as e:  # TFDS raises many unrelated types for "cannot prepare"
    raise SganError(
        f"TFDS could not provide {name!r} ({type(e).__name__}: {e}). Preparing it needs a "
        "network connection and `pip install tensorflow`; or convert the data once to an "
        ".npz with x_train, y_train, x_test, y_test and pass its path as dataset.") from e
  arrays = {}
  for split, src in splits.items():
    n = len(src)
    xs = np.stack([np.asarray(src[i]["image"]) for i in range(n)])
    ys = np.asarray([int(src[i]["label"]) for i in range(n)])
    arrays[split] = (xs, ys)
  num_classes = builder.info.features["label"].num_classes
  return from_arrays(*arrays["train"], *arrays["test"], pixel_range=pixel_range,
                     num_classes=num_classes, name=name)


def load(dataset: str, *, data_dir: Optional[str] = None, pixel_range: str = "0,1") -> Dataset:
  """Resolves a config's ``dataset`` string: ``digits``, a TFDS name, or an ``.npz`` path."""
  if dataset == "digits":
    return load_digits(pixel_range=pixel_range)
  if dataset in TFDS_NAMES:
    return load_tfds(dataset, data_dir=data_dir, pixel_range=pixel_range)
  if dataset.endswith(".npz") or os.path.exists(dataset):
    return load_npz(dataset, pixel_range=pixel_range)
  raise SganError(f"Unknown dataset {dataset!r}: use 'digits', one of the TFDS names "
                  f"{list(TFDS_NAMES)}, or a path to an .npz file.")


# --------------------------------------------------------------------------- subsets
def select_labeled(y: np.ndarray, num_classes: int, *, per_class: Optional[int] = None,
                   rate: Optional[float] = None, total: Optional[int] = None,
                   seed: int = 0) -> np.ndarray:
  """Indices of a fixed, class-balanced labeled subset (sorted), reproducible from ``seed``.

  With ``per_class=c``: the first ``c`` examples of each class in a seeded permutation
  (the reference's selection). With ``rate=r``: each class contributes
  ``max(1, round(r * n_class))`` examples (stratified), so ``r = 1`` selects everything.
  With ``total=n``: as balanced as ``n`` allows -- every class gets ``n // K`` and
  ``n % K`` classes, drawn from ``seed``, get one more (Odena's 25 labels over 10 digits:
  five classes with 3, five with 2). When ``K`` divides ``n`` it is ``per_class=n // K``,
  index for index.
  """
  if sum(a is not None for a in (per_class, rate, total)) != 1:
    raise SganError("Give exactly one of per_class, rate and total for the labeled subset.")
  counts = np.bincount(y, minlength=num_classes)
  if total is not None:
    if total < num_classes:
      raise SganError(f"num_labeled={total} is fewer than the {num_classes} classes; a "
                      f"class-balanced subset needs at least one label per class.")
    want = np.full(num_classes, total // num_classes)
    # A separate stream: the example permutation below stays that of per_class.
    extra = np.random.RandomState(seed + 104729).permutation(num_classes)[: total % num_classes]
    want[extra] += 1
  elif rate is not None:
    if not 0.0 < rate <= 1.0:
      raise SganError(f"label_rate must be in (0, 1], got {rate}.")
    want = np.maximum(1, np.round(rate * counts)).astype(int)
    want = np.minimum(want, counts)
  else:
    if per_class < 1:
      raise SganError(f"labels_per_class must be >= 1, got {per_class}.")
    want = np.full(num_classes, per_class)
  short = [(k, int(counts[k]), int(want[k])) for k in range(num_classes) if counts[k] < want[k]
           or counts[k] == 0]
  if short:
    k, have, need = short[0]
    raise SganError(f"Class {k} has {have} training examples but {need} labeled ones were "
                    f"requested ({len(short)} class(es) short); lower labels_per_class / "
                    "label_rate / num_labeled (or val_size, which is held out first) or "
                    "enlarge the training split.")
  perm = np.random.RandomState(seed).permutation(len(y))
  chosen = []
  for k in range(num_classes):
    chosen.append(perm[y[perm] == k][: want[k]])
  return np.sort(np.concatenate(chosen))


def val_count(val_size: float, n_train: int) -> int:
  """Examples in the validation hold-out: ``val_size`` itself, or (0 < val_size < 1) that
  fraction of the ``n_train`` training examples."""
  return int(round(val_size * n_train)) if 0 < val_size < 1 else int(val_size)


def split_validation(y: np.ndarray, val_size: float, num_classes: int, seed: int) -> np.ndarray:
  """Indices (sorted) of a stratified validation hold-out of ``val_size`` examples (or
  that fraction of the training split)."""
  asked, val_size = val_size, val_count(val_size, len(y))
  if val_size == 0:
    return np.zeros((0,), np.int64)
  if val_size >= len(y):
    raise SganError(f"val_size={asked} leaves no training data (training split has "
                    f"{len(y)} examples); lower val_size, or give a fraction such as "
                    "val_size=0.1 (10% of the training split).")
  rng = np.random.RandomState(seed + 7919)  # distinct stream from the labeled subset
  counts = np.bincount(y, minlength=num_classes)
  want = np.floor(counts * val_size / len(y)).astype(int)
  # distribute the rounding remainder to the largest classes, deterministically
  for k in np.argsort(-counts)[: val_size - want.sum()]:
    want[k] += 1
  idx = []
  for k in range(num_classes):
    members = np.flatnonzero(y == k)
    idx.append(rng.permutation(members)[: want[k]])
  return np.sort(np.concatenate(idx))


def unlabeled_indices(n_train: int, val_idx: np.ndarray) -> np.ndarray:
  """Rows of the training split in the unlabeled stream (sorted): all but the hold-out.
  ``x_unl = x_train[unlabeled_indices(...)]``; the labeled rows are among them."""
  return np.setdiff1d(np.arange(n_train), val_idx)


def make_splits(ds: Dataset, *, labels_per_class: Optional[int], label_rate: Optional[float],
                val_size: float, data_seed: int, num_labeled: Optional[int] = None) -> Splits:
  """Validation hold-out first, then the labeled subset from what remains, both from
  ``data_seed``."""
  val_idx = split_validation(ds.y_train, val_size, ds.num_classes, data_seed)
  keep = unlabeled_indices(len(ds.y_train), val_idx)
  sub = select_labeled(ds.y_train[keep], ds.num_classes, per_class=labels_per_class,
                       rate=label_rate, total=num_labeled, seed=data_seed)
  lab_idx = keep[sub]
  return Splits(
      x_unl=ds.x_train[keep], x_lab=ds.x_train[lab_idx], y_lab=ds.y_train[lab_idx],
      lab_idx=lab_idx, val_idx=val_idx, x_val=ds.x_train[val_idx], y_val=ds.y_train[val_idx],
      x_test=ds.x_test, y_test=ds.y_test, num_classes=ds.num_classes)


def splits_for(ds: Dataset, cfg) -> Splits:
  """The splits a run of ``cfg`` (a :class:`~sgan_jax.config.Config`) trains on."""
  return make_splits(ds, **cfg.label_selection(), val_size=cfg.val_size, data_seed=cfg.data_seed)


# --------------------------------------------------------------------------- batch order
def stream_indices(rng: np.random.Generator, n: int, total: int) -> np.ndarray:
  """``total`` indices into ``n`` examples: concatenated fresh permutations (tiling)."""
  reps = -(-total // n)
  return np.concatenate([rng.permutation(n) for _ in range(reps)])[:total]


def epoch_indices(seed: int, epoch: int, n_lab: int, n_unl: int, iters: int,
                  batch: int) -> dict:
  """Batch indices for one epoch, a pure function of ``(seed, epoch)``:
  ``{"lab" | "unl" | "unl2": (iters, batch)}`` int32.

  The labeled subset is tiled to the epoch's length and reshuffled each epoch; the two
  unlabeled streams are independent permutations. Any epoch's order is reproducible on
  its own, which is what makes resume exact.
  """
  rng = np.random.default_rng([seed, epoch])
  t = iters * batch
  return {k: stream_indices(rng, n, t).reshape(iters, batch).astype(np.int32)
          for k, n in (("lab", n_lab), ("unl", n_unl), ("unl2", n_unl))}
