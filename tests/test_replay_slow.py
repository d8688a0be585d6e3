"""Committed reference runs replayed on the current code (slow: ``-m slow``; needs ../shared MNIST).

The per-epoch records of the runs behind the published tables are in ``results/``; the
first epochs are trained again from each run's own ``config.json`` and compared with the
recorded values exactly (the records hold losses to 5 decimals and error counts exactly).
The default suite's ``tests/test_trajectories.py`` pins every objective on tiny runs; this
pins the real runs.
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNIST = os.path.join(ROOT, "..", "shared", "datasets", "mnist.npz")
mnist = pytest.mark.skipif(not os.path.exists(MNIST), reason="shared MNIST not present")
# Keys that runs of an older layout recorded beside the first average (evaluation only).
RETIRED_KEYS = ("val_err_avg2", "test_err_avg2")


def _train(run_dir, mode, epochs):
  """The first ``epochs`` records of a run trained again (in this process)."""
  from sgan_jax import data, train
  from sgan_jax.config import from_stored
  with open(os.path.join(ROOT, run_dir, "config.json")) as f:
    cfg = from_stored({**json.load(f), "dataset": MNIST})
  if cfg.lr_decay_epochs:  # the schedule depends on the total: replay the whole run
    assert epochs == cfg.epochs_for(mode)
  cfg = cfg.replace(epochs=epochs, baseline_epochs=None, num_devices=1)
  ds = data.load(MNIST, pixel_range=cfg.pixel_range)
  return train.train(cfg, data.splits_for(ds, cfg), mode, log=lambda s: None)["history"]


def _replay(run_dir, mode, epochs, exact=True):
  """Trains in a fresh process with the runs' own JAX settings: the test session's
  (tests/conftest.py: 8 fake devices, partitionable threefry) draw other random bits."""
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS",)}
  r = subprocess.run([sys.executable, __file__, run_dir, mode, str(epochs)], env=env, cwd=ROOT,
                     capture_output=True, text=True, timeout=3600)
  assert r.returncode == 0, r.stderr[-3000:]
  history = json.loads(r.stdout.strip().splitlines()[-1])
  with open(os.path.join(ROOT, run_dir, f"metrics_{mode}.jsonl")) as f:
    recorded = [json.loads(line) for line in f][:epochs]
  for got, want in zip(history, recorded):
    for k, v in want.items():
      if k.startswith(("loss", "val_err", "test_err", "train_err")) and k not in RETIRED_KEYS:
        if exact:
          assert got[k] == v, (run_dir, want["epoch"], k, got[k], v)
        else:
          assert got[k] == pytest.approx(v, rel=2e-2, abs=2e-3), (run_dir, want["epoch"], k)
  assert len(history) == epochs


@pytest.mark.slow
@mnist
def test_mnist_fm_100_labels_seed_1_first_epochs():
  _replay("results/tables/mnist_fm_100labels_300ep/labels_100/seed_1", "sgan", 2)


@pytest.mark.slow
@mnist
@pytest.mark.parametrize("mode", ["sgan", "supervised"])
def test_odena_dcgan_100_labels_seed_1(mode):  # ~8 min (sgan) on 2 CPU cores
  # Recorded on another kind of CPU, where the DCGAN's convolutions round differently (the
  # recorded code and the current code give the same values on one kind); compared closely,
  # not bit for bit. The MLP run above and the tabular run repeat exactly across these CPUs.
  _replay("results/tables/mnist_odena_1ep/labels_100/seed_1", mode, 1, exact=False)


@pytest.mark.slow
def test_tabular_breast_cancer_run():
  with open(os.path.join(ROOT, "results", "tabular", "runs.jsonl")) as f:
    want = next(r for r in map(json.loads, f) if r["dataset"] == "breast_cancer"
                and r["label_fraction"] == 0.05 and r["seed"] == 0)
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS",)}
  r = subprocess.run([sys.executable, __file__, "tabular"], env=env, cwd=ROOT,
                     capture_output=True, text=True, timeout=3600)
  assert r.returncode == 0, r.stderr[-3000:]
  got = json.loads(r.stdout.strip().splitlines()[-1])
  for k in ("sgan", "supervised", "num_labeled", "num_test", "sgan_selection"):
    assert got[k] == want[k], k


if __name__ == "__main__":
  sys.path.insert(0, ROOT)
  if sys.argv[1] == "tabular":
    sys.path.insert(0, os.path.join(ROOT, "experiments"))
    import tabular_benchmark
    print(json.dumps(tabular_benchmark.one_run("breast_cancer", 0.05, 0, 100)))
  else:
    print(json.dumps(_train(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
