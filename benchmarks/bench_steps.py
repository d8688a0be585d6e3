"""Training throughput: steps/s, examples/s, compile time, achieved FLOP/s vs measured peak.

  python benchmarks/bench_steps.py --quick            # < 1 minute on 2 CPU cores
  python benchmarks/bench_steps.py --out benchmarks/results/cpu.jsonl

Each configuration builds the real training chunk (``lax.scan`` over ``--iters``
iterations, donated state, resident data), times its compilation apart from steady-state
calls, and takes FLOPs per iteration from XLA's cost analysis of the compiled program.
Configurations of one model and batch are timed in ``--rounds`` interleaved rounds
(rotating order), and each reports its median steps/s and the range, so a drift in the
machine's load shows as a range, not as a difference between label rates. The device's
peak is the best of several large matmul timings in the compute dtype, in the same run.
Output: one JSON object per configuration (JSON lines) and a markdown table.
"""

import argparse
import json
import os
import re
import sys
import time
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from sgan_jax import data, objectives, sharding, step
from sgan_jax.machine import host_cpu
from sgan_jax import state as state_lib
from sgan_jax.config import Config, parse_override


def measure_peak_flops(n: int = 2048, reps: int = 10, dtype=jnp.float32) -> float:
  a = jnp.ones((n, n), dtype)
  f = jax.jit(lambda x, y: x @ y)
  f(a, a).block_until_ready()
  t = time.perf_counter()
  for _ in range(reps):
    c = f(a, a)
  c.block_until_ready()
  return 2 * n ** 3 * reps / (time.perf_counter() - t)


def measure_bandwidth(mib: int = 256, reps: int = 10) -> float:
  """Bytes/s of a large in-place elementwise update (read and write one array).

  The buffer is donated, as the training state is: a fresh output buffer per call would
  time the kernel's page faults instead (measured ~5 GB/s here against ~45 in place).
  """
  f = jax.jit(lambda x: x * 1.0001, donate_argnums=0)
  a = f(jnp.ones((mib * 2 ** 18,), jnp.float32))
  a.block_until_ready()
  t = time.perf_counter()
  for _ in range(reps):
    a = f(a)
  a.block_until_ready()
  return 2 * a.nbytes * reps / (time.perf_counter() - t)


def synthetic_splits(shape, n_unl, label_rate, num_classes=10, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.random((n_unl, *shape), dtype=np.float32)
  y = np.arange(n_unl) % num_classes
  ds = data.Dataset(x, y.astype(np.int32), x[:100], y[:100].astype(np.int32), num_classes)
  return data.make_splits(ds, labels_per_class=None, label_rate=label_rate, val_size=0,
                          data_seed=seed)


# Model pairs: the MNIST MLP pair, the 32x32 conv pair (CIFAR-10/SVHN reference) and the
# Odena-style DCGAN pair for 28x28 images (the mnist_odena_table setup).
MODELS = {"mlp": ((28, 28, 1), {}), "conv": ((32, 32, 3), {}),
          "dcgan": ((28, 28, 1), dict(d_width=32, g_width=64, parameterization="k+1",
                                      g_loss="non_saturating+feature_matching"))}


def parse_variant(text: str) -> tuple[str, dict]:
  """``name:key=value,key=value`` -> ``(name, {key: value})`` (config fields)."""
  name, _, body = text.partition(":")
  if not name or not body:
    raise SystemExit(f"--variant {text!r} must look like name:key=value[,key=value]")
  # Split at commas that start a new key=, so list values (d_hidden=500,500) stay whole.
  return name, dict(parse_override(kv) for kv in re.split(r",(?=\w+=)", body))


def prepare(model: str, label_rate: float, batch: int, iters: int, reps: int,
            dtype: str, n_unl: int, variant: str = "", overrides: Optional[dict] = None,
            cost_cache: Optional[dict] = None) -> dict:
  """Builds and compiles one configuration's training chunk; times nothing but compilation.

  ``overrides``: config fields to change (a named ``variant`` of the model, e.g. without
  its noise layers), timed in the same interleaved rounds as the rest. ``cost_cache``:
  per-iteration costs already compiled for the same model, batch and dtype (the label
  rate changes only the labeled set's size, not one iteration's program).
  """
  shape, fields = MODELS[model]
  cfg = Config(model=model, labels_per_class=None, label_rate=label_rate, batch_size=batch,
               compute_dtype=dtype, pixel_range="0,1", num_devices=0,
               **{**fields, **(overrides or {})})
  sp = synthetic_splits(shape, n_unl, label_rate)
  m = state_lib.build_models(cfg, shape, 10, iters)
  mesh = sharding.make_mesh(0, batch)
  rep = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  state = jax.device_put(state_lib.init_state(m, jax.random.key(0), jnp.asarray(sp.x_unl[:500])), rep)
  dd = jax.device_put({"x_lab": sp.x_lab, "y_lab": sp.y_lab, "x_unl": sp.x_unl}, rep)
  chunk = step.make_train_chunk(m, "sgan", mesh if mesh.size > 1 else None)
  idx = [data.epoch_indices(0, e, len(sp.x_lab), len(sp.x_unl), iters, batch)
         for e in range(reps + 1)]
  # FLOPs of one iteration from its own compiled program: XLA's cost analysis counts a
  # scan (while-loop) body once, not once per iteration.
  key = (model, batch, dtype, repr(sorted((overrides or {}).items())))
  cost = (cost_cache or {}).get(key)
  if cost is None:
    b = lambda a: a[:batch]
    obj = objectives.make_objective(cfg)
    one = jax.jit(lambda st, xl, yl, xu, xu2: step.train_iteration(m, obj, st, xl, yl, xu, xu2))
    cost = one.lower(state, b(dd["x_unl"]), jnp.zeros((batch,), jnp.int32), b(dd["x_unl"]),
                     b(dd["x_unl"])).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    if cost_cache is not None:
      cost_cache[key] = cost
  t0 = time.perf_counter()
  compiled = chunk.lower(state, dd, idx[0]).compile()
  compile_s = time.perf_counter() - t0
  state, mets = compiled(state, dd, idx[0])  # warm-up run, not timed
  jax.block_until_ready(mets)
  return {"compiled": compiled, "state": state, "data": dd, "idx": idx, "iters": iters,
          "row": {"model": model, **({"variant": variant, "overrides": overrides} if variant else {}),
                  "label_rate": label_rate, "num_labeled": int(len(sp.y_lab)),
                  "global_batch": batch, "streams": 3, "examples_per_step": 4 * batch,
                  "iters_per_dispatch": iters,
                  "compile_s": round(compile_s, 2),
                  "flops_per_step": float(cost.get("flops", float("nan"))),
                  "bytes_per_step": float(cost.get("bytes accessed", float("nan"))), "dtype": dtype}}


def time_round(p: dict) -> float:
  """Steady-state iterations per second over ``reps`` chunks of one prepared configuration."""
  t0 = time.perf_counter()
  state = p["state"]
  for idx in p["idx"][1:]:
    state, mets = p["compiled"](state, p["data"], idx)
  jax.block_until_ready(mets)
  dt = time.perf_counter() - t0
  p["state"] = state  # the old buffers were donated
  return (len(p["idx"]) - 1) * p["iters"] / dt


def bench_group(configs: list, rounds: int) -> list:
  """Times configurations in interleaved rounds (a rotating order per round).

  Sequential timing confounds a configuration with whatever else the machine did at
  the time (a drift shows as a trend across label rates); rotating rounds spread that
  over all of them, and the median per configuration is reported with its range.
  """
  cache = {}
  prepared = [prepare(**c, cost_cache=cache) for c in configs]
  per = [[] for _ in prepared]
  for r in range(rounds):
    order = list(range(len(prepared)))
    order = order[r % len(order):] + order[:r % len(order)]
    for i in order:
      per[i].append(time_round(prepared[i]))
  rows = []
  for p, sps_all in zip(prepared, per):
    sps = float(np.median(sps_all))
    rows.append({**p["row"], "steps_per_sec": round(sps, 2),
                 "steps_per_sec_min": round(min(sps_all), 2),
                 "steps_per_sec_max": round(max(sps_all), 2), "rounds": rounds,
                 "examples_per_sec": round(sps * p["row"]["examples_per_step"], 1),
                 "achieved_flops": sps * p["row"]["flops_per_step"]})
  return rows


def run_meta() -> dict:
  """Where the rows were measured: devices, JAX version, host CPU, XLA flags."""
  return {"devices": jax.device_count(), "platform": jax.devices()[0].platform,
          "device_kind": jax.devices()[0].device_kind, "jax": jax.__version__,
          "cpu": host_cpu(), "xla_flags": os.environ.get("XLA_FLAGS", "")}


def markdown_table(rows: list, extra: tuple = ()) -> str:
  """The rows as a markdown table, then the steps/s spread across label rates.

  ``extra``: ``(header, row -> text)`` columns appended to the table.
  """
  name = lambda r: r["model"] + (f" ({r['variant']})" if r.get("variant") else "")
  table = ["| model | label rate | labeled | batch/stream | dtype | steps/s (median) | range over rounds | examples/s | compile s | GFLOP/step | achieved GFLOP/s | % of peak |"
           + "".join(f" {h} |" for h, _ in extra),
           "|---|---|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(extra)]
  for r in rows:
    table.append(f"| {name(r)} | {r['label_rate']:g} | {r['num_labeled']} | {r['global_batch']} | "
                 f"{r['dtype']} | {r['steps_per_sec']:.1f} | {r['steps_per_sec_min']:.1f}-{r['steps_per_sec_max']:.1f} | "
                 f"{r['examples_per_sec']:.0f} | "
                 f"{r['compile_s']:.1f} | {r['flops_per_step'] / 1e9:.2f} | "
                 f"{r['achieved_flops'] / 1e9:.1f} | {100 * r['fraction_of_peak']:.0f}% |"
                 + "".join(f" {f(r)} |" for _, f in extra))
  spread = ["", "| model | batch/stream | dtype | steps/s spread across label rates (max-min)/mean |",
            "|---|---|---|---|"]
  # Rows differing only in label rate (not in iterations per dispatch) are compared.
  group = lambda r: (name(r), r["global_batch"], r["dtype"], r.get("iters_per_dispatch", 0))
  for key in sorted({group(r) for r in rows}):
    sps = [r["steps_per_sec"] for r in rows if group(r) == key]
    if len(sps) > 1:
      spread.append(f"| {key[0]} | {key[1]} | {key[2]} | {100 * (max(sps) - min(sps)) / np.mean(sps):.1f}% |")
  return "\n".join(table + (spread if len(spread) > 3 else []))


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--quick", action="store_true", help="MLP pair only, 2 label rates, short timing")
  p.add_argument("--models", default="mlp,conv")
  p.add_argument("--label_rates", default="0.001,0.01,0.1,1.0")
  p.add_argument("--batches", default="100,500")
  p.add_argument("--dtype", default="float32", help="compute dtype: float32 or bfloat16")
  p.add_argument("--iters", type=int, default=50, help="iterations per jitted chunk")
  p.add_argument("--reps", type=int, default=5, help="timed chunks per round")
  p.add_argument("--rounds", type=int, default=5,
                 help="interleaved timing rounds; the median per configuration is reported")
  p.add_argument("--peak_n", type=int, default=2048, help="matmul size for the peak measurement")
  p.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE[,KEY=VALUE]",
                 help="also time the model with these config fields changed, in the same "
                      "rounds (e.g. nonoise:input_noise=0,hidden_noise=0)")
  p.add_argument("--out", default=None, help="JSON-lines output path (a .md table is written beside it)")
  a = p.parse_args(argv)
  if a.reps < 1 or a.rounds < 1:
    p.error("--reps and --rounds must be at least 1")
  variants = [parse_variant(v) for v in a.variant]
  if a.quick:
    a.models, a.label_rates, a.batches, a.iters, a.reps, a.rounds = "mlp", "0.001,1.0", "100", 20, 2, 3
  try:
    rates, batches = [float(r) for r in a.label_rates.split(",")], [int(b) for b in a.batches.split(",")]
  except ValueError:
    p.error(f"--label_rates takes fractions such as 0.01,1.0 and --batches integers such as "
            f"100,500; got {a.label_rates!r} and {a.batches!r}")
  if not all(0 < r <= 1 for r in rates) or min(batches) < 1:
    p.error(f"label rates must be in (0, 1] and batches >= 1; got {rates} and {batches}")
  if not set(a.models.split(",")) <= {"mlp", "conv"}:
    p.error(f"--models takes mlp and/or conv, got {a.models!r}")
  # The peak is a maximum: the best of several measurements (spread through the run)
  # makes "% of peak" conservative rather than flattered by one slow matmul timing.
  # Measured in the compute dtype: a bfloat16 step is compared with a bfloat16 matmul.
  mm_dtype = jnp.dtype(a.dtype)
  peaks = [measure_peak_flops(a.peak_n, dtype=mm_dtype) for _ in range(3)]
  meta = run_meta()
  rows = []
  for model in a.models.split(","):
    for batch in batches:
      # A conv iteration costs ~100x an MLP one on CPU: fewer iterations per chunk.
      iters = a.iters if model == "mlp" or meta["platform"] != "cpu" else max(2, a.iters // 10)
      configs = [dict(model=model, label_rate=r, batch=batch, iters=iters, reps=a.reps,
                      dtype=a.dtype, n_unl=10000, variant=name, overrides=over)
                 for name, over in [("", None)] + variants for r in rates]
      rows += bench_group(configs, a.rounds)
      peaks.append(measure_peak_flops(a.peak_n, dtype=mm_dtype))
  peak = max(peaks)
  meta["peak_flops"] = peak
  meta["peak_dtype"] = str(mm_dtype)
  meta["peak_flops_measurements"] = [round(x) for x in peaks]
  for r in rows:
    r.update(meta, fraction_of_peak=r["achieved_flops"] / peak)
    print(json.dumps(r), flush=True)
  md = (f"{meta['devices']} x {meta['platform']} ({meta['device_kind']}; {meta['cpu']}), JAX {meta['jax']}, "
        f"measured {mm_dtype} matmul peak {peak / 1e9:.1f} GFLOP/s (best of {len(peaks)}), "
        f"{a.rounds} interleaved rounds of {a.reps} chunks per configuration"
        + (f", XLA_FLAGS={meta['xla_flags']}" if meta["xla_flags"] else "") + "\n\n" + markdown_table(rows))
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
