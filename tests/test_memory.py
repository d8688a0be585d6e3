"""The glibc heap setting that keeps checkpointing runs' resident memory flat."""

import os
import subprocess
import sys

import pytest

from sgan_jax import memory, train
from tests.helpers import splits_for, tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Frees a 30 MiB block (glibc then raises its mmap threshold to 30 MiB), allocates 20 MiB
# and prints whether that block was mmapped (mallinfo2().hblks grew).
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
applied = memory.fix_mmap_threshold() if sys.argv[1] == "fix" else None
libc.free(libc.malloc(30 << 20))
before = libc.mallinfo2().hblks
block = libc.malloc(20 << 20)
print(applied, libc.mallinfo2().hblks - before)
libc.free(block)
"""


def _probe(tmp_path, arg, **env):
  script = tmp_path / "probe.py"
  script.write_text(PROBE.format(root=ROOT))
  mine = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")
  env = {k: v for k, v in os.environ.items() if k not in mine} | env
  out = subprocess.run([sys.executable, str(script), arg], env=env, capture_output=True,
                       text=True, check=True)
  return out.stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux") or sys.maxsize < 2**32,
                    reason="64-bit glibc only (the adaptive threshold's limit differs)")
def test_fixed_threshold_keeps_large_blocks_on_mmap(tmp_path):
  try:
    import ctypes
    ctypes.CDLL("libc.so.6").mallinfo2
  except (OSError, AttributeError):
    pytest.skip("needs glibc >= 2.33 (mallinfo2)")
  assert memory.DEFAULT_THRESHOLD < 20 << 20
  # Default glibc: after a 30 MiB free the threshold adapts and 20 MiB come from the heap.
  assert _probe(tmp_path, "default") == ["None", "0"]
  # Fixed: it stays on mmap, so freeing it returns the memory to the system.
  assert _probe(tmp_path, "fix") == ["True", "1"]
  # The user's own MALLOC_MMAP_THRESHOLD_ wins: nothing is changed by the library.
  assert _probe(tmp_path, "fix", MALLOC_MMAP_THRESHOLD_=str(32 << 20)) == ["False", "0"]
  assert _probe(tmp_path, "fix", GLIBC_TUNABLES="glibc.malloc.trim_threshold=67108864")[0] == "False"


def test_applied_for_checkpointing_runs_only(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(memory, "fix_mmap_threshold", lambda *a: calls.append(a) or True)
  cfg = tiny_config(epochs=1, baseline=False)
  splits = splits_for(cfg)
  train.train(cfg, splits, "sgan", None, lambda s: None)
  assert calls == []
  train.train(cfg, splits, "sgan", str(tmp_path / "run"), lambda s: None)
  assert calls == [()]
