"""Throughput of S replicas in one vmapped program vs S sequential runs.

  python benchmarks/bench_seeds.py --replicas 8 --model mlp --batch 100

Both use the real training chunks (``lax.scan`` over ``--iters`` iterations) on synthetic
data of the model's shape; compile time is measured apart. Reports replica-iterations
per second for each and their ratio (JSON line + a one-line summary).
"""

import argparse
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from sgan_jax import data, step
from sgan_jax import state as state_lib
from sgan_jax.config import Config

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from bench_steps import synthetic_splits  # noqa: E402
from sgan_jax.machine import host_cpu  # noqa: E402


def measure(cfg: Config, shape: tuple, replicas: int, iters: int, reps: int,
            n_unl: int = 10000, sequential: bool = True) -> dict:
  """Replica-iterations/s of ``replicas`` runs of ``cfg``: in sequence and vmapped.

  ``shape``: one example's shape ``(H, W, C)``; the data is synthetic, ``n_unl`` examples
  with 1% labeled. Each side times ``reps`` chunks of ``iters`` iterations after a first,
  compiling chunk. ``sequential=False`` times the vmapped program alone.
  """
  sp = synthetic_splits(shape, n_unl, 0.01)
  m = state_lib.build_models(cfg, shape, 10, iters)
  S = replicas
  init = lambda s: state_lib.init_state(m, jax.random.key(s), jnp.asarray(sp.x_unl[:500]))
  idx = lambda s, e: data.epoch_indices(s, e, len(sp.x_lab), len(sp.x_unl), iters, cfg.batch_size)
  dd = {"x_lab": jnp.asarray(sp.x_lab), "y_lab": jnp.asarray(sp.y_lab), "x_unl": jnp.asarray(sp.x_unl)}
  r = {"model": cfg.model, "replicas": S, "batch": cfg.batch_size, "dtype": cfg.compute_dtype,
       "iters_per_dispatch": iters, "platform": jax.devices()[0].platform,
       "device_kind": jax.devices()[0].device_kind, "cpu": host_cpu(), "jax": jax.__version__}

  if sequential:  # one replica at a time through the single-replica chunk
    chunk = step.make_train_chunk(m)
    states = [init(s) for s in range(S)]
    t0 = time.perf_counter()
    states[0], met = chunk(states[0], dd, idx(0, 0))
    jax.block_until_ready(met)
    r["compile_s_sequential"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    for e in range(1, reps + 1):
      for s in range(S):
        states[s], met = chunk(states[s], dd, idx(s, e))
    jax.block_until_ready(met)
    r["sequential_replica_it_per_s"] = round(S * reps * iters / (time.perf_counter() - t0), 2)

  # vmapped: all replicas in one program
  vchunk = step.make_seeds_chunk(m)
  vst = jax.tree.map(lambda *xs: jnp.stack(xs), *[init(s) for s in range(S)])
  # One resident copy of the images; each replica indexes its labeled and unlabeled rows.
  n_u, n_l = len(sp.x_unl), len(sp.x_lab)
  rows = lambda start, n: jnp.stack([jnp.arange(start, start + n, dtype=jnp.int32)] * S)
  vdd = {"x": jnp.concatenate([dd["x_unl"], dd["x_lab"]]), "y_lab": jnp.stack([dd["y_lab"]] * S),
         "lab": rows(n_u, n_l), "unl": rows(0, n_u)}
  vidx = lambda e: {k: np.stack([idx(s, e)[k] for s in range(S)]) for k in ("lab", "unl", "unl2")}
  t0 = time.perf_counter()
  vst, met = vchunk(vst, vdd, vidx(0))
  jax.block_until_ready(met)
  r["compile_s_vmap"] = round(time.perf_counter() - t0, 2)
  t0 = time.perf_counter()
  for e in range(1, reps + 1):
    vst, met = vchunk(vst, vdd, vidx(e))
  jax.block_until_ready(met)
  r["vmap_replica_it_per_s"] = round(S * reps * iters / (time.perf_counter() - t0), 2)
  if sequential:
    r["speedup"] = round(r["vmap_replica_it_per_s"] / r["sequential_replica_it_per_s"], 3)
  return r


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--replicas", type=int, default=8)
  p.add_argument("--model", default="mlp")
  p.add_argument("--batch", type=int, default=100)
  p.add_argument("--iters", type=int, default=30)
  p.add_argument("--reps", type=int, default=3)
  a = p.parse_args(argv)
  if a.model not in ("mlp", "conv"):
    p.error(f"--model takes mlp or conv, got {a.model!r}")
  if min(a.replicas, a.batch, a.iters, a.reps) < 1:
    p.error("--replicas, --batch, --iters and --reps must be >= 1")
  shape = (28, 28, 1) if a.model == "mlp" else (32, 32, 3)
  cfg = Config(model=a.model, labels_per_class=10, batch_size=a.batch, num_devices=1)
  r = measure(cfg, shape, a.replicas, a.iters, a.reps)
  print(json.dumps(r))
  print(f"{a.replicas} replicas, {a.model}, batch {a.batch}: sequential "
        f"{r['sequential_replica_it_per_s']:.1f} vs vmap {r['vmap_replica_it_per_s']:.1f} "
        f"replica-iterations/s ({r['speedup']:.2f}x)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
