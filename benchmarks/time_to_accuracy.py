"""Time to accuracy from a run's metrics: the first evaluation at or below a target error.

  python benchmarks/time_to_accuracy.py results/mnist100/metrics_sgan.jsonl --target 0.02

``wall_s`` in the metrics is measured from the start of training (compilation and every
evaluation included, data loading excluded), so this is the wall time a user waits.
``--out FILE.md`` also writes the rows as a markdown table, with the config fields that
matter for speed read from the run's ``config.json``.
"""

import argparse
import json
import os
import sys

from sgan_jax.rundir import read_jsonl

# Config fields shown beside each run: what changes speed or the iterations needed.
SHOWN = ("batch_size", "lr", "avg_rate", "compute_dtype", "noise_rng")
SHOWN_IF_NOT = {"on_d_wins": "warn"}  # shown only where a run changed them


def first_at_or_below(records: list[dict], target: float, key: str = "test_err"):
  for r in records:
    if r.get(key) is not None and r[key] <= target:
      return r
  return None


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("metrics", nargs="+", help="metrics_<mode>.jsonl files")
  p.add_argument("--target", type=float, default=0.02)
  p.add_argument("--key", default="test_err", help="test_err (averaged weights) or test_err_live")
  p.add_argument("--out", help="also write a markdown table here")
  a = p.parse_args(argv)
  rows = []
  for path in a.metrics:
    try:
      recs = [r for r in read_jsonl(path) if r.get(a.key) is not None]
    except (OSError, ValueError) as e:
      print(f"error: {path}: {e}; pass metrics_<mode>.jsonl files of a run.", file=sys.stderr)
      return 2
    if not recs:
      print(f"{path}: no evaluation with {a.key!r} yet", file=sys.stderr)
      continue
    r = first_at_or_below(recs, a.target, a.key)
    cfg_path = os.path.join(os.path.dirname(path), "config.json")
    cfg = {}
    if os.path.exists(cfg_path):
      with open(cfg_path) as f:
        cfg = json.load(f)
    fields = ", ".join([f"{k}={cfg[k]}" for k in SHOWN if k in cfg]
                       + [f"{k}={cfg[k]}" for k, d in SHOWN_IF_NOT.items() if cfg.get(k, d) != d])
    if r is None:
      best = min(recs, key=lambda x: x[a.key])
      rows.append(f"| `{path}` | {fields} | {recs[-1]['epoch']} epochs: not reached "
                  f"(best {100 * best[a.key]:.2f}%) | | | |")
      print(f"{path}: never reached {100 * a.target:.2f}% in {recs[-1]['epoch']} epochs "
            f"({recs[-1]['wall_s'] / 60:.1f} min; best {100 * best[a.key]:.2f}% at epoch {best['epoch']})")
    else:
      rows.append(f"| `{path}` | {fields} | {r['epoch']} | {r['step']} | {r.get('it_per_s')} | "
                  f"**{r['wall_s'] / 60:.1f}** |")
      print(f"{path}: {100 * r[a.key]:.2f}% at epoch {r['epoch']} (step {r['step']}), "
            f"{r['wall_s'] / 60:.1f} min after training started ({r.get('it_per_s')} it/s)")
  if a.out:
    with open(a.out, "w") as f:
      f.write(f"Time to {100 * a.target:.1f}% test error ({a.key}), from each run's metrics: "
              "wall minutes from the start of training, compilation and evaluations included."
              "\n\n| run | config | epoch | step | it/s (training) | minutes |\n"
              "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
