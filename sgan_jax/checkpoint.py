"""Checkpoints with orbax: everything needed to continue a run exactly.

A checkpoint (one per saved epoch, in ``<workdir>/checkpoints_<mode>/<epoch>/``) holds

* ``state``: the whole :class:`~sgan_jax.train.TrainState` (both parameter trees, both
  optimiser states, the Polyak average, weight-norm scales, batch-norm statistics,
  step counter and PRNG key), plus the labeled and validation indices, packed into one
  flat array per dtype (``{"float32": (n,), "int32": (m,), ...}``; see
  :func:`pack`);
* ``meta`` (JSON): format tag, mode, epoch (= the data-iterator position: batch order is a
  pure function of ``(seed, epoch)``), the config, a fingerprint of the data, the
  metrics history and the best-on-validation record.

The last ``keep`` checkpoints and the best one on validation are kept. Saves are async;
the state is copied to host memory first, so training can donate its device buffers
right away. Orbax writes into a temporary folder and renames it when complete, so a
process killed mid-save leaves the previous checkpoints intact and usable.
"""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Any, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils
from orbax.checkpoint import checkpoint_managers as cm

from sgan_jax.config import FIELDS, RESUME, RETIRED, Config, fields_with
from sgan_jax.errors import SganError
from sgan_jax.evaluation import selection_key

FORMAT = "sgan_jax/1"
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


def _to_host(state) -> Any:
  """Device -> host copy; PRNG keys become their raw uint32 data."""
  return jax.device_get(state.replace(key=jax.random.key_data(state.key)))


# Why pack: tensorstore's Python binding leaks a few hundred bytes per ``Spec.to_json()``
# call and orbax's OCDBT path makes one per saved array, so saving ~90 small leaves every
# epoch grew the resident memory by ~140 KB per checkpoint (measured: 85 MB over a 1-hour
# soak). One array per dtype (and no OCDBT, see Checkpointer) avoids it and saves faster.
def pack(tree) -> dict[str, np.ndarray]:
  """Concatenates a pytree's leaves (host arrays) into one flat array per dtype."""
  groups: dict[str, list] = {}
  for leaf in jax.tree.leaves(tree):
    a = np.asarray(leaf)
    groups.setdefault(a.dtype.name, []).append(a.ravel())
  return {k: np.concatenate(v) for k, v in groups.items()}


def packed_shapes(template) -> dict[str, jax.ShapeDtypeStruct]:
  """Shapes :func:`pack` produces for a pytree like ``template``."""
  sizes: dict[str, tuple] = {}
  for leaf in jax.tree.leaves(template):
    a = np.asarray(leaf)
    n, _ = sizes.get(a.dtype.name, (0, a.dtype))
    sizes[a.dtype.name] = (n + a.size, a.dtype)
  return {k: jax.ShapeDtypeStruct((n,), dt) for k, (n, dt) in sizes.items()}


def layout(tree) -> list:
  """``[[path, dtype, shape], ...]`` for every leaf: what a packed checkpoint holds."""
  return [[jax.tree_util.keystr(path), np.asarray(leaf).dtype.name, list(np.shape(leaf))]
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)]


def unpack(packed: dict, template):
  """Inverse of :func:`pack`: splits the flat arrays back into ``template``'s structure."""
  offsets = {k: 0 for k in packed}
  leaves, treedef = jax.tree.flatten(template)
  out = []
  for leaf in leaves:
    a = np.asarray(leaf)
    k, o = a.dtype.name, offsets[a.dtype.name]
    out.append(np.asarray(packed[k][o:o + a.size]).reshape(a.shape))
    offsets[k] = o + a.size
  return jax.tree.unflatten(treedef, out)


class _DropOcdbtMergeNotice(logging.Filter):
  """orbax logs a warning per save when OCDBT is off ("Skipping merge of OCDBT ...")."""

  def filter(self, record: logging.LogRecord) -> bool:
    return "Skipping merge of OCDBT" not in str(record.msg)


logging.getLogger("absl").addFilter(_DropOcdbtMergeNotice())


class Checkpointer:
  """Keeps the last ``keep`` checkpoints and the best one on validation error."""

  def __init__(self, directory: str, keep: int = 3):
    self.directory = os.path.abspath(directory)
    policy = cm.AnyPreservationPolicy([
        cm.LatestN(keep),
        # The training loop's selection rule; BestN keeps the end of a sorted list, hence
        # reverse. (Metrics of older checkpoints have no epoch: 0.)
        cm.BestN(get_metric_fn=lambda m: selection_key(m["val_err"], m.get("epoch", 0)),
                 reverse=True, n=1, keep_checkpoints_without_metrics=False),
    ])
    # Plain zarr arrays, not OCDBT: with a handful of packed arrays per save it is faster,
    # and orbax's OCDBT path resolves a tensorstore spec per array per save, which leaks
    # (measured: ~8 KB per save with OCDBT, none without; see pack()).
    self._mgr = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(preservation_policy=policy, create=True),
        item_handlers={"state": ocp.StandardCheckpointHandler(use_ocdbt=False),
                       "meta": ocp.JsonCheckpointHandler()})

  def latest_epoch(self) -> Optional[int]:
    return self._mgr.latest_step()

  def all_epochs(self) -> list[int]:
    return list(self._mgr.all_steps())

  def save(self, epoch: int, state, extra_arrays: dict, meta: dict,
           val_err: Optional[float]) -> None:
    host = {"train": _to_host(state), **extra_arrays}
    metrics = {"val_err": float(val_err), "epoch": int(epoch)} if val_err is not None else None
    meta = {**meta, "format": FORMAT, "layout": layout(host)}
    self._mgr.save(epoch, args=ocp.args.Composite(state=ocp.args.StandardSave(pack(host)),
                                                  meta=ocp.args.JsonSave(meta)),
                   metrics=metrics, force=True)

  def read_meta(self, epoch: int) -> dict:
    try:
      r = self._mgr.restore(epoch, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
      meta = r.meta
    except Exception as e:  # orbax raises several types for missing/corrupt files
      raise SganError(f"Checkpoint {self.directory}/{epoch} is unreadable ({type(e).__name__}: "
                      f"{e}). Delete that folder to fall back to an earlier checkpoint, or "
                      "start in a new --workdir.") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
      raise SganError(f"{self.directory}/{epoch} is not an sgan_jax checkpoint (format "
                      f"{meta.get('format') if isinstance(meta, dict) else None!r}, expected "
                      f"{FORMAT!r}). Use a different --workdir for this run.")
    return meta

  def restore(self, epoch: int, template_state, extra_template: dict, sharding) -> tuple:
    """Restores onto ``sharding`` (any device count) using a freshly built template."""
    host = {"train": _to_host(template_state), **extra_template}
    saved, want = self.read_meta(epoch).get("layout"), layout(host)
    if saved != want:
      bad = next((f"{a[0]}: {a[1]}{tuple(a[2])} there vs {b[1]}{tuple(b[2])} here"
                  for a, b in zip(saved or [], want) if a != b),
                 f"{len(saved or [])} arrays there vs {len(want)} here")
      raise SganError(
          f"Checkpoint {self.directory}/{epoch} does not match this run's model ({bad}). It "
          "was written by a different model or sgan_jax version; use a different --workdir "
          "or --fresh.")
    try:
      r = self._mgr.restore(epoch, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(packed_shapes(host))))
    except Exception as e:
      raise SganError(
          f"Checkpoint {self.directory}/{epoch} does not match this run's model "
          f"({type(e).__name__}: {str(e)[:500]}). It was written by a different model or is "
          "truncated; use a different --workdir or --fresh.") from e
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
    if later and jax.process_index() == 0:
      dest = self.directory + ".abandoned"
      os.makedirs(dest, exist_ok=True)
      for e in later:
        n = 1
        while os.path.exists(os.path.join(dest, f"{e}.{n}")):
          n += 1
        os.rename(os.path.join(self.directory, str(e)), os.path.join(dest, f"{e}.{n}"))
    if jax.process_count() > 1:  # the others must not reload before the move
      multihost_utils.sync_global_devices(f"sgan_jax discard {self.directory} {epoch}")
    self._mgr.reload()
    return later

  def wait(self) -> None:
    self._mgr.wait_until_finished()

  def close(self) -> None:
    self._mgr.wait_until_finished()
    self._mgr.close()


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


def open_run(workdir: str, mode: str, cfg: Config, fingerprint: str, fresh: bool,
             log) -> tuple[Checkpointer, Optional[dict]]:
  """The checkpoints of ``<workdir>/checkpoints_<mode>`` and the latest one's meta to resume
  from (None: start fresh). Refuses, changing nothing, a folder holding another run's
  checkpoints (another config, mode or data); ``fresh`` moves them aside first."""
  cdir = os.path.join(workdir, f"checkpoints_{mode}")
  if fresh and jax.process_index() == 0 and os.path.isdir(cdir) and os.listdir(cdir):
    log(f"[{mode}] --fresh: moved existing checkpoints to {move_aside(cdir)}")
  if fresh and jax.process_count() > 1:  # the others wait until the folder is moved
    multihost_utils.sync_global_devices(f"sgan_jax fresh {cdir}")
  ckpt = Checkpointer(cdir, cfg.keep_checkpoints)
  latest = ckpt.latest_epoch()
  if latest is None:
    return ckpt, None
  meta = ckpt.read_meta(latest)
  diff = config_differences(meta.get("config", {}), cfg.to_dict())
  if meta.get("mode") != mode or diff:
    ckpt.close()
    what = ", ".join(f"{k}: {a!r} there vs {b!r} now" for k, (a, b) in diff.items())
    raise SganError(
        f"{cdir} holds checkpoints of a different run ({what or 'mode ' + str(meta.get('mode'))}). "
        "Nothing was changed. Use another --workdir, or pass --fresh to move them aside "
        "(they are kept, renamed to .old-N).")
  if meta.get("data_fingerprint") != fingerprint:
    ckpt.close()
    raise SganError(f"{cdir} was written for different data (fingerprint "
                    f"{meta.get('data_fingerprint')} vs {fingerprint}: another dataset, "
                    "labeled subset or validation split). Use another --workdir or --fresh.")
  return ckpt, meta


def move_aside(directory: str) -> str:
  """Renames a checkpoint folder to ``<dir>.old-<n>`` (never deletes); returns the new path."""
  n = 1
  while os.path.exists(f"{directory}.old-{n}"):
    n += 1
  os.rename(directory, f"{directory}.old-{n}")
  return f"{directory}.old-{n}"
