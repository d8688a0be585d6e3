"""vmap over seeds: each replica equals the single-seed run with that seed."""

import jax
import numpy as np
import pytest

from sgan_jax import seeds as seeds_lib
from sgan_jax import train
from sgan_jax.errors import SganError
from tests.helpers import blobs, tiny_config


@pytest.mark.parametrize("mode,extra", [("sgan", {}), ("supervised", {}),
                                        ("sgan", {"balance_weight": 1.0}),
                                        ("sgan", {"second_avg_rate": 0.5})])
def test_replicas_match_sequential_runs(mode, extra):
  cfg = tiny_config(epochs=2, val_size=16, **extra)
  ds = blobs()
  seeds = [3, 7]
  splits = seeds_lib.make_splits_for_seeds(ds, cfg, seeds)
  assert not np.array_equal(splits[0].lab_idx, splits[1].lab_idx)  # own labeled subsets
  together = seeds_lib.train_seeds(cfg, splits, seeds, mode, log=lambda s: None)
  for r, (seed, sp) in enumerate(zip(seeds, splits)):
    alone = train.train(cfg.replace(seed=seed), sp, mode, log=lambda s: None)
    rep = jax.tree.map(lambda x: x[r], together["states"].d_params)
    for a, b in zip(jax.tree.leaves(rep), jax.tree.leaves(alone["state"].d_params)):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
    assert together["histories"][r][-1]["test_err"] == pytest.approx(
        alone["history"][-1]["test_err"], abs=1.5 / len(sp.y_test))
    for k in ("val_err_avg2", "test_err_avg2"):  # the second average is reported alike
      assert (k in together["histories"][r][-1]) == (k in alone["history"][-1])
      if k in alone["history"][-1]:
        assert together["histories"][r][-1][k] == pytest.approx(alone["history"][-1][k],
                                                                abs=1.5 / len(sp.y_test))


def test_replicas_must_share_unlabeled_data():
  cfg = tiny_config(val_size=16)
  ds = blobs()
  a = seeds_lib.make_splits_for_seeds(ds, cfg, [0])[0]
  b = seeds_lib.make_splits_for_seeds(ds, cfg.replace(data_seed=9), [1])[0]
  with pytest.raises(SganError, match="share the unlabeled set"):
    seeds_lib.train_seeds(cfg, [a, b], [0, 1], log=lambda s: None)


def test_num_labeled_gives_every_replica_one_size_and_its_own_classes():
  # 5 labels over 4 classes: each seed's subset is 5 long (so replicas stack), the seed
  # picks which class gets the extra label, and make_splits draws the same subset (for the
  # seed that also chose the shared validation split).
  from sgan_jax import data as data_lib
  cfg = tiny_config(labels_per_class=None, num_labeled=5, val_size=16)
  ds = blobs()
  splits = seeds_lib.make_splits_for_seeds(ds, cfg, [0, 1, 2, 3])
  assert {len(s.y_lab) for s in splits} == {5}
  extra = {int(np.argmax(np.bincount(s.y_lab, minlength=4))) for s in splits}
  assert len(extra) > 1
  one = data_lib.make_splits(ds, labels_per_class=None, label_rate=None, num_labeled=5,
                             val_size=16, data_seed=cfg.data_seed)
  np.testing.assert_array_equal(one.lab_idx, splits[cfg.data_seed].lab_idx)
