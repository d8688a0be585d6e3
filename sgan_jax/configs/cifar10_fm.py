"""Salimans et al. 2016, CIFAR-10 feature matching (improved-gan train_cifar_feature_matching.py).

4,000 labels (400/class), x scaled to [-1, 1] (the reference uses (x-127.5)/128), no
augmentation; weight-normalised conv D (96/192 channels, dropout, leaky ReLU 0.2, NIN,
global mean pool), deconv G (512/256/128) with a tanh weight-normalised output; L1
feature matching; Adam(3e-4, b1=0.5); lr * min(3 - epoch/400, 1) over 1,200 epochs.
5,000 training images held out for model selection.

  sgan-jax table cifar10_fm --seeds 1,2,3   # needs TFDS cifar10 (network)
"""

from sgan_jax.config import Config
from sgan_jax.reports import Table

TABLE = Table(
    name="cifar10_fm", title="CIFAR-10, feature matching (Salimans et al. 2016)",
    labels=(4000,), published={4000: "18.63 ± 2.32"},
    source="Salimans et al. 2016, Table 2 (test error %, 1,200 epochs)", modes=("sgan",))


def get_config() -> Config:
  return Config(
      name="cifar10_fm", dataset="cifar10", pixel_range="-1,1", labels_per_class=400,
      val_size=5000, model="conv", d_width=96, g_width=128, g_loss="feature_matching",
      fm_order=1, batch_size=100, lr=3e-4, b1=0.5, epochs=1200, lr_decay_epochs=400,
      avg_rate=1e-4, init_examples=500, baseline=False, eval_every=5, checkpoint_every=5)
