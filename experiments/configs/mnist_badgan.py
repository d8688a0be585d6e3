"""MNIST, 100 labels: FM + Bad-GAN conditional entropy (D) and pull-away (G).

The `mnist_fm_table` setup (reference MLP pair, 1,000 validation images, Polyak rate
1e-3) with: entropy_weight=1.0, pullaway_weight=1.0. Weights are this project's choice, not tuned.

  python experiments/run_table.py mnist_badgan --seeds 1,2,3 --epochs 20 \
      --set dataset=../shared/datasets/mnist.npz
"""

import os
import runpy

# The table's setup, shared rather than copied: only the objective differs.
_fm = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "mnist_fm_table.py"))
TABLE, get_config = _fm["mnist100_variant"](
    "mnist_badgan", "MNIST-100: FM + Bad-GAN conditional entropy (D) and pull-away (G)",
    published="79.5 ± 9.8 (Bad GAN, full method)", entropy_weight=1.0, pullaway_weight=1.0)
