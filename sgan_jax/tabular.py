"""Tabular data: feature rows with a target column, some targets empty (unlabeled).

``load_table`` reads a CSV (or ``.npz`` with ``x (N, D)`` and ``y (N,)``, NaN = unlabeled)
and returns :class:`~sgan_jax.data.Splits` for the same training loop the images use,
plus a fitted :class:`Preprocessor`:

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
:data:`MAX_AUTO_CLASSES` classes, or one with a class of fewer than 2 labeled rows is an
error too (``task="classification"`` trains on it as it is).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from typing import Optional, Sequence

import numpy as np

from sgan_jax.data import Splits
from sgan_jax.errors import SganError


# Above this many distinct target values, task="auto" asks which task is meant: an ID,
# free text or a measurement with a typo would otherwise become a many-class problem.
MAX_AUTO_CLASSES = 20
# A target is "numeric but for a few cells" when at least this fraction of its labeled
# values are numbers.
MOSTLY_NUMERIC = 0.9


class Columns(dict):
  """Columns by name (lists of stripped strings) read from a CSV; ``lines[i]`` is the file
  line where row ``i`` starts, which error messages name."""

  lines: Optional[list[int]] = None


def read_csv(path: str) -> tuple[list[str], Columns]:
  """Header and columns (as stripped strings) of a CSV file."""
  if not os.path.exists(path):
    raise SganError(f"CSV file {path!r} does not exist.")
  try:
    with open(path, newline="") as f:
      reader = csv.reader(f)
      rows, starts, end = [], [], 0
      for row in reader:  # a quoted field may span lines: record where each row starts
        rows.append(row)
        starts.append(end + 1)
        end = reader.line_num
  except (OSError, UnicodeDecodeError, csv.Error) as e:
    raise SganError(f"Could not read {path!r} as CSV ({type(e).__name__}: {e}).") from e
  if not rows or not rows[0]:
    raise SganError(f"{path!r} is empty; it needs a header row naming the columns.")
  header = [h.strip() for h in rows[0]]
  if len(set(header)) != len(header):
    raise SganError(f"{path!r} has duplicate column names in its header: {header}.")
  cols = Columns({h: [] for h in header})
  cols.lines = []
  for line, row in zip(starts[1:], rows[1:]):
    if not row:
      continue
    if len(row) != len(header):
      raise SganError(f"{path!r} line {line} has {len(row)} fields but the header has "
                      f"{len(header)}.")
    for h, v in zip(header, row):
      cols[h].append(v.strip())
    cols.lines.append(line)
  return header, cols


def row_names(cols: dict, n: int) -> list[str]:
  """How messages name each of ``n`` rows: ``line <L>`` of a CSV (:class:`Columns`),
  else ``row <i>`` (0-based, as the arrays index them)."""
  lines = getattr(cols, "lines", None)
  if lines is not None and len(lines) == n:
    return [f"line {line}" for line in lines]
  return [f"row {i}" for i in range(n)]


def _is_number(v: str) -> bool:
  try:
    return math.isfinite(float(v))
  except ValueError:
    return False


@dataclasses.dataclass
class Preprocessor:
  """Column encoding fitted on the training split; JSON-serialisable."""

  features: list                 # feature column names, in input order
  numeric: dict                  # column -> [mean, std]
  categorical: dict              # column -> categories seen in the training split
  target: str
  task: str                      # classification | regression
  classes: Optional[list] = None  # class names (classification)
  y_mean: float = 0.0
  y_std: float = 1.0

  @property
  def dim(self) -> int:
    return sum(len(self.categorical[c]) if c in self.categorical else 1 for c in self.features)

  def transform(self, cols: dict, where: Optional[Sequence[str]] = None) -> np.ndarray:
    """Encodes raw columns (lists of strings or numbers) into ``(N, dim)`` float32;
    ``where`` names the rows in messages (default: :func:`row_names`)."""
    missing = [c for c in self.features if c not in cols]
    if missing:
      raise SganError(f"The data lacks feature column(s) {missing} the model was trained on.")
    if where is None:
      where = row_names(cols, len(cols[self.features[0]]) if self.features else 0)
    parts = []
    for c in self.features:
      vals = cols[c]
      if c in self.categorical:
        cats = self.categorical[c]
        onehot = np.zeros((len(vals), len(cats)), np.float32)
        lookup = {v: j for j, v in enumerate(cats)}
        for i, v in enumerate(vals):
          j = lookup.get(str(v))
          if j is not None:  # unseen categories encode as all zeros
            onehot[i, j] = 1.0
        parts.append(onehot)
      else:
        mean, std = self.numeric[c]
        parts.append(((_numeric(c, vals, where) - mean) / std)[:, None].astype(np.float32))
    return np.concatenate(parts, axis=1) if parts else np.zeros((0, 0), np.float32)

  def encode_target(self, values: Sequence) -> np.ndarray:
    if self.task == "classification":
      lookup = {v: i for i, v in enumerate(self.classes)}
      return np.asarray([lookup[str(v)] for v in values], np.int32)
    return ((_numeric(self.target, values, row_names(values, len(values))) - self.y_mean)
            / self.y_std).astype(np.float32)

  def decode(self, outputs: np.ndarray) -> list:
    """Model outputs ``(N, K)`` (classification logits) or ``(N, 2)`` (regression) -> values."""
    if self.task == "classification":
      return [self.classes[i] for i in np.argmax(outputs[:, :len(self.classes)], -1)]
    return list(outputs[:, 0] * self.y_std + self.y_mean)

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=1)

  @classmethod
  def from_json(cls, text: str) -> "Preprocessor":
    return cls(**json.loads(text))


def _numeric(col: str, values: Sequence, where: Sequence[str]) -> np.ndarray:
  """A numeric column's values as floats; ``where[i]`` names row ``i`` in messages."""
  out = np.empty(len(values), np.float64)
  for i, v in enumerate(values):
    if isinstance(v, str):
      if v == "":
        raise SganError(f"Column {col!r} {where[i]} is empty; fill in or drop rows with "
                        "missing feature values.")
      try:
        out[i] = float(v)
      except ValueError:
        raise SganError(f"Column {col!r} {where[i]} holds {v!r}, which is not a number; fix "
                        f"the value, or list {col!r} as categorical.") from None
    else:
      out[i] = float(v)
    if not math.isfinite(out[i]):
      raise SganError(f"Column {col!r} {where[i]} is {v!r}; values must be finite.")
  return out


def infer_task(target: str, values: Sequence[str], where: Sequence[str]) -> str:
  """``task="auto"``: regression for numbers (unless at most 10 distinct integers),
  classification otherwise. Refuses the cases that guess would get wrong silently: a
  numeric target with a few other cells (a typo), more than :data:`MAX_AUTO_CLASSES`
  classes, a class with fewer than 2 labeled rows."""
  odd = [i for i, v in enumerate(values) if not _is_number(v)]
  if not odd:
    few_ints = len(set(values)) <= 10 and all(float(v).is_integer() for v in values)
    return "classification" if few_ints else "regression"
  if len(odd) < len(values) and len(values) - len(odd) >= MOSTLY_NUMERIC * len(values):
    cells = ", ".join(f"{where[i]}: {values[i]!r}" for i in odd[:5])
    raise SganError(
        f"Target column {target!r} holds numbers except in {len(odd)} of {len(values)} labeled "
        f"rows ({cells}{', ...' if len(odd) > 5 else ''}); guessing the task would make every "
        "distinct value a class. Fix those cells or empty them (an empty target marks a row "
        "unlabeled), or pass --task (task=) classification or regression.")
  counts: dict[str, list[int]] = {}
  for i, v in enumerate(values):
    counts.setdefault(v, []).append(i)
  if len(counts) > MAX_AUTO_CLASSES:
    raise SganError(
        f"Target column {target!r} has {len(counts)} distinct values among {len(values)} "
        f"labeled rows, more than {MAX_AUTO_CLASSES} classes (an ID or free-text column?). "
        "Choose another --target, or pass --task classification if these are the classes.")
  lone = [(v, rows) for v, rows in counts.items() if len(rows) < 2]
  if lone:
    cells = ", ".join(f"{v!r} ({where[rows[0]]})" for v, rows in lone[:5])
    raise SganError(
        f"Target column {target!r}: class(es) {cells} have a single labeled row, too few to "
        "learn or to hold out for validation and test. Label more rows of those classes, fix "
        "the cells if they are typos, or pass --task classification to train as it is.")
  return "classification"


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
    if c not in categorical and vals and not any(_is_number(v) for v in vals if v != ""):
      categorical.add(c)

  rng = np.random.RandomState(seed)
  if task == "classification":
    classes = sorted(set(lab_vals), key=lambda v: (not _is_number(v), float(v) if _is_number(v) else 0, v))
    y_all = np.asarray([classes.index(v) for v in lab_vals])
  else:
    classes = None
    y_all = _numeric(target, lab_vals, [where[i] for i in lab_rows])
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
    v = _numeric(c, train_cols[c], [where[i] for i in train_rows])
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
  import flax.serialization
  import jax
  import jax.numpy as jnp
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
  target = m.disc.init({"params": jax.random.key(0), "noise": jax.random.key(0)},
                       jnp.zeros((1, pre.dim)), train=False)
  try:
    variables = flax.serialization.from_bytes(target, blob)
  except Exception as e:
    raise SganError(f"{model_dir}/model_{mode}.msgpack does not match its config "
                    f"({type(e).__name__}: {e}).") from e
  predict = step.make_predict(m)

  def predict_fn(cols: dict) -> list:
    x = pre.transform(cols)
    out = evaluation.predict_all(predict, variables["params"],
                                {k_: v for k_, v in variables.items() if k_ != "params"}, x)
    return pre.decode(out)

  return predict_fn, pre
