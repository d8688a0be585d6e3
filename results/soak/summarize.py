"""Summarise an RSS soak: warm-up end, then the least-squares slope and the range.

  python results/soak/summarize.py results/soak/rss_packed_zarr.jsonl --warmup 600
"""
import argparse
import json

import numpy as np

p = argparse.ArgumentParser()
p.add_argument("files", nargs="+")
p.add_argument("--warmup", type=float, default=600, help="seconds excluded at the start")
a = p.parse_args()
for path in a.files:
  r = [json.loads(line) for line in open(path)]
  t = np.array([x["t"] for x in r], float)
  m = np.array([x["rss_mb"] for x in r], float)
  k = t >= a.warmup
  slope = np.polyfit(t[k] / 3600, m[k], 1)[0]
  ep = [x.get("epoch") for x in r]
  first_h = m[k][t[k] <= a.warmup + 600]
  last = m[k][t[k] >= t[-1] - 600]
  print(f"{path}: {t[-1] / 60:.0f} min, {ep[-1]} checkpoints; after {a.warmup:.0f}s: "
        f"{m[k].min():.1f}-{m[k].max():.1f} MB, slope {slope:+.1f} MB/h, "
        f"median first 10 min {np.median(first_h):.1f} MB vs last 10 min {np.median(last):.1f} MB")
