"""Write N labeled synthetic samples per class from a class-conditional SGAN run.

The same as `sgan-jax export` (see `sgan-jax export --help`); kept so existing commands work.
"""

import sys

from sgan_jax.cli import main

if __name__ == "__main__":
  sys.exit(main(["export", *sys.argv[1:]]))
