"""Semi-supervised GAN on your own table: rows with an empty target are unlabeled.

The same as `sgan-jax tabular` (see `sgan-jax tabular --help`); kept so existing commands work.
"""

import sys

from sgan_jax.cli import main

if __name__ == "__main__":
  sys.exit(main(["tabular", *sys.argv[1:]]))
