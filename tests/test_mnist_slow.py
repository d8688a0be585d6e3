"""Real MNIST from ../shared/datasets through the project's own .npz loader (slow: -m slow)."""

import os

import numpy as np
import pytest

from sgan_jax import data, train
from sgan_jax.config import Config

MNIST = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..",
                     "shared", "datasets", "mnist.npz")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.path.exists(MNIST), reason="shared MNIST not present")]


def test_real_mnist_loads_and_reference_subset_is_balanced():
  ds = data.load_npz(MNIST)
  assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
  np.testing.assert_allclose(ds.x_train.mean(), 0.13066, atol=1e-4)
  np.testing.assert_array_equal(np.bincount(ds.y_test), [980, 1135, 1032, 1010, 982, 892, 958,
                                                         1028, 974, 1009])
  s = data.make_splits(ds, labels_per_class=10, label_rate=None, val_size=0, data_seed=1)
  assert len(s.x_unl) == 60000 and np.bincount(s.y_lab).tolist() == [10] * 10


def test_reference_config_trains_on_real_mnist():
  ds = data.load_npz(MNIST)
  s = data.make_splits(ds, labels_per_class=10, label_rate=None, val_size=1000, data_seed=1)
  cfg = Config(dataset="mnist", epochs=2, iters_per_epoch=100, val_size=1000, num_devices=1)
  out = train.train(cfg, s, "sgan", log=lambda line: None)
  assert out["summary"]["steps"] == 200
  # Live weights after 200 reference iterations already beat chance by far.
  assert out["history"][-1]["test_err_live"] < 0.5
