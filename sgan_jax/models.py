"""Generator and discriminator modules (Flax Linen, pure init/apply over pytrees).

Every discriminator maps ``x: (B, *shape)`` to ``(logits, features)``:
``logits`` is ``(B, K)`` (or ``(B, K+1)`` with ``fake_logit=True``) and ``features``
``(B, F)`` is the representation feature matching uses. Every generator maps
``z: (B, latent_dim)`` to samples ``(B, *shape)``.

Variable collections: ``params`` (trainable), ``weightnorm`` (frozen weight-norm
scales, set by data-dependent init), ``batch_stats`` (generator batch norm).
RNG streams: ``noise`` (Gaussian noise and dropout).
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from sgan_jax.layers import GaussianNoise, WNConv, WNConvTranspose, WNDense

glorot = nn.initializers.glorot_uniform()


class MLPDiscriminator(nn.Module):
  """Reference MNIST discriminator (improved-gan ``train_mnist_feature_matching.py``).

  Gaussian noise (``input_noise``) on the input, then weight-normalised dense layers
  ``hidden`` each followed by ReLU and Gaussian noise (``hidden_noise``), then a
  weight-normalised dense output with a trainable scale. ``features`` is the last
  hidden layer's activation before its noise.
  """

  num_classes: int = 10
  hidden: Sequence[int] = (1000, 500, 250, 250, 250)
  input_noise: float = 0.3
  hidden_noise: float = 0.5
  fake_logit: bool = False
  dtype: jnp.dtype | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True, init_mode: bool = False):
    x = x.reshape(x.shape[0], -1)
    x = GaussianNoise(self.input_noise)(x, deterministic=not train)
    feat = x
    for width in self.hidden:
      x = nn.relu(WNDense(width, dtype=self.dtype)(x, init_mode))
      feat = x
      x = GaussianNoise(self.hidden_noise)(x, deterministic=not train)
    out = self.num_classes + int(self.fake_logit)
    logits = WNDense(out, train_scale=True, dtype=self.dtype)(x, init_mode)
    return logits.astype(jnp.float32), feat.astype(jnp.float32)


class MLPGenerator(nn.Module):
  """Reference MNIST generator: ``z -> [Dense, BN(no gain), softplus] * 2 -> WN Dense, sigmoid``.

  Batch norm comes before the nonlinearity and the dense layers before it have no bias,
  as improved-gan's ``nn.batch_norm`` wrapper does. The output layer is weight-normalised
  with a trainable scale starting at 1 and no data-dependent init.
  ``output_activation`` is ``"sigmoid"`` (data in [0, 1]), ``"tanh"`` ([-1, 1]) or
  ``"linear"`` (standardised tabular features).
  """

  out_shape: Sequence[int] = (28, 28, 1)
  hidden: Sequence[int] = (500, 500)
  output_activation: str = "sigmoid"
  dtype: jnp.dtype | None = None

  @nn.compact
  def __call__(self, z: jax.Array, train: bool = True, init_mode: bool = False):
    h = z
    for width in self.hidden:
      h = nn.Dense(width, use_bias=False, kernel_init=glorot, dtype=self.dtype)(h)
      h = nn.BatchNorm(use_running_average=not train, use_scale=False, momentum=0.9,
                       epsilon=1e-4, dtype=self.dtype)(h)
      h = nn.softplus(h)
    x = WNDense(math.prod(self.out_shape), train_scale=True, kernel_init=glorot,
                dtype=self.dtype)(h, False)
    x = _activate(x.astype(jnp.float32), self.output_activation)
    return x.reshape(z.shape[0], *self.out_shape)


def _activate(x, name: str):
  if name == "sigmoid":
    return nn.sigmoid(x)
  if name == "tanh":
    return jnp.tanh(x)
  if name == "linear":
    return x
  raise ValueError(f"unknown output_activation {name!r}; use sigmoid, tanh or linear")


class ConvDiscriminator(nn.Module):
  """Reference 32x32 conv discriminator (improved-gan CIFAR-10/SVHN feature matching).

  ``width`` is the first stage's channels (96 CIFAR-10, 64 SVHN); the second stage has
  ``2 * width``. Weight-normalised convs with leaky ReLU 0.2, dropout 0.2 on the input
  and 0.5 after each strided stage, a valid 3x3 conv, two NIN (1x1) layers, global mean
  pool (the feature-matching feature) and a weight-normalised dense output (trainable
  scale, initialised to std 0.1).
  """

  num_classes: int = 10
  width: int = 96
  fake_logit: bool = False
  dtype: jnp.dtype | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True, init_mode: bool = False):
    lrelu = lambda t: nn.leaky_relu(t, 0.2)
    drop = lambda r, t: nn.Dropout(r, rng_collection="noise")(t, deterministic=not train)
    w1, w2 = self.width, 2 * self.width
    h = drop(0.2, x)
    h = lrelu(WNConv(w1, dtype=self.dtype)(h, init_mode))
    h = lrelu(WNConv(w1, dtype=self.dtype)(h, init_mode))
    h = lrelu(WNConv(w1, strides=(2, 2), dtype=self.dtype)(h, init_mode))
    h = drop(0.5, h)
    h = lrelu(WNConv(w2, dtype=self.dtype)(h, init_mode))
    h = lrelu(WNConv(w2, dtype=self.dtype)(h, init_mode))
    h = lrelu(WNConv(w2, strides=(2, 2), dtype=self.dtype)(h, init_mode))
    h = drop(0.5, h)
    h = lrelu(WNConv(w2, padding="VALID", dtype=self.dtype)(h, init_mode))
    h = lrelu(WNConv(w2, kernel_size=(1, 1), dtype=self.dtype)(h, init_mode))
    h = lrelu(WNConv(w2, kernel_size=(1, 1), dtype=self.dtype)(h, init_mode))
    feat = jnp.mean(h, axis=(1, 2))
    out = self.num_classes + int(self.fake_logit)
    logits = WNDense(out, train_scale=True, init_scale=0.1, kernel_init=nn.initializers.normal(0.05),
                     dtype=self.dtype)(feat, init_mode)
    return logits.astype(jnp.float32), feat.astype(jnp.float32)


class ConvGenerator(nn.Module):
  """Reference 32x32 deconv generator.

  ``z -> Dense 4*4*(4*width'), ReLU, BN -> deconv5x5 to 8x8x(2*width'), ReLU, BN ->
  16x16x(width') -> 32x32xC tanh`` with weight norm on the output layer; ``width'`` is
  128 for the reference (512/256/128 channels).
  """

  out_shape: Sequence[int] = (32, 32, 3)
  width: int = 128
  output_activation: str = "tanh"
  dtype: jnp.dtype | None = None

  @nn.compact
  def __call__(self, z: jax.Array, train: bool = True, init_mode: bool = False):
    bn = lambda t: nn.BatchNorm(use_running_average=not train, use_scale=False, momentum=0.9,
                                epsilon=1e-4, dtype=self.dtype)(t)
    h, w, c = self.out_shape
    if h % 8 or w % 8:
      raise ValueError(f"ConvGenerator needs height and width divisible by 8, got {self.out_shape}")
    init = nn.initializers.normal(0.05)
    x = nn.Dense((h // 8) * (w // 8) * 4 * self.width, use_bias=False, kernel_init=init,
                 dtype=self.dtype)(z)
    x = nn.relu(bn(x)).reshape(z.shape[0], h // 8, w // 8, 4 * self.width)
    for ch in (2 * self.width, self.width):
      x = nn.ConvTranspose(ch, (5, 5), strides=(2, 2), padding="SAME", use_bias=False,
                           kernel_init=init, dtype=self.dtype)(x)
      x = nn.relu(bn(x))
    x = WNConvTranspose(c, train_scale=True, init_scale=0.1, dtype=self.dtype)(x, init_mode)
    return _activate(x.astype(jnp.float32), self.output_activation)
