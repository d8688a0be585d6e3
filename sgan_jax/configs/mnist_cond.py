"""MNIST, 100 labels: FM + class-conditional generator (labeled synthetic data).

The `mnist_fm_table` setup (reference MLP pair, 1,000 validation images, Polyak rate
1e-3) with: conditional=True, cond_weight=1.0. Weights are this project's choice, not tuned.

  sgan-jax table mnist_cond --seeds 1,2,3 --epochs 20 \
      --set dataset=../shared/datasets/mnist.npz
"""

from sgan_jax.configs.mnist_fm_table import mnist100_variant

# The table's setup, shared rather than copied: only the objective differs.
TABLE, get_config = mnist100_variant(
    "mnist_cond", "MNIST-100: FM + class-conditional generator (labeled synthetic data)",
    conditional=True, cond_weight=1.0)
