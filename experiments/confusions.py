"""Per-class test error, predicted shares and the largest confusions of a run's classifier.

  python experiments/confusions.py runs/tables/mnist_fm/labels_20/seed_2 \
      --checkpoint final,best --dataset mnist.npz --out confusions.json

One line per checkpoint (``final``, ``best`` = the validation-selected epoch, or kept epoch
numbers): test error, accuracy on the run's own labeled examples, error per class, each
class's share of the test predictions, and the largest true -> predicted counts
(:mod:`sgan_jax.diagnose`). A class absorbed by a neighbour shows as a share near 0 for it
and well above 1/K for the neighbour.
"""

import argparse
import json
import sys

from sgan_jax import diagnose
from sgan_jax.errors import SganError


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("run_dir", help="a run's seed folder (holds config.json)")
  p.add_argument("--mode", default="sgan", choices=("sgan", "supervised"))
  p.add_argument("--checkpoint", default="final",
                 help="comma-separated: final, best, or kept epoch numbers")
  p.add_argument("--dataset", default=None,
                 help="the run's data if its recorded path does not resolve from here")
  p.add_argument("--top", type=int, default=4, help="how many confusions to list")
  p.add_argument("--out", default=None, help="also write the reports to this JSON file")
  a = p.parse_args(argv)
  checkpoints = [c for c in a.checkpoint.split(",") if c]
  if not checkpoints:
    p.error(f"--checkpoint needs at least one of final, best or an epoch number (got "
            f"{a.checkpoint!r})")
  if a.top < 0:
    p.error(f"--top must be >= 0 (got {a.top})")
  try:
    reps = [diagnose.run_report(a.run_dir, a.mode, c, a.dataset, a.top) for c in checkpoints]
  except (SganError, OSError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  for r in reps:
    print(diagnose.format_report(r))
  if a.out:
    with open(a.out, "w") as f:
      json.dump(reps, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
