"""Markdown table of test error by epoch from one or more metrics_<mode>.jsonl files.

  python experiments/curve_table.py runs/mnist_fm/seed_1/metrics_sgan.jsonl \
      runs/mnist_fm/seed_1/metrics_supervised.jsonl --epochs 1,10,20,40,100,150
"""

import argparse
import json
import sys

from sgan_jax.config import parse_int_list
from sgan_jax.errors import SganError


def load(path):
  with open(path) as f:
    return {r["epoch"]: r for r in map(json.loads, f)}


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument("files", nargs="+")
  p.add_argument("--epochs", default=None, help="comma-separated epochs (default: all)")
  a = p.parse_args(argv)
  try:
    runs = [(f, load(f)) for f in a.files]
    epochs = (parse_int_list(a.epochs, "--epochs") if a.epochs else
              sorted(set().union(*[set(r) for _, r in runs])))
  except (OSError, ValueError, KeyError, SganError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  head = "| epoch | " + " | ".join(f"{next(iter(r.values()))['mode']} test error (avg weights) | "
                                    f"wall h" for _, r in runs) + " |"
  print(head)
  print("|" + "---|" * (1 + 2 * len(runs)))
  for e in epochs:
    cells = []
    for _, r in runs:
      rec = r.get(e)
      cells += ([f"{100 * rec['test_err']:.2f}%", f"{rec['wall_s'] / 3600:.2f}"] if rec else ["", ""])
    print(f"| {e} | " + " | ".join(cells) + " |")
  return 0


if __name__ == "__main__":
  sys.exit(main())
