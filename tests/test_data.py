"""Labeled-subset selection, validation split, loaders and their error messages."""

import hashlib

import numpy as np
import pytest

from sgan_jax import data
from sgan_jax.errors import SganError


def synthetic(n=200, k=4, shape=(6, 6), seed=0, dtype=np.uint8):
  rng = np.random.default_rng(seed)
  x = rng.integers(0, 256, size=(n, *shape)).astype(dtype)
  y = np.arange(n) % k
  rng.shuffle(y)
  return x, y


def test_select_labeled_per_class_is_balanced_fixed_and_seeded():
  _, y = synthetic()
  a = data.select_labeled(y, 4, per_class=5, seed=3)
  b = data.select_labeled(y, 4, per_class=5, seed=3)
  c = data.select_labeled(y, 4, per_class=5, seed=4)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  assert len(a) == 20 and len(np.unique(a)) == 20
  np.testing.assert_array_equal(np.bincount(y[a], minlength=4), [5, 5, 5, 5])


def test_select_labeled_matches_reference_rule():
  # The reference: permute with RandomState(seed), take the first `count` of each class.
  _, y = synthetic()
  perm = np.random.RandomState(9).permutation(len(y))
  want = np.sort(np.concatenate([perm[y[perm] == k][:3] for k in range(4)]))
  np.testing.assert_array_equal(data.select_labeled(y, 4, per_class=3, seed=9), want)


def test_no_validation_split_gives_the_reference_splits_index_for_index():
  # val_size=0 with data_seed=s: the reference script's run with seed_data=s -- its labeled
  # subset drawn from the whole training split, and every training example unlabeled.
  x, y = synthetic()
  ds = data.Dataset(x, y, x[:8], y[:8], num_classes=4)
  sp = data.make_splits(ds, labels_per_class=3, label_rate=None, val_size=0, data_seed=9)
  perm = np.random.RandomState(9).permutation(len(y))
  want = np.sort(np.concatenate([perm[y[perm] == k][:3] for k in range(4)]))
  np.testing.assert_array_equal(sp.lab_idx, want)
  assert len(sp.x_unl) == len(y) and len(sp.val_idx) == 0


def test_select_labeled_rate_is_stratified_and_full_rate_takes_all():
  _, y = synthetic()
  idx = data.select_labeled(y, 4, rate=0.1, seed=0)
  np.testing.assert_array_equal(np.bincount(y[idx], minlength=4), [5, 5, 5, 5])
  np.testing.assert_array_equal(data.select_labeled(y, 4, rate=1.0, seed=0), np.arange(200))
  # Rounded to the nearest count: 0.058 * 50 = 2.9 -> 3 per class.
  idx = data.select_labeled(y, 4, rate=0.058, seed=0)
  np.testing.assert_array_equal(np.bincount(y[idx], minlength=4), [3, 3, 3, 3])


def test_select_labeled_total_is_as_balanced_as_the_count_allows():
  _, y = synthetic(n=400, k=10)
  idx = data.select_labeled(y, 10, total=25, seed=1)
  counts = np.bincount(y[idx], minlength=10)
  assert len(idx) == len(np.unique(idx)) == 25
  assert sorted(counts.tolist()) == [2] * 5 + [3] * 5
  np.testing.assert_array_equal(idx, data.select_labeled(y, 10, total=25, seed=1))
  # Another seed draws other examples and, here, other classes for the extra label.
  other = data.select_labeled(y, 10, total=25, seed=2)
  assert not np.array_equal(np.bincount(y[other], minlength=10), counts)
  # Each class's labels are the per_class rule's first ones: a total that K divides is
  # per_class, index for index.
  np.testing.assert_array_equal(data.select_labeled(y, 10, total=30, seed=1),
                                data.select_labeled(y, 10, per_class=3, seed=1))
  two = data.select_labeled(y, 10, per_class=2, seed=1)
  assert set(two) <= set(idx)


@pytest.mark.parametrize("kw,match", [
    (dict(total=3), "fewer than the 4 classes"),
    (dict(total=205), "Class .* has 50 training examples"),
    (dict(per_class=2, total=8), "exactly one"),
    (dict(per_class=51), "Class 0 has 50 training examples"),
    (dict(rate=0.0), r"\(0, 1\]"),
    (dict(rate=1.5), r"\(0, 1\]"),
    (dict(per_class=0), ">= 1"),
    (dict(), "exactly one"),
])
def test_select_labeled_impossible_requests(kw, match):
  _, y = synthetic()
  with pytest.raises(SganError, match=match):
    data.select_labeled(y, 4, seed=0, **kw)


def test_class_with_no_examples_is_an_error():
  y = np.array([0, 0, 1, 1, 3, 3])
  with pytest.raises(SganError, match="Class 2 has 0"):
    data.select_labeled(y, 4, per_class=1, seed=0)


def test_make_splits_unlabeled_is_train_minus_val_and_carries_no_labels():
  x, y = synthetic()
  ds = data.from_arrays(x, y, x[:10], y[:10])
  s = data.make_splits(ds, labels_per_class=3, label_rate=None, val_size=40, data_seed=0)
  assert len(s.x_unl) == 160 and len(s.y_val) == 40
  assert not set(s.lab_idx) & set(s.val_idx)          # labeled never from validation
  np.testing.assert_array_equal(np.bincount(s.y_val, minlength=4), [10, 10, 10, 10])
  keep = np.setdiff1d(np.arange(200), s.val_idx)
  np.testing.assert_array_equal(s.x_unl, ds.x_train[keep])  # labeled examples included
  np.testing.assert_array_equal(s.x_lab, ds.x_train[s.lab_idx])
  np.testing.assert_array_equal(s.y_lab, y[s.lab_idx])
  assert not any(f.startswith("y_unl") for f in s.__dataclass_fields__)


def test_unlabeled_stream_is_the_training_split_minus_the_hold_out():
  x, y = synthetic()
  ds = data.from_arrays(x, y, x[:10], y[:10])
  sp = data.make_splits(ds, labels_per_class=3, label_rate=None, val_size=40, data_seed=0)
  rows = data.unlabeled_indices(200, sp.val_idx)
  assert len(rows) == 160 and not set(rows) & set(sp.val_idx)
  np.testing.assert_array_equal(sp.x_unl, ds.x_train[rows])
  assert set(sp.lab_idx) <= set(rows)

def test_from_arrays_scales_uint8_and_adds_channel():
  x, y = synthetic()
  ds = data.from_arrays(x, y, x, y)
  assert ds.x_train.shape == (200, 6, 6, 1) and ds.x_train.dtype == np.float32
  np.testing.assert_allclose(ds.x_train[..., 0], x / 255.0, rtol=1e-6)
  ds2 = data.from_arrays(x, y, x, y, pixel_range="-1,1")
  assert ds2.x_train.min() >= -1.0 and ds2.x_train.max() <= 1.0
  # The reference's (x - 127.5) / 128: 0 -> -0.996, 255 -> 0.996, symmetric about 0.
  np.testing.assert_allclose(ds2.x_train[..., 0], (x - 127.5) / 128.0, rtol=1e-6)
  np.testing.assert_allclose(ds2.x_test[..., 0], (x - 127.5) / 128.0, rtol=1e-6)
  assert ds.num_classes == 4


@pytest.mark.parametrize("mutate,match", [
    (lambda x, y: (x.astype(np.float32) / 255 * np.where(np.arange(x.size).reshape(x.shape) == 5, np.nan, 1), y), "NaN"),
    (lambda x, y: (x, y[:-1]), "same length"),
    (lambda x, y: (x, y - 1), "negative label"),
    (lambda x, y: (x, y + 0.5), "non-integer"),
    (lambda x, y: (x.astype(np.float32), y), r"floats in \[0, 255\]"),
    (lambda x, y: (x[:, :, :, None, None], y), "expected"),
    (lambda x, y: (x, np.array(["a"] * len(y))), "dtype"),
])
def test_from_arrays_rejects_bad_input(mutate, match):
  x, y = synthetic()
  bx, by = mutate(x, y)
  with pytest.raises(SganError, match=match):
    data.from_arrays(bx, by, x, y)


def test_label_out_of_range_for_num_classes():
  x, y = synthetic()
  with pytest.raises(SganError, match="num_classes is 3"):
    data.from_arrays(x, y, x, y, num_classes=3)


def test_mismatched_example_shapes():
  x, y = synthetic()
  with pytest.raises(SganError, match="share one example shape"):
    data.from_arrays(x, y, x[:, :5], y)


def test_load_npz_roundtrip_and_errors(tmp_path):
  x, y = synthetic()
  p = tmp_path / "d.npz"
  np.savez(p, x_train=x, y_train=y, x_test=x[:20], y_test=y[:20])
  ds = data.load_npz(str(p))
  assert ds.x_train.shape == (200, 6, 6, 1) and len(ds.y_test) == 20
  assert data.load(str(p)).num_classes == 4
  with pytest.raises(SganError, match="does not exist"):
    data.load_npz(str(tmp_path / "missing.npz"))
  bad = tmp_path / "bad.npz"
  bad.write_bytes(b"not a zip file at all")
  with pytest.raises(SganError, match="Could not read"):
    data.load_npz(str(bad))
  part = tmp_path / "part.npz"
  np.savez(part, x_train=x, y_train=y)
  with pytest.raises(SganError, match=r"lacks arrays \['x_test', 'y_test'\]"):
    data.load_npz(str(part))
  with pytest.raises(SganError, match="Unknown dataset"):
    data.load("imagenet")


def _digest(x, y):
  raw = np.asarray(x, np.float32).tobytes() + np.asarray(y, np.int32).tobytes()
  return hashlib.sha256(raw).hexdigest()[:16]


def test_digits_is_bundled_and_fixed():
  """The split every digits result was reported on, pinned by stored values."""
  a = data.load_digits()
  assert a.x_train.shape == (1300, 8, 8, 1) and a.x_test.shape == (497, 8, 8, 1)
  assert a.y_train[:12].tolist() == [1, 7, 1, 0, 0, 5, 8, 3, 7, 5, 5, 1]
  assert a.y_test[:12].tolist() == [5, 8, 2, 5, 5, 2, 1, 6, 6, 2, 1, 4]
  assert np.bincount(a.y_test).tolist() == [49, 50, 49, 51, 50, 50, 50, 50, 48, 50]
  assert float(a.x_train.sum()) == pytest.approx(25395.375)
  assert (_digest(a.x_train, a.y_train), _digest(a.x_test, a.y_test)) == (
      "8bed41f052de440a", "75c84eb18e87f23a")
  b = data.load_digits(pixel_range="-1,1")  # the same split, rescaled
  np.testing.assert_array_equal(b.y_test, a.y_test)
  np.testing.assert_allclose(b.x_train, 2 * a.x_train - 1)
  assert b.x_train.min() == -1.0 and b.x_train.max() == 1.0


def test_validation_split_has_exactly_val_size_examples_stratified():
  _, y = synthetic()  # 50 per class: 42 is 10.5 per class, the remainder goes to two classes
  idx = data.split_validation(y, 42, 4, 0)
  assert len(idx) == len(np.unique(idx)) == 42
  assert sorted(np.bincount(y[idx], minlength=4).tolist()) == [10, 10, 11, 11]


def test_validation_split_too_large():
  _, y = synthetic()
  with pytest.raises(SganError, match="leaves no training data"):
    data.split_validation(y, 200, 4, 0)
  assert len(data.split_validation(y, 0.1, 4, 0)) == 20  # a fraction fits any size


def test_a_test_class_absent_from_training_names_the_test_set():
  # Was: "Class 10 has 0 training examples but 10 labeled ones were requested".
  x, y = synthetic()
  yt = y[:20].copy()
  yt[:2] = 4
  with pytest.raises(SganError, match=r"y_test holds class\(es\) \[4\] \(2 test example\(s\)\) "
                                      r"that y_train never has \(training classes: \[0, 1, 2, 3\]\)"):
    data.from_arrays(x, y, x[:20], yt)


def test_tfds_source_through_mock_data():
  # The TFDS path (no download: tfds.testing.mock_data); the 32x32 configs' end-to-end
  # runs on it are in the slow set (tests/test_tables.py).
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=12):
    ds = data.load("mnist", pixel_range="-1,1")
  assert ds.x_train.shape[1:] == (28, 28, 1) and ds.x_train.dtype == np.float32
  assert ds.x_train.min() >= -1.0 and ds.x_train.max() <= 1.0
  assert ds.num_classes == 10 and 0 <= ds.y_train.min() and ds.y_train.max() < 10
