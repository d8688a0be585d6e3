"""Per-step checksum manifests: what proves a checkpoint's bytes are the ones written.

orbax (0.12) checks no data bytes (zarr v3 shards carry a CRC of their index only, and
these checkpoints are zarr v2), so once a step is finalised a manifest with the size and
SHA-256 of each of its files is written into it, atomically (:func:`seal`);
:func:`manifest_problem` says which file no longer matches.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Optional

# The per-step manifest: JSON {"format", "files": {relative path: [bytes, sha256 hex]}},
# then a line "sha256:<hex of the JSON>".
MANIFEST = "sgan_manifest.json"
INTEGRITY = "sha256-manifest/1"  # meta["integrity"]: this step's manifest must exist


def _sha256(path: str) -> str:
  with open(path, "rb") as f:
    return hashlib.file_digest(f, "sha256").hexdigest()


def step_files(step_dir: str) -> dict[str, list]:
  """``{relative path: [bytes, sha256]}`` of every file of a step but the manifest."""
  out = {}
  for root, _, files in os.walk(step_dir):
    for f in files:
      path = os.path.join(root, f)
      rel = os.path.relpath(path, step_dir)
      if not rel.startswith(MANIFEST):  # the manifest and its temporary file
        out[rel] = [os.path.getsize(path), _sha256(path)]
  return dict(sorted(out.items()))


def seal(step_dir: str) -> None:
  """Writes a finalised step's manifest: a temporary file, flushed to disk, renamed."""
  files = step_files(step_dir)  # before the temporary file exists
  body = json.dumps({"format": INTEGRITY, "files": files}, indent=0).encode()
  tmp = os.path.join(step_dir, MANIFEST + ".tmp")
  with open(tmp, "wb") as f:
    # The manifest's own checksum last: any changed byte of it is caught as well (a
    # whitespace change would otherwise still parse to the same manifest).
    f.write(body + b"\nsha256:" + hashlib.sha256(body).hexdigest().encode() + b"\n")
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, os.path.join(step_dir, MANIFEST))
  fd = os.open(step_dir, os.O_RDONLY)
  try:  # the rename itself reaches the disk
    os.fsync(fd)
  finally:
    os.close(fd)


def manifest_problem(step_dir: str) -> Optional[str]:
  """Why a sealed step's files do not match its manifest (None: they all match).
  Raises FileNotFoundError when the step has no manifest."""
  with open(os.path.join(step_dir, MANIFEST), "rb") as f:
    raw = f.read()
  body, _, digest = raw.rstrip(b"\n").rpartition(b"\nsha256:")
  if hashlib.sha256(body).hexdigest().encode() != digest:
    return f"{MANIFEST} does not match its own checksum"
  try:
    files = json.loads(body)["files"]
  except (ValueError, KeyError, TypeError, UnicodeDecodeError):
    return f"{MANIFEST} is unreadable"
  for rel, (size, digest) in files.items():
    path = os.path.join(step_dir, rel)
    if not os.path.isfile(path):
      return f"{rel} is missing"
    if os.path.getsize(path) != size:
      return f"{rel} has {os.path.getsize(path)} bytes where {size} were written"
    if _sha256(path) != digest:
      return f"{rel} does not match its SHA-256 checksum"
  return None
