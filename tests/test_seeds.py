"""Seeds in one vmapped program: replica s is the sequential run of seed s (one seed rule)."""

import json
import os

import jax
import numpy as np
import pytest

from sgan_jax import cli, data, experiment
from sgan_jax import seeds as seeds_lib
from sgan_jax import train
from sgan_jax.errors import SganError
from tests.helpers import blobs, tiny_config


def _close(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)


# Supervised replicas are compared in test_parallel_and_sequential_runners_write_the_same_records.
@pytest.mark.parametrize("mode,extra", [("sgan", {}), ("sgan", {"balance_weight": 1.0})])
def test_replicas_match_sequential_runs(mode, extra):
  cfg = tiny_config(epochs=2, val_size=16, **extra)
  ds = blobs()
  seeds = [3, 7]
  together = seeds_lib.train_seeds(cfg, ds, seeds, mode, log=lambda s: None)
  sp = together["splits"]
  # The command line's rule: each seed its own labeled subset AND validation split.
  assert not np.array_equal(sp[0].lab_idx, sp[1].lab_idx)
  assert not np.array_equal(sp[0].val_idx, sp[1].val_idx)
  for r, seed in enumerate(seeds):
    c = cfg.for_seed(seed)
    alone = train.train(c, data.splits_for(ds, c), mode, log=lambda s: None)
    np.testing.assert_array_equal(sp[r].lab_idx, data.splits_for(ds, c).lab_idx)
    _close(jax.tree.map(lambda x: x[r], together["states"].d_params), alone["state"].d_params)
    _close(jax.tree.map(lambda x: x[r], together["states"].d_avg), alone["state"].d_avg)
    for got, want in zip(together["histories"][r], alone["history"]):
      for k in ("val_err", "test_err", "test_err_live"):
        assert got[k] == pytest.approx(want[k], abs=1e-9), k
      for k in (k for k in want if k.startswith("loss")):
        assert got[k] == pytest.approx(want[k], rel=1e-4, abs=1e-5), k
    for k in ("final_test_err", "selected_test_err", "best_val_epoch"):
      assert together["summaries"][r][k] == pytest.approx(alone["summary"][k], abs=1e-9), k


def test_one_subset_option_keeps_labels_and_varies_only_the_training_seed():
  cfg = tiny_config(val_size=16)
  sp = seeds_lib.replica_splits(blobs(), cfg, [0, 1, 2], data_seed=5)
  for s in sp[1:]:
    np.testing.assert_array_equal(s.lab_idx, sp[0].lab_idx)
    np.testing.assert_array_equal(s.val_idx, sp[0].val_idx)
  assert cfg.for_seed(2, 5).seed == 2 and cfg.for_seed(2, 5).data_seed == 5
  assert cfg.for_seed(2).data_seed == 2


def test_label_rate_sizes_that_differ_by_seed_are_refused():
  # A stratified rate over each seed's own (different) training rows can round to
  # different counts; the replicas could not stack.
  ds = blobs(n=161)
  cfg = tiny_config(labels_per_class=None, label_rate=0.03, val_size=17)
  sizes = {len(data.splits_for(ds, cfg.for_seed(s)).y_lab) for s in range(12)}
  if len(sizes) == 1:
    pytest.skip("these seeds happen to round alike")
  with pytest.raises(SganError, match="labeled subsets of one size"):
    seeds_lib.replica_splits(ds, cfg, list(range(12)))


def test_parallel_and_sequential_runners_write_the_same_records(tmp_path, monkeypatch):
  cfg = tiny_config(epochs=2, val_size=16, baseline=True, baseline_epochs=1)
  ds = blobs()
  seq = experiment.run_seeds(cfg, [0, 1], str(tmp_path / "seq"), log=lambda s: None, dataset=ds)
  par = experiment.run_seeds(cfg, [0, 1], str(tmp_path / "par"), log=lambda s: None, dataset=ds,
                             parallel=True)
  for mode in ("sgan", "supervised"):
    np.testing.assert_allclose(par[mode]["test_errs"], seq[mode]["test_errs"], atol=1e-9)
  for s in (0, 1):
    a, b = tmp_path / "seq" / f"seed_{s}", tmp_path / "par" / f"seed_{s}"
    for name in ("config.json", "data.json", "classifier_sgan.msgpack", "generator.msgpack"):
      assert (b / name).exists(), name
    assert json.loads((a / "config.json").read_text()) == json.loads((b / "config.json").read_text())
    np.testing.assert_array_equal(np.load(a / "labeled_indices.npy"), np.load(b / "labeled_indices.npy"))
    ra = [json.loads(line) for line in open(a / "metrics_sgan.jsonl")]
    rb = [json.loads(line) for line in open(b / "metrics_sgan.jsonl")]
    assert [r["test_err"] for r in ra] == pytest.approx([r["test_err"] for r in rb], abs=1e-9)


def test_parallel_seeds_from_the_command_line(tmp_path, capsys):
  wd = str(tmp_path / "run")
  assert cli.main(["train", "--config", "digits", "--seeds", "0,1", "--parallel_seeds",
                   "--set", "epochs=1", "--set", "iters_per_epoch=2", "--set", "d_hidden=[16]",
                   "--set", "g_hidden=[16]", "--workdir", wd]) == 0
  out = capsys.readouterr().out
  assert "over 2 seeds" in out
  assert os.path.exists(os.path.join(wd, "seed_1", "summary.json"))
  # --fresh moves the old run aside, records included (parallel seeds write no checkpoints).
  assert cli.main(["train", "--config", "digits", "--seeds", "0,1", "--parallel_seeds",
                   "--set", "epochs=1", "--set", "iters_per_epoch=2", "--set", "d_hidden=[16]",
                   "--set", "g_hidden=[16]", "--fresh", "--workdir", wd]) == 0
  assert os.path.exists(os.path.join(wd + ".old-1", "seed_1", "summary.json"))
  capsys.readouterr()
  assert cli.main(["train", "--parallel_seeds", "--distributed", "--workdir", wd]) == 2
  assert "does not combine" in capsys.readouterr().err


def test_report_gives_mean_and_spread_only_over_several_seeds():
  from sgan_jax import experiment
  run = lambda seed, err: {"seed": seed, "num_labeled": 10, "num_unlabeled": 90, "num_test": 50,
                           "selection": "best validation epoch", "wall_s": 3.0,
                           "sgan": {"selected_test_err": err, "final_test_err": err}}
  one = {"config": "c", "runs": [run(1, .1)],
         "sgan": {"test_err_mean": .1, "test_err_std": 0.0, "test_errs": [.1]}}
  text = experiment.format_report(one)
  # One seed has no measured spread: no "± 0.00" beside it.
  assert "SGAN: test accuracy 90.00% over 1 seed" in text and "±" not in text, text
  two = {"config": "c", "runs": [run(1, .1), run(2, .2)],
         "sgan": {"test_err_mean": .15, "test_err_std": .05, "test_errs": [.1, .2]}}
  assert "SGAN: test accuracy 85.00% ± 5.00% over 2 seeds" in experiment.format_report(two)
