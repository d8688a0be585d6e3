"""The glibc heap setting that keeps checkpointing runs' resident memory flat."""

import os
import subprocess
import sys

import pytest

from sgan_jax import memory, train
from tests.helpers import splits_for, tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Frees a 30 MiB block (glibc then raises its mmap threshold to 30 MiB), allocates 20 MiB
# and prints whether that block was mmapped (mallinfo2().hblks grew); "saving" does so
# inside memory.while_saving() and after it.
PROBE = """
import ctypes, sys
sys.path.insert(0, {root!r})
from sgan_jax import memory
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
class Info(ctypes.Structure):
  _fields_ = [(n, ctypes.c_size_t) for n in
              "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc.mallinfo2.restype = Info
def mmapped(n):  # whether an n-byte block comes from mmap (mallinfo2().hblks grows)
  before = libc.mallinfo2().hblks
  block = libc.malloc(n)
  grew = libc.mallinfo2().hblks - before
  libc.free(block)
  return grew
if sys.argv[1] == "saving":  # inside while_saving, then after it
  libc.free(libc.malloc(30 << 20))
  with memory.while_saving() as applied:
    inside = mmapped(20 << 20)
  print(applied, inside, mmapped(20 << 20), mmapped(40 << 20))
else:
  applied = memory.fix_mmap_threshold() if sys.argv[1] == "fix" else None
  libc.free(libc.malloc(30 << 20))
  print(applied, mmapped(20 << 20))
"""


# The probes count mmapped blocks with mallinfo2; the adaptive limit (32 MiB) is 64-bit's.
glibc_64 = pytest.mark.skipif(not sys.platform.startswith("linux") or sys.maxsize < 2**32,
                              reason="64-bit glibc only (the adaptive threshold's limit differs)")


def _require_mallinfo2():
  try:
    import ctypes
    ctypes.CDLL("libc.so.6").mallinfo2
  except (OSError, AttributeError):
    pytest.skip("needs glibc >= 2.33 (mallinfo2)")


def _probe(tmp_path, arg, **env):
  script = tmp_path / "probe.py"
  script.write_text(PROBE.format(root=ROOT))
  mine = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")
  env = {k: v for k, v in os.environ.items() if k not in mine} | env
  out = subprocess.run([sys.executable, str(script), arg], env=env, capture_output=True,
                       text=True, check=True)
  return out.stdout.split()


@glibc_64
def test_fixed_threshold_keeps_large_blocks_on_mmap(tmp_path):
  _require_mallinfo2()
  assert memory.DEFAULT_THRESHOLD < 20 << 20
  # Default glibc: after a 30 MiB free the threshold adapts and 20 MiB come from the heap.
  assert _probe(tmp_path, "default") == ["None", "0"]
  # Fixed: it stays on mmap, so freeing it returns the memory to the system.
  assert _probe(tmp_path, "fix") == ["True", "1"]
  # The user's own MALLOC_MMAP_THRESHOLD_ wins: nothing is changed by the library.
  assert _probe(tmp_path, "fix", MALLOC_MMAP_THRESHOLD_=str(32 << 20)) == ["False", "0"]
  assert _probe(tmp_path, "fix", GLIBC_TUNABLES="glibc.malloc.trim_threshold=67108864")[0] == "False"


@glibc_64
def test_small_thresholds_only_while_saving(tmp_path):
  _require_mallinfo2()
  assert memory.COMPUTE_THRESHOLD == 32 << 20
  # Inside the block a 20 MiB buffer is mmapped (returned to the system when freed); after
  # it, training-sized buffers come from the heap again and only blocks over 32 MiB are mmapped.
  assert _probe(tmp_path, "saving") == ["True", "1", "0", "1"]
  # The user's own setting wins: nothing changes, inside or after.
  assert _probe(tmp_path, "saving", MALLOC_MMAP_THRESHOLD_=str(32 << 20)) == ["False", "0", "0", "1"]


def test_applied_around_each_checkpoint_save_only(tmp_path, monkeypatch):
  from sgan_jax import checkpoint as ckpt_lib
  events = []
  monkeypatch.setattr(memory, "fix_mmap_threshold", lambda *a: events.append(("thresholds", a)) or True)
  save, wait = ckpt_lib.Checkpointer.save, ckpt_lib.Checkpointer.wait
  monkeypatch.setattr(ckpt_lib.Checkpointer, "save",
                      lambda self, *a, **k: events.append("save") or save(self, *a, **k))
  monkeypatch.setattr(ckpt_lib.Checkpointer, "wait",
                      lambda self: events.append("wait") or wait(self))
  cfg = tiny_config(epochs=2, baseline=False)
  splits = splits_for(cfg)
  train.train(cfg, splits, "sgan", None, lambda s: None)
  assert events == []  # no workdir: no checkpoints, the heap is left alone
  train.train(cfg, splits, "sgan", str(tmp_path / "run"), lambda s: None)
  # Each save runs, and its writes finish, between the small thresholds and the large.
  per_save = [("thresholds", ()), "save", "wait",
              ("thresholds", (memory.COMPUTE_THRESHOLD, memory.COMPUTE_TRIM))]
  assert events == per_save * 2
