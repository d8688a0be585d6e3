"""Fault injection: kills, corrupt checkpoints, a full disk and every refusal, with figures.

Runs a small config (scikit-learn's bundled digits, a small MLP pair, short epochs) and
reports what each fault left behind:

* **kills**: N SIGKILLs at random moments of random epochs (training, an asynchronous
  checkpoint save, evaluation), each run resumed by the same command until it finishes;
  every finished run must equal the uninterrupted one bit for bit (parameters, optimiser
  state, key and metric records), and no resume may start before the last checkpoint that
  was finished when the kill came;
* **corruptions**: M random byte flips, overwritten blocks and truncations of random files
  of the newest checkpoint; each must be detected, the step moved aside, and the resume from
  the checkpoint before it must again equal the uninterrupted run;
* **disk full**: a save that fails with ENOSPC (a patched write, and a real full tmpfs
  where this process may mount one) must end in one clear message with the previous
  checkpoint intact, and the resume after freeing space must equal the uninterrupted run;
* **refusals**: every case of :data:`CATALOGUE` (bad input on the command line) must end in
  ``error:``, exit status 2, no traceback, and leave its folder byte for byte unchanged.

  nice -n 10 python benchmarks/faults.py --kills 20 --corruptions 40 --out benchmarks/results/faults
  python benchmarks/faults.py --catalogue   # rewrites the bad-input table in docs/reliability.md

``tests/test_faults.py`` runs a quick version (a few corruptions, the patched full disk) and
every catalogue case.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import hashlib
import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from typing import Callable, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

# The small run every fault is injected into: the digits config with a small MLP pair.
SMALL = {"epochs": 5, "iters_per_epoch": 4, "d_hidden": [64, 32], "g_hidden": [64],
         "latent_dim": 16, "init_examples": 100, "batch_size": 50, "lr_decay_epochs": 2,
         "avg_rate": 0.05, "eval_every": 1, "baseline": False, "num_devices": 1}
# Where a kill may land: training an epoch, evaluating it, saving its checkpoint, and the
# instant between orbax's rename of a finished step and its manifest ("seal").
PHASES = ("train", "eval", "save", "seal")


def small_config(**kw):
  """The digits config with :data:`SMALL` (and ``kw``) applied."""
  from sgan_jax import configs
  return configs.load_config("digits").replace(**{**SMALL, **kw})


def cli_sets(fields: dict) -> list[str]:
  """``--set key=value`` arguments for ``fields`` (JSON values)."""
  return [a for k, v in fields.items() for a in ("--set", f"{k}={json.dumps(v)}")]


def tree_digest(path: str) -> dict[str, str]:
  """Every file (SHA-256) and folder under ``path``: two equal digests mean the tree is
  byte for byte the same."""
  out = {}
  for root, dirs, files in os.walk(path):
    for d in dirs:
      out[os.path.relpath(os.path.join(root, d), path)] = "<dir>"
    for f in files:
      p = os.path.join(root, f)
      with open(p, "rb") as fh:
        out[os.path.relpath(p, path)] = hashlib.sha256(fh.read()).hexdigest()
  return out


def state_leaves(state) -> list[np.ndarray]:
  import jax
  return [np.asarray(x) for x in jax.tree.leaves(state.replace(key=jax.random.key_data(state.key)))]


def same_records(a: Sequence[dict], b: Sequence[dict]) -> bool:
  """Metric records equal but for their timings."""
  drop = lambda r: {k: v for k, v in r.items() if k not in ("wall_s", "it_per_s")}
  return [drop(r) for r in a] == [drop(r) for r in b]


def read_records(workdir: str) -> list[dict]:
  from sgan_jax.rundir import read_jsonl
  return read_jsonl(os.path.join(workdir, "metrics_sgan.jsonl"))


# --------------------------------------------------------------------------- kills
def child(workdir: str, out: str, plan: Optional[str]) -> None:
  """One training process of the kill trials: prints when each phase of each epoch begins
  and ends (and which checkpoints are sealed); with ``plan`` = ``phase:epoch:seconds`` it
  kills itself (SIGKILL, from another thread) that long after that phase began."""
  from sgan_jax import checkpoint as ckpt_lib
  from sgan_jax import data as data_lib
  from sgan_jax import evaluation, train
  cfg = small_config()
  splits = data_lib.splits_for(data_lib.load("digits"), cfg)
  target = None
  if plan:
    phase, epoch, delay = plan.split(":")
    target = (phase, int(epoch), float(delay))
  now = {"epoch": 0, "open": None}

  def close() -> None:
    if now["open"]:
      print(f"@{time.monotonic():.6f} exit {now['open'][0]} {now['open'][1]}", flush=True)
      now["open"] = None

  def enter(phase: str, epoch: int) -> None:
    """A phase begins (and the one open ends): training an epoch runs from its batch order
    to its evaluation, a save from orbax's start to the sealed manifest."""
    close()
    print(f"@{time.monotonic():.6f} enter {phase} {epoch}", flush=True)
    now["open"] = (phase, epoch)
    if target and target[:2] == (phase, epoch):
      threading.Timer(target[2], lambda: os.kill(os.getpid(), signal.SIGKILL)).start()

  def wrap(fn, before, after=None):
    def wrapper(*a, **k):
      before(*a, **k)
      out = fn(*a, **k)
      if after:
        after(*a, **k)
      return out
    return wrapper

  def train_epoch(seed, epoch, *a, **k):
    now["epoch"] = epoch + 1  # epoch_indices(seed, epoch, ...): the 0-based epoch trained
    enter("train", now["epoch"])
  data_lib.epoch_indices = wrap(data_lib.epoch_indices, train_epoch)
  evaluation.evaluate = wrap(evaluation.evaluate, lambda *a, **k: enter("eval", now["epoch"]),
                             lambda *a, **k: close())
  ckpt_lib.Checkpointer.save = wrap(ckpt_lib.Checkpointer.save,
                                    lambda self, epoch, *a, **k: enter("save", epoch))
  wait = ckpt_lib.Checkpointer.wait

  def waited(self) -> None:
    pending = bool(self._unsealed)  # this wait finishes a save (not save()'s own first wait)
    wait(self)
    if pending and now["open"] and now["open"][0] == "save":
      close()
  ckpt_lib.Checkpointer.wait = waited
  seal = ckpt_lib.seal

  def sealed(step_dir: str) -> None:
    if target and target[:2] == ("seal", int(os.path.basename(step_dir))):
      os.kill(os.getpid(), signal.SIGKILL)  # orbax has finished the step; no manifest yet
    seal(step_dir)
    print(f"sealed {os.path.basename(step_dir)}", flush=True)
  ckpt_lib.seal = sealed
  res = train.train(cfg, splits, "sgan", workdir, lambda line: print(line, flush=True))
  np.savez(out, *state_leaves(res["state"]))


def _spawn(workdir: str, out: str, plan: Optional[str]) -> tuple[int, str]:
  r = subprocess.run([sys.executable, os.path.abspath(__file__), "_child", workdir, out,
                      plan or ""], capture_output=True, text=True, timeout=900,
                     env=dict(os.environ, PYTHONPATH=ROOT))
  return r.returncode, r.stdout + r.stderr


def _phase_at_death(log: str) -> str:
  """The phase the process was in when it died: the last one entered and not left."""
  open_ = None
  for m in re.finditer(r"^@[\d.]+ (enter|exit) (\w+) (\d+)$", log, re.M):
    open_ = f"{m.group(2)} {m.group(3)}" if m.group(1) == "enter" else None
  return open_ or "between phases"


def _durations(log: str) -> dict[str, float]:
  """Median seconds per phase from a child's marks."""
  starts, out = {}, {p: [] for p in PHASES}
  for m in re.finditer(r"^@([\d.]+) (enter|exit) (\w+) (\d+)$", log, re.M):
    t, what, phase = float(m.group(1)), m.group(2), m.group(3)
    if what == "enter":
      starts[phase] = t
    elif phase in starts:
      out[phase].append(t - starts.pop(phase))
  return {p: float(np.median(v)) if v else 0.0 for p, v in out.items()}


def _resumed_from(log: str) -> int:
  m = re.search(r"resumed from \S+/(\d+): epoch", log)
  return int(m.group(1)) if m else 0


def kill_trials(n: int, root: str, rng: random.Random, log: Callable[[str], None]) -> dict:
  """``n`` SIGKILLs spread over runs of :func:`small_config` (up to 4 per run, at random
  moments of random phases and epochs), each run resumed until it finishes and compared
  with an uninterrupted run. A kill's lost epochs: how far the next process resumed behind
  the newest checkpoint that was sealed when the kill came."""
  ref_dir, ref_out = os.path.join(root, "reference"), os.path.join(root, "reference.npz")
  rc, ref_log = _spawn(ref_dir, ref_out, None)
  if rc != 0:
    raise RuntimeError(f"reference run failed:\n{ref_log[-3000:]}")
  durations = _durations(ref_log)
  with np.load(ref_out) as f:
    ref_leaves = [f[k] for k in f.files]
  ref_records = read_records(ref_dir)
  epochs, trials, runs, kills = SMALL["epochs"], [], [], 0
  while kills < n:
    k = min(4, n - kills)
    points = sorted(rng.sample([(e, p) for e in range(1, epochs + 1) for p in PHASES], k),
                    key=lambda ep: (ep[0], PHASES.index(ep[1])))
    wd, out = os.path.join(root, f"run{len(runs)}"), os.path.join(root, f"run{len(runs)}.npz")
    sealed, killed = 0, None  # the newest sealed checkpoint; the last kill's record
    for plan in [(e, ph, rng.uniform(0, durations.get(ph, 0.0))) for e, ph in points] + [None]:
      rc, text = _spawn(wd, out, plan and f"{plan[1]}:{plan[0]}:{plan[2]:.6f}")
      if rc not in (0, -signal.SIGKILL):
        raise RuntimeError(f"child failed (rc {rc}):\n{text[-3000:]}")
      start = _resumed_from(text)
      if killed is not None:
        killed["lost_epochs"] = max(0, killed.pop("sealed") - start)
        # The kill came after orbax's rename and before the manifest: the step was skipped.
        killed["unsealed_step_skipped"] = "its save was cut off" in text
        killed = None
      sealed = max([sealed] + [int(x) for x in re.findall(r"^sealed (\d+)$", text, re.M)])
      if plan is None:
        break
      trial = {"planned": f"{plan[1]} of epoch {plan[0]}", "delay_s": round(plan[2], 4),
               "killed": rc == -signal.SIGKILL, "resumed_from": start,
               "landed_in": _phase_at_death(text) if rc else "missed (the run finished)"}
      trials.append(trial)
      if rc:
        kills += 1
        killed = {**trial, "sealed": sealed}
        trials[-1] = killed
      log(f"[kills] run {len(runs)}: kill planned in {trial['planned']} after "
          f"{plan[2]:.3f}s: {trial['landed_in']}")
    with np.load(out) as f:
      leaves = [f[k] for k in f.files]
    bitwise = len(leaves) == len(ref_leaves) and all(np.array_equal(a, b) for a, b in
                                                       zip(leaves, ref_leaves))
    runs.append({"bitwise_equal": bitwise,
                 "records_equal": same_records(read_records(wd), ref_records)})
    log(f"[kills] run {len(runs) - 1} finished: bitwise equal {bitwise}, metric records equal "
        f"{runs[-1]['records_equal']}")
  landed: dict[str, int] = {}
  for t in trials:
    if t["killed"]:  # a seal kill lands inside the save, after orbax's part of it
      phase = "seal" if t["planned"].startswith("seal") else t["landed_in"].split()[0]
      landed[phase] = landed.get(phase, 0) + 1
  return {"kills": kills, "planned": len(trials), "missed": len(trials) - kills,
          "landed": landed, "runs": len(runs),
          "runs_bitwise_equal": sum(r["bitwise_equal"] for r in runs),
          "runs_records_equal": sum(r["records_equal"] for r in runs),
          "lost_epochs_max": max([t.get("lost_epochs", 0) for t in trials] + [0]),
          "unsealed_steps_skipped": sum(t.get("unsealed_step_skipped", False) for t in trials),
          "phase_seconds": durations, "trials": trials}


# --------------------------------------------------------------------------- corruptions
def corrupt_file(path: str, kind: str, rng: random.Random) -> str:
  """Damages ``path`` in place: ``flip`` (1-16 random bytes XOR a nonzero value), ``block``
  (up to 4 KB overwritten with other random bytes) or ``truncate`` (cut shorter)."""
  with open(path, "rb") as f:
    data = bytearray(f.read())
  if kind == "truncate" or not data:
    cut = rng.randrange(len(data)) if data else 0
    data = data[:cut]
    what = f"truncated to {cut} bytes"
  elif kind == "flip":
    spots = [rng.randrange(len(data)) for _ in range(rng.randint(1, 16))]
    for i in spots:
      data[i] ^= rng.randint(1, 255)
    what = f"{len(set(spots))} byte(s) flipped"
  else:
    start = rng.randrange(len(data))
    for i in range(start, min(len(data), start + 4096)):
      data[i] ^= rng.randint(1, 255)
    what = f"{min(len(data), start + 4096) - start} bytes overwritten at {start}"
  with open(path, "wb") as f:
    f.write(bytes(data))
  return what


def corruption_trials(m: int, root: str, rng: random.Random, log: Callable[[str], None],
                      epochs: int = 4) -> dict:
  """``m`` damaged newest checkpoints: each detected, moved aside and resumed past, in this
  process, against an uninterrupted run that kept every checkpoint."""
  from sgan_jax import data as data_lib
  from sgan_jax import resume, train
  cfg = small_config(epochs=epochs, keep_checkpoints=epochs)
  splits = data_lib.splits_for(data_lib.load("digits"), cfg)
  template = os.path.join(root, "template")
  ref = train.train(cfg, splits, "sgan", template, lambda line: None)
  ref_leaves, ref_records = state_leaves(ref["state"]), read_records(template)
  trials = []
  for t in range(m):
    wd = os.path.join(root, f"trial{t}")
    shutil.copytree(template, wd)
    cdir = resume.checkpoint_dir(wd, "sgan")
    newest = rng.randint(2, epochs)  # the run stopped after this epoch ...
    for e in range(newest + 1, epochs + 1):
      shutil.rmtree(os.path.join(cdir, str(e)))
    step = os.path.join(cdir, str(newest))  # ... and this checkpoint got damaged
    files = sorted(os.path.relpath(os.path.join(r, f), step) for r, _, fs in os.walk(step) for f in fs)
    rel = rng.choice(files)
    kind = rng.choice(["flip", "block", "truncate"])
    what = corrupt_file(os.path.join(step, rel), kind, rng)
    lines = []
    out = train.train(cfg, splits, "sgan", wd, lines.append)
    detected = any(f"checkpoint {step} is corrupt" in ln for ln in lines)
    resumed = next((int(m_.group(1)) for ln in lines
                    if (m_ := re.search(r"resumed from \S+/(\d+): epoch", ln))), 0)
    moved = os.path.isdir(cdir + ".corrupt")
    bitwise = all(np.array_equal(a, b) for a, b in zip(state_leaves(out["state"]), ref_leaves))
    trials.append({"epoch": newest, "file": rel, "kind": kind, "damage": what, "detected": detected,
                   "moved_aside": moved, "resumed_from": resumed,
                   "fell_back": resumed == newest - 1, "bitwise_equal": bitwise,
                   "records_equal": same_records(read_records(wd), ref_records)})
    log(f"[corruptions] {t + 1}/{m}: checkpoint {newest}, {rel}: {what}: "
        f"{'detected' if detected else 'NOT DETECTED'}, resumed from {resumed}, "
        f"bitwise equal {bitwise}")
    shutil.rmtree(wd)
  kinds: dict[str, int] = {}
  for tr in trials:
    kinds[tr["kind"]] = kinds.get(tr["kind"], 0) + 1
  return {"kinds": kinds, "corruptions": m, "detected": sum(t["detected"] for t in trials),
          "fell_back": sum(t["fell_back"] and t["moved_aside"] for t in trials),
          "bitwise_equal": sum(t["bitwise_equal"] and t["records_equal"] for t in trials),
          "files": sorted({t["file"] for t in trials}), "trials": trials}


# --------------------------------------------------------------------------- disk full
def _enospc_check(wd: str, err: str, cfg, splits, ref_leaves, fail_epoch: int) -> dict:
  """After a save that failed at ``fail_epoch``: the message, the previous checkpoint, and a
  resume that must end where the uninterrupted run ends."""
  from sgan_jax import checkpoint as ckpt_lib
  from sgan_jax import resume, train
  c = ckpt_lib.Checkpointer(resume.checkpoint_dir(wd, "sgan"), read_only=True)
  prev, _ = c.newest_intact(below=fail_epoch)
  c.close()
  out = train.train(cfg, splits, "sgan", wd, lambda line: None)
  return {"message": err, "clear": "disk is full" in err or "No space left" in err,
          "previous_intact": prev == fail_epoch - 1,
          "resumed_bitwise_equal": all(np.array_equal(a, b) for a, b in
                                       zip(state_leaves(out["state"]), ref_leaves))}


def disk_full_patched(root: str, fail_epoch: int = 2, epochs: int = 3) -> dict:
  """The manifest write of ``fail_epoch``'s checkpoint raises ENOSPC (in this process)."""
  from sgan_jax import checkpoint as ckpt_lib
  from sgan_jax import data as data_lib
  from sgan_jax import train
  from sgan_jax.errors import SganError
  cfg = small_config(epochs=epochs)
  splits = data_lib.splits_for(data_lib.load("digits"), cfg)
  ref_leaves = state_leaves(train.train(cfg, splits, "sgan", None, lambda line: None)["state"])
  wd, seal = os.path.join(root, "enospc_patched"), ckpt_lib.seal

  def full(step_dir: str) -> None:
    if os.path.basename(step_dir) == str(fail_epoch):
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.path.join(step_dir, "x"))
    seal(step_dir)
  ckpt_lib.seal = full
  try:
    train.train(cfg, splits, "sgan", wd, lambda line: None)
    err = "(no error)"
  except SganError as e:
    err = str(e)
  finally:
    ckpt_lib.seal = seal
  return {"how": "patched write (ENOSPC)", **_enospc_check(wd, err, cfg, splits, ref_leaves,
                                                          fail_epoch)}


def disk_full_tmpfs(root: str, fail_epoch: int = 2, epochs: int = 3) -> Optional[dict]:
  """A real full disk: the run on a small tmpfs that a ballast file fills, once epoch
  ``fail_epoch - 1`` is saved, to less than a checkpoint. Through the command line, in this
  process. None where no tmpfs can be mounted (not root)."""
  from sgan_jax import cli
  from sgan_jax import data as data_lib
  from sgan_jax import rundir, train
  mnt = os.path.join(root, "tmpfs")
  os.makedirs(mnt)
  if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mnt],
                                         capture_output=True).returncode != 0:
    return None
  try:
    cfg = small_config(epochs=epochs)
    splits = data_lib.splits_for(data_lib.load("digits"), cfg)
    ref_leaves = state_leaves(train.train(cfg, splits, "sgan", None, lambda line: None)["state"])
    wd = os.path.join(mnt, "run")
    ballast = os.path.join(mnt, "ballast")
    real_epoch_line = rundir.epoch_line

    def fill_after(rec, *a):
      line = real_epoch_line(rec, *a)
      if rec["epoch"] == fail_epoch and not os.path.exists(ballast):
        step = os.path.join(wd, "seed_0", "checkpoints_sgan", str(fail_epoch - 1))
        need = rundir.folder_bytes(step)
        st = os.statvfs(mnt)
        with open(ballast, "wb") as f:  # room for the records and samples, not a checkpoint
          f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - need // 2))
      return line
    rundir.epoch_line = fill_after
    err = io.StringIO()
    try:
      with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(["train", "--config", "digits", *cli_sets({**SMALL, "epochs": epochs}),
                       "--workdir", wd])
    finally:
      rundir.epoch_line = real_epoch_line
    message = err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else ""
    os.remove(ballast)
    res = _enospc_check(os.path.join(wd, "seed_0"), message, cfg, splits, ref_leaves, fail_epoch)
    return {"how": "tmpfs filled up", "exit_code": rc, "traceback": "Traceback" in err.getvalue(),
            **res}
  finally:
    subprocess.run(["umount", mnt], capture_output=True)


# --------------------------------------------------------------------------- refusals
# Small-model settings the checked commands add to every `train` case (left out of the
# table): the refusals come before training, and the finished runs they refer to are quick.
TINY = ["--set", "epochs=1", "--set", "iters_per_epoch=2", "--set", "d_hidden=[16]",
        "--set", "g_hidden=[16]", "--set", "latent_dim=8", "--set", "init_examples=50",
        "--set", "baseline=false", "--set", "num_devices=1"]
TINY_TABLE = ["--set", "epochs=1", "--set", "iters_per_epoch=2", "--set", "d_hidden=[8]",
              "--set", "g_hidden=[8]", "--set", "init_examples=32"]


@dataclasses.dataclass(frozen=True)
class Case:
  """A bad input: the command (after ``sgan-jax``, run in a folder holding the data files,
  ``RUN`` a finished run and ``MODEL`` a fitted table model), the words its error says."""

  case: str
  argv: tuple
  message: str
  locked: str = ""  # a folder the process may not write (simulated: tests may run as root)
  prepare: Optional[Callable[[str], None]] = None  # edits the case's folder first


def _swap_data(folder: str) -> None:
  """Another data file at the path the run was trained on."""
  _images(os.path.join(folder, "small.npz"), seed=9)


def _file_workdir(folder: str) -> None:
  with open(os.path.join(folder, "out"), "w") as f:
    f.write("a file, not a folder\n")


def _fit(data: str, *extra: str, target: str = "outcome", out: str = "m") -> tuple:
  """``sgan-jax tabular fit`` on ``data``."""
  return ("tabular", "fit", "--data", data, "--target", target, "--out", out, *extra)


CATALOGUE = [
    Case("unknown config key", ("train", "--set", "learning_rate=0.01"), "Did you mean 'lr'?"),
    Case("unknown key, other spelling", ("train", "--set", "LearningRate=0.01"),
         "Did you mean 'lr'?"),
    Case("wrong type", ("train", "--set", "epochs=ten"), "Config key 'epochs' must be int"),
    Case("value out of range", ("train", "--set", "lr=-1"), "Config key 'lr' must be > 0"),
    Case("retired key", ("train", "--set", "second_avg_rate=1e-4"), "was removed"),
    Case("unknown config name", ("train", "--config", "nope"), "No config 'nope'"),
    Case("missing data file", ("train", "--set", "dataset=missing.npz"), "does not exist"),
    Case("not an .npz", ("train", "--set", "dataset=garbage.npz"), "Could not read"),
    Case(".npz without the four arrays", ("train", "--set", "dataset=noarrays.npz"),
         "lacks arrays ['x_test', 'y_test']"),
    Case("NaN pixels", ("train", "--set", "dataset=nan.npz"), "NaN/inf values"),
    Case("a test class absent from training", ("train", "--set", "dataset=unseen.npz"),
         "y_test holds class(es) [4]"),
    Case("more labels than a class has", ("train", "--set", "labels_per_class=500"),
         "but 500 labeled ones were requested"),
    Case("validation split larger than the data", ("train", "--set", "val_size=5000"),
         "leaves no training data"),
    Case("val_size neither a count nor a fraction", ("train", "--set", "val_size=1.5"),
         "val_size must be a number of examples"),
    Case("seeds not integers", ("train", "--seeds", "0,x"), "must be comma-separated integers"),
    Case("a seed twice", ("train", "--seeds", "1,1"), "lists a value twice"),
    Case("a seed field set for every seed", ("train", "--set", "data_seed=1"),
         "each run's seed picks"),
    Case("unknown mode", ("train", "--modes", "sgan,gan"), "--modes takes sgan and/or supervised"),
    Case("options that do not combine", ("train", "--set", "model=conv", "--set", "noise_rng=hash"),
         "noise_rng='hash' draws the MLP critic's Gaussian noise"),
    Case("resume with another learning rate",
         ("train", "--set", "dataset=small.npz", "--set", "lr=0.001", "--workdir", "RUN"),
         "holds a different run (lr: 0.003 there vs 0.001 now)"),
    Case("resume with other labels",
         ("train", "--set", "dataset=small.npz", "--set", "labels_per_class=5", "--workdir", "RUN"),
         "holds a different run (labels_per_class: 3 there vs 5 now)"),
    Case("resume on other data at the same path",
         ("train", "--set", "dataset=small.npz", "--workdir", "RUN"),
         "was written for different data", prepare=_swap_data),
    Case("output folder not writable", ("train", "--set", "dataset=small.npz", "--workdir", "RUN"),
         "cannot write to", locked="RUN"),
    Case("new output folder in an unwritable one", ("train", "--workdir", "locked/run"),
         "cannot write to", locked="locked"),
    Case("output folder is a file", ("train", "--workdir", "out"), "is a file, not a folder",
         prepare=_file_workdir),
    Case("--parallel_seeds with --distributed", ("train", "--parallel_seeds", "--distributed"),
         "does not combine"),
    Case("--coordinator without --distributed", ("train", "--coordinator", "localhost:1234"),
         "need --distributed"),
    Case("a table field every cell sets", ("table", "mnist_fm_table", "--set", "seed=3"),
         "each table cell sets these"),
    Case("a config without a table", ("table", "digits"), "without a TABLE"),
    Case("a zero epoch budget", ("table", "mnist_fm_table", "--epochs", "0"),
         "must be at least 1 epoch"),
    Case("table: text in a numeric column", _fit("typo.csv"), "Column 'age' line 41 holds 'fifty'"),
    Case("table: an empty feature value", _fit("empty.csv"), "Column 'dose' line 7 is empty"),
    Case("table: a row with an extra field", _fit("ragged.csv"),
         "line 3 has 5 fields but the header has 4"),
    Case("table: missing target column", _fit("table.csv", target="result"),
         "Target column 'result' not found"),
    Case("table: no labeled rows", _fit("unlabeled.csv"), "No labeled rows"),
    Case("table: numeric target with a typo", _fit("target_typo.csv"),
         "holds numbers except in 1 of"),
    Case("table: an ID-like target", _fit("ids.csv"), "more than 20 classes"),
    Case("table: a class with one labeled row", _fit("lone.csv"), "have a single labeled row"),
    Case("table: --out not writable", _fit("table.csv", out="locked/m"), "cannot write to",
         locked="locked"),
    Case("table: --out holds another model", _fit("table.csv", "--set", "lr=0.01", out="MODEL"),
         "holds a different run (lr: 0.003 there vs 0.01 now)"),
    Case("table: predict with no model", ("tabular", "predict", "--model", "nomodel", "--data",
                                          "table.csv", "--out", "p.csv"),
         "is not a complete sgan_jax tabular model folder"),
]


def _images(path: str, seed: int = 0, n: int = 400, classes: int = 4, nan: bool = False,
            unseen: bool = False) -> None:
  """A small image .npz (8x8, uint8)."""
  rng = np.random.default_rng(seed)
  x = rng.integers(0, 255, (n, 8, 8), dtype=np.uint8)
  y = np.arange(n) % classes
  xt, yt = x[:40].astype(np.float32) / 255, y[:40].copy()
  if nan:
    xt[0, 0, 0] = np.nan
  if unseen:
    yt[:3] = classes  # a class the training split never has
  np.savez(path, x_train=x, y_train=y, x_test=xt if nan else x[:40], y_test=yt)


def _table(path: str, n: int = 120, edit: Optional[Callable[[list], None]] = None,
           target: Optional[Callable[[int, np.random.Generator], str]] = None) -> None:
  """A small CSV (age, city, dose, outcome; about half the outcomes empty)."""
  import csv
  rng = np.random.default_rng(0)
  rows = [["age", "city", "dose", "outcome"]]
  for i in range(n):
    age, dose = rng.normal(50, 10), rng.normal(0, 1)
    y = target(i, rng) if target else ("sick" if dose > 0 else "well")
    rows.append([f"{age:.2f}", ["paris", "lyon", "nice"][i % 3], f"{dose:.3f}",
                 y if i % 2 == 0 else ""])
  if edit:
    edit(rows)
  with open(path, "w", newline="") as f:
    csv.writer(f).writerows(rows)


def catalogue_files(folder: str) -> None:
  """The data files the catalogue's commands name."""
  _images(os.path.join(folder, "small.npz"))
  _images(os.path.join(folder, "nan.npz"), nan=True)
  _images(os.path.join(folder, "unseen.npz"), unseen=True)
  with open(os.path.join(folder, "garbage.npz"), "wb") as f:
    f.write(b"not a zip file")
  np.savez(os.path.join(folder, "noarrays.npz"), x_train=np.zeros((4, 8, 8), np.uint8),
           y_train=np.arange(4))
  _table(os.path.join(folder, "table.csv"))
  _table(os.path.join(folder, "typo.csv"), edit=lambda rows: rows[40].__setitem__(0, "fifty"))
  _table(os.path.join(folder, "empty.csv"), edit=lambda rows: rows[6].__setitem__(2, ""))
  _table(os.path.join(folder, "ragged.csv"), edit=lambda rows: rows[2].append("extra"))
  _table(os.path.join(folder, "unlabeled.csv"),
         edit=lambda rows: [r.__setitem__(3, "") for r in rows[1:]])
  _table(os.path.join(folder, "target_typo.csv"),
         target=lambda i, rng: "unknown" if i == 50 else f"{rng.normal(3, 1):.3f}")
  _table(os.path.join(folder, "ids.csv"), target=lambda i, rng: f"id{i}")
  _table(os.path.join(folder, "lone.csv"), target=lambda i, rng: "rare" if i == 4 else
         ("sick" if i % 4 == 0 else "well"))


def catalogue_templates(folder: str) -> None:
  """``RUN``: a finished run on ``small.npz``; ``MODEL``: a fitted table model."""
  from sgan_jax import cli
  catalogue_files(folder)
  with _in(folder), contextlib.redirect_stdout(io.StringIO()), \
       contextlib.redirect_stderr(io.StringIO()) as err:
    rc = cli.main(["train", "--config", "digits", "--set", "dataset=small.npz", *TINY,
                   "--workdir", "RUN"])
    rc2 = cli.main(["tabular", "fit", "--data", "table.csv", "--target", "outcome", "--out",
                    "MODEL", *TINY_TABLE])
  if rc or rc2:
    raise RuntimeError(f"catalogue templates failed: {err.getvalue()[-3000:]}")


@contextlib.contextmanager
def _in(folder: str):
  old = os.getcwd()
  os.chdir(folder)
  try:
    yield
  finally:
    os.chdir(old)


@contextlib.contextmanager
def _locked(path: Optional[str]):
  """``path`` (and what is under it) unwritable to :func:`sgan_jax.rundir.check_writable`:
  as root, chmod would not stop the writes, so the check's view is patched."""
  if not path:
    yield
    return
  from sgan_jax import rundir
  real, locked = rundir._writable, os.path.abspath(path)
  rundir._writable = lambda f: (not os.path.abspath(f).startswith(locked)) and real(f)
  try:
    yield
  finally:
    rundir._writable = real


def run_case(case: Case, templates: str, folder: str) -> dict:
  """Runs one catalogue case in a copy of ``templates``: exit status, error text, whether a
  traceback showed, and whether the folder is byte for byte as before."""
  from sgan_jax import cli
  shutil.copytree(templates, folder, symlinks=True)
  if case.prepare:
    case.prepare(folder)
  if case.locked:
    os.makedirs(os.path.join(folder, case.locked), exist_ok=True)
  argv = list(case.argv)
  tiny = {"train": TINY, "fit": TINY_TABLE}.get(argv[0] if argv[0] == "train" else argv[1], [])
  argv = argv[:2 if argv[0] == "tabular" else 1] + tiny + argv[2 if argv[0] == "tabular" else 1:]
  before = tree_digest(folder)
  err = io.StringIO()
  with _in(folder), _locked(case.locked and os.path.join(folder, case.locked)), \
       contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
    try:
      rc = cli.main(argv)
    except SystemExit as e:  # argparse's own errors
      rc = e.code
    except Exception:  # what a user would see: a traceback
      traceback.print_exc()
      rc = 1
  text = err.getvalue()
  return {"case": case.case, "exit_code": rc, "error": text.strip(),
          "message_found": case.message in text, "starts_with_error": text.startswith("error: "),
          "traceback": "Traceback" in text, "unchanged": tree_digest(folder) == before}


def refusal_trials(root: str, log: Callable[[str], None] = print) -> dict:
  templates = os.path.join(root, "templates")
  os.makedirs(templates)
  catalogue_templates(templates)
  results = []
  for i, case in enumerate(CATALOGUE):
    r = run_case(case, templates, os.path.join(root, f"case{i}"))
    results.append(r)
    ok = (r["exit_code"] == 2 and r["message_found"] and r["starts_with_error"]
          and not r["traceback"] and r["unchanged"])
    log(f"[refusals] {case.case}: {'ok' if ok else 'FAILED ' + json.dumps(r)}")
  return {"cases": len(results), "exit_2": sum(r["exit_code"] == 2 for r in results),
          "message_found": sum(r["message_found"] for r in results),
          "no_traceback": sum(not r["traceback"] for r in results),
          "unchanged": sum(r["unchanged"] for r in results), "results": results}


def catalogue_table() -> str:
  """The bad-input table of docs/reliability.md, from :data:`CATALOGUE`."""
  def command(case: Case) -> str:
    return "`sgan-jax " + " ".join(case.argv) + "`"
  rows = ["| case | command | the error says |", "|---|---|---|"]
  for c in CATALOGUE:
    rows.append(f"| {c.case} | {command(c)} | {c.message.replace('|', '/')} |")
  return "\n".join(rows)


CATALOGUE_MARKERS = ("<!-- bad-input catalogue: generated by benchmarks/faults.py --catalogue -->",
                     "<!-- end of the catalogue -->")


def write_catalogue(doc: str) -> None:
  """Replaces the table between :data:`CATALOGUE_MARKERS` in ``doc``."""
  with open(doc) as f:
    text = f.read()
  start, end = CATALOGUE_MARKERS
  i, j = text.index(start) + len(start), text.index(end)
  with open(doc, "w") as f:
    f.write(text[:i] + "\n" + catalogue_table() + "\n" + text[j:])


# --------------------------------------------------------------------------- report
def report(res: dict) -> str:
  """The figures as markdown."""
  lines = ["| fault | trials | outcome |", "|---|---|---|"]
  if "kills" in res:
    k = res["kills"]
    names = {"train": "training an epoch", "eval": "evaluating", "save": "saving",
             "seal": "between orbax's rename and the manifest", "between": "between those"}
    landed = ", ".join(f"{k['landed'][p]} {names[p]}" for p in names if p in k["landed"])
    lines.append(f"| SIGKILL at a random moment of a random epoch ({landed}; {k['missed']} "
                 f"planned kills came after the run had finished) | {k['kills']} kills over "
                 f"{k['runs']} runs | {k['runs_bitwise_equal']}/{k['runs']} runs bitwise equal to the "
                 f"uninterrupted run ({k['runs_records_equal']}/{k['runs']} metric records "
                 f"equal); lost epochs beyond the last finished checkpoint: at most "
                 f"{k['lost_epochs_max']}; steps cut off before their manifest, skipped: "
                 f"{k['unsealed_steps_skipped']} |")
  if "corruptions" in res:
    c = res["corruptions"]
    kinds = c["kinds"]
    lines.append(f"| the newest checkpoint damaged: {kinds.get('flip', 0)} x 1-16 bytes flipped, "
                 f"{kinds.get('block', 0)} x up to 4 KB overwritten, {kinds.get('truncate', 0)} x "
                 f"truncated; {len(c['files'])} different files of the step "
                 f"| {c['corruptions']} | {c['detected']}/{c['corruptions']} detected, "
                 f"{c['fell_back']}/{c['corruptions']} moved aside and resumed from the one "
                 f"before, {c['bitwise_equal']}/{c['corruptions']} bitwise equal to the "
                 "uninterrupted run |")
  for d in res.get("disk_full", []):
    lines.append(f"| disk full during a save ({d['how']}) | 1 | clear message: {d['clear']}; "
                 f"previous checkpoint intact: {d['previous_intact']}; resume bitwise equal: "
                 f"{d['resumed_bitwise_equal']} |")
  if "refusals" in res:
    r = res["refusals"]
    lines.append(f"| bad input (the catalogue) | {r['cases']} | exit 2: {r['exit_2']}; message "
                 f"as documented: {r['message_found']}; no traceback: {r['no_traceback']}; "
                 f"folder byte for byte unchanged: {r['unchanged']} |")
  return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--kills", type=int, default=20)
  p.add_argument("--corruptions", type=int, default=40)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default=None, help="write <out>.json and <out>.md")
  p.add_argument("--catalogue", action="store_true",
                 help="only rewrite the bad-input table in docs/reliability.md")
  a = p.parse_args(argv)
  if a.catalogue:
    write_catalogue(os.path.join(ROOT, "docs", "reliability.md"))
    return 0
  rng = random.Random(a.seed)
  res, t0 = {}, time.time()
  with tempfile.TemporaryDirectory(prefix="sgan_faults_") as root:
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(root, "xla_cache"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    for name, fn in (("refusals", lambda d: refusal_trials(d)),
                     ("corruptions", lambda d: corruption_trials(a.corruptions, d, rng, print)),
                     ("kills", lambda d: kill_trials(a.kills, d, rng, print))):
      os.makedirs(os.path.join(root, name))
      res[name] = fn(os.path.join(root, name))
    os.makedirs(os.path.join(root, "disk"))
    res["disk_full"] = [d for d in (disk_full_patched(os.path.join(root, "disk")),
                                    disk_full_tmpfs(os.path.join(root, "disk"))) if d]
  res["wall_s"] = round(time.time() - t0, 1)
  res["command"] = "python benchmarks/faults.py " + " ".join(argv if argv is not None else sys.argv[1:])
  md = report(res)
  print("\n" + md)
  if a.out:
    with open(a.out + ".json", "w") as f:
      json.dump(res, f, indent=1)
    with open(a.out + ".md", "w") as f:
      f.write(f"Command: `{res['command']}` ({res['wall_s']} s)\n\n{md}\n")
  return 0


if __name__ == "__main__":
  if len(sys.argv) > 1 and sys.argv[1] == "_child":
    child(sys.argv[2], sys.argv[3], sys.argv[4] or None)
  else:
    sys.exit(main())
