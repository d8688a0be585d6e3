"""2-D convolutions whose kernel gradient is computed as matmuls (drop-in for ``lax``).

XLA:CPU lowers the kernel gradient of a convolution (the conv that contracts over the
batch) to a slow generic loop: in the DCGAN pair's step it took 1.8 s for 2.8 GFLOP, while
the same contraction written as ``kh * kw`` matmuls runs at matmul speed. Measured on the
2-core CPU: the Odena DCGAN step went from 0.15 to 2.5 it/s and its supervised-only
step from 0.7 to ~15 it/s (docs/performance.md, "Convolutions on CPU"). Limit: forward-mode autodiff
(jvp/jacfwd) does not go through the custom VJP (on CPU, or with
``SGAN_JAX_CONV_GRAD=matmul``; set it to ``lax`` for jvp).

:func:`conv_general_dilated` and :func:`conv_transpose` have the ``lax`` signatures
(``flax.linen.Conv(conv_general_dilated=...)`` takes the first). For NHWC inputs with HWIO
kernels, no feature groups and no kernel dilation they run the ``lax`` convolution
forward and for the input gradient, and a custom VJP computes the kernel gradient tap by
tap: ``dW[i, j] = A_ij^T @ B_ij`` over all batch and spatial positions, where

- an ordinary (strided) conv takes ``A_ij`` = the input window at offset ``(i, j)``
  (a strided slice of the input) and ``B_ij`` = the output gradient;
- a transposed conv (input dilation, unit stride) takes ``A_ij`` = the input and ``B_ij``
  = a strided slice of the output gradient, so the zeros of the dilated input are never
  multiplied;

both restricted to the positions where the tap sees the input rather than its zero
padding, so the kernel gradient costs exactly the FLOPs of lax's.

Everything else falls through to ``lax``. The custom gradient is used only when the
default backend is the CPU (decided at trace time); accelerators keep their own conv
kernels, which are fast there. ``SGAN_JAX_CONV_GRAD=lax`` turns it off everywhere and
``SGAN_JAX_CONV_GRAD=matmul`` turns it on everywhere (to compare, or to try it on an
accelerator); the default is ``auto``.
"""

from __future__ import annotations

import functools
import os
from typing import Sequence

import jax
import jax.numpy as jnp
from jax import lax

_NHWC = ("NHWC", "HWIO", "NHWC")
Pads = tuple[tuple[int, int], tuple[int, int]]


def _lax_conv(x, w, strides, pads, lhs_dil):
  return lax.conv_general_dilated(x, w, strides, pads, lhs_dil, None, _NHWC)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv_nhwc(x: jax.Array, w: jax.Array, strides: tuple[int, int], pads: Pads,
              lhs_dil: tuple[int, int]) -> jax.Array:
  """``lax.conv_general_dilated`` for x ``(N, H, W, C)``, w ``(kh, kw, C, O)`` and explicit
  padding, with a matmul kernel gradient. Needs ``strides == (1, 1)`` if ``lhs_dil != (1, 1)``.
  """
  return _lax_conv(x, w, strides, pads, lhs_dil)


def _fwd(x, w, strides, pads, lhs_dil):
  return _lax_conv(x, w, strides, pads, lhs_dil), (x, w)


def _tap_range(i: int, lo: int, n_in: int, n_out: int, s: int, d: int):
  """Input and output index ranges that tap ``i`` pairs along one spatial axis.

  Output position ``p`` sees, through tap ``i``, padded position ``p * s + i``, which holds
  input ``r`` when ``p * s + i == d * r + lo`` (stride ``s``, input dilation ``d``; one of
  them is 1). Returns ``(r0, p0, count)`` with ``r`` stepping by ``s`` and ``p`` by ``d``
  from there; ``count <= 0`` when the tap only ever sees padding. Positions in the zero
  padding are skipped, so no FLOP multiplies a padded zero.
  """
  if d == 1:  # r = p * s + i - lo, p in [0, n_out), r in [0, n_in)
    p0 = max(0, -((i - lo) // s))  # ceil((lo - i) / s)
    p1 = min(n_out - 1, (n_in - 1 + lo - i) // s)
    return p0 * s + i - lo, p0, p1 - p0 + 1
  # s == 1: p = d * r + lo - i
  r0 = max(0, -((lo - i) // d))  # ceil((i - lo) / d)
  r1 = min(n_in - 1, (n_out - 1 + i - lo) // d)
  return r0, d * r0 + lo - i, r1 - r0 + 1


def kernel_grad(x: jax.Array, g: jax.Array, kernel_hw: tuple[int, int], strides, pads,
                lhs_dil) -> jax.Array:
  """``d out / d w`` contracted with ``g``: x ``(N, H, W, C)``, g ``(N, Ho, Wo, O)`` ->
  ``(kh, kw, C, O)`` in float32 (float64 for float64 inputs).

  Tap ``(i, j)`` is one matmul between the input rows/columns it reads and the output
  gradient rows/columns it writes (strided slices of ``x`` for a strided conv, of ``g``
  for an input-dilated one), restricted to positions inside the unpadded input.
  """
  kh, kw = kernel_hw
  acc = jnp.promote_types(x.dtype, jnp.float32)  # float32, or float64 under x64
  n, h, w_, c = x.shape
  _, ho, wo, o = g.shape
  (lo_h, _), (lo_w, _) = pads
  (sh, sw), (dh, dw) = strides, lhs_dil
  taps = []
  for i in range(kh):
    rh, ph, nh = _tap_range(i, lo_h, h, ho, sh, dh)
    for j in range(kw):
      rw, pw, nw = _tap_range(j, lo_w, w_, wo, sw, dw)
      if nh <= 0 or nw <= 0:
        taps.append(jnp.zeros((c, o), acc))
        continue
      a = lax.slice(x, (0, rh, rw, 0), (n, rh + (nh - 1) * sh + 1, rw + (nw - 1) * sw + 1, c),
                    (1, sh, sw, 1))
      b = lax.slice(g, (0, ph, pw, 0), (n, ph + (nh - 1) * dh + 1, pw + (nw - 1) * dw + 1, o),
                    (1, dh, dw, 1))
      taps.append(jnp.einsum("nhwc,nhwo->co", a, b, preferred_element_type=acc))
  return jnp.stack(taps).reshape(kh, kw, c, o)


def _bwd(strides, pads, lhs_dil, res, g):
  x, w = res
  # The conv is linear in x: transpose it rather than re-running the forward via vjp.
  (dx,) = jax.linear_transpose(lambda t: _lax_conv(t, w, strides, pads, lhs_dil), x)(g)
  dw = kernel_grad(x, g, w.shape[:2], strides, pads, lhs_dil)
  return dx, dw.astype(w.dtype)


conv_nhwc.defvjp(_fwd, _bwd)


def _is_nhwc(lhs, rhs, dimension_numbers) -> bool:
  if dimension_numbers is None or lhs.ndim != 4 or rhs.ndim != 4:
    return False
  want = lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)
  return lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers) == want


def _use_custom_grad() -> bool:
  mode = os.environ.get("SGAN_JAX_CONV_GRAD", "auto")
  if mode not in ("auto", "lax", "matmul"):
    raise ValueError(f"SGAN_JAX_CONV_GRAD={mode!r}: use 'auto' (matmul kernel gradient on CPU "
                     "only), 'lax' (never) or 'matmul' (always).")
  return mode == "matmul" or (mode == "auto" and jax.default_backend() == "cpu")


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1,
                         precision=None, preferred_element_type=None, **kwargs):
  """``lax.conv_general_dilated`` with the matmul kernel gradient where it applies."""
  strides = tuple(window_strides)
  lhs_dil = tuple(lhs_dilation) if lhs_dilation is not None else (1, 1)
  supported = (_use_custom_grad() and _is_nhwc(lhs, rhs, dimension_numbers)
               and feature_group_count == 1 and batch_group_count == 1
               and (rhs_dilation is None or tuple(rhs_dilation) == (1, 1))
               and precision is None and preferred_element_type is None and not kwargs
               and (lhs_dil == (1, 1) or strides == (1, 1))
               # lax refuses string padding with input dilation: let it say so.
               and not (isinstance(padding, str) and lhs_dil != (1, 1)))
  if not supported:
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation,
                                    rhs_dilation, dimension_numbers, feature_group_count,
                                    batch_group_count, precision, preferred_element_type,
                                    **kwargs)
  if isinstance(padding, str):
    pads = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], strides, padding)
  else:
    pads = padding
  pads = tuple((int(lo), int(hi)) for lo, hi in pads)
  return conv_nhwc(lhs, rhs, strides, pads, lhs_dil)


def transpose_padding(k: int, s: int, padding: str) -> tuple[int, int]:
  """Padding of the dilated input for a transposed conv, as ``lax.conv_transpose`` pads it."""
  if padding == "SAME":
    pad_len = k + s - 2
    pad_a = k - 1 if s > k - 1 else -(-pad_len // 2)
  elif padding == "VALID":
    pad_len = k + s - 2 + max(k - s, 0)
    pad_a = k - 1
  else:
    raise ValueError(f"padding must be 'SAME' or 'VALID', got {padding!r}")
  return pad_a, pad_len - pad_a


def conv_transpose(lhs, rhs, strides: Sequence[int], padding, rhs_dilation=None,
                   dimension_numbers=None, transpose_kernel: bool = False, precision=None,
                   preferred_element_type=None, **kwargs):
  """``lax.conv_transpose`` with the matmul kernel gradient for ``"SAME"``/``"VALID"``
  padding and an untransposed kernel; anything else (explicit pads, ``"SAME_LOWER"``,
  ``transpose_kernel=True``, kernel dilation) goes to ``lax.conv_transpose`` unchanged."""
  if (isinstance(padding, str) and padding in ("SAME", "VALID") and not transpose_kernel
      and not kwargs
      and (rhs_dilation is None or tuple(rhs_dilation) == (1, 1))
      and _is_nhwc(lhs, rhs, dimension_numbers)):
    pads = [transpose_padding(k, s, padding) for k, s in zip(rhs.shape[:2], strides)]
    return conv_general_dilated(lhs, rhs, (1, 1), pads, tuple(strides), None, dimension_numbers,
                                precision=precision, preferred_element_type=preferred_element_type)
  return lax.conv_transpose(lhs, rhs, strides, padding, rhs_dilation, dimension_numbers,
                            transpose_kernel, precision, preferred_element_type, **kwargs)
