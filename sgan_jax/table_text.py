"""A table's text: "mean ± std" as every report writes it, ``table.md`` (the cells and,
per seed, each run against the published band) and the published numbers as bands.

:mod:`sgan_jax.reports` reads the runs back and calls :func:`markdown`; the figures
(:mod:`sgan_jax.plots`) and the benchmark scripts use the formatter and the bands.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Callable, Sequence

from sgan_jax import evaluation

if TYPE_CHECKING:  # reports imports this module
  from sgan_jax.reports import Table


# How tables name each mode.
MODE_NAMES = {"sgan": "SGAN", "supervised": "supervised-only"}


def _value(err: float, unit: str, num_test: int) -> str:
  """A test error (fraction) as the table shows it: a count of errors or a percentage."""
  return f"{err * num_test:.0f}" if unit == "errors" else f"{100 * err:.2f}"


def mean_std(mean: float, std: float, n: int, fmt: Callable[[float], str] = "{:.2f}".format,
             signed: bool = False) -> str:
  """``"mean ± std"`` over ``n`` runs, each formatted by ``fmt`` (the mean with a sign if
  ``signed``); one run's value alone: it has no spread, and "± 0" would read as a
  measured one."""
  m = ("+" if signed and mean >= 0 else "") + fmt(mean)
  return m if n == 1 else f"{m} ± {fmt(std)}"


def _fmt(c: dict, unit: str, key: str = "test_err") -> str:
  """A cell's mean ± std of ``key`` (:func:`mean_std`)."""
  return mean_std(c[key + "_mean"], c[key + "_std"], c["n_seeds"],
                  lambda v: _value(v, unit, c["num_test"]))


def epochs_text(cells: Sequence[dict]) -> str:
  """The epochs the given cells (:func:`sgan_jax.reports.aggregate`) trained, each mode
  named when they differ: "SGAN 300, supervised-only 10", else "300"."""
  modes = [m for m in MODE_NAMES if any(c["mode"] == m for c in cells)]
  per = {m: "/".join(map(str, sorted({e for c in cells if c["mode"] == m for e in c["epochs"]})))
         for m in modes}
  if len(set(per.values())) == 1:
    return next(iter(per.values()))
  return ", ".join(f"{MODE_NAMES[m]} {e}" for m, e in per.items())


def _validated(rows: Sequence[dict]) -> tuple[bool, bool]:
  """``(any, all)``: whether any and whether all of the rows report a model selected on
  validation (rows without a ``selection`` field predate runs without a split)."""
  final = evaluation.selection_name(False)
  flags = [r.get("selection") != final for r in rows]
  return any(flags), all(flags)


def markdown(table: Table, result: dict) -> str:
  """``table.md``: a row per label count (each mode's mean ± std, the SGAN's last epoch,
  the published cell), then :func:`per_seed_markdown`."""
  cells = result["cells"]
  unit = "test errors (of %d)" % cells[0]["num_test"] if table.unit == "errors" else "test error %"
  some, every = _validated(result["rows"])
  # The last epoch's error (no selection) sits beside the validation-selected one: with a
  # small validation set the selection can pick an early epoch, and the papers report the
  # end of training. Without a validation split the two are the same model.
  last = "sgan" in table.modes and some
  head = "| labels | " + " | ".join(
      f"{MODE_NAMES[m]} (ours)" for m in table.modes)
  if last:
    head += " | SGAN (ours), last epoch"
  chosen = ("model selected on validation" if every else
            "model selected on validation, or the final model of a run without a validation "
            "split" if some else "final model (no validation split)")
  lines = [f"**{result['title']}**: {unit}, mean ± std over seeds {result['seeds']}; "
           f"{chosen}, reported on test"
           + ("; 'last epoch' is the final epoch's test error, unselected." if last else "."),
           "", head + " | published | seeds | epochs |",
           "|---" * (len(table.modes) + 4 + last) + "|"]
  for n in result["labels"]:
    mine = {c["mode"]: c for c in cells if c["labels"] == n}
    if not mine:
      continue
    vals = [(_fmt(mine[m], table.unit) if m in mine else "-") for m in table.modes]
    if last:
      vals.append(_fmt(mine["sgan"], table.unit, "final_test_err") if "sgan" in mine else "-")
    lines.append(f"| {n} | " + " | ".join(vals) + f" | {table.published.get(n, '-')} | "
                 f"{max(c['n_seeds'] for c in mine.values())} | {epochs_text(list(mine.values()))} |")
  lines += ["", f"Published column: {result['source']}.", "", per_seed_markdown(table, result)]
  return "\n".join(lines)


def band_position(err: float, band: tuple[float, float]) -> str:
  """Where a test error (fraction) lies against a published mean ± std (percent):
  "inside", "below" (fewer errors than the band) or "above"."""
  mean, std = band
  if 100 * err < mean - std - 1e-9:
    return "below"
  return "above" if 100 * err > mean + std + 1e-9 else "inside"


def per_seed_markdown(table: Table, result: dict) -> str:
  """Every run of the table: its selected (epoch) and last-epoch test error, where each
  lies against the published mean ± std (:func:`band_position`), seconds an epoch and
  the machine."""
  rows = result["rows"]
  num_test = rows[0]["num_test"]
  band = published_errors(table, num_test)
  def val(e: float) -> str:
    return _value(e, table.unit, num_test)

  name = MODE_NAMES
  modes = [m for m in table.modes if any(r["mode"] == m for r in rows)]
  some, _ = _validated(rows)
  head = ["labels", "seed"]
  for m in modes:
    head.append(f"{name[m]} selected (epoch)" if some else f"{name[m]} final model")
    if m == "sgan":
      head += (["SGAN last epoch", "vs published band (selected / last)"] if some
               else ["vs published band"])
  head += ["s/epoch", "machine"]
  lines = ["**Per seed**: test " + ("errors" if table.unit == "errors" else "error %")
           + "; s/epoch is the median wall time of an epoch, evaluation included, of "
           + ("the SGAN" if "sgan" in modes else f"the {name[modes[0]]}") + " run.", "",
           "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
  for n, s in sorted({(r["labels"], r["seed"]) for r in rows}):
    by = {r["mode"]: r for r in rows if r["labels"] == n and r["seed"] == s}
    cells = [str(n), str(s)]
    for m in modes:
      r = by.get(m)
      ep = f" ({r['best_val_epoch']})" if r and r.get("best_val_epoch") is not None else ""
      cells.append(f"{val(r['test_err'])}{ep}" if r else "-")
      if m == "sgan" and some:
        cells.append(val(r["final_test_err"]) if r else "-")
        cells.append(f"{band_position(r['test_err'], band[n])} / "
                     f"{band_position(r['final_test_err'], band[n])}"
                     if r and n in band else "-")
      elif m == "sgan":
        cells.append(band_position(r["test_err"], band[n]) if r and n in band else "-")
    timed = by.get("sgan") or by[next(m for m in modes if m in by)]
    spe = timed.get("s_per_epoch")
    # The header names the SGAN run's speed; a seed without one says whose it shows.
    whose = f" ({name[timed['mode']]})" if spe and "sgan" in modes and timed["mode"] != "sgan" else ""
    cells += [f"{spe:.1f}{whose}" if spe else "-", timed.get("machine") or "not recorded"]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def published_errors(table: Table, num_test: int) -> dict:
  """``{labels: (mean %, std %)}`` for the published cells written as ``"m ± s"`` (in the
  table's unit); cells in words are left out."""
  out = {}
  for n, text in table.published.items():
    m = re.fullmatch(r"\s*([\d.]+)\s*±\s*([\d.]+)\s*%?\s*", str(text))
    if m:
      scale = 100.0 / num_test if table.unit == "errors" else 1.0
      out[n] = (float(m.group(1)) * scale, float(m.group(2)) * scale)
  return out
