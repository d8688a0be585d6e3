"""Run a named config over one or more seeds: SGAN and its supervised-only baseline.

  python experiments/main.py --config digits --seeds 0,1,2
  python experiments/main.py --config mnist_fm --set dataset=../shared/datasets/mnist.npz \
      --set epochs=150 --seeds 1 --workdir runs/mnist100
"""

import argparse
import importlib.util
import os
import sys

from sgan_jax.config import Config, from_dict, parse_override
from sgan_jax.errors import SganError
from sgan_jax.experiment import format_report, run_seeds

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
  args = p.parse_args(argv)
  try:
    cfg = load_config(args.config)
    overrides = dict(parse_override(s) for s in args.set)
    cfg = from_dict({**cfg.to_dict(), **overrides})
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [cfg.seed]
    workdir = args.workdir or os.path.join("runs", cfg.name)
    agg = run_seeds(cfg, seeds, workdir)
  except SganError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print("\n" + format_report(agg))
  print(f"\nwrote {os.path.join(workdir, 'summary.json')}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
