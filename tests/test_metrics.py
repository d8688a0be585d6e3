"""FID and Inception Score against closed forms."""

import jax
import numpy as np
import pytest

from sgan_jax import metrics


def _gaussian(rng, n, mean, cov):
  return rng.multivariate_normal(mean, cov, size=n)


def test_gaussian_stats_are_the_mean_and_unbiased_covariance():
  f = np.random.default_rng(4).normal(size=(5, 3))
  mu, cov = metrics.gaussian_stats(f)
  np.testing.assert_allclose(mu, f.mean(0), rtol=1e-5)
  np.testing.assert_allclose(cov, np.cov(f, rowvar=False), rtol=1e-4, atol=1e-6)  # N - 1


def test_fid_identical_features_is_zero():
  f = np.random.default_rng(0).normal(size=(500, 6))
  assert float(metrics.fid(f, f)) == pytest.approx(0.0, abs=1e-3)


def test_frechet_distance_diagonal_closed_form():
  # Diagonal covariances: FD = |mu1-mu2|^2 + sum (sqrt(a) - sqrt(b))^2.
  mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
  a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
  want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
  got = metrics.frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
  assert float(got) == pytest.approx(want, rel=1e-5)


def test_frechet_distance_general_matches_scipy_formula():
  # Non-commuting covariances against the textbook formula with scipy's sqrtm.
  scipy_linalg = pytest.importorskip("scipy.linalg")
  rng = np.random.default_rng(1)
  m1, m2 = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
  s1, s2 = m1 @ m1.T + 0.1 * np.eye(5), m2 @ m2.T + 0.1 * np.eye(5)
  mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
  covmean = scipy_linalg.sqrtm(s1 @ s2).real
  want = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean)
  got = metrics.frechet_distance(mu1, s1, mu2, s2)
  assert float(got) == pytest.approx(want, rel=1e-4)


def test_fid_of_samples_approaches_closed_form():
  rng = np.random.default_rng(2)
  cov1, cov2 = np.diag([1.0, 2.0]), np.diag([4.0, 0.5])
  f1 = _gaussian(rng, 20000, [0.0, 0.0], cov1)
  f2 = _gaussian(rng, 20000, [3.0, 0.0], cov2)
  want = 9.0 + (1 - 2) ** 2 + (np.sqrt(2) - np.sqrt(0.5)) ** 2
  assert float(metrics.fid(f1, f2)) == pytest.approx(want, rel=0.05)


def test_fid_jits():
  f = np.random.default_rng(3).normal(size=(100, 4)).astype(np.float32)
  np.testing.assert_allclose(jax.jit(metrics.fid)(f, f + 1.0), metrics.fid(f, f + 1.0), rtol=1e-5)
  assert float(metrics.fid(f, f + 1.0)) == pytest.approx(4.0, rel=1e-3)


def test_inception_score_bounds():
  k = 10
  # Confident and evenly spread over K classes: IS = K.
  onehot = np.eye(k)[np.arange(1000) % k]
  assert float(metrics.inception_score(onehot)[0]) == pytest.approx(k, rel=1e-5)
  # Every sample predicts the same distribution: KL = 0, IS = 1.
  same = np.tile(np.random.default_rng(0).dirichlet(np.ones(k)), (50, 1))
  assert float(metrics.inception_score(same)[0]) == pytest.approx(1.0, abs=1e-5)
  # All samples confidently one class: IS = 1.
  assert float(metrics.inception_score(np.eye(k)[np.zeros(40, int)])[0]) == pytest.approx(1.0)


def test_inception_score_hand_computed_and_splits():
  p = np.array([[0.5, 0.5], [1.0, 0.0]])
  marg = p.mean(0)
  kl = [np.sum(r[r > 0] * np.log(r[r > 0] / marg[r > 0])) for r in p]
  assert float(metrics.inception_score(p)[0]) == pytest.approx(np.exp(np.mean(kl)), rel=1e-6)
  # Two splits of the half-onehot set: each split is one confident class -> 1, std 0.
  p2 = np.eye(2)[[0, 0, 1, 1]]
  mean, std = metrics.inception_score(p2, splits=2)
  assert float(mean) == pytest.approx(1.0) and float(std) == pytest.approx(0.0, abs=1e-7)
  assert float(metrics.inception_score(p2, splits=1)[0]) == pytest.approx(2.0)


def test_metric_input_errors():
  with pytest.raises(ValueError, match="features must be"):
    metrics.fid(np.zeros((1, 3)), np.zeros((5, 3)))
  with pytest.raises(ValueError, match="probs must be"):
    metrics.inception_score(np.full((3, 2), 0.5), splits=5)
