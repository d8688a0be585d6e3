"""Plot test error (averaged weights) by epoch from metrics_<mode>.jsonl files (needs matplotlib).

  python experiments/plot_curves.py runs/x/seed_1/metrics_sgan.jsonl \
      runs/x/seed_1/metrics_supervised.jsonl --out curve.png
"""

import argparse
import sys

from sgan_jax.rundir import read_jsonl


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument("files", nargs="+")
  p.add_argument("--out", required=True)
  p.add_argument("--title", default="")
  a = p.parse_args(argv)
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6, 4))
  for path in a.files:
    try:
      recs = read_jsonl(path)
      if not recs:
        raise ValueError("no records")
    except (OSError, ValueError) as e:
      print(f"error: {path}: {e}; pass metrics_<mode>.jsonl files of a run.", file=sys.stderr)
      return 2
    label = {"sgan": "SGAN", "supervised": "supervised-only"}.get(recs[0]["mode"], recs[0]["mode"])
    ax.plot([r["epoch"] for r in recs], [100 * r["test_err"] for r in recs], label=f"{label} (averaged weights)")
  ax.set_yscale("log")
  ax.set_xlabel("epoch")
  ax.set_ylabel("test error (%)")
  ax.grid(True, which="both", alpha=0.3)
  ax.set_title(a.title)
  ax.legend()
  fig.tight_layout()
  fig.savefig(a.out, dpi=110)
  print(f"wrote {a.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
