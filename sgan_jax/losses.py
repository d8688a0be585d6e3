"""Semi-supervised GAN losses as small pure functions over logits and features.

Two parameterisations of the discriminator are supported (GUIDE section 1):

* ``"k"`` (Salimans et al. 2016): ``logits`` has shape ``(B, K)`` and the "fake" logit
  is fixed at 0, so ``p(real | x) = sigmoid(Z)`` with ``Z = logsumexp(logits)``.
* ``"k+1"`` (Odena 2016): ``logits`` has shape ``(B, K + 1)``, the last column is the
  "fake" class, and ``p(real | x) = sigmoid(logsumexp(logits[:, :K]) - logits[:, K])``.

Every loss is a batch mean, stable for logits of any magnitude (built on
``logsumexp``/``softplus``/``log_softmax`` only), and importable without the rest of
the library: ``from sgan_jax import losses``.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp

Parameterization = Literal["k", "k+1"]
PARAMETERIZATIONS = ("k", "k+1")


def _check_param(parameterization: str) -> None:
  if parameterization not in PARAMETERIZATIONS:
    raise ValueError(
        f"parameterization must be one of {PARAMETERIZATIONS}, got {parameterization!r}")


def class_logits(logits: jax.Array, parameterization: Parameterization = "k") -> jax.Array:
  """Logits over the K real classes, shape ``(B, K)``.

  For ``"k+1"`` the fake logit is subtracted so that the result is the equivalent
  K-logit parameterisation (fake logit 0); argmax and softmax over K are unchanged.
  """
  _check_param(parameterization)
  if parameterization == "k":
    return logits
  return logits[:, :-1] - logits[:, -1:]


def real_logit(logits: jax.Array, parameterization: Parameterization = "k") -> jax.Array:
  """``Z(x)``, the logit of ``p(real | x)``: shape ``(B,)``.

  ``p(real | x) = sigmoid(Z)``. For ``"k"``: ``Z = logsumexp(l)``; for ``"k+1"``:
  ``Z = logsumexp(l[:, :K]) - l[:, K]``.
  """
  return jax.nn.logsumexp(class_logits(logits, parameterization), axis=-1)


def supervised_xent(logits: jax.Array, labels: jax.Array,
                    parameterization: Parameterization = "k") -> jax.Array:
  """Cross-entropy over the K real classes on a labeled batch (scalar).

  Args:
    logits: ``(B, K)`` or ``(B, K + 1)`` raw logits (never softmaxed).
    labels: ``(B,)`` integer class ids in ``[0, K)``.
    parameterization: ``"k"`` or ``"k+1"``.

  Returns ``-mean(l_y) + mean(logsumexp(l))`` over the K class logits.
  """
  c = class_logits(logits, parameterization)
  l_y = jnp.take_along_axis(c, labels[:, None].astype(jnp.int32), axis=-1)[:, 0]
  return -jnp.mean(l_y) + jnp.mean(jax.nn.logsumexp(c, axis=-1))


def d_unsupervised(logits_unl: jax.Array, logits_fake: jax.Array,
                   parameterization: Parameterization = "k") -> jax.Array:
  """Unsupervised discriminator loss (scalar), Salimans et al. form.

  ``-0.5*mean(Z_unl) + 0.5*mean(softplus(Z_unl)) + 0.5*mean(softplus(Z_fake))``,
  i.e. ``0.5*(-log D(x) - log(1 - D(G(z))))`` with ``D = sigmoid(Z)``.

  Args:
    logits_unl: ``(B_u, K[+1])`` logits on real unlabeled data.
    logits_fake: ``(B_f, K[+1])`` logits on generated data.
  """
  z_unl = real_logit(logits_unl, parameterization)
  z_fake = real_logit(logits_fake, parameterization)
  return (-0.5 * jnp.mean(z_unl) + 0.5 * jnp.mean(jax.nn.softplus(z_unl))
          + 0.5 * jnp.mean(jax.nn.softplus(z_fake)))


def d_unsupervised_softmax(logits_unl: jax.Array, logits_fake: jax.Array) -> jax.Array:
  """The same loss written directly on a K+1 softmax (Odena 2016), scalar.

  ``-0.5*mean(log(1 - p_fake(x))) - 0.5*mean(log p_fake(G(z)))`` where ``p_fake`` is
  the softmax probability of the last column. Kept as an independent formulation:
  it equals ``d_unsupervised(..., "k+1")`` and, when the last logit is 0,
  ``d_unsupervised(l[:, :K], ..., "k")``.

  Args:
    logits_unl: ``(B_u, K + 1)``; logits_fake: ``(B_f, K + 1)``.
  """
  log_p_unl = jax.nn.log_softmax(logits_unl, axis=-1)
  log_not_fake_unl = jax.nn.logsumexp(log_p_unl[:, :-1], axis=-1)
  log_fake_fake = jax.nn.log_softmax(logits_fake, axis=-1)[:, -1]
  return -0.5 * jnp.mean(log_not_fake_unl) - 0.5 * jnp.mean(log_fake_fake)


def feature_matching(features_real: jax.Array, features_fake: jax.Array,
                     order: int = 2) -> jax.Array:
  """Generator feature-matching loss (scalar).

  Distance between batch means of an intermediate discriminator feature:
  ``mean((mean_b f_real - mean_b f_fake)**2)`` for ``order=2`` (MNIST reference) or
  ``mean(|...|)`` for ``order=1`` (CIFAR/SVHN reference).

  Args:
    features_real: ``(B_r, F)`` features of real (unlabeled) data.
    features_fake: ``(B_f, F)`` features of generated data.
  """
  diff = jnp.mean(features_real, axis=0) - jnp.mean(features_fake, axis=0)
  if order == 2:
    return jnp.mean(jnp.square(diff))
  if order == 1:
    return jnp.mean(jnp.abs(diff))
  raise ValueError(f"feature_matching order must be 1 or 2, got {order!r}")


def g_non_saturating(logits_fake: jax.Array,
                     parameterization: Parameterization = "k") -> jax.Array:
  """Non-saturating generator loss ``-mean(log D(G(z)))`` = ``mean(softplus(-Z))``."""
  return jnp.mean(jax.nn.softplus(-real_logit(logits_fake, parameterization)))


def g_minimax(logits_fake: jax.Array, parameterization: Parameterization = "k") -> jax.Array:
  """Minimax generator loss ``mean(log(1 - D(G(z))))`` = ``-mean(softplus(Z))``.

  The generator *minimises* this (it is the negative of the discriminator's fake term).
  """
  return -jnp.mean(jax.nn.softplus(real_logit(logits_fake, parameterization)))


def regression_loss(pred: jax.Array, target: jax.Array, kind: str = "squared",
                    delta: float = 1.0) -> jax.Array:
  """Regression-head loss on labeled rows (scalar).

  ``kind="squared"``: ``mean((pred - y)^2)``; ``kind="huber"``: ``mean(h(pred - y))`` with
  ``h(r) = r^2 / 2`` for ``|r| <= delta`` and ``delta * (|r| - delta / 2)`` beyond.

  Args:
    pred: ``(B,)`` predictions; target: ``(B,)`` (standardised) targets.
  """
  r = pred - target
  if kind == "squared":
    return jnp.mean(jnp.square(r))
  if kind == "huber":
    a = jnp.abs(r)
    return jnp.mean(jnp.where(a <= delta, 0.5 * jnp.square(r), delta * (a - 0.5 * delta)))
  raise ValueError(f"regression loss kind must be 'squared' or 'huber', got {kind!r}")


def error_rate(logits: jax.Array, labels: jax.Array,
               parameterization: Parameterization = "k") -> jax.Array:
  """Fraction of examples whose argmax over the K class logits is not the label."""
  pred = jnp.argmax(class_logits(logits, parameterization), axis=-1)
  return jnp.mean(pred != labels)


# --------------------------------------------------------------------------- toolbox extras
def critic_value(logits: jax.Array, parameterization: Parameterization = "k") -> jax.Array:
  """Wasserstein critic value ``C(x) = Z(x)`` read from the classifier logits: ``(B,)``.

  Using the real-vs-fake logit as the critic keeps the K-class head untouched: the
  supervised loss still sees ``softmax(l)`` and the critic only moves ``logsumexp(l)``.
  """
  return real_logit(logits, parameterization)


def d_wasserstein(logits_unl: jax.Array, logits_fake: jax.Array,
                  parameterization: Parameterization = "k") -> jax.Array:
  """Wasserstein critic loss ``mean C(G(z)) - mean C(x)`` (scalar, to minimise).

  Add :func:`gradient_penalty` (WGAN-GP, Gulrajani et al. 2017) to keep C 1-Lipschitz.
  Args: ``(B_u, K[+1])`` and ``(B_f, K[+1])`` logits.
  """
  return (jnp.mean(critic_value(logits_fake, parameterization))
          - jnp.mean(critic_value(logits_unl, parameterization)))


def g_wasserstein(logits_fake: jax.Array, parameterization: Parameterization = "k") -> jax.Array:
  """Wasserstein generator loss ``-mean C(G(z))`` (scalar)."""
  return -jnp.mean(critic_value(logits_fake, parameterization))


def interpolate(key: jax.Array, x_real: jax.Array, x_fake: jax.Array) -> jax.Array:
  """``eps * x_real + (1 - eps) * x_fake`` with one ``eps ~ U(0, 1)`` per example.

  Args: ``x_real``, ``x_fake``: ``(B, ...)`` of equal shapes. Returns ``(B, ...)``.
  """
  eps = jax.random.uniform(key, (x_real.shape[0],) + (1,) * (x_real.ndim - 1), x_real.dtype)
  return eps * x_real + (1 - eps) * x_fake


def gradient_penalty(critic_fn, x: jax.Array) -> jax.Array:
  """WGAN-GP penalty ``mean_b (||d C(x_b) / d x_b||_2 - 1)^2`` (scalar).

  Args:
    critic_fn: ``(B, ...) -> (B,)`` critic values; each output must depend only on its
      own example (true for the discriminators here: no batch statistics), so the
      gradient of the sum gives every example's own input gradient.
    x: ``(B, ...)`` points to penalise, usually :func:`interpolate` of real and fake.
  """
  grads = jax.grad(lambda t: jnp.sum(critic_fn(t)))(x)
  norms = jnp.sqrt(jnp.sum(jnp.square(grads.reshape(x.shape[0], -1)), axis=-1) + 1e-12)
  return jnp.mean(jnp.square(norms - 1.0))


def conditional_entropy(logits: jax.Array, parameterization: Parameterization = "k") -> jax.Array:
  """Mean entropy of ``p(y | x)`` over the K classes (scalar), Bad-GAN's term on unlabeled data.

  ``-mean_b sum_k p_k log p_k`` with ``p = softmax(class_logits)``; the discriminator
  minimises it (weighted) to make confident predictions on real unlabeled data.
  Args: ``logits``: ``(B, K[+1])``.
  """
  logp = jax.nn.log_softmax(class_logits(logits, parameterization), axis=-1)
  return -jnp.mean(jnp.sum(jnp.exp(logp) * logp, axis=-1))


def label_prior(labels: jax.Array, num_classes: int) -> jax.Array:
  """Class frequencies of a labeled set, Laplace-smoothed: ``(num_classes,)``, sums to 1.

  ``(count_k + 1) / (N + K)``: equal to the uniform distribution for a class-balanced
  set, and never 0, so :func:`class_balance` stays finite when a class has no label.
  Args: ``labels``: ``(N,)`` integer class ids in ``[0, K)``.
  """
  counts = jnp.zeros((num_classes,), jnp.float32).at[labels].add(1.0)
  return (counts + 1.0) / (labels.shape[0] + num_classes)


def class_balance(logits: jax.Array, parameterization: Parameterization = "k",
                  prior: jax.Array | None = None) -> jax.Array:
  """``KL(p_bar || prior)`` of a batch's mean class prediction (scalar, >= 0).

  ``p_bar = mean_b softmax(class_logits)`` over the K classes. With a uniform prior this is
  ``log K - H(p_bar)``, CatGAN's marginal-entropy term (Springenberg 2016): minimised on
  unlabeled data together with :func:`conditional_entropy`, it stops the classifier from
  handing one class's region to a neighbour (which the real/fake terms, seeing only
  ``logsumexp`` of the logits, allow). Alone it is met by making every prediction uniform.
  It is a *batch* statistic: under data parallelism ``p_bar`` must be the global batch's mean.

  Args:
    logits: ``(B, K[+1])`` logits on real unlabeled data.
    prior: ``(K,)`` target class distribution, all entries > 0 (default: uniform).
  """
  logp = jax.nn.log_softmax(class_logits(logits, parameterization), axis=-1)
  log_pbar = jax.nn.logsumexp(logp, axis=0) - jnp.log(logp.shape[0])
  log_prior = -jnp.log(logp.shape[-1]) if prior is None else jnp.log(prior)
  return jnp.sum(jnp.exp(log_pbar) * (log_pbar - log_prior))


def pull_away(features: jax.Array) -> jax.Array:
  """Pull-away term (Zhao et al. 2017; Dai et al. 2017) on generated features (scalar).

  ``1/(B(B-1)) sum_{i != j} cos(f_i, f_j)^2``: small when the generated samples'
  features point in different directions, so the generator is pushed to spread out.
  Args: ``features``: ``(B, F)``, B >= 2.
  """
  f = features * jax.lax.rsqrt(jnp.sum(jnp.square(features), axis=-1, keepdims=True) + 1e-12)
  cos2 = jnp.square(f @ f.T)
  b = features.shape[0]
  return (jnp.sum(cos2) - jnp.sum(jnp.diagonal(cos2))) / (b * (b - 1))


def conditional_xent(logits_fake: jax.Array, classes: jax.Array,
                     parameterization: Parameterization = "k") -> jax.Array:
  """Generator loss for class-conditional samples: cross-entropy of the requested classes.

  The discriminator's K-class prediction on ``G(z, c)`` should be ``c``; this is
  :func:`supervised_xent` applied to generated samples. Args: ``(B, K[+1])``, ``(B,)``.
  """
  return supervised_xent(logits_fake, classes, parameterization)
