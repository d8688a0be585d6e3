"""Data parallelism: the device mesh, placing values on it, reading them back, and joining
a multi-process run.

One run trains on a 1-D ``("data",)`` mesh: parameters and resident data are replicated,
every stream's batch is split across the devices, and XLA inserts the gradient
all-reduce. With several processes (:func:`initialize`), the mesh spans all processes'
devices; each process assembles its own devices' shards (:func:`place`), and the first
process writes the run files (orbax coordinates the checkpoints). Every process must see
the same workdir and data; ``num_devices`` must be 0 (all).
"""

from __future__ import annotations

from typing import Optional

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding

from sgan_jax.errors import SganError


def initialize(coordinator: Optional[str] = None, num_processes: Optional[int] = None,
               process_id: Optional[int] = None) -> None:
  """Joins this process to a multi-process run (before any other JAX call).

  With no arguments JAX detects the cluster (Cloud TPU, SLURM, Open MPI); on a plain
  set of machines pass the coordinator ``host:port`` (process 0's address), the number of
  processes and this process's id. On CPU, collectives between processes use gloo.
  """
  given = [a is not None for a in (coordinator, num_processes, process_id)]
  if any(given) and not all(given):
    raise SganError("Multi-process setup needs all of coordinator (host:port), num_processes "
                    "and process_id, or none of them (to let JAX detect the cluster).")
  if num_processes is not None and not 0 <= process_id < num_processes:
    raise SganError(f"process_id must be in [0, {num_processes}), got {process_id}.")
  try:
    jax.distributed.initialize(coordinator, num_processes, process_id)
  except Exception as e:  # JAX raises RuntimeError/ValueError with its own text
    raise SganError(f"Could not join the multi-process run ({type(e).__name__}: {e}). Check "
                    "that every process uses the same coordinator address, that process 0 "
                    "is reachable there, and that this is called before any other JAX "
                    "call.") from e


def is_primary() -> bool:
  """Whether this process writes the run files (the first of several, or the only one)."""
  return jax.process_index() == 0


def make_mesh(num_devices: int = 0, batch_size: Optional[int] = None) -> Mesh:
  """A 1-D ``("data",)`` mesh over the first ``num_devices`` devices (0 = all).

  Every stream's batch is split across this axis; parameters are replicated.
  """
  devices = jax.devices()
  n = num_devices or len(devices)
  if jax.process_count() > 1 and n != len(devices):
    raise SganError(f"num_devices={num_devices} with {jax.process_count()} processes: a "
                    f"multi-process run uses all {len(devices)} devices; set num_devices=0.")
  if n > len(devices):
    raise SganError(f"num_devices={n} but only {len(devices)} {devices[0].platform} device(s) "
                    "are visible; lower num_devices (0 uses all).")
  if batch_size is not None and batch_size % n:
    raise SganError(f"batch_size={batch_size} does not divide across {n} devices; use a "
                    f"multiple of {n} (e.g. {max(n, batch_size // n * n)}) or set num_devices.")
  return Mesh(np.asarray(devices[:n]), ("data",))


def place(tree, sharding: NamedSharding):
  """Puts host or single-device values, the same on every process, onto ``sharding``.

  One process: ``jax.device_put``. Several (after :func:`initialize`): each process builds
  only its own devices' shards from its copy (``jax.make_array_from_callback``), and
  together they form one global array; this is how the replicated state, the resident
  data and every batch's indices are assembled.
  """
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)

  def one(x):
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      return jax.random.wrap_key_data(one(jax.random.key_data(x)), impl=jax.random.key_impl(x))
    a = np.asarray(x)
    return jax.make_array_from_callback(a.shape, sharding, lambda i: a[i])

  return jax.tree.map(one, tree)


def to_host(x) -> np.ndarray:
  """A replicated (possibly multi-process) array as a host NumPy array."""
  if isinstance(x, jax.Array) and not x.is_fully_addressable:
    if not x.is_fully_replicated:
      raise ValueError(f"to_host needs a replicated array, got sharding {x.sharding}")
    return np.asarray(x.addressable_data(0))  # every shard is the whole value
  return np.asarray(x)
