"""Small synthetic data and configs shared by tests (no downloads, seconds to run)."""

import numpy as np

from sgan_jax import data
from sgan_jax.config import Config


def blobs(n=160, k=4, side=8, channels=1, seed=0, n_test=40):
  """k classes of images, class c has a bright patch in position c; uint8."""
  rng = np.random.default_rng(seed)

  def make(m):
    y = np.arange(m) % k
    rng.shuffle(y)
    x = rng.integers(0, 60, size=(m, side, side, channels))
    half = side // 2
    for i, c in enumerate(y):
      r, q = divmod(c % 4, 2)
      x[i, r * half:(r + 1) * half, q * half:(q + 1) * half] += 180
    return np.clip(x, 0, 255).astype(np.uint8), y

  xtr, ytr = make(n)
  xte, yte = make(n_test)
  return data.from_arrays(xtr, ytr, xte, yte, name="blobs")


def tiny_config(**kw) -> Config:
  base = dict(name="tiny", dataset="blobs", labels_per_class=2, val_size=16, model="mlp",
              d_hidden=(32, 16), g_hidden=(32,), latent_dim=8, batch_size=16, epochs=2,
              iters_per_epoch=3, init_examples=32, eval_every=1, num_devices=1, avg_rate=0.1,
              lr_decay_epochs=1)
  base.update(kw)
  return Config(**base)


def tiny_conv_config(**kw) -> Config:
  return tiny_config(model="conv", d_width=4, g_width=4, pixel_range="-1,1", fm_order=1, **kw)
