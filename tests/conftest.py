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
  import jax  # after XLA_FLAGS: JAX reads them when its backend starts
  jax.config.update("jax_threefry_partitionable", True)
