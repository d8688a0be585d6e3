"""Columns of a table: reading a CSV, the task a target column implies, and the encoding
of features and target fitted on the training rows (:class:`Preprocessor`, which also
decodes model outputs back to target values).

Messages name a CSV's file line (:class:`Columns` records where each row starts) or, for
arrays, the row index.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from typing import Optional, Sequence

import numpy as np

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


def is_number(v: str) -> bool:
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
        parts.append(((numeric_values(c, vals, where) - mean) / std)[:, None].astype(np.float32))
    return np.concatenate(parts, axis=1) if parts else np.zeros((0, 0), np.float32)

  def encode_target(self, values: Sequence) -> np.ndarray:
    if self.task == "classification":
      lookup = {v: i for i, v in enumerate(self.classes)}
      return np.asarray([lookup[str(v)] for v in values], np.int32)
    return ((numeric_values(self.target, values, row_names(values, len(values))) - self.y_mean)
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


def numeric_values(col: str, values: Sequence, where: Sequence[str]) -> np.ndarray:
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
  odd = [i for i, v in enumerate(values) if not is_number(v)]
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
