"""Where a number was measured: the host CPU and the devices, recorded beside results.

Runs write :func:`describe` into ``data.json`` and ``summary.json``; the benchmarks put
:func:`host_cpu` in their rows, so a speed and its hardware travel together.
"""

from __future__ import annotations

import platform

import jax


def host_cpu(cpuinfo_path: str = "/proc/cpuinfo") -> str:
  """The host CPU as one line: model name, x86 family/model, cores, widest vector ISA.

  ``platform.processor()`` is empty on Linux, and results from two CPUs that both call
  themselves "AMD EPYC" differ 2x (AVX2 vs AVX-512), so the rows say which.
  """
  try:
    with open(cpuinfo_path) as f:
      text = f.read()
  except OSError:
    return platform.processor() or platform.machine()
  first = {}
  for line in text.splitlines():
    k, _, v = line.partition(":")
    first.setdefault(k.strip(), v.strip())
  flags = set(first.get("flags", "").split())
  isa = next((i for i in ("amx_tile", "avx512f", "avx2", "sse4_2") if i in flags), "")
  cores = sum(1 for line in text.splitlines() if line.startswith("processor"))
  return (f"{first.get('model name', platform.machine())} (family {first.get('cpu family', '?')} "
          f"model {first.get('model', '?')}), {cores} cores" + (f", {isa}" if isa else ""))


def describe() -> dict:
  """The machine a run trains on: host CPU, accelerator kind and count, JAX and Python."""
  d = jax.devices()[0]
  return {"cpu": host_cpu(), "platform": d.platform, "device_kind": d.device_kind,
          "devices": jax.device_count(), "processes": jax.process_count(),
          "jax": jax.__version__, "python": platform.python_version()}


def short(machine: dict | None) -> str:
  """One line for a table cell: the accelerator where there is one, else the CPU."""
  if not machine:
    return "not recorded"
  if machine.get("platform") == "cpu":
    return machine["cpu"]
  return f"{machine['devices']} x {machine['device_kind']}"
