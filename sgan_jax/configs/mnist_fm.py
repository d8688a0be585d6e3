"""Salimans et al. 2016, MNIST feature matching (improved-gan train_mnist_feature_matching.py).

100 labels (10/class), all 60k training images unlabeled, batch 100 per stream,
Adam(3e-3, b1=0.5, eps inside sqrt) at a constant learning rate (the reference MNIST
script has no decay), 300 epochs x 600 iterations, Polyak-averaged evaluation. No validation split, as in the paper (the
reported number is the final model); set val_size to select on a hold-out instead.
"""

from sgan_jax.config import Config


def get_config() -> Config:
  return Config(
      name="mnist_fm", dataset="mnist", pixel_range="0,1", labels_per_class=10, val_size=0,
      model="mlp", d_hidden=(1000, 500, 250, 250, 250), g_hidden=(500, 500),
      input_noise=0.3, hidden_noise=0.5, g_loss="feature_matching", fm_order=2,
      batch_size=100, lr=0.003, b1=0.5, epochs=300, lr_decay_epochs=0, avg_rate=1e-4,
      init_examples=500, seed=1, data_seed=1)
