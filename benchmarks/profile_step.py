"""Where a training iteration's time goes: a profile of the jitted chunk, by category.

  python benchmarks/profile_step.py --model mlp --batch 100
  python benchmarks/profile_step.py --model mlp --batch 100 --set input_noise=0 --set hidden_noise=0
  python benchmarks/profile_step.py --model mlp --batch 100 --top 30   # and the 30 costliest ops

Builds the same chunk as ``bench_steps.py`` (lax.scan over ``--iters`` iterations, data
resident), runs it once under ``jax.profiler.trace``, and attributes every XLA operation
in the trace to a category from the compiled HLO (its opcode and the JAX source op that
produced it): matmuls (dots, and library fusions built around them), convolutions,
random numbers (threefry bits, their conversion to normals, and the noise/dropout layers
and latent samples they feed), copies, and other
elementwise/reduction work. Times are per iteration and summed over operations, so with
several threads they can add up to more than the wall time, which is printed beside them.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile
import time

import jax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_steps  # noqa: E402

from sgan_jax.config import parse_override  # noqa: E402
from sgan_jax.machine import host_cpu  # noqa: E402

# An instruction: ``%name = <type> opcode(...)``, where the type is one token or a
# parenthesized tuple with spaces (``(f32[8]{0}, s32[])``; nested tuples backtrack).
_INSTR = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = (?:\(.*?\)|\S+) ([\w\-]+)\((.*)$", re.M)
_OP_NAME = re.compile(r'op_name="([^"]*)"')
_CALLS = re.compile(r"calls=%([\w.\-]+)")
# JAX source ops of random-number work: key splits, threefry bits and their conversion to
# normals/uniforms, and the noise/dropout layers they feed.
_RANDOM = ("threefry", "random_bits", "_normal", "_uniform", "GaussianNoise", "Dropout")


def hlo_ops(hlo: str) -> dict:
  """``{instruction name: (opcode, op_name, fused opcodes)}`` from compiled HLO text."""
  bodies, ops = {}, {}
  for block in re.split(r"\n(?=\S)", hlo):  # one computation per block
    head = re.match(r"%([\w.\-]+) ", block)
    if head:
      bodies[head.group(1)] = set(m.group(2) for m in _INSTR.finditer(block))
  for m in _INSTR.finditer(hlo):
    name, opcode, rest = m.groups()
    on = _OP_NAME.search(rest)
    calls = _CALLS.search(rest)
    ops[name] = (opcode, on.group(1) if on else "",
                 bodies.get(calls.group(1), set()) if calls else set())
  return ops


def category(opcode: str, op_name: str, fused: set) -> str:
  # A fusion around a dot is matmul time even when XLA named it after a noise layer whose
  # add it absorbed: the dot dominates its cost.
  if opcode == "dot" or "dot" in fused:
    return "matmul"
  if any(t in op_name for t in _RANDOM):
    return "random numbers"
  if opcode == "convolution" or "convolution" in fused:
    return "convolution"
  if opcode == "copy":
    return "copy"
  if opcode in ("while", "call", "conditional"):
    return "control flow"
  return "elementwise / reduction / other"


def profile(p: dict, logdir: str, ops: dict) -> tuple[dict, dict, float, dict]:
  """Runs one prepared chunk under the profiler, ``ops`` its :func:`hlo_ops`; returns
  ``({category: seconds}, {category: operations run}, wall seconds, {instruction: seconds})``."""
  bench_steps.time_round(p)  # warm
  with jax.profiler.trace(logdir, create_perfetto_trace=True):
    t0 = time.perf_counter()
    state, mets = p["compiled"](p["state"], p["data"], p["idx"][1])
    jax.block_until_ready(mets)
    wall = time.perf_counter() - t0
  p["state"] = state
  path = glob.glob(os.path.join(logdir, "**", "*.trace.json.gz"), recursive=True)[0]
  with gzip.open(path) as f:
    trace = json.load(f)
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  per, count, by_op = collections.Counter(), collections.Counter(), collections.Counter()
  for e in events:
    if e.get("ph") == "X" and e.get("name") in ops:
      per[category(*ops[e["name"]])] += e.get("dur", 0) * 1e-6
      count[category(*ops[e["name"]])] += 1
      by_op[e["name"]] += e.get("dur", 0) * 1e-6
  return dict(per), dict(count), wall, dict(by_op)


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--model", default="mlp", choices=sorted(bench_steps.MODELS))
  ap.add_argument("--batch", type=int, default=100)
  ap.add_argument("--iters", type=int, default=50)
  ap.add_argument("--reps", type=int, default=3, help="chunks per unprofiled timing")
  ap.add_argument("--dtype", default="float32")
  ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                  help="config field to change (e.g. hidden_noise=0)")
  ap.add_argument("--peak_n", type=int, default=2048, help="matmul size for the peak (0: skip)")
  ap.add_argument("--bw_mib", type=int, default=256,
                  help="array size for the memory-bandwidth measurement (0: skip)")
  ap.add_argument("--top", type=int, default=0, help="also list the N costliest operations")
  ap.add_argument("--out", help="also write the result as JSON here")
  a = ap.parse_args(argv)
  over = dict(parse_override(s) for s in a.set)
  p = bench_steps.prepare(a.model, 0.01, a.batch, a.iters, a.reps, a.dtype, 10000,
                          variant="profiled" if over else "", overrides=over)
  ops = hlo_ops(p["compiled"].as_text())  # parsed once: categories and the --top table
  with tempfile.TemporaryDirectory() as d:
    per, count, wall, by_op = profile(p, d, ops)
  total = sum(per.values())
  flops = p["row"]["flops_per_step"]
  dtype = jax.numpy.bfloat16 if a.dtype == "bfloat16" else jax.numpy.float32
  peak = max(bench_steps.measure_peak_flops(a.peak_n, dtype=dtype) for _ in range(3)) if a.peak_n else None
  # Steady-state speed without the profiler (whose tracing slows the chunk), best of 3.
  its = max(bench_steps.time_round(p) for _ in range(3))
  pct = f", {100 * its * flops / peak:.0f}% of the measured {peak / 1e9:.0f} GFLOP/s peak" if peak else ""
  print(f"{a.model} batch {a.batch} {a.dtype} {' '.join(a.set)}: {its:.1f} it/s "
        f"unprofiled ({1e3 * wall / a.iters:.1f} ms/iteration wall under the profiler, "
        f"{flops / 1e9:.2f} GFLOP/iteration{pct})")
  nbytes = p["row"]["bytes_per_step"]
  bw = max(bench_steps.measure_bandwidth(a.bw_mib) for _ in range(3)) if a.bw_mib else None
  if peak and bw:
    # Two floors for one iteration: its FLOPs at the matmul peak, and the bytes its ops
    # read and write (XLA's count; caches absorb part of it) at streaming bandwidth.
    print(f"floors: {1e3 * flops / peak:.1f} ms at the FLOP peak, {1e3 * nbytes / bw:.1f} ms for "
          f"{nbytes / 1e6:.0f} MB accessed at the measured {bw / 1e9:.1f} GB/s; "
          f"measured {1e3 / its:.1f} ms/iteration")
  print("| category | ms / iteration | share of op time |\n|---|---|---|")
  for k, v in sorted(per.items(), key=lambda kv: -kv[1]):
    print(f"| {k} | {1e3 * v / a.iters:.2f} | {100 * v / total:.0f}% |")
  top = []
  if a.top:  # the costliest single operations, to see which fusion a category's time is in
    for name, v in sorted(by_op.items(), key=lambda kv: -kv[1])[:a.top]:
      opcode, op_name, fused = ops[name]
      top.append({"name": name, "opcode": opcode, "category": category(opcode, op_name, fused),
                  "ms_per_iteration": 1e3 * v / a.iters, "op_name": op_name})
    print("\n| operation | opcode | category | ms / iteration | JAX source op |\n|---|---|---|---|---|")
    for t in top:
      print(f"| {t['name']} | {t['opcode']} | {t['category']} | {t['ms_per_iteration']:.2f} | "
            f"{t['op_name'][-90:]} |")
  if a.out:
    with open(a.out, "w") as f:
      json.dump({"model": a.model, "batch": a.batch, "dtype": a.dtype, "overrides": a.set,
                 "steps_per_sec": its, "profiled_ms_per_iteration": 1e3 * wall / a.iters,
                 "flops_per_step": flops, "peak_flops": peak,
                 "bytes_per_step": nbytes, "bandwidth_bytes_per_s": bw,
                 "ms_per_iteration": {k: 1e3 * v / a.iters for k, v in per.items()},
                 "ops_per_iteration": {k: v / a.iters for k, v in count.items()},
                 "top_ops": top,
                 "platform": jax.default_backend(), "cpu": host_cpu(),
                 "jax": jax.__version__}, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
