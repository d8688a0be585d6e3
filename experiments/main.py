"""Run a named config over one or more seeds: SGAN and its supervised-only baseline.

The same as `sgan-jax train` (see `sgan-jax train --help`); kept so existing commands work.
"""

import sys

from sgan_jax.cli import main

if __name__ == "__main__":
  sys.exit(main(["train", *sys.argv[1:]]))
