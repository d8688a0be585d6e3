"""Run a named config over one or more seeds: SGAN and its supervised-only baseline.

  python experiments/main.py --config digits --seeds 0,1,2
  python experiments/main.py --config mnist_fm --set dataset=../shared/datasets/mnist.npz \
      --set epochs=150 --seeds 1 --workdir runs/mnist100
"""

import argparse
import importlib.util
import os
import sys

from sgan_jax.config import Config, from_dict, parse_int_list, parse_override
from sgan_jax.errors import SganError
from sgan_jax.experiment import format_report, run_seeds
from sgan_jax.train import Preempted

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


def load_config(name_or_path: str) -> Config:
  path = name_or_path if name_or_path.endswith(".py") else os.path.join(CONFIG_DIR, name_or_path + ".py")
  if not os.path.exists(path):
    names = sorted(f[:-3] for f in os.listdir(CONFIG_DIR) if f.endswith(".py") and f[0] != "_")
    raise SganError(f"No config {name_or_path!r}; choose one of {names} or pass a path to a .py "
                    "file defining get_config().")
  spec = importlib.util.spec_from_file_location("_sgan_config", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_config()


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--config", default="digits", help="config name in experiments/configs or a .py path")
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                 help="override a config field (repeatable), e.g. --set epochs=40")
  p.add_argument("--seeds", default=None, help="comma-separated seeds (default: the config's seed)")
  p.add_argument("--workdir", default=None, help="output folder (default: runs/<config>)")
  p.add_argument("--modes", default=None,
                 help="which models to train: sgan, supervised or sgan,supervised "
                      "(default: sgan, plus supervised when the config's baseline is true)")
  p.add_argument("--fresh", action="store_true",
                 help="do not resume: move existing checkpoints aside (kept as .old-N)")
  p.add_argument("--distributed", action="store_true",
                 help="one of several processes training together (jax.distributed); with no "
                      "--coordinator JAX detects the cluster (TPU pod, SLURM, Open MPI)")
  p.add_argument("--coordinator", default=None, help="process 0's host:port (with --distributed)")
  p.add_argument("--num_processes", type=int, default=None)
  p.add_argument("--process_id", type=int, default=None)
  args = p.parse_args(argv)
  try:
    if not args.distributed and (args.coordinator or args.num_processes is not None
                                 or args.process_id is not None):
      raise SganError("--coordinator, --num_processes and --process_id need --distributed.")
    overrides = dict(parse_override(s) for s in args.set)
    # Each run's seed also chooses its labeled subset and validation split (data_seed = seed),
    # so these overrides would be silently replaced. Checked before joining a cluster.
    if "data_seed" in overrides:
      raise SganError("--set data_seed: each run's labeled subset and validation split are "
                      "chosen by its seed (data_seed = seed). Choose it with --seeds.")
    if "seed" in overrides and args.seeds:
      raise SganError("--set seed and --seeds both give the seed: use --seeds alone.")
    if args.distributed:
      from sgan_jax import distributed
      distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    cfg = from_dict({**load_config(args.config).to_dict(), **overrides})
    seeds = parse_int_list(args.seeds, "--seeds") if args.seeds else [cfg.seed]
    modes = args.modes.split(",") if args.modes else None
    if modes and not set(modes) <= {"sgan", "supervised"}:
      raise SganError(f"--modes takes sgan and/or supervised, got {args.modes!r}.")
    workdir = args.workdir or os.path.join("runs", cfg.name)
    agg = run_seeds(cfg, seeds, workdir, fresh=args.fresh, modes=modes)
  except SganError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  except Preempted as e:
    print(f"{e}. Rerun the same command to resume.", file=sys.stderr)
    return 75  # EX_TEMPFAIL: try again
  print("\n" + format_report(agg))
  print(f"\nwrote {os.path.join(workdir, 'summary.json')}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
