"""MNIST, 100 labels: FM + class-conditional generator (labeled synthetic data).

The `mnist_fm_table` setup (reference MLP pair, 1,000 validation images, Polyak rate
1e-3) with: conditional=True, cond_weight=1.0. Weights are this project's choice, not tuned.

  python experiments/run_table.py mnist_cond --seeds 1,2,3 --epochs 20 \
      --set dataset=../shared/datasets/mnist.npz
"""

import os
import runpy

# The table's setup, shared rather than copied: only the objective differs.
_fm = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "mnist_fm_table.py"))
TABLE, get_config = _fm["mnist100_variant"](
    "mnist_cond", "MNIST-100: FM + class-conditional generator (labeled synthetic data)",
    conditional=True, cond_weight=1.0)
