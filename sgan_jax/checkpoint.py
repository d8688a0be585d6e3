"""Checkpoints with orbax: everything needed to continue a run exactly.

A checkpoint (one per saved epoch, in ``<workdir>/checkpoints_<mode>/<epoch>/``) holds

* ``state``: the whole :class:`~sgan_jax.train.TrainState` (both parameter trees, both
  optimiser states, the Polyak average, weight-norm scales, batch-norm statistics,
  step counter and PRNG key), plus the labeled and validation indices, packed into one
  flat array per dtype (``{"float32": (n,), "int32": (m,), ...}``; see
  :mod:`sgan_jax.packing`);
* ``meta`` (JSON): format tag, mode, epoch (= the data-iterator position: batch order is a
  pure function of ``(seed, epoch)``), the config, a fingerprint of the data, the
  metrics history and the best-on-validation record.

The last ``keep`` checkpoints and the best one on validation are kept. Saves are async;
the state is copied to host memory first, so training can donate its device buffers
right away. Orbax writes into a temporary folder and renames it when complete, so a
process killed mid-save leaves the previous checkpoints intact and usable.

Integrity: once orbax has finalised a step, a checksum manifest is written into it
(:mod:`sgan_jax.integrity`). A step verifies when every file matches; its meta says a
manifest belongs to it, so a step whose manifest was never written (a kill between orbax's
rename and the manifest) does not verify either. Steps that fail are moved to
``<dir>.corrupt/`` and never restored. Whether a folder's checkpoints belong to a run, and
where it resumes: :mod:`sgan_jax.resume`.
"""

from __future__ import annotations

import collections
import errno
import logging
import os
from typing import Callable, Optional

import jax
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from sgan_jax import guards, rundir
from sgan_jax.config import Config
from sgan_jax.errors import SganError
from sgan_jax.evaluation import selection_key
from sgan_jax.integrity import INTEGRITY, manifest_problem, seal
from sgan_jax.packing import layout, pack, packed_shapes, state_to_host, unpack

FORMAT = "sgan_jax/1"


class _OrbaxLogFilter(logging.Filter):
  """orbax logs a warning per save when OCDBT is off ("Skipping merge of OCDBT ..."), two
  per read-only look into a folder (resume checks), and tracebacks from its background
  threads when a write fails. The failure reaches :meth:`Checkpointer.wait`, which reports
  it as a message; the last few orbax errors are kept (``errors``) for that message."""

  # The last: the loop waits for each save on purpose, and orbax counts that wait as the
  # next save's "waiting for the previous save".
  NOTICES = ("Skipping merge of OCDBT", "read_only=True, setting", "Given directory is read only",
             "Waiting for previous save to complete took")

  def __init__(self):
    super().__init__()
    self.errors: collections.deque = collections.deque(maxlen=8)

  def filter(self, record: logging.LogRecord) -> bool:
    if record.levelno >= logging.ERROR and f"orbax{os.sep}checkpoint" in record.pathname:
      self.errors.append(record.getMessage())
      return False
    return not any(n in str(record.msg) for n in self.NOTICES)


_ORBAX_LOG = _OrbaxLogFilter()
logging.getLogger("absl").addFilter(_ORBAX_LOG)


def retention(cfg: Config) -> int:
  """How many latest checkpoints a run keeps besides the best on validation:
  ``keep_checkpoints``, or by default 1 (the last), and with ``on_d_wins=rollback`` enough
  for a rollback to find a checkpoint ``D_WINS_ROLLBACK_EPOCHS`` epochs back."""
  if cfg.keep_checkpoints is not None:
    return cfg.keep_checkpoints
  return guards.D_WINS_ROLLBACK_EPOCHS + 1 if cfg.on_d_wins == "rollback" else 1


def write_failure(e: BaseException, logged: str = "") -> str:
  """Why a write failed, in words: tensorstore reports a full disk or a refused write as
  a ValueError whose text ends with the OS error, which a long path can push past any
  sensible cut. ``logged``: what orbax logged about it."""
  text = f"{e} {logged}"
  errno_ = getattr(e, "errno", None)
  if errno_ == errno.ENOSPC or "No space left on device" in text:
    return "the disk is full (No space left on device)"
  if errno_ in (errno.EACCES, errno.EPERM) or "Permission denied" in text:
    return "permission denied"
  return f"{type(e).__name__}: {text[:300]}"


class Checkpointer:
  """Keeps the last ``keep`` checkpoints and the best one on validation error; seals each
  saved step with a checksum manifest and verifies it before restoring."""

  def __init__(self, directory: str, keep: int = 1, read_only: bool = False):
    self.directory, self.keep = os.path.abspath(directory), keep
    self._unsealed: list[int] = []
    self._val_errs: dict[int, Optional[float]] = {}
    self._failed = False  # a write failed: close() must not report it a second time
    # Plain zarr arrays, not OCDBT: with a handful of packed arrays per save it is faster,
    # and orbax's OCDBT path resolves a tensorstore spec per array per save, which leaks
    # (measured: ~8 KB per save with OCDBT, none without; see sgan_jax.packing). No orbax retention:
    # orbax would delete the previous step before this one is sealed (_retain).
    self._mgr = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(create=not read_only, read_only=read_only),
        item_handlers={"state": ocp.StandardCheckpointHandler(use_ocdbt=False),
                       "meta": ocp.JsonCheckpointHandler()})

  def latest_epoch(self) -> Optional[int]:
    return self._mgr.latest_step()

  def all_epochs(self) -> list[int]:
    return list(self._mgr.all_steps())

  def step_dir(self, epoch: int) -> str:
    return os.path.join(self.directory, str(epoch))

  def save(self, epoch: int, state, extra_arrays: dict, meta: dict,
           val_err: Optional[float]) -> None:
    """Starts writing ``epoch``'s checkpoint; :meth:`wait` finishes and seals it."""
    host = {"train": state_to_host(state), **extra_arrays}
    val_err = float(val_err) if val_err is not None else None
    meta = {**meta, "format": FORMAT, "layout": layout(host), "integrity": INTEGRITY,
            "val_err": val_err}
    self._unsealed.append(epoch)  # sealed by wait(), once orbax has finalised it
    self._val_errs[epoch] = val_err
    try:
      self._mgr.save(epoch, args=ocp.args.Composite(state=ocp.args.StandardSave(pack(host)),
                                                    meta=ocp.args.JsonSave(meta)), force=True)
    except Exception as e:  # orbax and tensorstore raise several types for a failed write
      self._unsealed.remove(epoch)
      self._failed = True
      raise self._write_error(epoch, e) from e

  def _write_error(self, epoch: Optional[int], e: BaseException) -> SganError:
    """The message of a checkpoint that could not be written (disk full, permissions)."""
    self._mgr.reload()  # orbax's list may have lost steps a failed save was to replace
    prev, _ = self.newest_intact(below=epoch)
    kept = (f"the previous checkpoint {self.step_dir(prev)} is intact" if prev is not None
            else "no earlier checkpoint exists")
    what = self.step_dir(epoch) if epoch is not None else f"a checkpoint in {self.directory}"
    logged = " ".join(_ORBAX_LOG.errors)  # orbax's own words, when its exception has none
    _ORBAX_LOG.errors.clear()
    return SganError(f"Could not write {what}: {write_failure(e, logged)}; {kept}. Free disk space "
                     "(or fix the folder's permissions) and rerun the same command to resume.")

  def _seal_saved(self) -> None:
    """Seals the steps saved since the last call, now that orbax has finalised them, then
    applies retention."""
    epochs, self._unsealed = self._unsealed, []
    for epoch in epochs:
      if not os.path.isdir(self.step_dir(epoch)):
        raise self._write_error(epoch, OSError("orbax did not finalise the step"))
      if jax.process_index() == 0:
        try:
          seal(self.step_dir(epoch))
        except OSError as e:  # unsealed, the step never verifies: the previous one is used
          raise self._write_error(epoch, e) from e
    if epochs:
      if jax.process_count() > 1:  # the others must not delete before the manifest exists
        multihost_utils.sync_global_devices(f"sgan_jax sealed {self.directory} {epochs}")
      self._retain()

  def _retain(self) -> None:
    """Deletes what retention no longer keeps: all but the last ``keep`` checkpoints and
    the best on validation (the training loop's selection rule, ties to the earliest).
    Runs once the newest step is sealed: a kill at any moment leaves an intact checkpoint
    at least as new as the previous one."""
    epochs = sorted(self.all_epochs())
    kept = set(epochs[-self.keep:])
    scored = [(selection_key(v, e), e) for e in epochs if (v := self._val_err(e)) is not None]
    if scored:
      kept.add(min(scored)[1])
    for e in epochs:
      if e not in kept:
        self._mgr.delete(e)
        self._val_errs.pop(e, None)

  def _val_err(self, epoch: int) -> Optional[float]:
    """The validation error a checkpoint was saved with (None: none, or unreadable)."""
    if epoch not in self._val_errs:
      try:
        meta = self._stored_meta(epoch)
      except SganError:
        meta = None
      self._val_errs[epoch] = meta.get("val_err") if isinstance(meta, dict) else None
    return self._val_errs[epoch]

  def verify(self, epoch: int) -> Optional[str]:
    """Why checkpoint ``epoch`` cannot be trusted, or None when its files match their
    manifest (or it predates manifests and its meta reads)."""
    try:
      return manifest_problem(self.step_dir(epoch))
    except FileNotFoundError:
      pass
    try:
      meta = self._stored_meta(epoch)
    except SganError:
      return "its metadata is unreadable"
    if isinstance(meta, dict) and meta.get("integrity"):
      return "its save was cut off: no checksum manifest"
    return None  # written before manifests existed: nothing to verify against

  def newest_intact(self, below: Optional[int] = None) -> tuple[Optional[int], dict[int, str]]:
    """The newest epoch (under ``below``, if given) whose checkpoint verifies, and the
    problems of the newer ones that do not; reads only."""
    bad = {}
    for epoch in sorted(self.all_epochs(), reverse=True):
      if below is not None and epoch >= below:
        continue
      problem = self.verify(epoch)
      if problem is None:
        return epoch, bad
      bad[epoch] = problem
    return None, bad

  def pick(self, choose: Callable[[list[int]], Optional[int]],
           log: Callable[[str], None]) -> Optional[int]:
    """``choose(kept epochs)``, verified: a chosen checkpoint that fails verification is
    moved aside (never tried again) and ``choose`` asked again."""
    while True:
      epoch = choose(self.all_epochs())
      if epoch is None:
        return None
      problem = self.verify(epoch)
      if problem is None:
        return epoch
      self.quarantine({epoch: problem}, log)

  def quarantine(self, bad: dict[int, str], log: Callable[[str], None]) -> None:
    """Moves checkpoints that failed verification to ``<directory>.corrupt/`` (kept)."""
    if not bad:
      return
    moved = self._move_steps(sorted(bad), ".corrupt")
    for epoch, problem in bad.items():
      log(f"[warning] checkpoint {self.step_dir(epoch)} is corrupt ({problem}); skipped and "
          f"moved to {moved[epoch]}")

  def _move_steps(self, epochs: list[int], suffix: str) -> dict[int, str]:
    """Moves the steps of ``epochs`` to ``<directory><suffix>/<epoch>.<n>`` (one process
    moves, the others wait); returns where each went."""
    self.wait()
    dest = self.directory + suffix
    where = {}
    for e in epochs:
      n = 1
      while os.path.exists(os.path.join(dest, f"{e}.{n}")):
        n += 1
      where[e] = os.path.join(dest, f"{e}.{n}")
      if jax.process_index() == 0:
        os.makedirs(dest, exist_ok=True)
        os.rename(self.step_dir(e), where[e])
    if jax.process_count() > 1:  # the others must not reload before the move
      multihost_utils.sync_global_devices(f"sgan_jax move {self.directory} {epochs}")
    self._mgr.reload()
    return where

  def disk_bytes(self) -> int:
    """Bytes the kept checkpoints take."""
    return rundir.folder_bytes(self.directory)

  def _stored_meta(self, epoch: int):
    """The JSON item of a step as stored, whoever wrote it."""
    try:
      return self._mgr.restore(epoch, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
    except Exception as e:  # orbax raises several types for missing/corrupt files
      raise SganError(f"Checkpoint {self.directory}/{epoch} is unreadable ({type(e).__name__}: "
                      f"{e}). Move that folder away to fall back to an earlier checkpoint, or "
                      "start in a new output folder.") from e

  def read_meta(self, epoch: int) -> dict:
    meta = self._stored_meta(epoch)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
      raise SganError(f"{self.directory}/{epoch} is not an sgan_jax checkpoint (format "
                      f"{meta.get('format') if isinstance(meta, dict) else None!r}, expected "
                      f"{FORMAT!r}). Use a different output folder (--workdir / --out) for "
                      "this run.")
    return meta

  def restore(self, epoch: int, template_state, extra_template: dict, sharding) -> tuple:
    """Restores onto ``sharding`` (any device count) using a freshly built template."""
    host = {"train": state_to_host(template_state), **extra_template}
    saved, want = self.read_meta(epoch).get("layout"), layout(host)
    if saved != want:
      bad = next((f"{a[0]}: {a[1]}{tuple(a[2])} there vs {b[1]}{tuple(b[2])} here"
                  for a, b in zip(saved or [], want) if a != b),
                 f"{len(saved or [])} arrays there vs {len(want)} here")
      raise SganError(
          f"Checkpoint {self.directory}/{epoch} does not match this run's model ({bad}). It "
          "was written by a different model or sgan_jax version; use a different output "
          "folder (--workdir / --out) or --fresh.")
    try:
      r = self._mgr.restore(epoch, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(packed_shapes(host))))
    except Exception as e:
      raise SganError(
          f"Checkpoint {self.directory}/{epoch} does not match this run's model "
          f"({type(e).__name__}: {str(e)[:500]}). It was written by a different model or is "
          "truncated; use a different output folder (--workdir / --out) or --fresh.") from e
    tree = unpack(r.state, host)
    state = jax.device_put(tree.pop("train"), sharding)
    state = state.replace(key=jax.random.wrap_key_data(state.key))
    return state, tree

  def discard_after(self, epoch: int) -> list[int]:
    """Moves the checkpoints of epochs after ``epoch`` out of the way; returns those epochs.

    A run rolled back to ``epoch`` saves the later epochs again; their old checkpoints
    (the abandoned branch) go to ``<directory>.abandoned/<epoch>.<n>``, kept, not deleted.
    """
    self.wait()
    later = [e for e in self.all_epochs() if e > epoch]
    self._move_steps(later, ".abandoned")
    return later

  def wait(self) -> None:
    """Waits for the pending save to finish, then seals it."""
    try:
      self._mgr.wait_until_finished()
    except Exception as e:
      epoch = self._unsealed[-1] if self._unsealed else None
      self._unsealed, self._failed = [], True
      raise self._write_error(epoch, e) from e
    try:
      self._seal_saved()
    except SganError:
      self._failed = True
      raise

  def close(self) -> None:
    """Finishes and seals the pending save, then releases orbax's threads. After a failed
    write (already reported) only releases them."""
    if self._unsealed and not self._failed:
      self.wait()
    try:
      self._mgr.close()
    except Exception:  # orbax re-raises the failed write
      if not self._failed:
        raise
