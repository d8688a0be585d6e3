"""SGANClassifier / SGANRegressor: the scikit-learn interface over the training loop.

One tiny architecture and one data shape throughout, so the fits share compiled programs;
the full scikit-learn estimator checks are in test_estimators_checks_slow.py.
"""

import io
import pickle
import subprocess
import sys

import jax
import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import estimator_checks

from sgan_jax import SGANClassifier, SGANRegressor, train
from sgan_jax.estimators import _labeled_mask

from tests.helpers import estimator_params, rig_val_errors

LABELS = np.array(["ant", "bee", "cat"], dtype=object)


def blobs(n=120, seed=0, labeled=0.3):
  """``(X (n, 4), y (n,) object labels with -1 on unlabeled rows, y_true)``: three
  well-separated classes, features on very different scales."""
  x, k = make_blobs(n_samples=n, centers=3, n_features=4, cluster_std=1.0, random_state=seed)
  x = x * np.array([1.0, 100.0, 0.01, 1000.0]) + np.array([0.0, 5e3, 0.0, -2e4])
  y_true = LABELS[k]
  y = y_true.copy()
  y[np.random.RandomState(seed).rand(n) > labeled] = -1
  return x, y, y_true


@pytest.fixture(scope="module")
def fitted():
  x, y, y_true = blobs()
  return SGANClassifier(**estimator_params()).fit(x, y), x, y_true


def test_classifier_learns_and_predict_proba_is_over_the_k_classes(fitted):
  clf, x, y_true = fitted
  assert list(clf.classes_) == list(LABELS) and clf.n_features_in_ == 4
  x_new, _, y_new = blobs(60, seed=0, labeled=0)  # same centres, fresh rows
  proba = clf.predict_proba(x_new)
  assert proba.shape == (60, 3)
  np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-12)
  np.testing.assert_array_equal(clf.predict(x_new), LABELS[proba.argmax(1)])
  assert clf.score(x, y_true) > 0.9  # raw features 1e-2..1e3 apart: standardised inside


def test_the_loop_gets_labeled_unlabeled_and_validation_rows_right(monkeypatch):
  seen = []
  real = train.train
  monkeypatch.setattr(train, "train", lambda cfg, s, mode, *a, **k: (
      seen.append((cfg, s, mode)), real(cfg, s, mode, *a, **k))[1])
  x, y, y_true = blobs()
  SGANClassifier(**estimator_params(standardize=False)).fit(x, y)
  for supervised_only in (False, True):
    clf = SGANClassifier(**estimator_params(supervised_only=supervised_only)).fit(x, y)
  (_, raw, _), (cfg, s, mode), (_, _, mode_sup) = seen
  np.testing.assert_array_equal(raw.x_unl, x[np.setdiff1d(np.arange(len(x)), raw.val_idx)]
                                .astype(np.float32))  # standardize=False: the columns as given
  assert (mode, mode_sup) == ("sgan", "supervised")
  assert cfg.task == "classification" and cfg.seed == cfg.data_seed
  scaled = clf._scaled(x)
  labeled = np.flatnonzero(y != -1)
  val_rows = s.val_idx
  assert len(val_rows) > 0 and set(val_rows) < set(labeled)
  # the unlabeled stream: every row but the validation hold-out, without labels
  np.testing.assert_array_equal(s.x_unl, scaled[np.setdiff1d(np.arange(len(x)), val_rows)])
  np.testing.assert_array_equal(s.x_val, scaled[val_rows])
  np.testing.assert_array_equal(clf.classes_[s.y_val], y_true[val_rows])
  # labeled training rows: the other labeled rows, with their own labels
  train_labeled = np.setdiff1d(labeled, val_rows)
  np.testing.assert_array_equal(s.x_lab, scaled[train_labeled])
  np.testing.assert_array_equal(clf.classes_[s.y_lab], y_true[train_labeled])
  np.testing.assert_array_equal(s.x_unl[s.lab_idx], s.x_lab)
  # standardised with the training rows' statistics (validation rows excluded)
  np.testing.assert_allclose(s.x_unl.mean(0), 0, atol=1e-4)
  assert len(s.x_test) == 0 and clf.n_labeled_ == (len(train_labeled), len(val_rows))


def test_the_epoch_selected_on_validation_is_the_model_kept(monkeypatch):
  outs = []
  real = train.train
  monkeypatch.setattr(train, "train", lambda *a, **k: outs.append(real(*a, **k)) or outs[-1])
  rig_val_errors(monkeypatch, [0.5, 0.1, 0.3])
  x, y, _ = blobs()
  clf = SGANClassifier(**estimator_params()).fit(x, y)
  assert clf.best_epoch_ == 2 and [r["val_err"] for r in clf.history_] == [0.5, 0.1, 0.3]
  kept, final = clf.params_["params"], outs[0]["state"].d_avg
  for a, b in zip(jax.tree.leaves(kept), jax.tree.leaves(outs[0]["selected"]["params"])):
    np.testing.assert_array_equal(a, b)
  assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(kept), jax.tree.leaves(final)))


def test_pickle_and_joblib_round_trips_predict_identically(fitted):
  clf, x, _ = fitted
  before = pickle.dumps(clf)
  clf.predict_proba(x)
  assert pickle.dumps(clf) == before  # predicting leaves the estimator as it was
  for restored in (pickle.loads(pickle.dumps(clf)),
                   joblib.load(_joblib_bytes(clf))):
    np.testing.assert_array_equal(restored.predict_proba(x), clf.predict_proba(x))
    np.testing.assert_array_equal(restored.predict(x), clf.predict(x))


def _joblib_bytes(obj) -> io.BytesIO:
  buf = io.BytesIO()
  joblib.dump(obj, buf)
  buf.seek(0)
  return buf


def test_pipeline_grid_search_cross_val_and_dataframes():
  x, y, y_true = blobs()
  df = pd.DataFrame(x, columns=["a", "b", "c", "d"])
  pipe = make_pipeline(StandardScaler(), SGANClassifier(**estimator_params(standardize=False)))
  pipe.fit(df, y)
  assert list(pipe.feature_names_in_) == ["a", "b", "c", "d"] and pipe.score(df, y_true) > 0.9
  clf = SGANClassifier(**estimator_params()).fit(df, y)
  assert list(clf.feature_names_in_) == ["a", "b", "c", "d"]
  with pytest.raises(ValueError, match="feature names"):
    clf.predict(df[["d", "c", "b", "a"]])
  # Scoring needs labels on every test row: the labeled rows only.
  lab = y != -1
  grid = GridSearchCV(SGANClassifier(**estimator_params()), {"standardize": [True, False]}, cv=2)
  grid.fit(x[lab], y_true[lab])
  assert grid.score(x, y_true) > 0.8
  scores = cross_val_score(SGANClassifier(**estimator_params()), x[lab], y_true[lab], cv=2)
  np.testing.assert_array_equal(scores, grid.cv_results_["split0_test_score"][:1].tolist()
                                + grid.cv_results_["split1_test_score"][:1].tolist())


def test_regressor_learns_in_the_target_units_with_nan_unlabeled():
  rng = np.random.RandomState(0)
  x = rng.normal(size=(120, 4)) * np.array([1.0, 100.0, 0.01, 1000.0])
  y_true = 1000.0 + 50.0 * (x[:, 0] + x[:, 1] / 100.0)
  y = np.where(rng.rand(120) < 0.4, y_true, np.nan)
  reg = SGANRegressor(**estimator_params(max_epochs=6)).fit(x, y)
  assert reg.score(x, y_true) > 0.8
  np.testing.assert_allclose(reg.predict(x).mean(), y_true.mean(), rtol=0.02)


@pytest.mark.parametrize("edit,match", [
    (lambda x, y: (x, np.full_like(y, -1)), "no labeled row"),
    (lambda x, y: (x, np.where(y == "ant", y, -1)), "only one class"),
    (lambda x, y: (np.where(np.arange(120)[:, None] == 7, np.nan, x), y), "NaN"),
    (lambda x, y: (np.where(np.arange(120)[:, None] == 7, np.inf, x), y), "infinity"),
    (lambda x, y: (x, y[:-1]), "y has 119 rows but X has 120"),
    (lambda x, y: (x[:1], y[:1]), "1 sample"),
    (lambda x, y: (x, np.where(np.arange(120) < 5, 0.5, np.where(y == -1, -1, 0.25))),
     "Unknown label type"),
])
def test_classifier_bad_input_is_a_value_error_naming_the_reason(edit, match):
  x, y, _ = blobs()
  with pytest.raises(ValueError, match=match):
    SGANClassifier(**estimator_params()).fit(*edit(x, y))


def test_a_class_left_without_training_rows_and_regressor_targets_are_errors():
  x, y, _ = blobs()
  y = np.where(y == "cat", -1, y)
  y[np.flatnonzero(y == -1)[0]] = "cat"  # one "cat": validation would take it
  with pytest.raises(ValueError, match="Class 'cat' has no labeled row left for training"):
    SGANClassifier(**estimator_params(validation_fraction=0.9)).fit(x, y)
  with pytest.raises(ValueError, match="no labeled row"):
    SGANRegressor(**estimator_params()).fit(x, np.full(120, np.nan))
  with pytest.raises(ValueError, match="infinite"):
    SGANRegressor(**estimator_params()).fit(x, np.where(np.arange(120) == 3, np.inf, 1.0))
  with pytest.raises(ValueError, match="validation_fraction"):
    SGANRegressor(**estimator_params(validation_fraction=1.0)).fit(x, np.ones(120))
  for est in (SGANClassifier(), SGANRegressor()):
    with pytest.raises(NotFittedError):
      est.predict(x)
  with pytest.raises(NotFittedError):
    SGANClassifier().predict_proba(x)


def test_minus_one_marks_unlabeled_rows_in_every_label_type():
  assert _labeled_mask(np.array([0, -1, 2])).tolist() == [True, False, True]
  assert _labeled_mask(np.array([0.5, -1.0])).tolist() == [True, False]
  assert _labeled_mask(np.array(["a", -1, "-1"], dtype=object)).tolist() == [True, False, True]
  assert _labeled_mask(np.array(["a", "-1"])).tolist() == [True, True]  # strings: no -1


def test_verbose_reports_the_selected_epoch(fitted, capsys):
  x, y, _ = blobs()
  SGANClassifier(**estimator_params(verbose=1)).fit(x, y)
  out = capsys.readouterr().out
  assert "[SGANClassifier] sgan: 3 epochs in" in out and "selected (validation error" in out


def test_import_sgan_jax_does_not_import_scikit_learn():
  code = ("import sys, sgan_jax; assert 'sklearn' not in sys.modules; "
          "from sgan_jax import SGANClassifier; assert 'sklearn' in sys.modules")
  subprocess.run([sys.executable, "-c", code], check=True)


# A few of scikit-learn's estimator checks in the default suite (all of them: the slow set).
# These train little or not at all; the ones that train on their own data shapes (each a
# compilation) are in the slow set.
@pytest.mark.parametrize("check", [
    estimator_checks.check_estimators_unfitted,
    estimator_checks.check_get_params_invariance, estimator_checks.check_set_params,
    estimator_checks.check_no_attributes_set_in_init, estimator_checks.check_classifiers_one_label,
], ids=lambda c: c.__name__)
def test_scikit_learn_checks_subset(check):
  check("SGANClassifier", SGANClassifier(**estimator_params()))
