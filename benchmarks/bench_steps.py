"""Training throughput: steps/s, examples/s, compile time, achieved FLOP/s vs measured peak.

  python benchmarks/bench_steps.py --quick            # < 1 minute on 2 CPU cores
  python benchmarks/bench_steps.py --out benchmarks/results/cpu.jsonl

Each configuration builds the real training chunk (``lax.scan`` over ``--iters``
iterations, donated state, resident data), times its first call (compile + run) apart
from steady-state calls, and takes FLOPs per iteration from XLA's cost analysis of the
compiled chunk. The device's peak is measured in the same run with a large float32
matmul. Output: one JSON object per configuration (JSON lines) and a markdown table.
"""

import argparse
import json
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from sgan_jax import data, train
from sgan_jax.config import Config


def measure_peak_flops(n: int = 2048, reps: int = 10, dtype=jnp.float32) -> float:
  a = jnp.ones((n, n), dtype)
  f = jax.jit(lambda x, y: x @ y)
  f(a, a).block_until_ready()
  t = time.perf_counter()
  for _ in range(reps):
    c = f(a, a)
  c.block_until_ready()
  return 2 * n ** 3 * reps / (time.perf_counter() - t)


def synthetic_splits(shape, n_unl, label_rate, num_classes=10, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.random((n_unl, *shape), dtype=np.float32)
  y = np.arange(n_unl) % num_classes
  ds = data.Dataset(x, y.astype(np.int32), x[:100], y[:100].astype(np.int32), num_classes)
  return data.make_splits(ds, labels_per_class=None, label_rate=label_rate, val_size=0,
                          data_seed=seed)


def bench_one(model: str, label_rate: float, batch: int, iters: int, reps: int,
              dtype: str, n_unl: int) -> dict:
  shape = (28, 28, 1) if model == "mlp" else (32, 32, 3)
  cfg = Config(model=model, labels_per_class=None, label_rate=label_rate, batch_size=batch,
               compute_dtype=dtype, pixel_range="0,1", num_devices=0)
  sp = synthetic_splits(shape, n_unl, label_rate)
  m = train.build_models(cfg, shape, 10, iters)
  mesh = train.make_mesh(0, batch)
  rep = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  state = jax.device_put(train.init_state(m, jax.random.key(0), jnp.asarray(sp.x_unl[:500])), rep)
  dd = jax.device_put({"x_lab": sp.x_lab, "y_lab": sp.y_lab, "x_unl": sp.x_unl}, rep)
  chunk = train.make_train_chunk(m, "sgan", mesh if mesh.size > 1 else None)
  idx = [train.epoch_indices(0, e, len(sp.x_lab), len(sp.x_unl), iters, batch)
         for e in range(reps + 1)]
  # FLOPs of one iteration from its own compiled program: XLA's cost analysis counts a
  # scan (while-loop) body once, not once per iteration.
  b = lambda a: a[:batch]
  one = jax.jit(lambda st, xl, yl, xu, xu2: train.train_iteration(m, st, xl, yl, xu, xu2))
  cost = one.lower(state, b(dd["x_unl"]), jnp.zeros((batch,), jnp.int32), b(dd["x_unl"]),
                   b(dd["x_unl"])).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops_per_step = float(cost.get("flops", float("nan")))
  t0 = time.perf_counter()
  compiled = chunk.lower(state, dd, idx[0]).compile()
  compile_s = time.perf_counter() - t0
  state, mets = compiled(state, dd, idx[0])  # warm-up run, not timed
  jax.block_until_ready(mets)
  t0 = time.perf_counter()
  for r in range(reps):
    state, mets = compiled(state, dd, idx[r + 1])
  jax.block_until_ready(mets)
  dt = time.perf_counter() - t0
  sps = reps * iters / dt
  return {"model": model, "label_rate": label_rate, "num_labeled": int(len(sp.y_lab)),
          "global_batch": batch, "streams": 3, "examples_per_step": 4 * batch,
          "steps_per_sec": round(sps, 2), "examples_per_sec": round(sps * 4 * batch, 1),
          "compile_s": round(compile_s, 2), "flops_per_step": flops_per_step,
          "achieved_flops": sps * flops_per_step, "dtype": dtype}


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--quick", action="store_true", help="MLP pair only, 2 label rates, short timing")
  p.add_argument("--models", default="mlp,conv")
  p.add_argument("--label_rates", default="0.001,0.01,0.1,1.0")
  p.add_argument("--batches", default="100,500")
  p.add_argument("--dtype", default="float32", help="compute dtype: float32 or bfloat16")
  p.add_argument("--iters", type=int, default=50, help="iterations per jitted chunk")
  p.add_argument("--reps", type=int, default=5, help="timed chunks after the compile call")
  p.add_argument("--out", default=None, help="JSON-lines output path (a .md table is written beside it)")
  a = p.parse_args(argv)
  if a.quick:
    a.models, a.label_rates, a.batches, a.iters, a.reps = "mlp", "0.001,1.0", "100", 30, 3
  peak = measure_peak_flops()
  meta = {"devices": jax.device_count(), "platform": jax.devices()[0].platform,
          "device_kind": jax.devices()[0].device_kind, "jax": jax.__version__,
          "cpu": platform.processor() or platform.machine(), "peak_flops": peak}
  rows = []
  for model in a.models.split(","):
    for batch in (int(b) for b in a.batches.split(",")):
      for rate in (float(r) for r in a.label_rates.split(",")):
        # A conv iteration costs ~100x an MLP one on CPU: fewer iterations per chunk.
        iters = a.iters if model == "mlp" or meta["platform"] != "cpu" else max(2, a.iters // 10)
        r = {**bench_one(model, rate, batch, iters, a.reps, a.dtype, n_unl=10000), **meta}
        r["fraction_of_peak"] = r["achieved_flops"] / peak
        rows.append(r)
        print(json.dumps(r), flush=True)
  table = ["| model | label rate | labeled | batch/stream | dtype | steps/s | examples/s | compile s | GFLOP/step | achieved GFLOP/s | % of peak |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    table.append(f"| {r['model']} | {r['label_rate']:g} | {r['num_labeled']} | {r['global_batch']} | "
                 f"{r['dtype']} | {r['steps_per_sec']:.1f} | {r['examples_per_sec']:.0f} | "
                 f"{r['compile_s']:.1f} | {r['flops_per_step'] / 1e9:.2f} | "
                 f"{r['achieved_flops'] / 1e9:.1f} | {100 * r['fraction_of_peak']:.0f}% |")
  spread = ["", "| model | batch/stream | dtype | steps/s spread across label rates (max-min)/mean |",
            "|---|---|---|---|"]
  for key in sorted({(r["model"], r["global_batch"], r["dtype"]) for r in rows}):
    sps = [r["steps_per_sec"] for r in rows if (r["model"], r["global_batch"], r["dtype"]) == key]
    if len(sps) > 1:
      spread.append(f"| {key[0]} | {key[1]} | {key[2]} | {100 * (max(sps) - min(sps)) / np.mean(sps):.1f}% |")
  md = (f"{meta['devices']} x {meta['platform']} ({meta['device_kind']}), JAX {meta['jax']}, "
        f"measured f32 matmul peak {peak / 1e9:.1f} GFLOP/s\n\n" + "\n".join(table + spread))
  print("\n" + md)
  if a.out:
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w") as f:
      f.writelines(json.dumps(r) + "\n" for r in rows)
    with open(os.path.splitext(a.out)[0] + ".md", "w") as f:
      f.write(md + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
