"""Several processes training one model (jax.distributed on CPU, collectives over gloo):
two processes x 4 CPU devices must compute what one process with 8 devices computes,
write each run file once, and leave checkpoints that one process resumes from."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest

from sgan_jax import sharding
from sgan_jax import train
from sgan_jax.errors import SganError
from tests.helpers import ADAM_LINEAR, assert_devices_agree, splits_for, tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DRIVER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    import jax, numpy as np
    from sgan_jax import experiment, sharding, train
    coordinator, pid, workdir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    sharding.initialize(coordinator, 2, pid)
    assert jax.process_count() == 2 and len(jax.devices()) == 8 and len(jax.local_devices()) == 4
    from tests.helpers import blobs, splits_for, tiny_config
    cfg = tiny_config(num_devices=0, epochs=2, baseline=False, eps_root=1.0)
    def dump(path):
      out = train.train(cfg, splits, "sgan", workdir, print)
      st = out["state"]
      if pid == 0:
        np.savez(path, *[sharding.to_host(x) for x in jax.tree.leaves(
            st.replace(key=jax.random.key_data(st.key)))])
    experiment.train_and_evaluate(cfg, workdir, blobs(), modes=["sgan"])
    # Again with --fresh: the old checkpoints are moved aside once, not once per process.
    experiment.train_and_evaluate(cfg, workdir, blobs(), modes=["sgan"], fresh=True)
    splits = splits_for(cfg)
    dump(workdir + "/epoch2.npz")  # resumes the finished run: its final state
    cfg = cfg.replace(epochs=3)
    dump(workdir + "/epoch3.npz")  # both processes resume from their checkpoint, one more epoch
""")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _run_two_processes(script, workdir, timeout: float = 300):
  """Runs ``script coordinator process_id workdir`` as 2 processes x 4 CPU devices.

  Output goes to files (two pipes read one after the other can fill and block a process
  that the other waits for in a collective); both are killed on a hang or any error.
  """
  flags = os.environ.get("XLA_FLAGS", "").replace("device_count=8", "device_count=4")
  env = dict(os.environ, XLA_FLAGS=flags, PYTHONPATH=ROOT)
  coord = f"localhost:{_free_port()}"
  outs = [open(f"{script}.{i}.log", "w+") for i in range(2)]
  procs = [subprocess.Popen([sys.executable, str(script), coord, str(i), str(workdir)], env=env,
                            stdout=outs[i], stderr=subprocess.STDOUT, text=True)
           for i in range(2)]
  deadline = time.monotonic() + timeout
  try:
    for p in procs:
      p.wait(timeout=max(1.0, deadline - time.monotonic()))
  except subprocess.TimeoutExpired:
    pass
  finally:
    hung = [p.poll() is None for p in procs]
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
    logs = []
    for f in outs:
      f.seek(0)
      logs.append(f.read())
      f.close()
  if any(hung):
    raise AssertionError(f"2-process run did not finish in {timeout}s; output tails:\n"
                         + "\n---\n".join(log[-2000:] for log in logs))
  return procs, logs


@pytest.mark.slow  # ~55 s of four processes; the setup's refusals stay in the default set
def test_two_processes_match_one_and_one_resumes_their_checkpoints(tmp_path):
  script = tmp_path / "driver.py"
  script.write_text(DRIVER.format(root=ROOT))
  wd = tmp_path / "run"
  procs, logs = _run_two_processes(script, wd)
  for p, log in zip(procs, logs):
    assert p.returncode == 0, log[-3000:]

  # One process, 8 devices, same config: same numbers up to reassociation of the sums
  # (the cross-process all-reduce adds in another order).
  cfg = tiny_config(num_devices=0, epochs=2, baseline=False, eps_root=ADAM_LINEAR)
  ref = train.train(cfg, splits_for(cfg), "sgan", None, lambda s: None)
  recs = [json.loads(line) for line in (wd / "metrics_sgan.jsonl").read_text().splitlines()]
  assert [r["epoch"] for r in recs] == [1, 2, 3]  # written once, by process 0
  for r, h in zip(recs, ref["history"]):
    assert r["test_err"] == h["test_err"] and r["val_err"] == h["val_err"]
    np.testing.assert_allclose(r["loss_unl"], h["loss_unl"], rtol=1e-4)
  # --fresh moved the first run aside once (not once per process), whole.
  assert (tmp_path / "run.old-1" / "checkpoints_sgan").is_dir()
  assert not (tmp_path / "run.old-2").exists()
  summary = json.loads((wd / "summary.json").read_text())
  assert summary["sgan"]["steps"] == ref["summary"]["steps"]
  for f in ("classifier_sgan.msgpack", "generator.msgpack", "samples/epoch_0002.png"):
    assert (wd / f).exists(), f

  # The parameters themselves, after 2 epochs and after a 2-process resume to epoch 3.
  full3 = train.train(cfg.replace(epochs=3), splits_for(cfg), "sgan", None, lambda s: None)
  for path, st in (("epoch2.npz", ref["state"]), ("epoch3.npz", full3["state"])):
    with np.load(wd / path) as f:
      got = [f[f"arr_{i}"] for i in range(len(f.files))]
    want = jax.tree.leaves(st.replace(key=jax.random.key_data(st.key)))
    assert len(got) == len(want)
    for g, w in zip(got, want):
      np.testing.assert_allclose(g, np.asarray(w), rtol=1e-5, atol=1e-6, err_msg=path)
  assert any("resumed from" in ln and "epoch 2" in ln for ln in logs[1].splitlines())

  # Their checkpoint restores in this single process (8 devices) and training goes on,
  # landing where an uninterrupted single-process run lands.
  lines = []
  out = train.train(cfg.replace(epochs=4), splits_for(cfg), "sgan", str(wd), lines.append)
  assert any("resumed from" in ln and "epoch 3" in ln for ln in lines), lines
  full = train.train(cfg.replace(epochs=4), splits_for(cfg), "sgan", None, lambda s: None)
  assert_devices_agree(out["state"], full["state"])


def test_distributed_setup_errors_are_clear():
  from sgan_jax import sharding  # noqa: F811 (the driver imports it too)
  with pytest.raises(SganError, match="all of coordinator"):
    sharding.initialize("localhost:1234", None, 0)
  with pytest.raises(SganError, match="process_id must be in"):
    sharding.initialize("localhost:1234", 2, 2)


PREEMPT_DRIVER = textwrap.dedent("""
    import os, signal, sys, threading, time
    sys.path.insert(0, {root!r})
    import jax
    from sgan_jax import sharding, train
    coordinator, pid, workdir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    sharding.initialize(coordinator, 2, pid)
    from tests.helpers import splits_for, tiny_config
    cfg = tiny_config(num_devices=0, epochs=300, baseline=False, eps_root=1.0, lr_decay_epochs=0)
    splits = splits_for(cfg)
    if pid == 1:  # only this process is preempted, once process 0 has logged epoch 2
      def preempt_me():
        path = os.path.join(workdir, "metrics_sgan.jsonl")
        def records():
          if not os.path.exists(path):
            return 0
          with open(path) as f:
            return len(f.readlines())
        while records() < 2:
          time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)
      threading.Thread(target=preempt_me, daemon=True).start()
    try:
      train.train(cfg, splits, "sgan", workdir, print)
      print("FINISHED")
    except train.Preempted as e:
      print("PREEMPTED", e)
""")


@pytest.mark.slow  # ~25 s of two processes; one-process SIGTERM is in the default set
def test_sigterm_to_one_process_stops_all_at_the_same_epoch(tmp_path):
  """Preemption reaches processes at different times (here: only one of them). All must
  stop after the same epoch with one checkpoint, or one would wait forever in a
  collective the others never join; the checkpoint then resumes exactly."""
  script = tmp_path / "driver.py"
  script.write_text(PREEMPT_DRIVER.format(root=ROOT))
  wd = tmp_path / "run"
  procs, logs = _run_two_processes(script, wd)
  stops = []
  for p, log in zip(procs, logs):
    assert p.returncode == 0, log[-3000:]
    line = [ln for ln in log.splitlines() if ln.startswith("PREEMPTED")]
    assert line, log[-3000:]
    stops.append(line[0].split("stopped after epoch ")[1].split(",")[0])
  assert stops[0] == stops[1], stops
  stop = int(stops[0])
  assert 2 <= stop < 300
  ckdir = wd / "checkpoints_sgan"
  assert max(int(d) for d in os.listdir(ckdir) if d.isdigit()) == stop

  # One process resumes their checkpoint for one more epoch and lands where an
  # uninterrupted single-process run does.
  cfg = tiny_config(num_devices=0, epochs=stop + 1, baseline=False, eps_root=ADAM_LINEAR,
                    lr_decay_epochs=0)
  lines = []
  out = train.train(cfg, splits_for(cfg), "sgan", str(wd), lines.append)
  assert any("resumed from" in ln and f"epoch {stop}" in ln for ln in lines), lines
  full = train.train(cfg, splits_for(cfg), "sgan", None, lambda s: None)
  assert_devices_agree(out["state"], full["state"])
