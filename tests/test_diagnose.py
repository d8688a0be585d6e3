"""Class confusions of a trained classifier (sgan_jax.diagnose, experiments/confusions.py)."""

import json
import os
import sys

import numpy as np
import pytest

from helpers import blobs, tiny_config
from sgan_jax import data, diagnose, evaluation, experiment
from sgan_jax.errors import SganError

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "experiments"))


def test_confusion_and_class_report_by_hand():
  y = np.array([0, 0, 0, 1, 1, 2, 2, 2])
  p = np.array([0, 1, 1, 1, 1, 1, 1, 2])  # class 2 mostly absorbed by class 1
  conf = diagnose.confusion(y, p, 4)
  np.testing.assert_array_equal(conf, [[1, 2, 0, 0], [0, 2, 0, 0], [0, 2, 1, 0], [0, 0, 0, 0]])
  rep = diagnose.class_report(conf, top=3)
  assert rep["n"] == 8 and rep["err"] == pytest.approx(4 / 8)
  np.testing.assert_allclose(rep["per_class_err"][:3], [2 / 3, 0, 2 / 3])
  assert rep["per_class_err"][3] is None  # no examples of class 3 (None keeps JSON valid)
  np.testing.assert_allclose(rep["predicted_share"], [1 / 8, 6 / 8, 1 / 8, 0])
  assert rep["top"] == [{"true": 0, "pred": 1, "count": 2}, {"true": 2, "pred": 1, "count": 2}]


def test_confusion_refuses_bad_labels():
  with pytest.raises(SganError, match=r"must lie in 0..2; got 0..3"):
    diagnose.confusion(np.array([0, 3]), np.array([0, 1]), 3)
  with pytest.raises(SganError, match="one length"):
    diagnose.confusion(np.array([0, 1]), np.array([0]), 3)


def test_run_report_recomputes_the_recorded_errors(tmp_path, capsys):
  import confusions
  cfg = tiny_config(epochs=3, val_size=16, lr_decay_epochs=0, checkpoint_every=1,
                    keep_checkpoints=3)
  ds = blobs()
  wd = str(tmp_path / "run")
  experiment.train_and_evaluate(cfg, wd, ds, log=lambda s: None)
  recs = {r["epoch"]: r for r in map(json.loads, open(os.path.join(wd, "metrics_sgan.jsonl")))}
  final = diagnose.run_report(wd, "sgan", "final", ds)
  # The final classifier file and the kept checkpoints hold the weights each record scored.
  assert final["err"] == pytest.approx(recs[3]["test_err"], abs=1e-12) and final["epoch"] is None
  best = diagnose.run_report(wd, "sgan", "best", ds)
  sel = json.load(open(os.path.join(wd, "summary.json")))["sgan"]["best_val_epoch"]
  assert best["epoch"] == sel and best["err"] == pytest.approx(recs[sel]["test_err"], abs=1e-12)
  assert diagnose.run_report(wd, "sgan", "2", ds)["err"] == pytest.approx(recs[2]["test_err"])
  sup = diagnose.run_report(wd, "supervised", "final", ds)
  sup_recs = [json.loads(ln) for ln in open(os.path.join(wd, "metrics_supervised.jsonl"))]
  assert sup["err"] == pytest.approx(sup_recs[-1]["test_err"], abs=1e-12)
  # labeled_acc is on the labels the run trained on (the config's split, not the test set);
  # the shares are the final classifier's test predictions per class.
  logits, _, _ = diagnose.load_classifier(wd, ds, "sgan", "final")
  sp = data.splits_for(ds, cfg)
  assert final["labeled_acc"] == np.mean(
      evaluation.predicted_classes(logits(sp.x_lab), cfg) == sp.y_lab)
  pred = evaluation.predicted_classes(logits(ds.x_test), cfg)
  np.testing.assert_allclose(final["predicted_share"],
                             np.bincount(pred, minlength=ds.num_classes) / len(pred))
  assert final["n"] == len(ds.y_test)
  line = diagnose.format_report(best)
  assert f"best (epoch {sel}) sgan: err" in line and "predicted share" in line
  # Bad input: a missing epoch, a folder that is not a run, an unloadable dataset path.
  with pytest.raises(SganError, match="not among the kept checkpoints"):
    diagnose.run_report(wd, "sgan", "9", ds)
  with pytest.raises(SganError, match="no readable config.json"):
    diagnose.run_report(str(tmp_path), "sgan", "final", ds)
  assert confusions.main([wd, "--dataset", str(tmp_path / "missing.npz")]) == 2
  assert "give the dataset's path" in capsys.readouterr().err
  for bad, said, unsaid in ((["--top", "-1"], "--top must be >= 0", "--checkpoint needs"),
                            (["--checkpoint", ","], "--checkpoint needs", "--top must")):
    with pytest.raises(SystemExit):
      confusions.main([wd] + bad)
    err = capsys.readouterr().err
    assert said in err and unsaid not in err  # only what is wrong is named
  os.rename(os.path.join(wd, "labeled_indices.npy"), os.path.join(wd, "moved.npy"))
  with pytest.raises(SganError, match="no readable labeled_indices.npy"):
    diagnose.run_report(wd, "sgan", "final", ds)
