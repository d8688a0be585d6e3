"""Test setup: fake 8 CPU devices before JAX initialises; cheap compiles for the fast set."""

import os


def pytest_configure(config):
  flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
  # The default (fast) set is dominated by compiling many tiny programs. LLVM's backend
  # optimisation level 0 halves compile time; the XLA program is the same, only rounding
  # details (e.g. fused multiply-adds) differ. The slow set (real data) keeps the default.
  if "slow" not in (config.option.markexpr or "").replace("not slow", ""):
    flags += " --xla_backend_optimization_level=0"
  os.environ["XLA_FLAGS"] = flags.strip()
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  # One compilation cache for the run, shared by the xdist workers and the command-line
  # subprocesses: many tests compile the same tiny programs. Set by the controller before
  # the workers start (they inherit it); a fresh folder per run, so no stale entries.
  if "JAX_COMPILATION_CACHE_DIR" not in os.environ and not hasattr(config, "workerinput"):
    import tempfile
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="sgan_jax_tests_xla_")
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
  import jax  # after XLA_FLAGS: JAX reads them when its backend starts
  jax.config.update("jax_threefry_partitionable", True)
