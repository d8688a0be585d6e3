"""Host-heap settings that keep a long run's resident memory flat.

Measured (``results/soak/``, README "Resident memory over a one-hour run"): MNIST
training that saves a checkpoint every epoch grew from 1.65 to 1.89 GB over its first
50 minutes under glibc's default ``malloc``, while the same run without checkpoints, and
the same run with both thresholds fixed at 128 KiB, stayed flat (the latter for 65
minutes, 4-5% slower). glibc starts both its mmap and its trim threshold at 128 KiB and
raises them (up to 32 and 64 MiB) whenever a large mmapped block is freed; after that,
each checkpoint's multi-megabyte host buffers come from per-thread heaps, which are
not handed back to the system during the run. Fixing the mmap threshold alone was not enough (with a
64 MiB trim threshold the run grew like the default), nor was a 16 MiB mmap threshold.

:func:`fix_mmap_threshold` sets both through ``mallopt``. It is a process-wide setting,
so :func:`sgan_jax.train.train` applies it only for runs that write checkpoints. A
``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` in the environment (glibc's own
knobs, also as ``GLIBC_TUNABLES``) takes precedence, and
on other C libraries (musl, macOS) nothing is changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers (malloc.h)
DEFAULT_THRESHOLD = 128 * 1024  # glibc's starting value, held there
# Fixing the mmap threshold freezes the trim threshold wherever it stands (often already
# raised by then); the measured setting holds it at its starting value too.
TRIM_THRESHOLD = 128 * 1024


def _user_set() -> bool:
  """Whether the user tuned these thresholds through glibc's own environment knobs."""
  tunables = os.environ.get("GLIBC_TUNABLES", "")
  return ("MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ
          or "malloc.mmap_threshold" in tunables or "malloc.trim_threshold" in tunables)


def fix_mmap_threshold(nbytes: int = DEFAULT_THRESHOLD, trim: int = TRIM_THRESHOLD) -> bool:
  """Sets glibc's mmap threshold to ``nbytes`` and its trim threshold to ``trim`` (both
  stop adapting).

  Returns True if the setting was applied, False where it does not apply: not glibc,
  or the user set ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or either
  through ``GLIBC_TUNABLES`` themselves.
  """
  if not sys.platform.startswith("linux") or _user_set():
    return False
  try:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    mallopt = libc.mallopt
    libc.gnu_get_libc_version  # only glibc has it; musl's mallopt ignores the parameter
  except (OSError, AttributeError):
    return False
  mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
  return mallopt(M_MMAP_THRESHOLD, int(nbytes)) == 1 and mallopt(M_TRIM_THRESHOLD, int(trim)) == 1
