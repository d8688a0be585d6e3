"""The training loop: one model, epoch by epoch, checkpointed, resumable bit for bit.

:func:`train` runs the compiled epoch (:mod:`sgan_jax.step`) on placed data
(:mod:`sgan_jax.sharding`), evaluates the Polyak-averaged discriminator
(:mod:`sgan_jax.evaluation`), applies the guards (:mod:`sgan_jax.guards`), and writes the
run folder (:mod:`sgan_jax.rundir`) and checkpoints (:mod:`sgan_jax.checkpoint`). Two
modes share it: ``"sgan"`` (the semi-supervised GAN) and ``"supervised"`` (the same
discriminator on the labeled stream alone, the baseline every result is reported beside).
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import sys
import threading
import time
from typing import Callable, Iterator, Optional

import jax
import numpy as np
import tqdm
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec as P

from sgan_jax import checkpoint as ckpt_lib
from sgan_jax import data as data_lib
from sgan_jax import evaluation, guards, memory, objectives, resume, rundir, step
from sgan_jax.config import Config, check_mode
from sgan_jax.sharding import make_mesh, place, to_host
from sgan_jax.state import initial_state


class Preempted(Exception):
  """Raised after SIGTERM or Ctrl-C, once a checkpoint has been saved (a second Ctrl-C: at
  once, keeping the last one); rerun the command to resume. ``exit_code`` is the
  command's: 75 (EX_TEMPFAIL) after SIGTERM, 130 (128 + SIGINT) after Ctrl-C."""

  def __init__(self, message: str, exit_code: int = 75):
    super().__init__(message)
    self.exit_code = exit_code


def splits_fingerprint(splits: data_lib.Splits) -> str:
  """What a checkpoint records of the data it was trained on (checked at resume)."""
  return resume.data_fingerprint(splits.x_lab, splits.y_lab, splits.x_unl, splits.x_val,
                                 splits.y_val)


def resume_epoch(cfg: Config, splits: data_lib.Splits, mode: str, workdir: str) -> Optional[int]:
  """The epoch :func:`train` would resume from in ``workdir`` (None: from scratch). Reads
  only; refuses (:class:`SganError`) what :func:`train` would refuse: another run's
  checkpoints."""
  epoch, _, _ = resume.resume_point(resume.checkpoint_dir(workdir, mode), mode, cfg,
                                    lambda: splits_fingerprint(splits))
  return epoch


@dataclasses.dataclass
class Progress:
  """Where a run stands besides its state; saved in every checkpoint's meta."""

  epoch: int = 0
  best: dict = dataclasses.field(default_factory=lambda: {"val_err": None})
  history: list = dataclasses.field(default_factory=list)
  t_train: float = 0.0           # seconds of training, compilation excluded
  compile_s: Optional[float] = None
  timed_iters: int = 0           # iterations whose time is in t_train
  rollbacks: int = 0             # non-finite rollbacks so far (they salt the keys)
  d_rollbacks: int = 0           # D-wins rollbacks so far

  def it_per_s(self) -> Optional[float]:
    return self.timed_iters / self.t_train if self.t_train > 0 else None

  def timing(self) -> dict:
    it_s = self.it_per_s()
    return {"train_s": round(self.t_train, 2), "it_per_s": round(it_s, 2) if it_s else None,
            "compile_s": round(self.compile_s, 2) if self.compile_s is not None else None}

  def meta(self) -> dict:
    # The metrics file holds the history; the checkpoint records how much of it is its
    # own (and the last record), so saves stay O(1) however long the run.
    return {"epoch": self.epoch, "n_history": len(self.history),
            "last_record": self.history[-1] if self.history else None, "best": self.best,
            "t_train": self.t_train, "compile_s": self.compile_s,
            "timed_iters": self.timed_iters, "rollbacks": [self.rollbacks, self.d_rollbacks]}


def train(cfg: Config, splits: data_lib.Splits, mode: str = "sgan", workdir: Optional[str] = None,
          log: Callable[[str], None] = print, fresh: bool = False, keep_selected: bool = False,
          progress: Optional[bool] = None) -> dict:
  """Trains one model (``mode`` "sgan" or "supervised"), evaluating every ``eval_every`` epochs.

  Evaluation always uses the Polyak-averaged discriminator in deterministic mode.
  With a ``workdir``, checkpoints go to ``workdir/checkpoints_<mode>`` after every epoch
  and a run finding compatible checkpoints there resumes from the latest (bitwise
  identical to an uninterrupted run on CPU); ``fresh=True`` moves them aside instead.
  SIGTERM or Ctrl-C saves a checkpoint at the end of the epoch and raises
  :class:`Preempted`; a second Ctrl-C raises it at once.

  Returns ``{"summary", "history", "state", "models"}``; the summary has the final model's
  errors and, with a validation split, the test error of the epoch selected on validation.
  ``keep_selected=True`` adds ``"selected"``: a host copy of the averaged discriminator
  (``{"params", **frozen collections}``) at the selected epoch among the epochs this call
  trained (None when none was selected). ``progress``: the epoch progress bar (default:
  on an interactive terminal).
  """
  check_mode(mode)
  t_start = time.time()
  epochs, iters = cfg.epochs_for(mode), cfg.iters_for(len(splits.x_unl))
  mesh = make_mesh(cfg.num_devices, cfg.batch_size)
  c = step.compiled(cfg, splits.x_unl.shape[1:], splits.num_classes, iters, epochs, mode, mesh)
  watch_d_wins = objectives.make_objective(cfg, mode).watches_d_wins
  write_samples = bool(workdir) and mode == "sgan" and splits.x_unl.ndim == 4
  rep, batch_sharding = NamedSharding(mesh, P()), NamedSharding(mesh, P(None, "data"))
  state = place(initial_state(c.models, cfg.seed, splits.x_unl, mode), rep)
  device_data = place({"x_lab": splits.x_lab, "y_lab": splits.y_lab, "x_unl": splits.x_unl}, rep)
  extra = {"lab_idx": np.asarray(splits.lab_idx, np.int64),
           "val_idx": np.asarray(splits.val_idx, np.int64)}
  metrics, p, ckpt, fingerprint = rundir.MetricsLog(workdir, mode), Progress(), None, None
  if workdir:
    # Hashing the data costs a pass over it; only checkpointed runs need it.
    fingerprint = splits_fingerprint(splits)
    ckpt, meta = resume.open_run(workdir, mode, cfg, fingerprint, fresh, log)
    if meta is not None:
      state, _ = ckpt.restore(meta["epoch"], state, extra, rep)
      p = Progress(meta["epoch"], meta["best"], metrics.history_at(meta, log), meta["t_train"],
                   meta["compile_s"], meta["timed_iters"], *meta.get("rollbacks", [0, 0]))
      log(f"[{mode}] resumed from {ckpt.directory}/{meta['epoch']}: epoch {p.epoch}, "
          f"step {int(state.step)}")
  metrics.rewrite(p.history)

  def save(val_err):
    if ckpt is not None:
      meta = {"mode": mode, "step": int(state.step), "config": cfg.to_dict(),
              "data_fingerprint": fingerprint, **p.meta()}
      # Checkpoint buffers would otherwise stay in glibc heaps (measured on MNIST: +250
      # MB over the first 50 minutes); small thresholds only while saving keep training
      # at full speed (sgan_jax/memory.py). The write finishes inside the block.
      with memory.while_saving(), preempt.saving():
        ckpt.save(p.epoch, state, extra, meta, val_err)
        ckpt.wait()

  def rewind(target: int, salt: int):
    """The state of checkpoint ``target`` with a new key; ``p`` back to its epoch."""
    meta = ckpt.read_meta(target)
    st, _ = ckpt.restore(target, state, extra, rep)
    p.epoch, p.best, p.history = meta["epoch"], meta["best"], metrics.history_at(meta, log)
    metrics.rewrite(p.history)
    return st.replace(key=jax.random.fold_in(st.key, salt))

  tb = rundir.tensorboard(workdir, mode, cfg.tensorboard)
  bar, log = _progress_bar(epochs, p.epoch, mode, log, progress)
  preempt, d_winning, selected = _PreemptFlag(log), False, None
  try:
    while p.epoch < epochs:
      idx = data_lib.epoch_indices(cfg.seed, p.epoch, len(splits.x_lab), len(splits.x_unl),
                                   iters, cfg.batch_size)
      t0 = time.time()
      state, per_step = c.chunk(state, device_data, place(idx, batch_sharding))
      per_step = {k: to_host(v) for k, v in per_step.items()}
      dt = time.time() - t0
      compiled = p.compile_s is None
      if compiled:  # first chunk includes compilation; keep it out of throughput
        p.compile_s = dt
      else:
        p.t_train, p.timed_iters = p.t_train + dt, p.timed_iters + iters
      bad = guards.first_nonfinite(per_step)
      if bad is not None:
        i, name, value = bad
        where = f"step {p.epoch * iters + i + 1} (epoch {p.epoch + 1})"
        # Verified: a corrupt checkpoint is moved aside and the next older one used.
        latest = ckpt.pick(lambda kept: max(kept, default=None), log) if ckpt else None
        if cfg.on_nonfinite == "rollback" and latest is not None and p.rollbacks < guards.MAX_ROLLBACKS:
          p.rollbacks += 1
          state = rewind(latest, guards.NONFINITE_SALT * p.rollbacks)
          log(f"[{mode}] non-finite {name}={value} at {where}: rolled back to epoch {latest} "
              f"with a new key (rollback {p.rollbacks}/{guards.MAX_ROLLBACKS})")
          continue
        raise guards.nonfinite_error(mode, name, value, where,
                                     None if latest is None else f"{ckpt.directory}/{latest}")
      mets = {k: float(np.mean(v)) for k, v in per_step.items()}
      logged = {k: round(v, 5) for k, v in mets.items()}  # as the metric records hold them
      warning = (guards.d_wins_warning(mets, cfg.on_d_wins == "rollback") if watch_d_wins
                 else None)
      if warning and cfg.on_d_wins == "rollback":
        failed = p.epoch + 1
        won = [r["epoch"] for r in p.history if guards.d_wins(r)]
        target = (ckpt.pick(lambda kept: guards.rollback_target(kept, failed, won, p.d_rollbacks),
                            log) if ckpt and p.d_rollbacks < guards.MAX_ROLLBACKS else None)
        if target is not None:
          p.d_rollbacks += 1
          abandoned = p.history
          state = rewind(target, guards.D_WINS_SALT * p.d_rollbacks)
          metrics.abandon(abandoned[len(p.history):] + [
              {"mode": mode, "epoch": failed, "evaluated": False, **logged}], p.d_rollbacks)
          moved = ckpt.discard_after(target)
          bar.reset(total=epochs)
          bar.update(p.epoch)
          log(f"[{mode}] epoch {failed}: the discriminator won (loss_unl={mets['loss_unl']:.4f}): "
              f"rolled back to epoch {target} with a new key (D-wins rollback {p.d_rollbacks}/"
              f"{guards.MAX_ROLLBACKS}); checkpoints {moved} moved to {ckpt.directory}.abandoned")
          d_winning = False
          continue
        if not d_winning:
          warning += guards.no_rollback_reason(p.d_rollbacks, ckpt is not None)
      p.epoch += 1
      bar.update(1)
      if warning and not d_winning:  # once when it starts, again only after a recovery
        log(f"[{mode}] epoch {p.epoch}: warning: {warning}")
      d_winning = warning is not None
      val_err = None
      if p.epoch % cfg.eval_every == 0 or p.epoch == epochs:
        rec = {"mode": mode, "epoch": p.epoch, "step": int(state.step),
               "wall_s": round(time.time() - t_start, 2), "it_per_s": p.timing()["it_per_s"],
               **logged, **evaluation.evaluate(c.predict, state, splits, cfg)}
        val_err = rec["val_err"]
        p.history.append(rec)
        metrics.append(rec)
        if write_samples:  # every process runs the (global) computation; the first saves
          rundir.save_samples(workdir, p.epoch, to_host(c.sample_grid(state.g_params, state.g_state)),
                              cfg.pixel_range)
        if tb is not None:
          tb.scalars(rec["step"], {k: v for k, v in rec.items() if k not in ("mode", "step")})
        if evaluation.is_better(rec, p.best):
          p.best = {"val_err": val_err, "epoch": p.epoch, "test_err": rec["test_err"]}
          if keep_selected:
            selected = jax.device_get(state.classifier_variables())
        speed = rundir.speed_text(iters, dt, epochs - p.epoch, compiled)
        log(rundir.epoch_line(rec, epochs, speed, mets, cfg.task))
      stop = preempt.agreed()
      if p.epoch % cfg.checkpoint_every == 0 or p.epoch == epochs or stop:
        save(val_err)
      if stop:  # every save above has finished writing (save() waits)
        raise Preempted(f"[{mode}] {preempt.what()} received"
                        + (" (by this or another process)" if jax.process_count() > 1 else "")
                        + f": stopped after epoch {p.epoch}, " + (f"checkpoint saved in "
                        f"{ckpt.directory}" if ckpt else "no workdir, nothing saved"),
                        preempt.exit_code())
  except _StopNow:
    last = ckpt.latest_epoch() if ckpt else None
    raise Preempted(f"[{mode}] second Ctrl-C: stopped at once; " + (
        f"the last checkpoint {ckpt.directory}/{last} is kept" if last is not None else
        "no checkpoint was written") + f" ({p.epoch} epoch(s) trained, the rest not saved)",
                    130) from None
  finally:
    bar.close()
    preempt.restore()
    for closable in filter(None, (tb, ckpt)):
      closable.close()
  if ckpt is not None:
    log(f"[{mode}] checkpoints kept: epochs {ckpt.all_epochs()} in {ckpt.directory} "
        f"({rundir.human_bytes(ckpt.disk_bytes())}; keep_checkpoints={ckpt_lib.retention(cfg)} "
        "latest plus the best on validation)")
  summary = {"mode": mode, "epochs": epochs, "steps": int(state.step), "iters_per_epoch": iters,
             **evaluation.summarize(p.history, p.best if len(splits.y_val) else None),
             "wall_s": round(time.time() - t_start, 2), **p.timing()}
  out = {"summary": summary, "history": p.history, "state": state, "models": c.models}
  if keep_selected:
    out["selected"] = selected
  return out


def _progress_bar(epochs: int, epoch: int, mode: str, log, show: Optional[bool] = None):
  """A progress bar over epochs (by default on an interactive terminal); log lines print
  above it."""
  bar = tqdm.tqdm(total=epochs, initial=epoch, desc=mode, unit="epoch", leave=False,
                  disable=not (sys.stderr.isatty() if show is None else show))
  return bar, (tqdm.tqdm.write if not bar.disable and log is print else log)


class _StopNow(BaseException):
  """A second Ctrl-C: leave the loop at once (a BaseException, like KeyboardInterrupt, so
  no ``except Exception`` on the way swallows it)."""


class _PreemptFlag:
  """SIGTERM or a first Ctrl-C sets a flag (main thread only) that the loop reads once per
  epoch; a second Ctrl-C raises :class:`_StopNow`, though never inside a checkpoint write
  (:meth:`saving`), which finishes first."""

  def __init__(self, log: Callable[[str], None] = print):
    self.flag, self._old, self._log = False, {}, log
    self._signals: list[int] = []
    self._in_save = self._stop_after_save = False
    if threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._old[sig] = signal.signal(sig, self._handle)

  def _handle(self, signum: int, frame) -> None:
    again = signum == signal.SIGINT and signal.SIGINT in self._signals
    self._signals.append(signum)
    self.flag = True
    if not again:
      if signum == signal.SIGINT:
        self._log("[Ctrl-C] finishing this epoch and saving a checkpoint; press Ctrl-C again "
                  "to stop at once")
    elif self._in_save:
      self._stop_after_save = True
    else:
      raise _StopNow()

  @contextlib.contextmanager
  def saving(self) -> Iterator[None]:
    """A checkpoint write: a second Ctrl-C waits until it has finished."""
    self._in_save = True
    try:
      yield
    finally:
      self._in_save = False
    if self._stop_after_save:
      raise _StopNow()

  def what(self) -> str:
    """The signal that stopped the run, as the message names it."""
    return "Ctrl-C (SIGINT)" if signal.SIGINT in self._signals else "SIGTERM"

  def exit_code(self) -> int:
    return 130 if signal.SIGINT in self._signals else 75

  def agreed(self) -> bool:
    """Whether to stop after this epoch. Decided on a snapshot: the handler may set the flag
    at any moment, and a signal landing after the processes agreed must wait for the next
    epoch's agreement (measured: otherwise one process stops alone and the others hang)."""
    stop = self.flag
    if jax.process_count() > 1:
      # Processes get the signal at different times; all stop after the same epoch, or
      # one would wait in a collective the others never join.
      stop = bool(np.any(multihost_utils.process_allgather(np.int32(stop))))
    return stop

  def restore(self) -> None:
    for sig, old in self._old.items():
      signal.signal(sig, old)
