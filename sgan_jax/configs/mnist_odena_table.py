"""Odena 2016 ("Semi-Supervised Learning with GANs"): a K+1-softmax DCGAN-style
discriminator on MNIST at 25 / 50 / 100 / 1000 labels, beside the same network trained
supervised-only.

Discriminator: 3x3 strided convs 32-64-128 + a 256 conv, leaky ReLU 0.2, dropout 0.25,
batch norm on all but the input conv (per stream), global average pooling, a K+1 dense
head. Generator: dense 7x7x128, BN, ReLU, two 4x4 stride-2 deconvs, tanh. Adam(2e-4,
b1=0.5), generator loss = non-saturating fake loss + feature matching. 25 labels is not a
multiple of 10: that cell is as balanced as 25 allows (five classes with 3 labels, five
with 2; which five is drawn from the seed, ``num_labeled``).

  sgan-jax table mnist_odena_table --seeds 1,2,3 --epochs 20 \
      --set dataset=../shared/datasets/mnist.npz
"""

from sgan_jax.config import Config
from sgan_jax.reports import Table

TABLE = Table(
    name="mnist_odena", title="MNIST, K+1 DCGAN-style SGAN vs the same CNN supervised (Odena 2016)",
    labels=(25, 50, 100, 1000),
    published={25: "SGAN better", 50: "SGAN better", 100: "SGAN better",
               1000: "SGAN better"},
    source="Odena 2016 reports SGAN above the same-size CNN at 25-1000 labels; its exact "
           "numbers are not reproduced here (GUIDE section 3: unverified)",
    modes=("sgan", "supervised"), unit="%")


def get_config() -> Config:
  return Config(
      name="mnist_odena_table", dataset="mnist", pixel_range="-1,1", labels_per_class=10,
      val_size=1000, model="dcgan", d_width=32, g_width=64, parameterization="k+1",
      g_loss="non_saturating+feature_matching", fm_order=2, latent_dim=100,
      batch_size=100, lr=2e-4, b1=0.5, epochs=20, lr_decay_epochs=0, avg_rate=1e-3,
      init_examples=100, baseline=True, checkpoint_every=1)
