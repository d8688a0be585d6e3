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
from bench_steps import host_cpu, synthetic_splits  # noqa: E402


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
  sp = synthetic_splits(shape, 10000, 0.01)
  m = state_lib.build_models(cfg, shape, 10, a.iters)
  S = a.replicas
  init = lambda s: state_lib.init_state(m, jax.random.key(s), jnp.asarray(sp.x_unl[:500]))
  idx = lambda s, e: data.epoch_indices(s, e, len(sp.x_lab), len(sp.x_unl), a.iters, a.batch)
  dd = {"x_lab": jnp.asarray(sp.x_lab), "y_lab": jnp.asarray(sp.y_lab), "x_unl": jnp.asarray(sp.x_unl)}

  # sequential: one replica at a time through the single-replica chunk
  chunk = step.make_train_chunk(m)
  states = [init(s) for s in range(S)]
  t0 = time.perf_counter()
  states[0], met = chunk(states[0], dd, idx(0, 0))
  jax.block_until_ready(met)
  seq_compile = time.perf_counter() - t0
  t0 = time.perf_counter()
  for e in range(1, a.reps + 1):
    for s in range(S):
      states[s], met = chunk(states[s], dd, idx(s, e))
  jax.block_until_ready(met)
  seq = S * a.reps * a.iters / (time.perf_counter() - t0)

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
  v_compile = time.perf_counter() - t0
  t0 = time.perf_counter()
  for e in range(1, a.reps + 1):
    vst, met = vchunk(vst, vdd, vidx(e))
  jax.block_until_ready(met)
  vm = S * a.reps * a.iters / (time.perf_counter() - t0)
  r = {"model": a.model, "replicas": S, "batch": a.batch, "platform": jax.devices()[0].platform,
       "device_kind": jax.devices()[0].device_kind, "cpu": host_cpu(), "jax": jax.__version__,
       "sequential_replica_it_per_s": round(seq, 2), "vmap_replica_it_per_s": round(vm, 2),
       "speedup": round(vm / seq, 3), "compile_s_sequential": round(seq_compile, 2),
       "compile_s_vmap": round(v_compile, 2)}
  print(json.dumps(r))
  print(f"{S} replicas, {a.model}, batch {a.batch}: sequential {seq:.1f} vs vmap {vm:.1f} "
        f"replica-iterations/s ({vm / seq:.2f}x)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
