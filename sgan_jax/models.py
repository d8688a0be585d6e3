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

from sgan_jax import conv
from sgan_jax.layers import ConvTranspose, GaussianNoise, WNConv, WNConvTranspose, WNDense

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
  noise_rng: str = "threefry"  # or "hash": sgan_jax.noise, ~4x cheaper on CPU

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True, init_mode: bool = False,
               groups: int = 1):
    del groups  # no batch statistics: streams can share one pass
    x = x.reshape(x.shape[0], -1)
    x = GaussianNoise(self.input_noise, self.noise_rng)(x, deterministic=not train)
    feat = x
    for width in self.hidden:
      x = nn.relu(WNDense(width, dtype=self.dtype)(x, init_mode))
      feat = x
      x = GaussianNoise(self.hidden_noise, self.noise_rng)(x, deterministic=not train)
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
  num_classes: int = 0  # > 0: class-conditional, G(z, c) with c one-hot beside z

  @nn.compact
  def __call__(self, z: jax.Array, labels: jax.Array | None = None, train: bool = True,
               init_mode: bool = False):
    h = _condition(z, labels, self.num_classes)
    for width in self.hidden:
      h = nn.Dense(width, use_bias=False, kernel_init=glorot, dtype=self.dtype)(h)
      h = nn.BatchNorm(use_running_average=not train, use_scale=False, momentum=0.9,
                       epsilon=1e-4, dtype=self.dtype)(h)
      h = nn.softplus(h)
    x = WNDense(math.prod(self.out_shape), train_scale=True, kernel_init=glorot,
                dtype=self.dtype)(h, False)
    x = _activate(x.astype(jnp.float32), self.output_activation)
    return x.reshape(z.shape[0], *self.out_shape)


def _condition(z: jax.Array, labels: jax.Array | None, num_classes: int) -> jax.Array:
  """``z (B, L)`` -> ``[z, onehot(labels)] (B, L + K)`` for a conditional generator."""
  if num_classes == 0:
    if labels is not None:
      raise ValueError("labels were passed to an unconditional generator (num_classes=0)")
    return z
  if labels is None:
    raise ValueError(f"this generator is class-conditional (num_classes={num_classes}); "
                     "pass labels of shape (B,)")
  return jnp.concatenate([z, jax.nn.one_hot(labels, num_classes, dtype=z.dtype)], axis=-1)


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
  def __call__(self, x: jax.Array, train: bool = True, init_mode: bool = False,
               groups: int = 1):
    del groups  # no batch statistics: streams can share one pass
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
  num_classes: int = 0  # > 0: class-conditional

  @nn.compact
  def __call__(self, z: jax.Array, labels: jax.Array | None = None, train: bool = True,
               init_mode: bool = False):
    z = _condition(z, labels, self.num_classes)
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
      x = ConvTranspose(ch, (5, 5), strides=(2, 2), padding="SAME", use_bias=False,
                           kernel_init=init, dtype=self.dtype)(x)
      x = nn.relu(bn(x))
    x = WNConvTranspose(c, train_scale=True, init_scale=0.1, dtype=self.dtype)(x, init_mode)
    return _activate(x.astype(jnp.float32), self.output_activation)


class StreamBatchNorm(nn.Module):
  """Batch norm whose training statistics are computed per stream.

  A training batch ``(G * B, ..., C)`` holds ``G`` equal streams (labeled, unlabeled,
  generated); each is normalised with its own mean and variance, as when the streams go
  through the network in separate calls (DCGAN practice: real and fake batches are
  never mixed in one batch norm). Running averages (``batch_stats``) are over all
  streams and are what evaluation uses.
  """

  momentum: float = 0.9
  epsilon: float = 1e-5
  dtype: jnp.dtype | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool, groups: int = 1) -> jax.Array:
    c = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (c,))
    bias = self.param("bias", nn.initializers.zeros, (c,))
    ra_mean = self.variable("batch_stats", "mean", jnp.zeros, (c,))
    ra_var = self.variable("batch_stats", "var", jnp.ones, (c,))
    if not train:
      mean, var = ra_mean.value, ra_var.value
      y = (x.astype(jnp.float32) - mean) * jax.lax.rsqrt(var + self.epsilon)
    else:
      if x.shape[0] % groups:
        raise ValueError(f"batch {x.shape[0]} does not split into {groups} equal streams")
      xg = x.astype(jnp.float32).reshape(groups, -1, *x.shape[1:])
      axes = tuple(range(1, xg.ndim - 1))
      mean = jnp.mean(xg, axis=axes, keepdims=True)
      var = jnp.mean(jnp.square(xg - mean), axis=axes, keepdims=True)
      y = ((xg - mean) * jax.lax.rsqrt(var + self.epsilon)).reshape(x.shape)
      if not self.is_initializing():
        m = self.momentum
        ra_mean.value = m * ra_mean.value + (1 - m) * jnp.mean(mean.reshape(groups, c), axis=0)
        ra_var.value = m * ra_var.value + (1 - m) * jnp.mean(var.reshape(groups, c), axis=0)
    return (y * scale + bias).astype(self.dtype or x.dtype)


class DCGANDiscriminator(nn.Module):
  """DCGAN-style discriminator for small images (Odena 2016 SGAN; GUIDE section 5).

  Four 3x3 convs with channels ``width * (1, 2, 4, 8)`` and strides ``(2, 2, 2, 1)``,
  leaky ReLU 0.2 and dropout ``dropout`` after each; batch norm (per stream, see
  :class:`StreamBatchNorm`) on every conv except the first (input) one; global average
  pooling (the feature-matching feature); a dense head with ``num_classes`` (+1 fake)
  outputs and no batch norm. ``groups`` is the number of equal streams in a training
  batch.
  """

  num_classes: int = 10
  width: int = 32
  fake_logit: bool = True
  dtype: jnp.dtype | None = None
  dropout: float = 0.25

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True, init_mode: bool = False,
               groups: int = 1):
    del init_mode  # no weight norm here
    h = x.astype(self.dtype or x.dtype)
    for i, (mult, stride) in enumerate(((1, 2), (2, 2), (4, 2), (8, 1))):
      h = nn.Conv(self.width * mult, (3, 3), strides=(stride, stride), padding="SAME",
                  kernel_init=nn.initializers.normal(0.02), use_bias=(i == 0),
                  dtype=self.dtype, conv_general_dilated=conv.conv_general_dilated)(h)
      if i > 0:
        h = StreamBatchNorm(dtype=self.dtype)(h, train, groups)
      h = nn.leaky_relu(h, 0.2)
      h = nn.Dropout(self.dropout, rng_collection="noise")(h, deterministic=not train)
    feat = jnp.mean(h.astype(jnp.float32), axis=(1, 2))
    logits = nn.Dense(self.num_classes + int(self.fake_logit), dtype=self.dtype)(feat)
    return logits.astype(jnp.float32), feat


class DCGANGenerator(nn.Module):
  """DCGAN-style generator: ``z -> Dense (H/4)(W/4)(2 width), BN, ReLU -> deconv 2x to
  width channels, BN, ReLU -> deconv 2x to C channels`` with the output activation.

  For 28x28x1 MNIST with ``width=64``: 7x7x128 -> 14x14x64 -> 28x28x1.
  """

  out_shape: Sequence[int] = (28, 28, 1)
  width: int = 64
  output_activation: str = "sigmoid"
  dtype: jnp.dtype | None = None
  num_classes: int = 0

  @nn.compact
  def __call__(self, z: jax.Array, labels: jax.Array | None = None, train: bool = True,
               init_mode: bool = False):
    del init_mode
    h, w, c = self.out_shape
    if h % 4 or w % 4:
      raise ValueError(f"DCGANGenerator needs height and width divisible by 4, got {self.out_shape}")
    bn = lambda t: nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                                dtype=self.dtype)(t)
    init = nn.initializers.normal(0.02)
    x = _condition(z, labels, self.num_classes)
    x = nn.Dense((h // 4) * (w // 4) * 2 * self.width, kernel_init=init, dtype=self.dtype)(x)
    x = nn.relu(bn(x)).reshape(z.shape[0], h // 4, w // 4, 2 * self.width)
    x = ConvTranspose(self.width, (4, 4), strides=(2, 2), padding="SAME", kernel_init=init,
                         use_bias=False, dtype=self.dtype)(x)
    x = nn.relu(bn(x))
    x = ConvTranspose(c, (4, 4), strides=(2, 2), padding="SAME", kernel_init=init,
                         dtype=self.dtype)(x)
    return _activate(x.astype(jnp.float32), self.output_activation)
