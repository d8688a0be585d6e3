"""What a run writes besides checkpoints: metrics JSONL, JSON records, sample grids,
TensorBoard scalars and the progress lines.

Writes are atomic (a temporary file renamed into place), so a reader or a kill never sees
half a file, and only the primary process writes when several train together.
"""

from __future__ import annotations

import json
import os
from typing import Callable, Optional, Sequence

import jax
from jax.experimental import multihost_utils

from sgan_jax import images, tblog
from sgan_jax.errors import SganError
from sgan_jax.sharding import is_primary


def atomic_write(path: str, payload: bytes) -> None:
  if not is_primary():
    return
  tmp = path + ".tmp"
  with open(tmp, "wb") as f:
    f.write(payload)
  os.replace(tmp, path)


def _writable(folder: str) -> bool:
  # Separate so tests can simulate a read-only folder where chmod does not stop root.
  return os.access(folder, os.W_OK | os.X_OK)


def check_writable(path: str, flag: str = "--workdir") -> None:
  """Refuses an output folder this process cannot write, before anything is written: the
  folder and its subfolders if it exists, else the nearest existing folder above it."""
  existing = os.path.abspath(path)
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise SganError(f"{flag} {path}: {existing} is a file, not a folder. Choose another "
                    f"{flag}.")
  folders = [existing]
  if existing == os.path.abspath(path):
    folders += [e.path for e in os.scandir(existing) if e.is_dir()]
  for folder in folders:
    if not _writable(folder):
      raise SganError(f"{flag} {path}: cannot write to {folder} (permission denied); nothing "
                      f"was written. Choose a folder you can write with {flag}, or make it "
                      "writable (chmod u+w).")


def move_aside(path: str) -> Optional[str]:
  """Renames ``path`` to ``<path>.old-<n>`` (never deletes; one process renames, the others
  wait); returns the new name, or None when there was nothing to move."""
  n = 1
  while os.path.exists(f"{path}.old-{n}"):
    n += 1
  moved = os.path.isdir(path) and bool(os.listdir(path))
  if moved and is_primary():
    os.rename(path, f"{path}.old-{n}")
  if jax.process_count() > 1:  # the others must not write before the move
    multihost_utils.sync_global_devices(f"sgan_jax move aside {path}")
  return f"{path}.old-{n}" if moved else None


def folder_bytes(path: str) -> int:
  """Bytes of the files under ``path`` (0 when it does not exist)."""
  return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path)
             for f in files)


def disk_text(workdir: str) -> str:
  """How much disk a run folder takes, and how much of it its checkpoints."""
  total = folder_bytes(workdir)
  ckpts = sum(folder_bytes(os.path.join(root, d)) for root, dirs, _ in os.walk(workdir)
              for d in dirs if d.startswith("checkpoints_"))
  return f"{workdir} takes {human_bytes(total)} on disk, checkpoints {human_bytes(ckpts)}"


def human_bytes(n: int) -> str:
  for unit in ("B", "KB", "MB", "GB"):
    if n < 1000 or unit == "GB":
      return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
    n /= 1000
  return ""


def read_jsonl(path: str, missing_ok: bool = False) -> list[dict]:
  """The records of a JSON-lines file (``metrics_<mode>.jsonl``, a benchmark's rows).

  Blank lines are skipped; a cut last line (a kill during an append) is dropped, since it
  is newer than everything else. An unreadable line before the last means the file was
  damaged and raises SganError. A missing file is ``[]`` with ``missing_ok``.
  """
  if missing_ok and not os.path.exists(path):
    return []
  with open(path) as f:
    lines = [(i, line) for i, line in enumerate(f, 1) if line.strip()]
  recs = []
  for k, (i, line) in enumerate(lines):
    try:
      recs.append(json.loads(line))
    except json.JSONDecodeError as e:
      if k == len(lines) - 1:
        break
      raise SganError(f"{path}: line {i} is not JSON ({e.msg}); the file is damaged. Restore "
                      "it from a copy, or delete the line to keep the records around it.") from e
  return recs


def append_jsonl(path: str, records: Sequence[dict]) -> None:
  """Appends ``records`` to a JSON-lines file, one per line.

  A last line without its newline (a kill during an earlier append) is completed if it is a
  whole record and cut off if it is not, so the new records start on a line of their own:
  appended straight after a fragment they would be unreadable, and ``read_jsonl`` would
  drop them as the cut line. Only the last byte is read unless it is not a newline, so
  appending stays cheap over a long run. One writer per file.
  """
  if os.path.exists(path):
    with open(path, "rb+") as f:
      end = f.seek(0, os.SEEK_END)
      if end:
        f.seek(end - 1)
        if f.read(1) != b"\n":
          f.seek(0)
          data = f.read()
          start = data.rfind(b"\n") + 1
          try:
            json.loads(data[start:])
            f.write(b"\n")
          except ValueError:
            f.truncate(start)
  with open(path, "a") as f:
    f.writelines(json.dumps(r) + "\n" for r in records)


def write_json(path: str, obj) -> None:
  atomic_write(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


class MetricsLog:
  """``<workdir>/metrics_<mode>.jsonl``: one record per evaluated epoch; a no-op without a
  workdir. The checkpoint records how many lines are its own (``n_history``), so a resumed
  or rolled-back run rewrites the file to that prefix and has no duplicates."""

  def __init__(self, workdir: Optional[str], mode: str):
    self.workdir, self.mode = workdir, mode
    self.path = os.path.join(workdir, f"metrics_{mode}.jsonl") if workdir else None

  def rewrite(self, records: Sequence[dict]) -> None:
    if self.path:
      atomic_write(self.path, "".join(json.dumps(r) + "\n" for r in records).encode())

  def append(self, record: dict) -> None:
    if self.path and is_primary():
      append_jsonl(self.path, [record])

  def abandon(self, records: Sequence[dict], rollback: int) -> None:
    """Keeps a rolled-back branch's records in ``metrics_<mode>_abandoned.jsonl``."""
    if self.path and is_primary():
      append_jsonl(os.path.join(self.workdir, f"metrics_{self.mode}_abandoned.jsonl"),
                   [{**r, "rollback": rollback} for r in records])

  def history_at(self, meta: dict, log: Callable[[str], None]) -> list:
    """The records a checkpoint had written: the first ``n_history`` of the file."""
    n = meta["n_history"]
    recs = []
    if self.path and os.path.exists(self.path):
      with open(self.path) as f:
        for line in f:
          if len(recs) == n:
            break
          try:
            recs.append(json.loads(line))
          except json.JSONDecodeError:
            break  # a line cut by a kill: everything after it is newer than the checkpoint
    if len(recs) < n:
      log(f"[warning] {self.path} has {len(recs)} of the checkpoint's {n} metric records; "
          "the missing ones are lost (training state is unaffected)")
      last = meta.get("last_record")
      if last is not None and (not recs or recs[-1] != last):
        recs.append(last)
    return recs


def save_samples(workdir: str, epoch: int, grid, pixel_range: str) -> None:
  """``<workdir>/samples/epoch_<e>.png``: a 10x10 grid of generated examples."""
  if is_primary():
    os.makedirs(os.path.join(workdir, "samples"), exist_ok=True)
    lo = -1.0 if pixel_range == "-1,1" else 0.0
    images.save_grid(os.path.join(workdir, "samples", f"epoch_{epoch:04d}.png"), grid, rows=10,
                     value_range=(lo, 1.0))


def tensorboard(workdir: Optional[str], mode: str, enabled: bool):
  """A TensorBoard scalar writer for ``<workdir>/tb/<mode>``, or None."""
  if workdir and enabled and is_primary():
    return tblog.SummaryWriter(os.path.join(workdir, "tb", mode))
  return None


def _fmt_time(s: float) -> str:
  s = int(s)
  return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def speed_text(iters: int, dt: float, epochs_left: int, compiled: bool) -> str:
  """Progress text for an epoch block of ``iters`` iterations that took ``dt`` seconds.

  The ETA assumes the rest runs at this block's speed, not the run's mean: a run that
  shared its cores for a while would otherwise report an ETA several times too long.
  A block that included compilation (``compiled``) says so instead.
  """
  if compiled or dt <= 0:
    return f"compiled+ran in {dt:.1f}s"
  return f"{iters / dt:.1f} it/s, ETA {_fmt_time(epochs_left * dt)}"


def epoch_line(rec: dict, epochs: int, speed: str, mets: dict, task: str) -> str:
  """The log line of an evaluated epoch: progress, losses, validation and test error."""
  losses_txt = " ".join(f"{k}={v:.4f}" for k, v in mets.items() if k.startswith("loss"))
  if task == "regression":
    name, fmt = "rmse", (lambda e: f"{e:.4f}")
  else:
    name, fmt = "err", (lambda e: f"{100 * e:.2f}%")
  val, test = rec["val_err"], rec["test_err"]
  val_txt = f" val_{name}={fmt(val)}" if val is not None else ""
  # Without a test split (the scikit-learn estimators) there is no test error to show.
  test_txt = (f" test_{name}={fmt(test)} (live weights {fmt(rec['test_err_live'])})"
              if test is not None else "")
  return (f"[{rec['mode']}] epoch {rec['epoch']}/{epochs} step {rec['step']} | {speed} | "
          f"{losses_txt} |{val_txt}{test_txt}")
