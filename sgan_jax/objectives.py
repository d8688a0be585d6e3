"""The training objectives a config asks for, as pure functions over D's outputs.

This is the one module that reads the objective fields of a config (``task``,
``d_objective``, ``g_loss`` and the weights of the optional terms). :func:`make_objective`
returns an :class:`Objective` whose two functions the iteration calls without branching:

* ``d_loss``: the supervised loss on the labeled rows plus, for the SGAN, the
  unsupervised real/generated loss (Salimans et al. 2016, eq. 5; or the WGAN-GP critic)
  and the optional Bad-GAN entropy and class-balance terms;
* ``g_loss``: feature matching, non-saturating, minimax, Wasserstein or the Odena-style
  sum, plus the optional pull-away and conditional terms.

Every term is a function of :mod:`sgan_jax.losses`; the terms are summed in a fixed order
(the order is part of the recorded trajectories).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import jax
import jax.numpy as jnp

from sgan_jax import losses
from sgan_jax.config import Config, check_mode

# forward(x, key) -> logits: a training-mode pass of the current discriminator.
Forward = Callable[[jax.Array, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class Objective:
  """The losses of one config and mode.

  ``d_loss(logits, y_lab, n_lab, n_unl, forward, x_unl, x_fake, key, prior)``:
    logits ``(n_lab + n_unl + n_fake, outputs)`` from one pass over the labeled, unlabeled
    and generated rows (in that order; only the labeled rows in supervised mode);
    ``forward`` re-evaluates D (the gradient penalty); ``prior`` ``(K,)`` or None.
    Returns ``(total, metrics)``.
  ``g_loss(logits_fake, feats_fake, feats_real, classes)``: returns ``(loss, parts)``.
  """

  d_loss: Callable
  g_loss: Optional[Callable]
  sgan: bool
  needs_real_features: bool   # g_loss reads D's features of a real batch
  watches_d_wins: bool        # the D-wins guard applies (a log-loss GAN game)


def real_fake_part(logits: jax.Array, cfg: Config) -> jax.Array:
  """The columns that score real vs generated: all K (or K+1) class logits, or for
  regression output 1, the real/fake logit Z (D(x) = sigmoid(Z))."""
  return logits[:, 1:] if cfg.task == "regression" else logits


def supervised(l_lab: jax.Array, y_lab: jax.Array, cfg: Config) -> tuple[jax.Array, dict]:
  """The labeled rows' loss and training error: cross-entropy and error rate, or for
  regression the configured loss on output 0 and its RMSE."""
  param = cfg.parameterization
  if cfg.task == "regression":
    sup = losses.regression_loss(l_lab[:, 0], y_lab, cfg.regression_loss, cfg.huber_delta)
    return sup, {"loss_lab": sup, "train_err": jnp.sqrt(jnp.mean(jnp.square(l_lab[:, 0] - y_lab)))}
  sup = losses.supervised_xent(l_lab, y_lab, param)
  return sup, {"loss_lab": sup, "train_err": losses.error_rate(l_lab, y_lab, param)}


def make_objective(cfg: Config, mode: str = "sgan") -> Objective:
  """The :class:`Objective` of ``cfg`` in ``mode`` ("sgan" or "supervised")."""
  check_mode(mode)
  param = cfg.parameterization
  sgan = mode == "sgan"
  rf = lambda logits: real_fake_part(logits, cfg)

  def unsupervised(logits, n_lab, n_unl, forward, x_unl, x_fake, key, out):
    scores = rf(logits)
    rf_unl, rf_fake = scores[n_lab:n_lab + n_unl], scores[n_lab + n_unl:]
    if cfg.d_objective == "gan":
      return losses.d_unsupervised(rf_unl, rf_fake, param)
    unsup = losses.d_wasserstein(rf_unl, rf_fake, param)
    k_eps, k_gp = jax.random.split(jax.random.fold_in(key, 1))
    x_hat = losses.interpolate(k_eps, x_unl, x_fake)
    critic = lambda t: losses.critic_value(rf(forward(t, k_gp)), param)
    out["loss_gp"] = gp = losses.gradient_penalty(critic, x_hat)
    return unsup + cfg.gp_weight * gp

  def d_loss(logits, y_lab, n_lab, n_unl, forward, x_unl, x_fake, key, prior):
    total, out = supervised(logits[:n_lab], y_lab, cfg)
    if not sgan:
      return total, out
    out["loss_unl"] = unsup = unsupervised(logits, n_lab, n_unl, forward, x_unl, x_fake, key, out)
    total = total + cfg.unlabeled_weight * unsup
    l_unl = logits[n_lab:n_lab + n_unl]
    if cfg.entropy_weight > 0:
      out["loss_ent"] = ent = losses.conditional_entropy(l_unl, param)
      total = total + cfg.entropy_weight * ent
    if cfg.balance_weight > 0:
      out["loss_bal"] = bal = losses.class_balance(l_unl, param, prior)
      total = total + cfg.balance_weight * bal
    return total, out

  def adversarial(fake_rf, feats_real, feats_fake):
    g = cfg.g_loss
    if g == "feature_matching":
      return losses.feature_matching(feats_real, feats_fake, cfg.fm_order)
    if g == "non_saturating":
      return losses.g_non_saturating(fake_rf, param)
    if g == "non_saturating+feature_matching":  # Odena-style DCGAN recipe
      return (losses.g_non_saturating(fake_rf, param)
              + losses.feature_matching(feats_real, feats_fake, cfg.fm_order))
    if g == "wasserstein":
      return losses.g_wasserstein(fake_rf, param)
    return losses.g_minimax(fake_rf, param)

  def g_loss(logits_fake, feats_fake, feats_real, classes):
    loss, parts = adversarial(rf(logits_fake), feats_real, feats_fake), {}
    if cfg.pullaway_weight > 0:
      parts["loss_pt"] = losses.pull_away(feats_fake)
      loss = loss + cfg.pullaway_weight * parts["loss_pt"]
    if cfg.conditional:
      parts["loss_cond"] = losses.conditional_xent(logits_fake, classes, param)
      loss = loss + cfg.cond_weight * parts["loss_cond"]
    return loss, parts

  return Objective(d_loss=d_loss, g_loss=g_loss if sgan else None, sgan=sgan,
                   needs_real_features=sgan and "feature_matching" in cfg.g_loss,
                   watches_d_wins=sgan and cfg.d_objective == "gan")


def class_prior(cfg: Config, y_lab: jax.Array, num_classes: int) -> Optional[jax.Array]:
  """The ``balance_weight`` term's target: the labeled set's smoothed class frequencies
  (:func:`sgan_jax.losses.label_prior`), ``(K,)``; None when the term is off. Labels of
  the labeled set only: the unlabeled stream's labels are never seen."""
  if cfg.balance_weight == 0:  # Config refuses the term for regression
    return None
  return losses.label_prior(y_lab, num_classes)
