"""Salimans et al. 2016, SVHN feature matching (improved-gan train_svhn_feature_matching.py).

1,000 labels (100/class), the 73,257 training images (no "extra"), x scaled to [-1, 1];
the CIFAR architecture with 64/128 channels; L1 feature matching; Adam(3e-4, b1=0.5),
900 epochs with a linear decay over the last 300. 5,000 training images held out for
model selection.

  sgan-jax table svhn_fm --seeds 1,2,3      # needs TFDS svhn_cropped (network)
"""

from sgan_jax.config import Config
from sgan_jax.reports import Table

TABLE = Table(
    name="svhn_fm", title="SVHN, feature matching (Salimans et al. 2016)",
    labels=(1000,), published={1000: "8.11 ± 1.3"},
    source="Salimans et al. 2016, Table 3 (test error %, 900 epochs)", modes=("sgan",))


def get_config() -> Config:
  return Config(
      name="svhn_fm", dataset="svhn_cropped", pixel_range="-1,1", labels_per_class=100,
      val_size=5000, model="conv", d_width=64, g_width=128, g_loss="feature_matching",
      fm_order=1, batch_size=100, lr=3e-4, b1=0.5, epochs=900, lr_decay_epochs=300,
      avg_rate=1e-4, init_examples=500, baseline=False, eval_every=5, checkpoint_every=5)
