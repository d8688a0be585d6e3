"""MNIST, 100 labels: FM + class-conditional generator (labeled synthetic data).

The `mnist_fm_table` setup (reference MLP pair, 1,000 validation images, Polyak rate
1e-3) with: conditional=True, cond_weight=1.0. Weights are this project's choice, not tuned.

  python experiments/run_table.py mnist_cond --seeds 1,2,3 --epochs 20 \
      --set dataset=../shared/datasets/mnist.npz
"""

import os
import runpy

from sgan_jax.config import Config
from sgan_jax.tables import Table

TABLE = Table(
    name="mnist_cond", title="MNIST-100: FM + class-conditional generator (labeled synthetic data)", labels=(100,),
    published={100: "-"},
    source="errors of 10,000; Salimans et al. 2016 FM: 93 ± 6.5; Dai et al. 2017 Bad GAN: 79.5 ± 9.8",
    modes=("sgan",), unit="errors")


def get_config() -> Config:
  # The table's setup, shared rather than copied: only the objective differs.
  base = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                     "mnist_fm_table.py"))["get_config"]()
  return base.replace(name="mnist_cond", conditional=True, cond_weight=1.0)
