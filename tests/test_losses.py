"""Loss functions against independent numpy formulas, stability, and jit/no-jit agreement."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sgan_jax import losses

RNG = np.random.default_rng(0)


def np_lse(x, axis=-1):
  m = np.max(x, axis=axis, keepdims=True)
  return (m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))).squeeze(axis)


def np_softmax(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


@pytest.fixture(params=[False, True], ids=["eager", "jit"])
def maybe_jit(request):
  return jax.jit if request.param else (lambda f, **kw: f)


def test_supervised_xent_matches_numpy(maybe_jit):
  logits = RNG.normal(size=(7, 5)).astype(np.float64)
  labels = RNG.integers(0, 5, size=7)
  p = np_softmax(logits)
  want = -np.mean(np.log(p[np.arange(7), labels]))
  got = maybe_jit(losses.supervised_xent, static_argnums=2)(jnp.asarray(logits, jnp.float32),
                                                             jnp.asarray(labels), "k")
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_supervised_xent_hand_value():
  # logits [0, log 3]: p(class 1) = 3/4, so CE for label 1 is log(4/3).
  logits = jnp.array([[0.0, np.log(3.0)]])
  np.testing.assert_allclose(losses.supervised_xent(logits, jnp.array([1])), np.log(4 / 3),
                             rtol=1e-6)


def test_d_unsupervised_matches_numpy_probabilities(maybe_jit):
  lu = RNG.normal(size=(6, 4)) * 3
  lf = RNG.normal(size=(5, 4)) * 3
  d_real = lambda l: np.exp(np_lse(l)) / (np.exp(np_lse(l)) + 1.0)  # D(x) = Z/(Z+1)
  want = -0.5 * np.mean(np.log(d_real(lu))) - 0.5 * np.mean(np.log(1 - d_real(lf)))
  got = maybe_jit(losses.d_unsupervised, static_argnums=2)(jnp.asarray(lu, jnp.float32),
                                                          jnp.asarray(lf, jnp.float32), "k")
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_parameterisations_agree_when_fake_logit_is_zero():
  lu = RNG.normal(size=(8, 10)).astype(np.float32)
  lf = RNG.normal(size=(8, 10)).astype(np.float32)
  pad = lambda l: np.concatenate([l, np.zeros((len(l), 1), np.float32)], 1)
  k = losses.d_unsupervised(lu, lf, "k")
  k1 = losses.d_unsupervised(pad(lu), pad(lf), "k+1")
  softmax_form = losses.d_unsupervised_softmax(pad(lu), pad(lf))
  np.testing.assert_allclose(k, k1, rtol=1e-6)
  np.testing.assert_allclose(k, softmax_form, rtol=1e-5)


def test_k_plus_one_is_shift_invariant():
  # Adding a constant to all K+1 logits leaves the softmax, hence every loss, unchanged.
  l = RNG.normal(size=(4, 6)).astype(np.float32)
  y = jnp.array([0, 1, 2, 4])
  for fn in (lambda a: losses.d_unsupervised(a, a[::-1], "k+1"),
             lambda a: losses.supervised_xent(a, y, "k+1"),
             lambda a: losses.d_unsupervised_softmax(a, a[::-1])):
    np.testing.assert_allclose(fn(l), fn(l + 7.0), rtol=1e-5, atol=1e-6)


def test_feature_matching_l2_and_l1():
  fr = RNG.normal(size=(10, 3))
  ff = RNG.normal(size=(12, 3))
  d = fr.mean(0) - ff.mean(0)
  np.testing.assert_allclose(losses.feature_matching(fr, ff, 2), np.mean(d ** 2), rtol=1e-5)
  np.testing.assert_allclose(losses.feature_matching(fr, ff, 1), np.mean(np.abs(d)), rtol=1e-5)
  with pytest.raises(ValueError):
    losses.feature_matching(fr, ff, 3)


def test_feature_matching_hand_value():
  fr = jnp.array([[1.0, 2.0], [3.0, 4.0]])   # mean [2, 3]
  ff = jnp.array([[0.0, 0.0], [0.0, 2.0]])   # mean [0, 1]
  assert float(losses.feature_matching(fr, ff, 2)) == pytest.approx((4 + 4) / 2)
  assert float(losses.feature_matching(fr, ff, 1)) == pytest.approx((2 + 2) / 2)


def test_generator_gan_losses_match_numpy():
  lf = RNG.normal(size=(9, 3)) * 2
  d = np.exp(np_lse(lf)) / (np.exp(np_lse(lf)) + 1)
  np.testing.assert_allclose(losses.g_non_saturating(lf), -np.mean(np.log(d)), rtol=1e-5)
  np.testing.assert_allclose(losses.g_minimax(lf), np.mean(np.log(1 - d)), rtol=1e-5)


def test_error_rate_and_class_logits():
  l = jnp.array([[0.0, 1.0, 5.0], [3.0, 0.0, 9.0]])  # k+1: last column is fake
  np.testing.assert_array_equal(losses.class_logits(l, "k+1"), [[-5.0, -4.0], [-6.0, -9.0]])
  assert float(losses.error_rate(l, jnp.array([1, 1]), "k+1")) == 0.5
  # Predictions are [1, 0] (the fake column never wins): all right, then all wrong.
  assert float(losses.error_rate(l, jnp.array([1, 0]), "k+1")) == 0.0
  assert float(losses.error_rate(l, jnp.array([0, 1]), "k+1")) == 1.0
  with pytest.raises(ValueError):
    losses.real_logit(l, "k+2")


@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_large_logits_give_finite_losses_and_grads(scale):
  l = jnp.asarray(RNG.normal(size=(4, 10)), jnp.float32) * scale
  y = jnp.array([0, 3, 5, 9])
  fns = {
      "sup": lambda a: losses.supervised_xent(a, y),
      "unsup": lambda a: losses.d_unsupervised(a, -a),
      "unsup_k1": lambda a: losses.d_unsupervised(a, a[::-1], "k+1"),
      "softmax": lambda a: losses.d_unsupervised_softmax(a, -a),
      "ns": losses.g_non_saturating,
      "mm": losses.g_minimax,
      "fm": lambda a: losses.feature_matching(a, -a),
      "bal": losses.class_balance,
      "bal_k1": lambda a: losses.class_balance(a, "k+1", jnp.full((9,), 1 / 9)),
  }
  for name, fn in fns.items():
    val, grad = jax.value_and_grad(fn)(l)
    assert np.isfinite(float(val)), name
    assert np.all(np.isfinite(np.asarray(grad))), name


def test_losses_importable_alone():
  import subprocess
  import sys
  code = ("import sys; from sgan_jax import losses; "
          "assert 'sgan_jax.train' not in sys.modules and 'flax' not in sys.modules")
  subprocess.run([sys.executable, "-c", code], check=True)


def test_regression_losses_match_independent_formulas():
  pred = RNG.normal(size=50) * 3
  y = RNG.normal(size=50)
  r = pred - y
  np.testing.assert_allclose(losses.regression_loss(pred, y, "squared"), np.mean(r ** 2), rtol=1e-5)
  for delta in (0.5, 1.0, 2.0):
    # Huber as the squared loss capped to linear growth beyond delta, elementwise.
    want = np.mean([0.5 * e * e if abs(e) <= delta else delta * abs(e) - 0.5 * delta ** 2 for e in r])
    np.testing.assert_allclose(losses.regression_loss(pred, y, "huber", delta), want, rtol=1e-5)
  # hand value: residual 3 with delta 1 -> 1 * (3 - 0.5) = 2.5
  assert float(losses.regression_loss(jnp.array([3.0]), jnp.array([0.0]), "huber", 1.0)) == 2.5
  g = jax.grad(lambda p: losses.regression_loss(p, jnp.zeros(2), "huber", 1.0))(jnp.array([1e4, -1e4]))
  np.testing.assert_allclose(g, [0.5, -0.5])  # bounded gradient: 1/B per element
  with pytest.raises(ValueError):
    losses.regression_loss(pred, y, "l1")
