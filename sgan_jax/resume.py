"""Whether a run folder may be resumed by a run of a given config, and from which epoch.

A run resumes only from checkpoints of the same config (fields marked resumable and retired
fields aside), mode and data (:func:`data_fingerprint`); the newest checkpoint that
verifies is used and newer damaged ones are moved aside. Every check reads only and comes
before any change, so a refusal leaves the folder as it was (``--fresh`` moves the old run
aside first, on purpose).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Callable, Optional

import numpy as np

from sgan_jax import rundir
from sgan_jax.checkpoint import Checkpointer, retention
from sgan_jax.config import FIELDS, RESUME, RETIRED, Config, fields_with
from sgan_jax.errors import SganError

# Fields that may differ between a run and the checkpoint it resumes from (retired ones
# changed evaluation only).
RESUMABLE_DIFFERENCES = frozenset(fields_with(RESUME)) | frozenset(RETIRED)


def data_fingerprint(*arrays: np.ndarray) -> str:
  """A short hash of the arrays that define a run's data (shapes, dtypes and bytes)."""
  h = hashlib.sha256()
  for a in arrays:
    a = np.ascontiguousarray(a)
    h.update(str((a.shape, a.dtype.str)).encode())
    h.update(a.tobytes())
  return h.hexdigest()[:16]


def _default(key: str):
  f = FIELDS.get(key)
  return None if f is None else f.default


def config_differences(saved: dict, current: dict) -> dict:
  """``{key: (saved, current)}`` for fields that forbid resuming."""
  diff = {}
  for k in sorted(set(saved) | set(current)):
    if k in RESUMABLE_DIFFERENCES:
      continue
    # A key missing from an older checkpoint's config meant that key's default.
    a = saved[k] if k in saved else _default(k)
    b = current[k] if k in current else _default(k)
    if isinstance(a, list):
      a = tuple(a)
    if isinstance(b, list):
      b = tuple(b)
    if a != b:
      diff[k] = (a, b)
  return diff


def check_run_config(workdir: str, cfg: Config) -> None:
  """Refuses a run folder whose ``config.json`` records another run (fields that forbid
  resuming differ): its records would be mixed with this run's. Reads only."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    return
  try:
    with open(path) as f:
      stored = json.load(f)
    if not isinstance(stored, dict):
      raise ValueError("not a mapping")
  except (OSError, ValueError) as e:
    raise SganError(f"{path} is unreadable ({type(e).__name__}: {e}), so {workdir} may hold "
                    "another run. Nothing was changed. Use another output folder (--workdir / "
                    "--out), or pass --fresh to move the old run aside (kept, renamed to "
                    ".old-N).") from e
  diff = config_differences(stored, cfg.to_dict())
  if diff:
    what = ", ".join(f"{k}: {a!r} there vs {b!r} now" for k, (a, b) in diff.items())
    raise SganError(f"{workdir} holds a different run ({what}). Nothing was changed. Use "
                    "another output folder (--workdir / --out), or pass --fresh to move the "
                    "old run aside (kept, renamed to .old-N).")


def checkpoint_dir(workdir: str, mode: str) -> str:
  return os.path.join(workdir, f"checkpoints_{mode}")


def resume_point(cdir: str, mode: str, cfg: Config, fingerprint: Callable[[], str]
                 ) -> tuple[Optional[int], Optional[dict], dict[int, str]]:
  """Where a run of ``cfg`` resumes in checkpoint folder ``cdir``: the newest checkpoint
  that verifies (epoch and meta; None, None: from the beginning, as when every step was
  cut off or damaged) and the newer ones that do not.

  Reads only. Refuses a folder holding another run's checkpoints (another config, mode or
  data: ``fingerprint()``).
  """
  if not os.path.isdir(cdir) or not os.listdir(cdir):
    return None, None, {}
  ckpt = Checkpointer(cdir, read_only=True)
  try:
    epoch, bad = ckpt.newest_intact()
    meta = ckpt.read_meta(epoch) if epoch is not None else None
  finally:
    ckpt.close()
  if meta is not None:
    check_same_run(cdir, mode, meta, cfg, fingerprint)
  return epoch, meta, bad


def check_same_run(cdir: str, mode: str, meta: dict, cfg: Config,
                   fingerprint: Callable[[], str]) -> None:
  """Refuses resuming from a checkpoint (its ``meta``) of another config, mode or data."""
  diff = config_differences(meta.get("config", {}), cfg.to_dict())
  if meta.get("mode") != mode or diff:
    what = ", ".join(f"{k}: {a!r} there vs {b!r} now" for k, (a, b) in diff.items())
    raise SganError(
        f"{cdir} holds checkpoints of a different run ({what or 'mode ' + str(meta.get('mode'))}). "
        "Nothing was changed. Use another output folder (--workdir / --out), or pass --fresh "
        "to move the old run aside (kept, renamed to .old-N).")
  if meta.get("data_fingerprint") != fingerprint():
    raise SganError(f"{cdir} was written for different data (fingerprint "
                    f"{meta.get('data_fingerprint')} vs {fingerprint()}: another dataset, "
                    "labeled subset or validation split). Nothing was changed. Use another "
                    "output folder (--workdir / --out) or --fresh.")


def open_run(workdir: str, mode: str, cfg: Config, fingerprint: str, fresh: bool,
             log) -> tuple[Checkpointer, Optional[dict]]:
  """The checkpoints of ``<workdir>/checkpoints_<mode>`` and the meta of the newest intact
  one to resume from (None: start fresh); newer corrupt ones are moved aside. Refuses,
  changing nothing, a folder holding another run's checkpoints (:func:`resume_point`);
  ``fresh`` moves them aside first."""
  cdir = checkpoint_dir(workdir, mode)
  if fresh:
    moved = rundir.move_aside(cdir)
    if moved:
      log(f"[{mode}] fresh start: moved existing checkpoints to {moved}")
  _, meta, bad = resume_point(cdir, mode, cfg, lambda: fingerprint)
  ckpt = Checkpointer(cdir, retention(cfg))
  ckpt.quarantine(bad, log)
  return ckpt, meta
