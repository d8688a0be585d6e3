"""scikit-learn estimators over the SGAN training loop: ``SGANClassifier``, ``SGANRegressor``.

``fit(X, y)`` follows scikit-learn's semi-supervised convention: ``y == -1`` marks an
unlabeled row for the classifier (as in ``sklearn.semi_supervised``), ``NaN`` for the
regressor. Inside, the rows become a :class:`~sgan_jax.data.Splits` (every row in the
unlabeled stream except a stratified ``validation_fraction`` of the labeled rows, held out
to select the epoch) and train through :func:`sgan_jax.train.train` with a config from
:func:`sgan_jax.tabular.default_config`: the same jitted loop as every other run.

Features are standardised with the training rows' statistics (``standardize=True``), so
raw columns of any scale work. The fitted model is numpy arrays plus a config (it pickles);
the jitted forward pass is built on first use and shared by estimators of one architecture.

Needs scikit-learn >= 1.6 (``pip install "sgan_jax[sklearn]"``).
"""

from __future__ import annotations

import functools
from typing import Optional, Sequence

import numpy as np

try:
  from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
  from sklearn.utils import check_random_state
  from sklearn.utils.multiclass import check_classification_targets
  from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
except ImportError as e:  # validate_data is new in 1.6
  raise ImportError("SGANClassifier and SGANRegressor need scikit-learn >= 1.6: "
                    'pip install "sgan_jax[sklearn]"') from e

from sgan_jax import tabular
from sgan_jax.config import Config
from sgan_jax.data import Splits

_TABULAR = tabular.default_config("classification")
# Prediction runs in fixed-size batches: one compiled shape, and a row's output does not
# depend on which other rows it is predicted with (scikit-learn checks this).
_PREDICT_BATCH = 256
_SEED_RANGE = 2**30  # Config seeds are < 2**31; offsets are added to them


@functools.lru_cache(maxsize=8)
def _predictor(graph_cfg: Config, dim: int, outputs: int):
  """The jitted deterministic forward pass of a fitted discriminator (shared by estimators
  whose configs differ only outside the compiled program)."""
  from sgan_jax import step
  from sgan_jax.state import build_models
  return step.make_predict(build_models(graph_cfg, (dim,), outputs, 1))


class _SGANBase(BaseEstimator):
  """Shared by the classifier and the regressor: parameters, fitting, the forward pass."""

  _task = "classification"

  def __init__(self, *, hidden_layer_sizes: Sequence[int] = _TABULAR.d_hidden,
               generator_layer_sizes: Sequence[int] = _TABULAR.g_hidden,
               latent_dim: int = _TABULAR.latent_dim, input_noise: float = _TABULAR.input_noise,
               hidden_noise: float = _TABULAR.hidden_noise, learning_rate: float = _TABULAR.lr,
               batch_size: int = _TABULAR.batch_size, max_epochs: int = _TABULAR.epochs,
               iters_per_epoch: Optional[int] = _TABULAR.iters_per_epoch,
               validation_fraction: float = 0.15, standardize: bool = True,
               supervised_only: bool = False, config_overrides: Optional[dict] = None,
               random_state=None, verbose: int = 0):
    self.hidden_layer_sizes = hidden_layer_sizes
    self.generator_layer_sizes = generator_layer_sizes
    self.latent_dim = latent_dim
    self.input_noise = input_noise
    self.hidden_noise = hidden_noise
    self.learning_rate = learning_rate
    self.batch_size = batch_size
    self.max_epochs = max_epochs
    self.iters_per_epoch = iters_per_epoch
    self.validation_fraction = validation_fraction
    self.standardize = standardize
    self.supervised_only = supervised_only
    self.config_overrides = config_overrides
    self.random_state = random_state
    self.verbose = verbose

  # ------------------------------------------------------------------ fitting
  def _config(self, seed: int) -> Config:
    """The run's config: the tabular defaults, this estimator's parameters, then
    ``config_overrides`` (any :class:`~sgan_jax.config.Config` field)."""
    if not (isinstance(self.max_epochs, (int, np.integer)) and self.max_epochs >= 1):
      raise ValueError(f"max_epochs must be an integer >= 1, got {self.max_epochs!r}.")
    if not 0.0 <= self.validation_fraction < 1.0:
      raise ValueError("validation_fraction must be in [0, 1) (a fraction of the labeled "
                       f"rows), got {self.validation_fraction!r}.")
    epochs = int(self.max_epochs)
    # The tabular schedule's shape at any length: decay over the last 30% of epochs.
    decay = int(round(epochs * _TABULAR.lr_decay_epochs / _TABULAR.epochs))
    fields = dict(task=self._task, d_hidden=tuple(int(h) for h in self.hidden_layer_sizes),
                  g_hidden=tuple(int(h) for h in self.generator_layer_sizes),
                  latent_dim=self.latent_dim, input_noise=self.input_noise,
                  hidden_noise=self.hidden_noise, lr=self.learning_rate,
                  batch_size=self.batch_size, epochs=epochs, lr_decay_epochs=decay,
                  iters_per_epoch=self.iters_per_epoch, eval_every=1, seed=seed,
                  data_seed=seed)
    return tabular.default_config(**{**fields, **(self.config_overrides or {})})

  def _validate_fit(self, X, y) -> tuple[np.ndarray, np.ndarray]:
    # Two rows at least: weight-norm initialisation divides by a spread over rows.
    X = validate_data(self, X, reset=True, dtype=np.float64, ensure_min_samples=2)
    y = column_or_1d(y, warn=True)
    if len(y) != len(X):
      raise ValueError(f"y has {len(y)} rows but X has {len(X)}; they must have the same "
                       "length.")
    return X, y

  def _fit_encoded(self, X: np.ndarray, labeled: np.ndarray, y_lab: np.ndarray,
                   num_classes: int) -> "_SGANBase":
    """Trains on ``X (N, D)``; ``labeled (N,)`` bool, ``y_lab (N_l,)`` the encoded targets
    of the labeled rows (class ids, or float targets); sets the fitted attributes."""
    import jax
    from sgan_jax import train as train_lib
    seed = int(check_random_state(self.random_state).randint(_SEED_RANGE))
    cfg = self._config(seed)
    rng = np.random.RandomState(seed)
    lab_rows = np.flatnonzero(labeled)
    tr, va, _ = tabular._split_labeled(y_lab, self._task, self.validation_fraction, 0.0, rng)
    if self._task == "classification":
      present = np.bincount(y_lab[tr], minlength=num_classes)
      if (present == 0).any():
        k = int(np.flatnonzero(present == 0)[0])
        raise ValueError(f"Class {self.classes_[k]!r} has no labeled row left for training "
                         f"after holding out validation_fraction={self.validation_fraction} "
                         "of the labeled rows; label more rows of that class or lower "
                         "validation_fraction.")
    # The unlabeled stream: every row but the validation hold-out (labeled rows included,
    # their labels left behind, as in data.make_splits).
    train_rows = np.setdiff1d(np.arange(len(X)), lab_rows[va])
    if self.standardize:
      mean, scale = X[train_rows].mean(0), X[train_rows].std(0)
      scale[scale == 0] = 1.0  # constant columns, as StandardScaler
    else:
      mean, scale = np.zeros(X.shape[1]), np.ones(X.shape[1])
    self.feature_mean_, self.feature_scale_ = mean, scale
    x = self._scaled(X)
    if self._task == "regression":
      fit_y = y_lab[tr]
      self.y_mean_, self.y_std_ = float(fit_y.mean()), float(fit_y.std()) or 1.0
      y_lab = ((y_lab - self.y_mean_) / self.y_std_).astype(np.float32)
    else:
      y_lab = y_lab.astype(np.int32)
    lab_pos = np.searchsorted(train_rows, lab_rows[tr])
    x_unl = x[train_rows]
    splits = Splits(x_unl=x_unl, x_lab=x_unl[lab_pos], y_lab=y_lab[tr], lab_idx=lab_pos,
                    val_idx=lab_rows[va], x_val=x[lab_rows[va]], y_val=y_lab[va],
                    x_test=x[:0], y_test=y_lab[:0], num_classes=num_classes)
    mode = "supervised" if self.supervised_only else "sgan"
    log = print if self.verbose >= 2 else (lambda line: None)
    out = train_lib.train(cfg, splits, mode, None, log, keep_selected=True,
                          progress=bool(self.verbose))
    # The epoch selected on validation (its lowest error, ties to the earliest epoch);
    # without a validation row, the final model.
    final = out["state"].classifier_variables()
    self.config_ = cfg
    self.params_ = out["selected"] or jax.device_get(final)
    self.history_ = out["history"]
    self.best_epoch_ = out["summary"].get("best_val_epoch", cfg.epochs)
    self.n_labeled_ = (len(tr), len(va))
    if self.verbose:
      val = out["summary"].get("best_val_err")
      metric = "RMSE (standardised target)" if self._task == "regression" else "error"
      print(f"[{type(self).__name__}] {mode}: {cfg.epochs} epochs in "
            f"{out['summary']['wall_s']:.1f} s; epoch {self.best_epoch_} selected "
            + (f"(validation {metric} {val:.4f})" if val is not None else
               "(the final one: no validation rows)"))
    return self

  def _scaled(self, X: np.ndarray) -> np.ndarray:
    return ((X - self.feature_mean_) / self.feature_scale_).astype(np.float32)

  def _outputs(self, X) -> np.ndarray:
    """Discriminator outputs for ``X (N, D)``: ``(N, K[+1])`` logits or ``(N, 2)``
    (regression value, real/fake logit)."""
    import jax
    from sgan_jax import evaluation
    check_is_fitted(self, "params_")
    X = validate_data(self, X, reset=False, dtype=np.float64)
    x = self._scaled(X)
    n_out = 2 if self._task == "regression" else len(self.classes_) + (
        self.config_.parameterization == "k+1")
    predict = _predictor(self.config_.graph_config(), x.shape[1], n_out)
    # Moved to the device once per call, not per batch; nothing is cached on the estimator
    # (predicting leaves it unchanged, and it pickles as numpy arrays).
    params = jax.device_put(self.params_)
    frozen = {k: v for k, v in params.items() if k != "params"}
    n = len(x)
    pad = -n % _PREDICT_BATCH
    x = np.concatenate([x, np.zeros((pad, x.shape[1]), np.float32)]) if pad else x
    return evaluation.predict_all(predict, params["params"], frozen, x,
                                  batch=_PREDICT_BATCH)[:n]


class SGANClassifier(ClassifierMixin, _SGANBase):
  """Semi-supervised GAN classifier (Salimans et al. 2016) for feature vectors.

  ``fit(X, y)``: ``X (N, D)`` numeric features; ``y (N,)`` class labels of any type
  scikit-learn accepts, ``-1`` for unlabeled rows. A stratified ``validation_fraction`` of
  the labeled rows is held out to select the epoch (lowest validation error, ties to the
  earliest); the rest trains. ``supervised_only=True`` trains the same network on the
  labeled rows alone (the baseline). Any other config field goes in
  ``config_overrides={"field": value}``. ``iters_per_epoch=None``: one pass over the rows
  per epoch. ``verbose``: 0 silent, 1 a progress bar and a summary line, 2 also a line per
  epoch.

  Attributes: ``classes_``, ``n_features_in_``, ``feature_names_in_`` (DataFrames),
  ``config_``, ``history_`` (evaluation records per epoch), ``best_epoch_``,
  ``n_labeled_`` (labeled rows for training, for validation).
  """

  def fit(self, X, y) -> "SGANClassifier":
    """Trains on ``X (N, D)`` and ``y (N,)`` (``-1`` = unlabeled)."""
    X, y = self._validate_fit(X, y)
    labeled = _labeled_mask(y)
    if not labeled.any():
      raise ValueError("y has no labeled row (every value is -1, the mark of an unlabeled "
                       "row); label at least one row of each class.")
    y_known = y[labeled]
    check_classification_targets(y_known)
    self.classes_, y_lab = np.unique(y_known, return_inverse=True)
    if len(self.classes_) < 2:
      raise ValueError(f"The labeled rows hold only one class ({self.classes_[0]!r}); a "
                       "classifier needs labeled rows of at least 2 classes.")
    return self._fit_encoded(X, labeled, y_lab, len(self.classes_))

  def predict_proba(self, X) -> np.ndarray:
    """``(N, K)`` class probabilities over the K real classes (rows sum to 1), in the
    order of ``classes_``."""
    logits = self._outputs(X)[:, :len(self.classes_)]  # "k+1": drop the fake column
    z = logits - logits.max(1, keepdims=True)
    p = np.exp(z.astype(np.float64))
    return p / p.sum(1, keepdims=True)

  def predict(self, X) -> np.ndarray:
    """``(N,)`` predicted labels (elements of ``classes_``)."""
    logits = self._outputs(X)  # first: it raises NotFittedError before fit
    return self.classes_[np.argmax(logits[:, :len(self.classes_)], 1)]


class SGANRegressor(RegressorMixin, _SGANBase):
  """Semi-supervised GAN regressor: a two-headed discriminator (a regression value and a
  real/fake logit), the regression head trained on labeled rows, the real/fake head on
  unlabeled and generated rows.

  ``fit(X, y)``: ``X (N, D)``, ``y (N,)`` float targets with ``NaN`` for unlabeled rows.
  Targets are standardised with the labeled training rows' statistics for training and
  predictions come back in the target's units. Parameters as :class:`SGANClassifier`.
  """

  _task = "regression"

  def fit(self, X, y) -> "SGANRegressor":
    """Trains on ``X (N, D)`` and ``y (N,)`` (``NaN`` = unlabeled)."""
    X, y = self._validate_fit(X, y)
    try:
      y = y.astype(np.float64)
    except (TypeError, ValueError):
      raise ValueError(f"y must be numeric (NaN for unlabeled rows); got dtype {y.dtype}.") from None
    if np.isinf(y).any():
      raise ValueError(f"y contains {int(np.isinf(y).sum())} infinite value(s); targets must "
                       "be finite, or NaN for unlabeled rows.")
    labeled = ~np.isnan(y)
    if not labeled.any():
      raise ValueError("y has no labeled row (every value is NaN, the mark of an unlabeled "
                       "row); give targets for at least one row.")
    return self._fit_encoded(X, labeled, y[labeled], 1)

  def predict(self, X) -> np.ndarray:
    """``(N,)`` predictions in the target's units."""
    return self._outputs(X)[:, 0].astype(np.float64) * self.y_std_ + self.y_mean_


def _labeled_mask(y: np.ndarray) -> np.ndarray:
  """``(N,)`` True where ``y`` is a label; ``-1`` marks an unlabeled row (as in
  ``sklearn.semi_supervised``), in numeric arrays and among object labels."""
  if y.dtype.kind in "iuf":
    return y != -1
  if y.dtype.kind == "O":
    return np.asarray([not (isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
                            and v == -1) for v in y], bool)
  return np.ones(len(y), bool)  # strings and booleans: every row is labeled
