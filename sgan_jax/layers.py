"""Layers the reference models need that Flax does not ship: weight norm with
data-dependent initialisation, additive Gaussian noise, and a transposed conv whose kernel
gradient is a matmul on CPU (:mod:`sgan_jax.conv`).

Weight-normalised layers compute ``y = (x @ v) * scale / ||v|| + bias`` (Salimans &
Kingma 2016). ``scale`` is a trainable parameter only when ``train_scale=True`` (the
reference trains it on output layers only); otherwise it lives in the non-trainable
``"weightnorm"`` collection, set once by data-dependent init and then frozen.

Data-dependent init: call the model with ``init_mode=True`` and
``mutable=["params", "weightnorm"]`` on a batch of data. Each layer then normalises its
pre-activation to mean 0 / std ``init_scale`` over the batch, outputs that, and writes
``scale <- scale * init_scale / std`` and ``bias <- -mean * init_scale / std``, so the
next layer sees exactly what the initialised network computes.
"""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from sgan_jax import conv, noise

WN_EPS = 1e-6  # inside the norm's sqrt, as in improved-gan's l2normalize


class _WeightNorm(nn.Module):
  """Shared scale/bias handling; subclasses provide the linear map."""

  features: int
  train_scale: bool = False
  init_scale: float = 1.0
  kernel_init: Callable = nn.initializers.normal(0.05)
  dtype: jnp.dtype | None = None  # computation dtype (params stay float32)

  def _kernel(self, shape) -> tuple[jax.Array, jax.Array]:
    """The kernel parameter ``v`` and ``1 / ||v||`` per output unit (last axis), ``(N,)``.

    Layers compute ``(x @ v) * (scale / ||v||)`` rather than ``x @ (v / ||v||)``: the
    same function, but the per-unit factor folds into the scale vector instead of a
    pass over the whole kernel in the forward and backward passes (measurably faster
    for the MNIST MLP, whose steps are bound by such elementwise passes on CPU).
    """
    v = self.param("kernel", self.kernel_init, shape)
    axes = tuple(range(len(shape) - 1))
    return v, jax.lax.rsqrt(WN_EPS + jnp.sum(jnp.square(v), axis=axes))

  def _scale_and_bias(self):
    if self.train_scale:
      scale = self.param("scale", nn.initializers.ones, (self.features,))
    else:
      scale = self.variable("weightnorm", "scale", jnp.ones, (self.features,)).value
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    return scale, bias

  def _finish(self, t, inv_norm, scale, bias, init_mode: bool):
    """t: pre-activation ``x @ v`` (channels last); inv_norm: ``1 / ||v||`` per unit."""
    if not init_mode:
      return t * (scale * inv_norm).astype(t.dtype) + bias.astype(t.dtype)
    axes = tuple(range(t.ndim - 1))
    t = t.astype(jnp.float32) * inv_norm * scale
    mean = jnp.mean(t, axis=axes)
    inv_std = self.init_scale / jnp.sqrt(jnp.mean(jnp.square(t - mean), axis=axes) + 1e-12)
    if self.train_scale:
      self.put_variable("params", "scale", scale * inv_std)
    else:
      self.put_variable("weightnorm", "scale", scale * inv_std)
    self.put_variable("params", "bias", -mean * inv_std)
    return (t - mean) * inv_std


class WNDense(_WeightNorm):
  """Weight-normalised dense layer. x: ``(B, D)`` -> ``(B, features)``."""

  kernel_init: Callable = nn.initializers.normal(0.1)

  @nn.compact
  def __call__(self, x: jax.Array, init_mode: bool = False) -> jax.Array:
    v, inv_norm = self._kernel((x.shape[-1], self.features))
    scale, bias = self._scale_and_bias()
    dtype = self.dtype or x.dtype
    t = jnp.dot(x.astype(dtype), v.astype(dtype))
    return self._finish(t, inv_norm, scale, bias, init_mode)


class WNConv(_WeightNorm):
  """Weight-normalised 2-D convolution, NHWC. x: ``(B, H, W, C)`` -> ``(B, H', W', features)``."""

  kernel_size: Sequence[int] = (3, 3)
  strides: Sequence[int] = (1, 1)
  padding: str = "SAME"

  @nn.compact
  def __call__(self, x: jax.Array, init_mode: bool = False) -> jax.Array:
    v, inv_norm = self._kernel((*self.kernel_size, x.shape[-1], self.features))
    scale, bias = self._scale_and_bias()
    dtype = self.dtype or x.dtype
    t = conv.conv_general_dilated(
        x.astype(dtype), v.astype(dtype), tuple(self.strides), self.padding,
        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return self._finish(t, inv_norm, scale, bias, init_mode)


class WNConvTranspose(_WeightNorm):
  """Weight-normalised transposed convolution ("deconv"), NHWC, 'SAME' padding.

  With ``strides=(2, 2)`` it doubles height and width.
  """

  kernel_size: Sequence[int] = (5, 5)
  strides: Sequence[int] = (2, 2)

  @nn.compact
  def __call__(self, x: jax.Array, init_mode: bool = False) -> jax.Array:
    v, inv_norm = self._kernel((*self.kernel_size, x.shape[-1], self.features))
    scale, bias = self._scale_and_bias()
    dtype = self.dtype or x.dtype
    t = conv.conv_transpose(
        x.astype(dtype), v.astype(dtype), tuple(self.strides), "SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return self._finish(t, inv_norm, scale, bias, init_mode)


class ConvTranspose(nn.Module):
  """``flax.linen.ConvTranspose`` (NHWC, string padding) through :func:`conv.conv_transpose`.

  Same parameters (``kernel`` ``(kh, kw, C, features)``, ``bias``), initialisation order
  and outputs as the Flax layer, and the same auto-name (``ConvTranspose_<i>``), so
  checkpoints written with either load into the other. Takes only the fields below: not
  Flax's ``kernel_dilation``, ``transpose_kernel``, ``precision``, ``param_dtype``,
  ``mask``, explicit/``CIRCULAR`` padding or unbatched / non-2-D inputs (use
  ``nn.ConvTranspose`` for those; it computes the kernel gradient with XLA's conv).
  """

  features: int
  kernel_size: Sequence[int]
  strides: Sequence[int] = (1, 1)
  padding: str = "SAME"
  use_bias: bool = True
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros
  dtype: jnp.dtype | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", self.kernel_init,
                        (*self.kernel_size, x.shape[-1], self.features), jnp.float32)
    bias = (self.param("bias", self.bias_init, (self.features,), jnp.float32)
            if self.use_bias else None)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    y = conv.conv_transpose(x, kernel, tuple(self.strides), self.padding,
                            dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y if bias is None else y + bias


class GaussianNoise(nn.Module):
  """Adds ``sigma * N(0, 1)`` noise in training mode; identity when deterministic.

  Draws from the ``"noise"`` RNG stream, with ``jax.random.normal`` (``rng="threefry"``)
  or the cheaper counter hash of :mod:`sgan_jax.noise` (``rng="hash"``).
  """

  sigma: float
  rng: str = "threefry"

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
    if deterministic or self.sigma == 0.0:
      return x
    eps = noise.normal(self.make_rng("noise"), x.shape, self.rng)
    return x + (self.sigma * eps).astype(x.dtype)
