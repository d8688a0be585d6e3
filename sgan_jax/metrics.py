"""Generator-quality metrics as pure functions of features / class probabilities.

Both metrics take the outputs of a feature extractor the caller chooses, so they work
for any data: the usual choice is Inception-v3 (pool features for FID, softmax for IS),
which cannot be downloaded here; for MNIST this project uses a classifier it trains on
all 60k labels (:func:`sgan_jax.evaluator.fit_reference_classifier`), so its numbers are
comparable with each other but not with published Inception-based values.

* Fréchet distance between Gaussians (Heusel et al. 2017)::

    FD = ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)

  computed with symmetric eigendecompositions (``tr((S1 S2)^1/2)`` equals the trace of
  the square root of the PSD matrix ``S1^1/2 S2 S1^1/2``), which is stable and jittable.
* Inception Score (Salimans et al. 2016): ``exp(E_x KL(p(y|x) || p(y)))``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _psd_sqrt(s: jax.Array) -> jax.Array:
  """Symmetric square root of a PSD matrix ``(D, D)``; negative round-off eigenvalues clip to 0."""
  w, v = jnp.linalg.eigh(s)
  return (v * jnp.sqrt(jnp.clip(w, 0.0))) @ v.T


def gaussian_stats(features: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Mean ``(D,)`` and unbiased covariance ``(D, D)`` of ``features: (N, D)``, N >= 2."""
  f = jnp.asarray(features, jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
  if f.ndim != 2 or f.shape[0] < 2:
    raise ValueError(f"features must be (N >= 2, D), got shape {f.shape}")
  mu = jnp.mean(f, axis=0)
  c = f - mu
  return mu, c.T @ c / (f.shape[0] - 1)


def frechet_distance(mu1: jax.Array, sigma1: jax.Array, mu2: jax.Array,
                     sigma2: jax.Array) -> jax.Array:
  """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (scalar).

  Args: means ``(D,)`` and covariances ``(D, D)`` (symmetric PSD).
  """
  r1 = _psd_sqrt(sigma1)
  middle = r1 @ sigma2 @ r1
  tr_cross = jnp.sum(jnp.sqrt(jnp.clip(jnp.linalg.eigvalsh((middle + middle.T) / 2), 0.0)))
  d = jnp.sum(jnp.square(mu1 - mu2)) + jnp.trace(sigma1) + jnp.trace(sigma2) - 2 * tr_cross
  return jnp.maximum(d, 0.0)


def fid(features_real: jax.Array, features_fake: jax.Array) -> jax.Array:
  """Fréchet distance between the Gaussians fitted to two feature sets ``(N, D)``, ``(M, D)``."""
  return frechet_distance(*gaussian_stats(features_real), *gaussian_stats(features_fake))


def inception_score(probs: jax.Array, splits: int = 1) -> tuple[jax.Array, jax.Array]:
  """Inception Score of class probabilities ``probs: (N, K)`` (rows sum to 1).

  Returns ``(mean, std)`` over ``splits`` equal chunks (the published protocol uses 10;
  std is 0 for one split). Ranges from 1 (every sample has the marginal's distribution)
  to K (confident predictions spread evenly over K classes). Chunks are consecutive rows:
  shuffle samples that are ordered by class first, or each chunk sees one class and
  scores ~1.
  """
  p = jnp.asarray(probs, jnp.float32)
  n = p.shape[0] - p.shape[0] % splits
  if p.ndim != 2 or n == 0:
    raise ValueError(f"probs must be (N >= splits, K), got shape {p.shape} with splits={splits}")
  p = p[:n].reshape(splits, n // splits, p.shape[1])
  marginal = jnp.mean(p, axis=1, keepdims=True)
  # xlogy: 0 * log 0 = 0 for classes a sample gives zero probability.
  kl = jnp.sum(jax.scipy.special.xlogy(p, p) - jax.scipy.special.xlogy(p, marginal), axis=-1)
  scores = jnp.exp(jnp.mean(kl, axis=1))
  return jnp.mean(scores), jnp.std(scores)
