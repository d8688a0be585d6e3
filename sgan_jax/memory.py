"""Host-heap settings that keep a long run's resident memory flat without slowing it.

Measured (``results/soak/``, docs/reliability.md "Resident memory"): MNIST
training that saves a checkpoint every epoch grew from 1.65 to 1.89 GB over its first
50 minutes under glibc's default ``malloc``, while the same run without checkpoints, and
the same run with both thresholds fixed at 128 KiB, stayed flat. glibc starts both its
mmap and its trim threshold at 128 KiB and raises them (up to 32 and 64 MiB) whenever a
large mmapped block is freed; after that, each checkpoint's multi-megabyte host buffers
come from per-thread heaps, which are not handed back to the system during the run.

Fixing the thresholds at 128 KiB for the whole run cost training speed (measured: 12-17%
fewer steps/s on the MNIST step, with ~3,200 minor page
faults per iteration against none: large temporary buffers are mmapped and unmapped on
every use, and freed heap tops go back to the system). :func:`while_saving` scopes it
instead: 128 KiB only while a checkpoint is written (the save waits for its writes),
glibc's adaptive ceiling (32 / 64 MiB) while training. A ``MALLOC_MMAP_THRESHOLD_`` or
``MALLOC_TRIM_THRESHOLD_`` in the environment (glibc's own knobs, also as
``GLIBC_TUNABLES``) takes precedence, and on other C libraries (musl, macOS) nothing is
changed.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
from typing import Iterator

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers (malloc.h)
DEFAULT_THRESHOLD = 128 * 1024  # glibc's starting value, held there
# Fixing the mmap threshold freezes the trim threshold wherever it stands (often already
# raised by then); the measured setting holds it at its starting value too.
TRIM_THRESHOLD = 128 * 1024
# glibc's adaptive ceiling on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX; the trim threshold
# follows at twice the mmap threshold): where a long run's default heap settles anyway.
COMPUTE_THRESHOLD, COMPUTE_TRIM = 32 << 20, 64 << 20


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


@contextlib.contextmanager
def while_saving() -> Iterator[bool]:
  """Inside: 128 KiB thresholds, so what a checkpoint allocates is mmapped and returned to
  the system when freed (wait for asynchronous writes inside the block). On leaving:
  glibc's adaptive ceiling, so training reuses heap memory. Yields whether it applied."""
  applied = fix_mmap_threshold()
  try:
    yield applied
  finally:
    if applied:
      fix_mmap_threshold(COMPUTE_THRESHOLD, COMPUTE_TRIM)
