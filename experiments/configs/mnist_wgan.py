"""MNIST, 100 labels: Wasserstein critic with gradient penalty (real/fake part), FM generator.

The `mnist_fm_table` setup (reference MLP pair, 1,000 validation images, Polyak rate
1e-3) with: d_objective="wasserstein", gp_weight=10.0. Weights are this project's choice, not tuned.

  python experiments/run_table.py mnist_wgan --seeds 1,2,3 --epochs 20 \
      --set dataset=../shared/datasets/mnist.npz
"""

import os
import runpy

# The table's setup, shared rather than copied: only the objective differs.
_fm = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "mnist_fm_table.py"))
TABLE, get_config = _fm["mnist100_variant"](
    "mnist_wgan", "MNIST-100: Wasserstein critic with gradient penalty (real/fake part), FM generator",
    d_objective="wasserstein", gp_weight=10.0)
