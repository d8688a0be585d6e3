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
