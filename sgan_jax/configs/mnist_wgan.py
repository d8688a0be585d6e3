"""MNIST, 100 labels: Wasserstein critic with gradient penalty (real/fake part), FM generator.

The `mnist_fm_table` setup (reference MLP pair, 1,000 validation images, Polyak rate
1e-3) with: d_objective="wasserstein", gp_weight=10.0. Weights are this project's choice, not tuned.

  sgan-jax table mnist_wgan --seeds 1,2,3 --epochs 20 \
      --set dataset=../shared/datasets/mnist.npz
"""

from sgan_jax.configs.mnist_fm_table import mnist100_variant

# The table's setup, shared rather than copied: only the objective differs.
TABLE, get_config = mnist100_variant(
    "mnist_wgan", "MNIST-100: Wasserstein critic with gradient penalty (real/fake part), FM generator",
    d_objective="wasserstein", gp_weight=10.0)
