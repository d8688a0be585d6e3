"""Several processes (hosts) training one model: ``jax.distributed`` setup.

Every process runs the same program on the same config. :func:`sgan_jax.train.train`
then builds one global ``("data",)`` mesh over all processes' devices; each process
assembles its own devices' shards of the replicated state, the resident data and every
batch's indices (:func:`sgan_jax.train.place`), gradients are averaged over the global
batch by XLA's all-reduce, and the first process writes the run files (orbax coordinates
the checkpoints). Results match one process with the same total device count up to
floating-point reassociation. Every process must see the same workdir (a shared
filesystem, as orbax requires) and the same data; ``num_devices`` must be 0 (all).
"""

from __future__ import annotations

from typing import Optional

import jax

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
