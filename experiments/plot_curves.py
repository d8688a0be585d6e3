"""Plot test error (averaged weights) by epoch from metrics_<mode>.jsonl files (needs matplotlib).

  python experiments/plot_curves.py runs/x/seed_1/metrics_sgan.jsonl \
      runs/x/seed_1/metrics_supervised.jsonl --out curve.png

A file given as NAME=PATH is labelled NAME (default: its mode); ``--band MEAN,STD`` draws
a published test error % as a band over the last tenth of the epochs, e.g. runs on
different labeled subsets against the paper:

  python experiments/plot_curves.py --band 0.90,0.042 --out subsets.png \
      "own subset 1=results/tables/mnist_fm_200labels_300ep/labels_200/seed_1/metrics_sgan.jsonl" \
      "reference subset=results/tables/mnist_fm_200_reference_subset/labels_200/seed_1/metrics_sgan.jsonl"
"""

import argparse
import sys

from sgan_jax.plots import published_band
from sgan_jax.rundir import read_jsonl
from sgan_jax.table_text import MODE_NAMES


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("files", nargs="+", metavar="[NAME=]PATH")
  p.add_argument("--out", required=True)
  p.add_argument("--title", default="")
  p.add_argument("--band", default=None, metavar="MEAN,STD",
                 help="a published test error %% and its std, drawn at the last epochs")
  a = p.parse_args(argv)
  band = None
  if a.band is not None:
    try:
      band = tuple(float(v) for v in a.band.split(","))
    except ValueError:
      band = ()
    if len(band) != 2 or band[1] < 0:
      print(f"error: --band takes MEAN,STD in percent such as 0.90,0.042; got {a.band!r}",
            file=sys.stderr)
      return 2
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6, 4))
  last = 1
  for arg in a.files:
    name, path = arg.split("=", 1) if "=" in arg else (None, arg)
    try:
      recs = read_jsonl(path)
      if not recs:
        raise ValueError("no records")
    except (OSError, ValueError) as e:
      print(f"error: {path}: {e}; pass metrics_<mode>.jsonl files of a run.", file=sys.stderr)
      return 2
    label = name or MODE_NAMES.get(recs[0]["mode"], recs[0]["mode"]) + " (averaged weights)"
    ax.plot([r["epoch"] for r in recs], [100 * r["test_err"] for r in recs], lw=0.8, label=label)
    last = max(last, recs[-1]["epoch"])
  if band is not None:
    m, s = band
    published_band(ax, m, s, last, f"published {m:g} ± {s:g} %")
  ax.set_yscale("log")
  ax.set_xlabel("epoch")
  ax.set_ylabel("test error (%)")
  ax.grid(True, which="both", alpha=0.3)
  ax.set_title(a.title)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(a.out, dpi=110)
  print(f"wrote {a.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
