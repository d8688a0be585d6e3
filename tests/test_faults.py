"""Every fault ends in a message and changes nothing it should not: refused runs leave their
folder byte for byte as it was, --fresh moves the whole old run aside, Ctrl-C saves and
exits 130, unwritable folders are refused up front; the bad-input catalogue of
docs/reliability.md and a quick version of the fault-injection harness
(benchmarks/faults.py)."""

import json
import os
import signal
import sys

import numpy as np
import pytest

from sgan_jax import cli, experiment, rundir
from sgan_jax.errors import SganError
from tests.helpers import blobs, tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import faults  # noqa: E402


def quiet(line):
  pass


def test_every_bad_input_is_refused_with_its_message_and_changes_nothing(tmp_path):
  # Each case of the documented catalogue, on the command line, in a folder holding a
  # finished run, a fitted table model and the data files: exit 2, "error: " with the
  # documented words, no traceback, and every file and folder byte for byte as before.
  templates = tmp_path / "templates"
  templates.mkdir()
  faults.catalogue_templates(str(templates))
  failed = []
  for i, case in enumerate(faults.CATALOGUE):
    r = faults.run_case(case, str(templates), str(tmp_path / f"case{i}"))
    if not (r["exit_code"] == 2 and r["message_found"] and r["starts_with_error"]
            and not r["traceback"] and r["unchanged"]):
      failed.append(r)
  assert not failed, json.dumps(failed, indent=1)


def test_the_documented_catalogue_is_the_checked_one():
  with open(os.path.join(ROOT, "docs", "reliability.md")) as f:
    doc = f.read()
  assert faults.catalogue_table() in doc, "rerun: python benchmarks/faults.py --catalogue"


def test_refused_resume_leaves_the_run_folder_byte_identical(tmp_path):
  # A resume refused for another config wrote config.json, data.json and the labeled
  # indices before the checkpoints were compared.
  ds, cfg, wd = blobs(), tiny_config(epochs=1, baseline=False), str(tmp_path / "run")
  experiment.run_seeds(cfg, [0, 1], wd, log=quiet, dataset=ds)
  before = faults.tree_digest(wd)
  for change in ({"lr": 0.01}, {"labels_per_class": 3}, {"val_size": 8}):
    with pytest.raises(SganError, match="holds a different run"):
      experiment.run_seeds(cfg.replace(**change), [0, 1], wd, log=quiet, dataset=ds)
    assert faults.tree_digest(wd) == before, change
  # Seed 1's folder records another run: refused before seed 0 (compatible) trains on.
  path = os.path.join(wd, "seed_1", "config.json")
  with open(path) as f:
    other = {**json.load(f), "lr": 0.01}
  with open(path, "w") as f:
    json.dump(other, f)
  before = faults.tree_digest(wd)
  with pytest.raises(SganError, match="seed_1 holds a different run"):
    experiment.run_seeds(cfg.replace(epochs=2), [0, 1], wd, log=quiet, dataset=ds)
  assert faults.tree_digest(wd) == before


def test_fresh_moves_every_file_of_the_old_run_aside(tmp_path):
  ds, cfg, wd = blobs(), tiny_config(epochs=1, baseline=False), str(tmp_path / "run")
  experiment.run_seeds(cfg, [0], wd, log=quiet, dataset=ds)
  (tmp_path / "run" / "seed_0" / "notes.txt").write_text("the user's own file\n")
  before = faults.tree_digest(wd)
  lines = []
  experiment.run_seeds(cfg.replace(labels_per_class=3), [0], wd, log=lines.append, dataset=ds,
                       fresh=True)
  assert any(f"moved the old run in {wd} to {wd}.old-1" in ln for ln in lines), lines
  assert faults.tree_digest(wd + ".old-1") == before  # all of it, unchanged
  new = faults.tree_digest(wd)
  assert "seed_0/notes.txt" not in new and "seed_0/checkpoints_sgan.old-1" not in new
  for f in ("summary.json", "seed_0/config.json", "seed_0/metrics_sgan.jsonl",
            "seed_0/classifier_sgan.msgpack", "seed_0/labeled_indices.npy",
            "seed_0/samples/epoch_0001.png"):
    assert new[f] != before[f], f  # written by the new run (other labels), not left over
  with open(os.path.join(wd, "seed_0", "config.json")) as f:
    assert json.load(f)["labels_per_class"] == 3


TINY_RUN = ["--config", "digits", *faults.TINY, "--set", "epochs=3", "--set", "eval_every=1"]


def _interrupt_at_epoch(monkeypatch, epoch, times):
  """Sends ``times`` SIGINTs to this process when the loop logs ``epoch``."""
  real = rundir.epoch_line

  def line(rec, *a):
    if rec["epoch"] == epoch:
      for _ in range(times):
        os.kill(os.getpid(), signal.SIGINT)
    return real(rec, *a)
  monkeypatch.setattr(rundir, "epoch_line", line)


def test_ctrl_c_saves_and_exits_130_with_a_resume_hint(tmp_path, monkeypatch, capsys):
  wd = str(tmp_path / "run")
  _interrupt_at_epoch(monkeypatch, 1, 1)
  assert cli.main(["train", *TINY_RUN, "--workdir", wd]) == 130
  out = capsys.readouterr()
  assert "[Ctrl-C] finishing this epoch and saving a checkpoint" in out.out
  assert "Ctrl-C (SIGINT) received: stopped after epoch 1, checkpoint saved" in out.err
  assert "Rerun the same command to resume" in out.err and "Traceback" not in out.err
  # A second Ctrl-C stops at once: the epoch it lands in is not saved, the last one kept.
  _interrupt_at_epoch(monkeypatch, 2, 2)
  assert cli.main(["train", *TINY_RUN, "--workdir", wd]) == 130
  err = capsys.readouterr().err
  assert f"second Ctrl-C: stopped at once; the last checkpoint {wd}/seed_0/checkpoints_sgan/1" \
         in err and "Traceback" not in err, err
  # Ctrl-C outside the training loop (loading data here): a message, not a traceback.
  monkeypatch.setattr(experiment, "load_data", lambda cfg: os.kill(os.getpid(), signal.SIGINT))
  assert cli.main(["train", *TINY_RUN, "--workdir", wd]) == 130
  err = capsys.readouterr().err
  assert "interrupted (Ctrl-C)" in err and "Traceback" not in err


def test_unwritable_output_folders_are_refused_before_anything_is_written(tmp_path, monkeypatch,
                                                                          capsys):
  # As root chmod does not stop writes, so the check's view of permissions is patched.
  locked = tmp_path / "locked"
  locked.mkdir()
  monkeypatch.setattr(rundir, "_writable", lambda f: not str(f).startswith(str(locked)),
                      raising=False)
  for args in (["train", *TINY_RUN, "--workdir", str(locked / "new")],
               ["train", *TINY_RUN, "--workdir", str(locked)],
               ["tabular", "fit", "--data", "x.csv", "--target", "y", "--out", str(locked / "m")]):
    assert cli.main(args) == 2, args
    err = capsys.readouterr().err
    assert err.startswith("error: ") and f"cannot write to {locked}" in err, err
    assert os.listdir(locked) == []


def test_os_errors_while_running_are_messages():
  # A full disk or a refused write elsewhere in a run: the file, the reason, what to do.
  import errno
  e = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/runs/x/metrics_sgan.jsonl")
  assert cli.os_error_text(e) == ("could not access /runs/x/metrics_sgan.jsonl: No space left "
                                  "on device. Free disk space and rerun the same command to "
                                  "resume.")


def test_fault_harness_quick(tmp_path):
  # benchmarks/faults.py at a small scale: damaged newest checkpoints are detected, moved
  # aside and resumed past bit for bit; a save that hits a full disk is one clear message
  # with the previous checkpoint intact, and the resume is bit for bit.
  import random
  c = faults.corruption_trials(4, str(tmp_path / "c"), random.Random(1), quiet, epochs=3)
  assert c["detected"] == c["fell_back"] == c["bitwise_equal"] == 4, c["trials"]
  d = faults.disk_full_patched(str(tmp_path / "d"), fail_epoch=2, epochs=3)
  assert d["clear"] and d["previous_intact"] and d["resumed_bitwise_equal"], d
  assert "the previous checkpoint" in d["message"] and d["message"].endswith("resume.")
  assert set(np.unique([t["kind"] for t in c["trials"]])) <= {"flip", "block", "truncate"}
