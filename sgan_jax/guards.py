"""Guards on a running training: non-finite losses and a discriminator that wins outright.

Both act on an epoch's per-iteration metrics after the chunk returns. Their policies
(``on_nonfinite``, ``on_d_wins``: stop/warn or roll back to a checkpoint with a new key)
are decided here; the loop only carries them out.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from sgan_jax.errors import SganError

# An epoch-mean unlabeled D loss under this: D tells real from generated almost perfectly.
# Healthy MNIST runs stay near 0.1-0.45; runs whose GAN failed sat at 1e-5-0.015 for many
# epochs (4 of 43 MNIST feature-matching runs, results/d_wins).
D_WINS_LOSS = 0.02
# How far back a D-wins rollback goes. Measured on the MNIST run that failed at epoch 11
# (results/d_wins): continuing from epoch 10 with new keys failed again within one epoch,
# from epochs 9 and 8 it recovered; the last checkpoint is already on the way down. A
# 20-label run failed again twice from 2 epochs back, so each further rollback of a run
# goes one epoch further.
D_WINS_ROLLBACK_EPOCHS = 2
MAX_ROLLBACKS = 3
# Key salts of the two kinds of rollback: the n-th rollback folds ``salt * n`` into the key.
NONFINITE_SALT, D_WINS_SALT = 7919, 104729


def first_nonfinite(per_step: dict) -> Optional[tuple]:
  """``(index, name, value)`` of the first non-finite per-step metric, or None."""
  first = None
  for name, values in per_step.items():
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size and (first is None or bad[0] < first[0]):
      first = (int(bad[0]), name, float(values[bad[0]]))
  return first


def nonfinite_error(mode: str, name: str, value: float, where: str,
                    kept: Optional[str]) -> SganError:
  """The stop message for a non-finite metric; ``kept``: the checkpoint left, if any."""
  kept = (f"the last good checkpoint {kept} is kept" if kept is not None
          else "no checkpoint was written (pass a workdir to keep one)")
  return SganError(f"[{mode}] non-finite {name}={value} at {where}; stopped, {kept}. Lower "
                   "lr, check the data for extreme values, or set on_nonfinite=rollback.")


def d_wins(mets: dict) -> bool:
  """Whether an epoch's mean metrics (or its record) show D winning the GAN game outright.

  Args: ``mets`` with ``loss_unl``, D's unsupervised GAN loss (absent: False).
  """
  unl = mets.get("loss_unl")
  return unl is not None and unl < D_WINS_LOSS


def d_wins_warning(mets: dict, rollback: bool = False) -> Optional[str]:
  """A warning when the discriminator wins the GAN game outright (:func:`d_wins`), else None.
  ``rollback``: the run already has on_d_wins=rollback, so the warning does not advise it
  (the caller appends why it could not roll back, :func:`no_rollback_reason`)."""
  if not d_wins(mets):
    return None
  advice = ("try another seed if it stays there" if rollback else
            "set on_d_wins=rollback (with a workdir) to restart from an earlier checkpoint "
            "with a new key, or try another seed")
  return (f"the discriminator tells real from generated almost perfectly "
          f"(loss_unl={mets['loss_unl']:.4f}; healthy runs stay near 0.1-0.45), so the generator "
          f"has stopped teaching it. Runs like this have stayed stuck for many epochs: {advice}.")


def rollback_target(kept: Sequence[int], failed_epoch: int, d_won: Sequence[int] = (),
                    previous: int = 0) -> Optional[int]:
  """The newest kept checkpoint ``D_WINS_ROLLBACK_EPOCHS + previous`` or more epochs back.

  Args: ``kept``, the epochs with a checkpoint; ``failed_epoch``, the (1-based) epoch whose
  mean losses showed D winning; ``d_won``, earlier epochs that showed it too (never
  targets); ``previous``, the run's D-wins rollbacks so far. None when none qualifies.
  """
  back = D_WINS_ROLLBACK_EPOCHS + previous
  old = [e for e in kept if e <= failed_epoch - back and e not in d_won]
  return max(old) if old else None


def no_rollback_reason(d_rollbacks: int, has_checkpoints: bool) -> str:
  """Why a D-wins rollback cannot happen (appended to the warning)."""
  why = ("no rollbacks left" if d_rollbacks >= MAX_ROLLBACKS else
         f"no kept checkpoint is {D_WINS_ROLLBACK_EPOCHS + d_rollbacks}+ epochs old and healthy"
         if has_checkpoints else "no workdir, so no checkpoints")
  return f" (on_d_wins=rollback: cannot roll back, {why})"
