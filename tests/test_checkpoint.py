"""Checkpoints: exact resume (SIGTERM, SIGKILL mid-save), device-count changes, refusal
to touch incompatible folders, corrupt/foreign checkpoints, non-finite losses, D-wins
rollbacks."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from sgan_jax import guards
from sgan_jax import checkpoint as ckpt_lib
from sgan_jax import data, integrity, train
from sgan_jax.errors import SganError
from tests.helpers import blobs, rig_val_errors, splits_for, tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _np(x):
  if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    x = jax.random.key_data(x)
  return np.asarray(x)


def assert_same_state(a, b, exact=True):
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(la) == len(lb)
  for x, y in zip(la, lb):
    if exact:
      np.testing.assert_array_equal(_np(x), _np(y))
    else:
      np.testing.assert_allclose(_np(x), _np(y), rtol=2e-4, atol=2e-5)


def run(cfg, workdir=None, log=lambda s: None, **kw):
  return train.train(cfg, splits_for(cfg), "sgan", workdir, log, **kw)


CFG = tiny_config(epochs=4)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  return run(CFG, str(tmp_path_factory.mktemp("full")))


def test_checkpoints_written_and_kept(tmp_path, monkeypatch):
  # Epoch 1 is the best (tied by 3: the first is selected), and then too old to be kept.
  rig_val_errors(monkeypatch, [0.2, 0.5, 0.2, 0.3])
  out = run(CFG.replace(keep_checkpoints=2), str(tmp_path))
  assert out["summary"]["best_val_epoch"] == 1
  c = ckpt_lib.Checkpointer(str(tmp_path / "checkpoints_sgan"))
  kept = c.all_epochs()
  c.close()
  assert kept == [1, 3, 4], kept  # the last 2 + the best on validation


@pytest.mark.parametrize("sig,exit_code", [(signal.SIGTERM, 75), (signal.SIGINT, 130)])
def test_sigterm_in_process_then_resume_is_bitwise_identical(uninterrupted, tmp_path, sig,
                                                             exit_code):
  def log(line):
    if "epoch 2/" in line:
      os.kill(os.getpid(), sig)
  with pytest.raises(train.Preempted, match="after epoch 2") as e:
    run(CFG, str(tmp_path), log)
  assert e.value.exit_code == exit_code
  lines = []
  out = run(CFG, str(tmp_path), lines.append)
  assert any("resumed from" in line and "epoch 2" in line for line in lines)
  assert_same_state(out["state"], uninterrupted["state"])
  assert [h["test_err"] for h in out["history"]] == [h["test_err"] for h in uninterrupted["history"]]
  metrics = (tmp_path / "metrics_sgan.jsonl").read_text().splitlines()
  assert len(metrics) == 4  # no duplicated epochs after resuming


def test_completed_run_resumes_to_same_result(uninterrupted, tmp_path):
  run(CFG, str(tmp_path))
  lines = []
  again = run(CFG, str(tmp_path), lines.append)
  # Restored, not retrained: retraining from scratch would end in the same state.
  assert any(f"resumed from {tmp_path / 'checkpoints_sgan'}/4: epoch 4" in ln for ln in lines), lines
  assert not any("epoch 1/" in ln for ln in lines), lines
  assert again["summary"]["steps"] == uninterrupted["summary"]["steps"]
  assert_same_state(again["state"], uninterrupted["state"])


DRIVER = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {root!r})
    from sgan_jax import checkpoint as ckpt_lib, data, train
    from tests.helpers import blobs, tiny_config
    import numpy as np
    mode, workdir, out = sys.argv[1], sys.argv[2], sys.argv[3]
    cfg = tiny_config(epochs=4)
    if mode == "kill_in_save":
        orig = ckpt_lib.Checkpointer.save
        def save(self, epoch, *a, **k):
            orig(self, epoch, *a, **k)
            if epoch == 3:  # orbax is still writing epoch 3 in the background
                os.kill(os.getpid(), signal.SIGKILL)
        ckpt_lib.Checkpointer.save = save
    if mode == "slow":
        import time
        orig_log = print
    ds = blobs()
    sp = data.make_splits(ds, labels_per_class=cfg.labels_per_class, label_rate=None,
                          val_size=cfg.val_size, data_seed=cfg.data_seed)
    log = print
    if mode == "slow":
        def log(line):
            print(line, flush=True)
            time.sleep(1.0)
    res = train.train(cfg, sp, "sgan", workdir, log)
    st = res["state"]
    np.savez(out, *[np.asarray(x) for x in __import__("jax").tree.leaves(
        st.replace(key=__import__("jax").random.key_data(st.key)))])
""")


def _driver(tmp_path, mode, workdir, out, **popen):
  script = tmp_path / "driver.py"
  script.write_text(DRIVER.format(root=ROOT))
  env = dict(os.environ, PYTHONPATH=ROOT)
  return subprocess.Popen([sys.executable, str(script), mode, str(workdir), str(out)],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          **popen)


def test_sigkill_during_save_keeps_earlier_checkpoint_and_resumes_exactly(uninterrupted, tmp_path):
  wd = tmp_path / "run"
  p = _driver(tmp_path, "kill_in_save", wd, tmp_path / "never.npz")
  log, _ = p.communicate(timeout=300)
  assert p.returncode == -signal.SIGKILL, log
  leftovers = os.listdir(wd / "checkpoints_sgan")
  c = ckpt_lib.Checkpointer(str(wd / "checkpoints_sgan"))
  finished = c.all_epochs()
  c.close()
  assert 2 in finished  # the checkpoint before the interrupted save is intact
  assert 3 not in finished, (finished, leftovers)  # the kill really interrupted that save
  # Resume here (same config and data as the driver) and compare with the run that was
  # never interrupted: bitwise, parameters and metrics.
  lines = []
  out = run(CFG, str(wd), lines.append)
  assert any(f"resumed from {wd / 'checkpoints_sgan'}/{max(finished)}" in ln for ln in lines), lines
  assert_same_state(out["state"], uninterrupted["state"])
  assert [h["test_err"] for h in out["history"]] == [h["test_err"] for h in uninterrupted["history"]]
  print("left by the killed save:", leftovers)


def test_sigterm_from_outside_saves_and_exits_cleanly(tmp_path):
  wd = tmp_path / "run"
  p = _driver(tmp_path, "slow", wd, tmp_path / "x.npz")
  for line in p.stdout:  # wait until training is under way, then preempt
    if "epoch 2/" in line:
      p.send_signal(signal.SIGTERM)
      break
  rest, _ = p.communicate(timeout=300)
  assert p.returncode != 0 and "Preempted" in rest and "checkpoint saved" in rest
  c = ckpt_lib.Checkpointer(str(wd / "checkpoints_sgan"))
  assert c.latest_epoch() in (2, 3)
  c.close()


@pytest.mark.parametrize("first,second", [(8, 1), (1, 8)])
def test_save_on_n_devices_restore_on_m(tmp_path, first, second):
  cfg = tiny_config(epochs=2, num_devices=first)
  a = run(cfg, str(tmp_path))
  b = run(cfg.replace(num_devices=second), str(tmp_path))  # complete: restores only
  assert_same_state(a["state"], b["state"])
  assert len(jax.tree.leaves(b["state"].d_params)[0].sharding.device_set) == second


def test_incompatible_config_is_refused_and_nothing_is_touched(tmp_path):
  run(tiny_config(epochs=2), str(tmp_path))
  cdir = tmp_path / "checkpoints_sgan"
  before = {f: os.path.getmtime(cdir / f) for f in os.listdir(cdir)}
  with pytest.raises(SganError, match=r"different run \(lr: 0.003 there vs 0.01 now\)"):
    run(tiny_config(epochs=2, lr=0.01), str(tmp_path))
  assert {f: os.path.getmtime(cdir / f) for f in os.listdir(cdir)} == before
  # --fresh moves them aside, never deletes
  run(tiny_config(epochs=1, lr=0.01), str(tmp_path), fresh=True)
  assert sorted(os.listdir(tmp_path / "checkpoints_sgan.old-1")) == sorted(before)


def test_other_data_is_refused(tmp_path):
  run(tiny_config(epochs=1), str(tmp_path))
  ds = blobs(seed=5)
  sp = data.make_splits(ds, labels_per_class=2, label_rate=None, val_size=16, data_seed=1)
  with pytest.raises(SganError, match="written for different data"):
    train.train(tiny_config(epochs=1), sp, "sgan", str(tmp_path), lambda s: None)


def test_with_every_checkpoint_damaged_the_run_starts_over_keeping_them_aside(tmp_path):
  # As after a kill during the first save: nothing to resume from, so the run starts from
  # the beginning, naming each skipped step (kept in .corrupt).
  first = run(tiny_config(epochs=1), str(tmp_path))
  cdir = tmp_path / "checkpoints_sgan"
  for root, _, files in os.walk(cdir / "1"):
    for f in files:
      with open(os.path.join(root, f), "wb") as fh:
        fh.write(b"\x00garbage")
  lines = []
  again = run(tiny_config(epochs=1), str(tmp_path), lines.append)
  assert any(f"checkpoint {cdir}/1 is corrupt" in ln and f"moved to {cdir}.corrupt/1.1" in ln
             for ln in lines), lines
  assert not any("resumed from" in ln for ln in lines) and any("epoch 1/1" in ln for ln in lines)
  assert_same_state(again["state"], first["state"])


def test_foreign_checkpoint_is_refused(tmp_path):
  import orbax.checkpoint as ocp
  mgr = ocp.CheckpointManager(str(tmp_path / "checkpoints_sgan"))
  mgr.save(1, args=ocp.args.Composite(state=ocp.args.StandardSave({"w": np.ones(3)}),
                                      meta=ocp.args.JsonSave({"format": "someone-else"})))
  mgr.wait_until_finished()
  mgr.close()
  with pytest.raises(SganError, match="not an sgan_jax checkpoint"):
    run(tiny_config(epochs=1), str(tmp_path))


def test_nonfinite_loss_stops_with_step_and_keeps_checkpoint(uninterrupted, tmp_path,
                                                           monkeypatch):
  with pytest.raises(SganError, match=r"non-finite loss_\w+=nan at step \d+ \(epoch 1\)"):
    run(tiny_config(epochs=2, lr=1e30), None)
  # With a workdir and a loss that turns NaN in epoch 3 (step 2 of 3): stopped, epoch 2 kept.
  real, calls = guards.first_nonfinite, {"n": 0}

  def fake(per_step):
    calls["n"] += 1
    return (1, "loss_lab", float("nan")) if calls["n"] == 3 else real(per_step)

  monkeypatch.setattr(guards, "first_nonfinite", fake)
  cdir = tmp_path / "checkpoints_sgan"
  with pytest.raises(SganError, match=rf"loss_lab=nan at step 8 \(epoch 3\); stopped, the last "
                                      rf"good checkpoint {cdir}/2 is kept"):
    run(CFG, str(tmp_path))
  c = ckpt_lib.Checkpointer(str(cdir))
  kept = c.all_epochs()
  c.close()
  assert kept[-1] == 2 and len(kept) <= 2, kept  # by default the last and the best
  # ... and usable: the rerun resumes there and ends where the uninterrupted run ends.
  monkeypatch.setattr(guards, "first_nonfinite", real)
  lines = []
  out = run(CFG, str(tmp_path), lines.append)
  assert any(f"resumed from {cdir}/2: epoch 2" in ln for ln in lines), lines
  assert_same_state(out["state"], uninterrupted["state"])


def test_nonfinite_rollback_restores_and_continues(tmp_path, monkeypatch):
  calls = {"n": 0}
  real = guards.first_nonfinite

  def fake(per_step):
    calls["n"] += 1
    if calls["n"] == 3:  # pretend epoch 3 blew up, once
      return (1, "loss_lab", float("nan"))
    return real(per_step)

  monkeypatch.setattr(guards, "first_nonfinite", fake)
  lines = []
  out = run(tiny_config(epochs=4, on_nonfinite="rollback"), str(tmp_path), lines.append)
  assert any("rolled back to epoch 2" in line for line in lines)
  assert out["summary"]["steps"] == 4 * 3 and [h["epoch"] for h in out["history"]] == [1, 2, 3, 4]


def _d_wins_at(monkeypatch, pattern):
  """Makes train's D-wins check fire on the calls (one per epoch trained) marked True."""
  calls = iter(pattern)
  monkeypatch.setattr(guards, "d_wins_warning", lambda mets, *a: "D wins" if next(calls) else None)


def _jsonl(path):
  with open(path) as f:
    return [json.loads(line) for line in f]


def test_d_wins_rollback_goes_two_epochs_back_and_keeps_the_abandoned_branch(tmp_path,
                                                                            monkeypatch):
  _d_wins_at(monkeypatch, [False, False, False, True] + [False] * 3)  # epoch 4 fails, once
  lines = []
  out = run(tiny_config(epochs=5, on_d_wins="rollback"), str(tmp_path), lines.append)
  [msg] = [line for line in lines if "rolled back" in line]
  assert "epoch 4: the discriminator won" in msg and "rolled back to epoch 2" in msg, msg
  assert "checkpoints [3] moved" in msg
  assert out["summary"]["steps"] == 5 * 3
  assert [h["epoch"] for h in out["history"]] == [1, 2, 3, 4, 5]
  assert [r["epoch"] for r in _jsonl(tmp_path / "metrics_sgan.jsonl")] == [1, 2, 3, 4, 5]
  # The abandoned branch is kept: checkpoint 3 moved aside, records of epochs 3-4 kept.
  assert os.listdir(tmp_path / "checkpoints_sgan.abandoned") == ["3.1"]
  gone = _jsonl(tmp_path / "metrics_sgan_abandoned.jsonl")
  assert [(r["epoch"], r["rollback"]) for r in gone] == [(3, 1), (4, 1)]
  assert gone[1]["evaluated"] is False and "loss_unl" in gone[1]
  # Epoch 3 was trained again from epoch 2's state with a new key: other noise, other losses.
  assert out["history"][2]["loss_gen"] != gone[0]["loss_gen"]
  c = ckpt_lib.Checkpointer(str(tmp_path / "checkpoints_sgan"))
  assert c.all_epochs() == [3, 4, 5]
  c.close()


def test_d_wins_rollbacks_go_further_back_each_time_then_the_run_only_warns(tmp_path,
                                                                            monkeypatch):
  # Epoch 5 fails every time it is trained: rollbacks to epochs 3, 2, 1, then a warning.
  F, T = False, True
  _d_wins_at(monkeypatch, [F, F, F, F, T, F, T, F, F, T, F, F, F, T, F])
  lines = []
  out = run(tiny_config(epochs=6, on_d_wins="rollback", keep_checkpoints=10), str(tmp_path),
            lines.append)
  back = [line.split("rolled back to epoch ")[1][0] for line in lines if "rolled back" in line]
  assert back == ["3", "2", "1"] and len(back) == guards.MAX_ROLLBACKS
  assert any("epoch 5: warning: D wins (on_d_wins=rollback: cannot roll back, no rollbacks "
             "left)" in line for line in lines), lines
  assert [h["epoch"] for h in out["history"]] == [1, 2, 3, 4, 5, 6]
  assert sorted(os.listdir(tmp_path / "checkpoints_sgan.abandoned")) == [
      "2.1", "3.1", "3.2", "4.1", "4.2", "4.3"]


def test_d_wins_rollback_count_survives_a_resume(tmp_path, monkeypatch):
  # Epoch 4 fails once, the run stops after epoch 5 and is resumed to 7; epoch 6 fails.
  # The resumed run must count this as the second rollback (one epoch further back, the
  # second key salt) and end where an uninterrupted run with the same failures ends.
  F, T = False, True
  cfg = dict(on_d_wins="rollback", lr_decay_epochs=0)  # constant lr: 5 + 2 epochs == 7
  _d_wins_at(monkeypatch, [F, F, F, T, F, F, F])
  run(tiny_config(epochs=5, **cfg), str(tmp_path / "resumed"))
  _d_wins_at(monkeypatch, [T, F, F, F, F])
  lines = []
  resumed = run(tiny_config(epochs=7, **cfg), str(tmp_path / "resumed"), lines.append)
  [msg] = [line for line in lines if "rolled back" in line]
  assert "epoch 6: the discriminator won" in msg and "rolled back to epoch 3" in msg, msg
  assert "D-wins rollback 2/3" in msg, msg
  _d_wins_at(monkeypatch, [F, F, F, T, F, F, F, T, F, F, F, F])
  whole = run(tiny_config(epochs=7, **cfg), str(tmp_path / "whole"))
  assert_same_state(resumed["state"], whole["state"])
  assert resumed["history"] == [{**h, "wall_s": r["wall_s"], "it_per_s": r["it_per_s"]}
                                for h, r in zip(whole["history"], resumed["history"])]


def test_d_wins_rollback_without_an_old_enough_checkpoint_warns(tmp_path, monkeypatch):
  _d_wins_at(monkeypatch, [True, False])
  lines = []
  run(tiny_config(epochs=2, on_d_wins="rollback"), str(tmp_path), lines.append)
  assert any("epoch 1: warning: D wins (on_d_wins=rollback: cannot roll back, no kept "
             "checkpoint is 2+ epochs old and healthy)" in line for line in lines), lines
  _d_wins_at(monkeypatch, [True, False])
  lines = []
  run(tiny_config(epochs=2, on_d_wins="rollback"), None, lines.append)
  assert any("no workdir, so no checkpoints" in line for line in lines), lines


def test_rollback_target_is_the_newest_checkpoint_two_epochs_back():
  assert guards.rollback_target([8, 9, 10], 11) == 9
  assert guards.rollback_target([4, 9, 10], 12) == 10
  assert guards.rollback_target([4, 10], 11) == 4  # the best-on-validation one, if that is all
  assert guards.rollback_target([10], 11) is None
  assert guards.rollback_target([], 5) is None
  # Epochs where D already won are no place to restart from.
  assert guards.rollback_target([1, 2, 3], 4, d_won=[2]) == 1
  assert guards.rollback_target([2, 3], 4, d_won=[2]) is None
  # Each further rollback of a run goes one epoch further back.
  assert guards.rollback_target([8, 9, 10], 11, previous=1) == 8
  assert guards.rollback_target([8, 9, 10], 11, previous=2) is None


def test_resume_with_lost_metrics_file_warns_and_keeps_training_exact(uninterrupted, tmp_path):
  run(CFG.replace(epochs=2), str(tmp_path))
  (tmp_path / "metrics_sgan.jsonl").unlink()
  lines = []
  out = run(CFG, str(tmp_path), lines.append)
  assert any("0 of the checkpoint's 2 metric records" in line for line in lines)
  assert_same_state(out["state"], uninterrupted["state"])
  assert [h["epoch"] for h in out["history"]] == [2, 3, 4]  # the checkpoint's last record kept


def test_checkpoint_meta_does_not_grow_with_the_run(tmp_path):
  run(CFG, str(tmp_path))
  c = ckpt_lib.Checkpointer(str(tmp_path / "checkpoints_sgan"))
  sizes = [len(json.dumps(c.read_meta(e))) for e in c.all_epochs()]
  c.close()
  assert max(sizes) - min(sizes) < 200, sizes  # no per-epoch history in the checkpoint


def test_best_checkpoint_on_ties_is_the_earliest_as_training_selects(uninterrupted, tmp_path):
  # Validation errors move in steps of 1/n_val, so ties happen; train() keeps the first
  # epoch with the lowest error and the checkpoint kept as "best" must be that one.
  c = ckpt_lib.Checkpointer(str(tmp_path / "ck"), keep=1)
  extra = {"lab_idx": np.arange(3), "val_idx": np.arange(2)}
  for ep, err in [(1, 0.5), (2, 0.2), (3, 0.2), (4, 0.2), (5, 0.3)]:
    c.save(ep, uninterrupted["state"], extra, {"epoch": ep}, err)
  c.wait()
  kept = c.all_epochs()
  c.close()
  assert kept == [2, 5], kept


def _flip_block(path, seed=0):
  """4 KB (or the whole file) of other bytes, in place: the file keeps its size."""
  data = bytearray(open(path, "rb").read())
  rng = np.random.default_rng(seed)
  for i in range(min(4096, len(data))):
    data[i] ^= int(rng.integers(1, 256))
  open(path, "wb").write(bytes(data))


def test_corrupt_checkpoint_bytes_are_detected_and_the_newest_intact_one_resumed(uninterrupted,
                                                                                 tmp_path):
  # The run stopped after epoch 3 and its checkpoint's parameters got damaged (same size, so
  # nothing but a checksum notices): named as corrupt, moved aside, epoch 2 resumed, and the
  # run ends exactly where the uninterrupted run ends.
  run(CFG.replace(keep_checkpoints=4), str(tmp_path))
  cdir = tmp_path / "checkpoints_sgan"
  import shutil
  shutil.rmtree(cdir / "4")
  _flip_block(cdir / "3" / "state" / "float32" / "0")
  lines = []
  out = run(CFG, str(tmp_path), lines.append)
  assert any(f"checkpoint {cdir}/3 is corrupt (state/float32/0 does not match its SHA-256 "
             f"checksum); skipped and moved to {cdir}.corrupt/3.1" in ln for ln in lines), lines
  assert any(f"resumed from {cdir}/2: epoch 2" in ln for ln in lines), lines
  assert os.listdir(f"{cdir}.corrupt") == ["3.1"]
  assert_same_state(out["state"], uninterrupted["state"])
  assert [h["test_err"] for h in out["history"]] == [h["test_err"] for h in uninterrupted["history"]]


def test_a_save_cut_off_before_its_manifest_does_not_verify(tmp_path):
  # A kill between orbax's rename and the manifest leaves a complete-looking step: its meta
  # says a manifest belongs to it, so it is not trusted.
  run(tiny_config(epochs=2, keep_checkpoints=2), str(tmp_path))
  cdir = tmp_path / "checkpoints_sgan"
  os.remove(cdir / "2" / integrity.MANIFEST)
  c = ckpt_lib.Checkpointer(str(cdir), read_only=True)
  assert c.verify(2) == "its save was cut off: no checksum manifest"
  assert c.verify(1) is None and c.newest_intact() == (1, {2: c.verify(2)})
  c.close()


def test_rollback_never_restores_a_checkpoint_that_fails_verification(tmp_path, monkeypatch):
  # Epoch 3 turns NaN twice; epoch 2's checkpoint is damaged just before the first: that
  # rollback goes to epoch 1 and the damaged step is moved aside, never restored; the second
  # goes to epoch 2 saved anew.
  real, calls = guards.first_nonfinite, {"n": 0}
  cdir = tmp_path / "checkpoints_sgan"

  def fake(per_step):
    calls["n"] += 1
    if calls["n"] == 3:
      _flip_block(cdir / "2" / "meta" / "metadata")
    return (1, "loss_lab", float("nan")) if calls["n"] in (3, 5) else real(per_step)

  monkeypatch.setattr(guards, "first_nonfinite", fake)
  lines = []
  out = run(tiny_config(epochs=3, on_nonfinite="rollback", keep_checkpoints=2), str(tmp_path),
            lines.append)
  back = [ln.split("rolled back to epoch ")[1][0] for ln in lines if "rolled back" in ln]
  assert back == ["1", "2"], lines
  assert sum(f"checkpoint {cdir}/2 is corrupt" in ln for ln in lines) == 1, lines
  assert os.listdir(f"{cdir}.corrupt") == ["2.1"] and out["summary"]["steps"] == 3 * 3
