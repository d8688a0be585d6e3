"""Evaluation: predictions, error rates, and the one model-selection rule.

Every reported number comes from here: the error of discriminator outputs against labels
(:func:`errors_from_outputs`), a run's evaluation record (:func:`evaluate`), and the rule
that picks the reported epoch -- the first epoch with the lowest validation error
(:func:`selection_key`), which the training loop, the seed runner, the tables and the
checkpoint retention ("keep the best") all use.
"""

from __future__ import annotations

from typing import Optional, Sequence

import flax.serialization
import jax
import numpy as np

from sgan_jax.config import Config
from sgan_jax.errors import SganError
from sgan_jax.sharding import to_host


def predict_all(predict, params, frozen, x: np.ndarray, batch: int = 1000) -> np.ndarray:
  """Logits for all of ``x`` in fixed-size (padded) batches: ``(N, outputs)``."""
  out = []
  for s in range(0, len(x), batch):
    xb = x[s:s + batch]
    n = len(xb)
    if n < batch and len(x) > batch:  # pad to one compiled shape
      xb = np.concatenate([xb, np.zeros((batch - n, *xb.shape[1:]), xb.dtype)])
    out.append(np.asarray(predict(params, frozen, xb))[:n])
  return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def errors_from_outputs(outputs: np.ndarray, y: np.ndarray, cfg: Config) -> np.ndarray:
  """Error per leading index of discriminator outputs ``(..., N, out)`` against ``y (N,)``
  (or ``(..., N)`` labels, one row per leading index).

  Classification: error rate of the argmax over the K class logits (for ``"k+1"`` the
  fake column is dropped; subtracting it would not change the argmax). Regression: RMSE
  of output 0. Returns shape ``outputs.shape[:-2]`` (a scalar array for one model).
  """
  outputs = np.asarray(outputs)
  if cfg.task == "regression":
    return np.sqrt(np.mean(np.square(outputs[..., 0] - y), axis=-1))
  return np.mean(predicted_classes(outputs, cfg) != y, axis=-1)


def predicted_classes(outputs: np.ndarray, cfg: Config) -> np.ndarray:
  """The class a classifier's outputs ``(..., N, out)`` predict: ``(..., N)``, the argmax
  over the K class logits (for ``"k+1"`` the fake column is dropped)."""
  outputs = np.asarray(outputs)
  k = outputs.shape[-1] - (cfg.parameterization == "k+1")
  return np.argmax(outputs[..., :k], axis=-1)


def eval_error(predict, params, frozen, x: np.ndarray, y: np.ndarray, cfg: Config) -> Optional[float]:
  """Classification: error rate. Regression: RMSE of the regression head (in y's units)."""
  if len(x) == 0:
    return None
  return float(errors_from_outputs(predict_all(predict, params, frozen, x), y, cfg))


def evaluate(predict, state, splits, cfg: Config) -> dict:
  """``{"val_err", "test_err", "test_err_live"}`` of a state: the Polyak-averaged weights
  on validation (None without a split) and test, and the live weights' test error (a
  diagnostic, never selected on)."""
  err = lambda params, x, y: eval_error(predict, params, state.d_frozen, x, y, cfg)
  return {"val_err": err(state.d_avg, splits.x_val, splits.y_val),
          "test_err": err(state.d_avg, splits.x_test, splits.y_test),
          "test_err_live": err(state.d_params, splits.x_test, splits.y_test)}


def selection_key(val_err: float, epoch: int) -> tuple:
  """Model selection: the lowest validation error, ties to the earliest epoch (smaller
  keys are better)."""
  return (val_err, epoch)


def is_better(record: dict, best: Optional[dict]) -> bool:
  """Whether an evaluation ``record`` (``val_err``, ``epoch``) replaces ``best``."""
  if record.get("val_err") is None:
    return False
  return best is None or best.get("val_err") is None or (
      selection_key(record["val_err"], record["epoch"])
      < selection_key(best["val_err"], best["epoch"]))


def select_best(records: Sequence[dict]) -> Optional[dict]:
  """The selected record of a history: :func:`selection_key`'s minimum over the records
  with a validation error; None if there is none."""
  scored = [r for r in records if r.get("val_err") is not None]
  return min(scored, key=lambda r: selection_key(r["val_err"], r["epoch"])) if scored else None


def summarize(history: Sequence[dict], best: Optional[dict]) -> dict:
  """The final model's errors and, when a validation split selected one, the selected
  epoch's (``best``: the loop's running :func:`is_better` choice, ``val_err``, ``epoch``,
  ``test_err``)."""
  final = history[-1]
  out = {"final_test_err": final["test_err"], "final_val_err": final["val_err"]}
  if best is not None and best.get("val_err") is not None:
    out.update(best_val_err=best["val_err"], best_val_epoch=best["epoch"],
               selected_test_err=best["test_err"])
  return out


def selection_name(validated: bool) -> str:
  """How a run's reported model is chosen, as its summary and table rows name it."""
  return "best validation epoch" if validated else "final model (no validation split)"


def headline_err(summary: dict) -> float:
  """The reported test error of one mode's summary: validation-selected when available."""
  return summary["selected_test_err"] if "selected_test_err" in summary else summary["final_test_err"]


def classifier_bytes(state) -> bytes:
  """The averaged discriminator (``params`` + frozen collections) as flax msgpack."""
  return flax.serialization.to_bytes(jax.tree.map(to_host, state.classifier_variables()))


def classifier_from_bytes(m, example_shape: tuple, blob: bytes, source: str) -> dict:
  """The inverse of :func:`classifier_bytes` for models ``m`` (``state.build_models``) on
  examples of ``example_shape`` (no batch axis): ``{"params": ..., <frozen>: ...}``.
  ``source`` names the file in the error raised when the bytes do not fit the models."""
  target = m.disc.init({"params": jax.random.key(0), "noise": jax.random.key(0)},
                       np.zeros((1, *example_shape), np.float32), train=False)
  try:
    return flax.serialization.from_bytes(target, blob)
  except Exception as e:
    raise SganError(f"{source} is damaged or does not match its config "
                    f"({type(e).__name__}: {e}).") from e
