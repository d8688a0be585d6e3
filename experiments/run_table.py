"""Reproduce a paper table: every label count x seed, resumable, with the published column.

The same as `sgan-jax table` (see `sgan-jax table --help`); kept so existing commands work.
"""

import sys

from sgan_jax.cli import main

if __name__ == "__main__":
  sys.exit(main(["table", *sys.argv[1:]]))
