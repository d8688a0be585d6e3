"""Convolutions with a matmul kernel gradient (sgan_jax.conv) against lax's own."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from sgan_jax import conv
from sgan_jax.layers import ConvTranspose

NHWC = ("NHWC", "HWIO", "NHWC")


@pytest.fixture(autouse=True)
def _custom_gradient_on(monkeypatch):
  # Compare the matmul kernel gradient with lax's on any backend, whatever the caller's
  # environment says (with "lax" these tests would compare lax with lax).
  monkeypatch.setenv("SGAN_JAX_CONV_GRAD", "matmul")

# (x shape, kernel shape, strides, padding): the models' convs and edge cases (odd sizes
# whose SAME padding is asymmetric, VALID, 1x1, a kernel larger than the input).
CONVS = [((2, 9, 9, 3), (3, 3, 3, 5), (2, 2), "SAME"),
         ((2, 8, 8, 3), (3, 3, 3, 5), (1, 1), "SAME"),
         ((2, 8, 7, 3), (3, 3, 3, 5), (1, 1), "VALID"),
         ((3, 4, 4, 6), (1, 1, 6, 2), (1, 1), "SAME"),
         ((2, 5, 5, 2), (3, 3, 2, 4), (2, 1), ((1, 2), (0, 1)))]
TRANSPOSED = [((2, 7, 7, 4), (4, 4, 4, 6), (2, 2), "SAME"),
              ((2, 4, 4, 4), (5, 5, 4, 3), (2, 2), "SAME"),
              ((2, 3, 5, 2), (3, 3, 2, 3), (2, 2), "VALID"),
              ((1, 4, 4, 3), (3, 3, 3, 2), (1, 1), "SAME")]


def _inputs(xs, ws, seed=0):
  k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
  return (jax.random.normal(k1, xs), jax.random.normal(k2, ws),
          lambda out_shape: jax.random.normal(k3, out_shape))


def _check(ours, ref, x, w, cot):
  np.testing.assert_allclose(ours(x, w), ref(x, w), rtol=1e-5, atol=1e-5)
  out = ref(x, w)
  g = cot(out.shape)
  for f in (lambda fn: fn, jax.jit):  # with and without jit
    _, vjp_ours = jax.vjp(f(ours), x, w)
    _, vjp_ref = jax.vjp(ref, x, w)
    for a, b in zip(vjp_ours(g), vjp_ref(g)):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("xs,ws,strides,padding", CONVS)
def test_conv_matches_lax_values_and_gradients(xs, ws, strides, padding):
  x, w, cot = _inputs(xs, ws)
  ours = lambda x, w: conv.conv_general_dilated(x, w, strides, padding, dimension_numbers=NHWC)
  ref = lambda x, w: lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=NHWC)
  _check(ours, ref, x, w, cot)


@pytest.mark.parametrize("xs,ws,strides,padding", TRANSPOSED)
def test_conv_transpose_matches_lax_values_and_gradients(xs, ws, strides, padding):
  x, w, cot = _inputs(xs, ws, seed=1)
  ours = lambda x, w: conv.conv_transpose(x, w, strides, padding, dimension_numbers=NHWC)
  ref = lambda x, w: lax.conv_transpose(x, w, strides, padding, dimension_numbers=NHWC)
  _check(ours, ref, x, w, cot)


def test_custom_gradient_is_used_on_cpu():
  # The point of the module: XLA:CPU's own kernel-gradient conv is what it replaces.
  x, w, _ = _inputs((2, 8, 8, 3), (3, 3, 3, 4))
  f = lambda w: jnp.sum(conv.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=NHWC))
  assert "custom_vjp" in str(jax.make_jaxpr(f)(w))
  conv_outputs = lambda g: [e.outvars[0].aval.shape for e in jax.make_jaxpr(g)(w).eqns
                            if e.primitive.name == "conv_general_dilated"]
  # lax computes the kernel gradient as a conv whose output has the kernel's shape; here
  # it is contractions (dot_general), and no conv outputs a kernel-shaped array.
  assert w.shape in conv_outputs(jax.grad(lambda w: jnp.sum(lax.conv_general_dilated(
      x, w, (2, 2), "SAME", dimension_numbers=NHWC))))
  assert w.shape not in conv_outputs(jax.grad(f))


def test_bfloat16_gradient_dtype_and_value():
  x, w, cot = _inputs((2, 7, 7, 4), (4, 4, 4, 3))
  xb, wb = x.astype(jnp.bfloat16), w.astype(jnp.bfloat16)
  ours = lambda w: conv.conv_transpose(xb, w, (2, 2), "SAME", dimension_numbers=NHWC)
  ref = lambda w: lax.conv_transpose(xb, w, (2, 2), "SAME", dimension_numbers=NHWC)
  g = cot(ref(wb).shape).astype(jnp.bfloat16)
  (dw,) = jax.vjp(ours, wb)[1](g)
  (dw_ref,) = jax.vjp(ref, wb)[1](g)
  assert dw.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.float32(dw), np.float32(dw_ref), rtol=3e-2, atol=3e-2)


def test_unsupported_arguments_fall_through_to_lax():
  # NCHW layout and feature groups are not handled: the result is lax's exactly.
  x = jax.random.normal(jax.random.key(0), (2, 4, 6, 6))
  w = jax.random.normal(jax.random.key(1), (4, 2, 3, 3))
  dn = ("NCHW", "OIHW", "NCHW")
  args = ((1, 1), "SAME")
  ours = conv.conv_general_dilated(x, w, *args, dimension_numbers=dn, feature_group_count=2)
  ref = lax.conv_general_dilated(x, w, *args, dimension_numbers=dn, feature_group_count=2)
  np.testing.assert_array_equal(ours, ref)
  f = lambda w: jnp.sum(conv.conv_general_dilated(x, w, *args, dimension_numbers=dn,
                                                  feature_group_count=2))
  assert "custom_vjp" not in str(jax.make_jaxpr(f)(w))


def test_transpose_padding_matches_lax():
  x = jnp.ones((1, 5, 5, 1))
  for k in (1, 2, 3, 4, 5):
    for s in (1, 2, 3):
      for pad in ("SAME", "VALID"):
        w = jnp.ones((k, k, 1, 1))
        ours = conv.conv_transpose(x, w, (s, s), pad, dimension_numbers=NHWC)
        ref = lax.conv_transpose(x, w, (s, s), pad, dimension_numbers=NHWC)
        np.testing.assert_array_equal(ours, ref, err_msg=f"k={k} s={s} {pad}")
  with pytest.raises(ValueError, match="SAME"):
    conv.transpose_padding(3, 2, "FULL")


@pytest.mark.parametrize("use_bias", [True, False])
def test_conv_transpose_module_is_flax_compatible(use_bias):
  """Same parameter names, shapes, initial values and outputs as nn.ConvTranspose, so
  checkpoints of the models move between the two."""
  x = jax.random.normal(jax.random.key(2), (3, 7, 7, 8))
  kw = dict(features=5, kernel_size=(4, 4), strides=(2, 2), padding="SAME", use_bias=use_bias,
            kernel_init=nn.initializers.normal(0.02))
  ours, ref = ConvTranspose(**kw), nn.ConvTranspose(**kw)
  p_ours, p_ref = ours.init(jax.random.key(3), x), ref.init(jax.random.key(3), x)
  jax.tree.map(np.testing.assert_array_equal, p_ours, p_ref)
  b = jax.random.normal(jax.random.key(4), (5,)) if use_bias else None
  if use_bias:
    p_ref = {"params": {**p_ref["params"], "bias": b}}
  np.testing.assert_allclose(ours.apply(p_ref, x), ref.apply(p_ref, x), rtol=1e-5, atol=1e-5)
  g_ours = jax.grad(lambda p: jnp.sum(jnp.sin(ours.apply(p, x))))(p_ref)
  g_ref = jax.grad(lambda p: jnp.sum(jnp.sin(ref.apply(p, x))))(p_ref)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4), g_ours, g_ref)


@pytest.mark.parametrize("mode,custom", [("auto", True), ("matmul", True), ("lax", False)])
def test_environment_switch(monkeypatch, mode, custom):
  if mode == "auto" and jax.default_backend() != "cpu":
    pytest.skip("auto uses the custom gradient on CPU only")
  monkeypatch.setenv("SGAN_JAX_CONV_GRAD", mode)
  x, w, _ = _inputs((2, 8, 8, 3), (3, 3, 3, 4))
  f = lambda w: conv.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=NHWC)
  assert ("custom_vjp" in str(jax.make_jaxpr(f)(w))) == custom  # this suite runs on CPU
  monkeypatch.setenv("SGAN_JAX_CONV_GRAD", "fast")
  with pytest.raises(ValueError, match="'auto'"):
    f(w)


# Cropping (negative) pads, a kernel larger than the padded input's useful part (taps that
# only ever see padding) and input dilation with explicit pads.
EDGE = [((2, 6, 6, 2), (3, 3, 2, 3), (1, 1), ((-1, 2), (2, -1)), (1, 1)),
        ((2, 5, 5, 2), (4, 4, 2, 3), (3, 2), ((3, 3), (0, 2)), (1, 1)),
        ((1, 3, 3, 2), (5, 5, 2, 2), (1, 1), ((4, 4), (4, 4)), (1, 1)),
        ((2, 4, 5, 3), (3, 3, 3, 2), (1, 1), ((-1, 1), (2, 0)), (2, 2)),
        ((2, 3, 3, 2), (4, 4, 2, 3), (1, 1), ((5, 5), (1, 3)), (3, 2))]


@pytest.mark.parametrize("xs,ws,strides,pads,lhs_dil", EDGE)
def test_edge_paddings_match_lax(xs, ws, strides, pads, lhs_dil):
  x, w, cot = _inputs(xs, ws, seed=2)
  kw = dict(lhs_dilation=lhs_dil, dimension_numbers=NHWC)
  ours = lambda x, w: conv.conv_general_dilated(x, w, strides, pads, **kw)
  ref = lambda x, w: lax.conv_general_dilated(x, w, strides, pads, **kw)
  assert "custom_vjp" in str(jax.make_jaxpr(ours)(x, w))
  _check(ours, ref, x, w, cot)


def _dot_flops(f, *args) -> int:
  return sum(2 * int(np.prod(e.outvars[0].aval.shape))
             * int(np.prod([e.invars[0].aval.shape[d] for d in e.params["dimension_numbers"][0][0]]))
             for e in jax.make_jaxpr(f)(*args).eqns if e.primitive.name == "dot_general")


@pytest.mark.parametrize("xs,ws,strides,pads,lhs_dil", EDGE + [
    ((2, 9, 9, 3), (3, 3, 3, 5), (2, 2), ((1, 1), (1, 1)), (1, 1)),
    ((2, 7, 7, 4), (4, 4, 4, 6), (1, 1), ((2, 2), (2, 2)), (2, 2))])
def test_kernel_gradient_never_multiplies_padding(xs, ws, strides, pads, lhs_dil):
  # Count, by brute force, the (output position, tap) pairs that read a real input pixel
  # along each axis; the kernel gradient's matmuls must cost exactly those products.
  x, w, cot = _inputs(xs, ws, seed=3)
  out = lax.conv_general_dilated(x, w, strides, pads, lhs_dil, dimension_numbers=NHWC)
  g = cot(out.shape)

  def real_pairs(axis):
    n_in, n_out, k = xs[1 + axis], out.shape[1 + axis], ws[axis]
    s, d, lo = strides[axis], lhs_dil[axis], pads[axis][0]
    return sum(1 for p in range(n_out) for i in range(k)
               if (p * s + i - lo) % d == 0 and 0 <= (p * s + i - lo) // d < n_in)

  want = 2 * xs[0] * real_pairs(0) * real_pairs(1) * ws[2] * ws[3]
  got = _dot_flops(lambda x, g: conv.kernel_grad(x, g, ws[:2], strides, pads, lhs_dil), x, g)
  assert got == want


def test_string_padding_edge_cases_behave_like_lax():
  x, w, _ = _inputs((2, 8, 8, 3), (3, 3, 3, 4))
  # SAME_LOWER takes the custom gradient and gives lax's values and gradients.
  ours = lambda x, w: conv.conv_general_dilated(x, w, (2, 2), "SAME_LOWER", dimension_numbers=NHWC)
  ref = lambda x, w: lax.conv_general_dilated(x, w, (2, 2), "SAME_LOWER", dimension_numbers=NHWC)
  assert "custom_vjp" in str(jax.make_jaxpr(ours)(x, w))
  _check(ours, ref, x, w, lambda s: jax.random.normal(jax.random.key(5), s))
  # What lax refuses, ours refuses too (with lax's message); conv_transpose with a
  # lowercase string or an rhs_dilation is lax's own path.
  for call in (lambda f: f(x, w, (1, 1), "SAME", (2, 2), dimension_numbers=NHWC),
               lambda f: f(x, w, (2, 2), "same", dimension_numbers=NHWC)):
    for ours_f, lax_f in ((conv.conv_general_dilated, lax.conv_general_dilated),
                          (conv.conv_transpose, lax.conv_transpose)):
      try:
        call(lax_f)
      except Exception as e:  # noqa: BLE001 - whatever lax raises, we raise the same
        with pytest.raises(type(e)):
          call(ours_f)
      else:
        np.testing.assert_allclose(call(ours_f), call(lax_f), rtol=1e-5, atol=1e-5)
