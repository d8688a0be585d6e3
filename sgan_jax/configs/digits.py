"""Quickstart: scikit-learn's bundled 8x8 digits (no download), 3 labels per class.

1300 training images (200 held out for validation, 1100 unlabeled including the 30
labeled), 497 test images. A smaller version of the reference MNIST MLP pair; the
reported model is the epoch with the best validation error.
"""

from sgan_jax.config import Config


def get_config() -> Config:
  return Config(
      name="digits", dataset="digits", pixel_range="0,1", labels_per_class=3, val_size=200,
      model="mlp", d_hidden=(500, 250, 250), g_hidden=(250, 250), input_noise=0.3,
      hidden_noise=0.5, g_loss="feature_matching", fm_order=2, batch_size=100, lr=0.003,
      b1=0.5, epochs=200, lr_decay_epochs=50, avg_rate=1e-3, init_examples=500, seed=0,
      data_seed=0, eval_every=10)
