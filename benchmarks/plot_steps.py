"""Plot training steps/s and examples/s against the label rate from bench_steps.py JSON lines.

  python benchmarks/plot_steps.py --out benchmarks/results/cpu_steps.png \\
      "CPU-A, batch 100=benchmarks/results/cpu_mlp.jsonl:100" \\
      "CPU-A, batch 500=benchmarks/results/cpu_mlp.jsonl:500" \\
      "CPU-A, batch 100, hash noise=benchmarks/results/cpu_mlp_rates.jsonl:100:hash" \\
      "Zen 5, batch 100=benchmarks/results/cpu_zen5_mlp_rates.jsonl:100" \\
      "Zen 5, batch 100, hash noise=benchmarks/results/cpu_zen5_mlp_rates.jsonl:100:hash"

Each series is ``LABEL=FILE:BATCH[:VARIANT]`` (no variant: the rows without one). Points
are the median over interleaved rounds, bars the range over rounds (``steps_per_sec_min``
/ ``_max``); examples/s is bench_steps.py's examples_per_sec (every batch of a step).
"""

import argparse
import json
import sys


def series(spec):
  label, sep, rest = spec.partition("=")
  if not sep:
    raise SystemExit(f"series {spec!r}: expected LABEL=FILE:BATCH[:VARIANT]")
  path, batch, *variant = rest.split(":")
  variant = variant[0] if variant else None
  with open(path) as f:
    rows = [r for r in map(json.loads, f)
            if r["global_batch"] == int(batch) and r.get("variant") == variant]
  if not rows:
    raise SystemExit(f"series {spec!r}: no rows with batch {batch} and variant {variant}")
  return label, sorted(rows, key=lambda r: r["label_rate"])


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument("series", nargs="+", help="LABEL=FILE:BATCH[:VARIANT]")
  p.add_argument("--out", required=True)
  a = p.parse_args(argv)
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
  for spec in a.series:
    label, rows = series(spec)
    x = [r["label_rate"] for r in rows]
    y = [r["steps_per_sec"] for r in rows]
    lo = [r["steps_per_sec"] - r.get("steps_per_sec_min", r["steps_per_sec"]) for r in rows]
    hi = [r.get("steps_per_sec_max", r["steps_per_sec"]) - r["steps_per_sec"] for r in rows]
    line = ax1.errorbar(x, y, yerr=[lo, hi], marker="o", capsize=3, label=label)
    ax2.plot(x, [r["examples_per_sec"] for r in rows], marker="o", label=label,
             color=line[0].get_color())
  for ax, name in ((ax1, "training iterations / s (median, range over rounds)"),
                   (ax2, "examples / s (bench_steps examples_per_sec)")):
    ax.set_xscale("log")
    ax.set_xlabel("label rate (fraction of the 10,000-example training split labeled)")
    ax.set_ylabel(name)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
  ax2.legend(*ax1.get_legend_handles_labels(), fontsize=8, loc="center right", bbox_to_anchor=(1.0, 0.64))
  fig.suptitle("MNIST MLP pair, float32, one 2-core CPU: throughput does not depend on the label rate")
  fig.tight_layout()
  fig.savefig(a.out, dpi=110)
  print(f"wrote {a.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
