"""Tables from finished or running table runs: read back, merge, write.

:func:`report_at_budget` reads a table's runs as they stood at a common epoch budget,
:func:`merge_results` joins cells reported in different folders, :func:`write_outputs`
writes ``results.json``/``.csv``, ``table.md`` and the figures (:mod:`sgan_jax.plots`).
Selection is :mod:`sgan_jax.evaluation`'s rule.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from typing import Callable, Optional, Sequence

import numpy as np

from sgan_jax import evaluation, machine, table_text
from sgan_jax.config import Config, from_stored
from sgan_jax.errors import SganError
from sgan_jax.rundir import read_jsonl


@dataclasses.dataclass(frozen=True)
class Table:
  name: str
  title: str
  labels: tuple[int, ...]          # total labeled examples per cell (balanced over classes)
  published: dict                  # label count -> published text, e.g. "93 ± 6.5 errors"
  source: str                      # the paper and table the published column comes from
  modes: tuple[str, ...] = ("sgan", "supervised")
  unit: str = "%"                  # "%" or "errors" (count on the test set, as in the paper)
  published_epoch: Optional[int] = None  # the epoch the published numbers are at (plots)


def train_seconds_to(records: Sequence[dict], budget: int) -> float:
  """Training time to epoch ``budget``: its step count over the run's steady-state speed.

  ``wall_s`` restarts with each resumed process, so it cannot be used across resumes. A
  record with no measured speed (the first chunk of a process, whose time includes
  compilation) falls back to its ``wall_s``: that process ran from its start to this
  evaluation, compilation included; NaN if neither is recorded."""
  at = next(r for r in records if r["epoch"] == budget)
  if at.get("it_per_s"):
    return at["step"] / at["it_per_s"]
  return float(at["wall_s"]) if at.get("wall_s") is not None else float("nan")


def selected_within(records: Sequence[dict], budget: int) -> Optional[dict]:
  """The record training would have selected had it stopped after ``budget`` epochs.

  The training loop's rule (:func:`sgan_jax.evaluation.select_best`). Exact for a shorter budget only when nothing in the run depends on its length
  (a constant learning rate: ``lr_decay_epochs=0``), which the caller must check.
  Returns ``None`` when the run has no evaluation at epoch ``budget`` (not reached, or
  ``eval_every`` skips it: a run stopped there would have evaluated it).
  """
  within = [r for r in records if r["epoch"] <= budget and r.get("val_err") is not None]
  if not within or within[-1]["epoch"] != budget:
    return None
  return evaluation.select_best(within)


def reported_within(records: Sequence[dict], budget: int, validated: bool) -> Optional[dict]:
  """The record a run reports at epoch ``budget``: with a validation split the one
  selected within those epochs (:func:`selected_within`), without one (``val_size=0``, the
  papers' protocol) epoch ``budget`` itself, as the training loop reports its final model.
  None when that record is missing."""
  if validated:
    return selected_within(records, budget)
  return next((r for r in records if r["epoch"] == budget), None)


def has_validation(run_dir: str, cfg: Config) -> bool:
  """Whether the run in ``run_dir``, of config ``cfg``, trained with a validation split:
  its recorded ``num_val``, or for a run that recorded none its config's ``val_size``."""
  num_val = _recorded(run_dir, "num_val")
  return bool(cfg.val_size) if num_val is None else num_val > 0


def seconds_per_epoch(records: Sequence[dict]) -> Optional[float]:
  """Median wall seconds an epoch took, evaluation included (what a user waits).

  Taken between consecutive records of one process: ``wall_s`` counts from the start of
  its process, so it falls where a resumed process begins and that step is skipped (a
  process stopped after a single record may leave one outlier). The first epoch's
  compilation is in no difference. The median ignores the epochs slowed by other work on
  the machine. None with no such pair."""
  per = [(b["wall_s"] - a["wall_s"]) / (b["epoch"] - a["epoch"])
         for a, b in zip(records, records[1:])
         if a.get("wall_s") is not None and b.get("wall_s") is not None
         and b["epoch"] > a["epoch"] and b["wall_s"] > a["wall_s"]]
  return float(np.median(per)) if per else None


def _recorded(run_dir: str, key: str):
  """A value a run recorded: ``data.json`` (written at each start) or, for runs from
  before that file, ``summary.json`` (written when it finishes); None if neither."""
  for name in ("data.json", "summary.json"):
    path = os.path.join(run_dir, name)
    if os.path.exists(path):
      with open(path) as f:
        v = json.load(f).get(key)
      if v is not None:
        return v
  return None


def run_speed(run_dir: str, mode: str, budget: Optional[int] = None) -> dict:
  """A row's ``s_per_epoch`` (:func:`seconds_per_epoch`, to epoch ``budget``) and
  ``machine`` (the one the run last started on, :func:`sgan_jax.machine.short`).

  ``data.json`` keeps only the latest start's machine, so a run resumed on another kind
  of CPU reports the median over both under the latest one's name."""
  recs = read_jsonl(os.path.join(run_dir, f"metrics_{mode}.jsonl"), missing_ok=True)
  if budget is not None:
    recs = [r for r in recs if r["epoch"] <= budget]
  return {"s_per_epoch": seconds_per_epoch(recs),
          "machine": machine.short(_recorded(run_dir, "machine"))}


def _num_test(run_dir: str) -> Optional[int]:
  n = _recorded(run_dir, "num_test")
  return None if n is None else int(n)


def _check_one_test_set(rows: Sequence[dict]) -> None:
  unknown = sorted({(r["labels"], r["seed"]) for r in rows if r["num_test"] is None})
  if unknown:
    raise SganError(f"The runs for (labels, seed) {unknown} record no test-set size (neither "
                    "data.json nor summary.json); rerun their table command once to resume "
                    "them, which writes data.json.")
  if len({r["num_test"] for r in rows}) > 1:
    raise SganError("The cells were tested on test sets of different sizes "
                    f"({sorted({r['num_test'] for r in rows})}); they do not belong in one table.")


def run_rows_at(table: Table, wd: str, n: int, seed: int,
                budget: int) -> tuple[list[dict], list[str]]:
  """One run's table rows as they stood at epoch ``budget`` (:func:`report_at_budget`), and
  for each mode without a row the reason (trained fewer epochs, not finished, or no
  evaluation at that epoch).

  Each mode reports :func:`reported_within` ``budget`` epochs. Raises SganError for
  a run that decays its learning rate (a shorter budget is not a prefix of it) and OSError
  when ``wd`` holds no ``config.json``.
  """
  with open(os.path.join(wd, "config.json")) as f:
    cfg = from_stored(json.load(f))
  if cfg.lr_decay_epochs:
    raise SganError(f"{wd} decays its learning rate (lr_decay_epochs={cfg.lr_decay_epochs}); "
                    "a shorter budget is not a prefix of that run. Report its own budget.")
  num_test = _num_test(wd)
  validated = has_validation(wd, cfg)
  rows, missing = [], []
  for mode in table.modes:
    b = cfg.epochs_at(mode, budget)
    recs = read_jsonl(os.path.join(wd, f"metrics_{mode}.jsonl"), missing_ok=True)
    at = next((r for r in recs if r["epoch"] == b), None)
    sel = reported_within(recs, b, validated)
    if sel is None:
      missing.append(f"{wd} ({mode}): " + _why_no_row(cfg, mode, recs, b, validated))
      continue
    train_s = train_seconds_to(recs, b)
    rows.append({"table": table.name, "labels": n, "seed": seed, "mode": mode,
                 "test_err": sel["test_err"], "final_test_err": at["test_err"],
                 "best_val_err": sel["val_err"] if validated else None,
                 "best_val_epoch": sel["epoch"] if validated else None,
                 "epochs": b, "train_s": train_s, "wall_s": train_s,
                 **run_speed(wd, mode, b),
                 "num_test": num_test, "selection": evaluation.selection_name(validated)})
  return rows, missing


def _why_no_row(cfg, mode: str, recs: Sequence[dict], b: int, validated: bool) -> str:
  """Why a run has no row at epoch ``b``: its config trains fewer epochs, it has not got
  there yet, or it skipped the evaluation there (``eval_every``)."""
  reached = recs[-1]["epoch"] if recs else 0
  own = cfg.epochs_for(mode)
  if own < b and reached >= own:
    return (f"trained for {own} epochs (its config's epochs), fewer than the {b}-epoch "
            f"budget; read it at a budget of at most {own}")
  if own < b:
    return (f"its config trains {own} epochs, fewer than the {b}-epoch budget (reached epoch "
            f"{reached}); read it at a budget of at most {own}")
  if reached < b:
    return f"not finished, reached epoch {reached} of {b}"
  what = "validation evaluation" if validated else "evaluation"
  return f"no {what} at epoch {b} (reached epoch {reached}, evaluating every {cfg.eval_every})"


def report_at_budget(table: Table, root: str, seeds: Sequence[int], budget: int,
                     labels: Optional[Sequence[int]] = None, log: Callable[[str], None] = print,
                     out: Optional[str] = None) -> dict:
  """The table as it stood at a common epoch ``budget``, from runs of any length >= it.

  Reads every ``labels_<n>/seed_<s>`` run's metrics (nothing is trained or written into
  the runs) and takes the record training would have selected after ``budget`` epochs
  (:func:`selected_within`); a mode that trains fewer epochs than ``budget`` (a shorter
  supervised-only baseline, ``baseline_epochs``) is read at its own last epoch, as the
  table run reports it (:meth:`Config.epochs_at`). Runs that decay their learning rate are
  refused (a shorter budget is not a prefix of them); runs that have not reached the budget
  are skipped and named in the log. Writes the table files into ``out`` (default
  ``<root>/budget_<N>``).
  """
  labels = tuple(labels or table.labels)
  rows = []
  for n in labels:
    for s in seeds:
      wd = os.path.join(root, f"labels_{n}", f"seed_{s}")
      if not os.path.exists(os.path.join(wd, "config.json")):
        log(f"[skip] {wd}: no run folder")
        continue
      got, missing = run_rows_at(table, wd, n, s, budget)
      rows += got
      for why in missing:
        log(f"[skip] {why}")
  if not rows:
    raise SganError(f"No run in {root} reached epoch {budget} with an evaluation there.")
  _check_one_test_set(rows)
  result = {"table": table.name, "title": table.title + f" (at a {budget}-epoch budget)",
            "source": table.source, "seeds": list(seeds), "labels": list(labels),
            "budget": budget, "rows": rows, "cells": aggregate(rows)}
  write_outputs(table, result, out or os.path.join(root, f"budget_{budget}"))
  return result


def merge_results(table: Table, parts: Sequence[tuple[int, str]], out: str) -> dict:
  """One table from cells reported in different places, e.g. each at its largest budget.

  ``parts`` pairs a label count with a folder holding a ``results.json`` this table
  wrote (a :func:`run_table` root or a ``budget_<N>`` report); the cell's rows are taken
  from it unchanged, so each row keeps its own epoch budget (the ``epochs`` column names
  them all). A label count may come from several folders (e.g. its SGAN runs from one and
  its supervised-only column from another) as long as no (mode, seed) row comes twice.
  Writes the table files into ``out``, which may hold an earlier merge but not a source
  or any other table.
  """
  prev = os.path.join(out, "results.json")
  if any(os.path.realpath(src) == os.path.realpath(out) for _, src in parts):
    raise SganError(f"{out} is one of the sources; write the merged table to a new folder.")
  if os.path.exists(prev):
    try:
      with open(prev) as f:
        merged_before = "sources" in json.load(f)
    except ValueError:
      merged_before = False
    if not merged_before:
      raise SganError(f"{out} already holds a table that is not a merge ({prev}); write the "
                      "merged table to a new folder.")
  rows, sources, origin = [], {}, {}
  for n, src in parts:
    path = os.path.join(src, "results.json")
    try:
      with open(path) as f:
        res = json.load(f)
    except (OSError, ValueError) as e:
      raise SganError(f"Cannot read {path} ({e}); point at a folder a table run or "
                      "--report_budget wrote.") from None
    if res.get("table") != table.name:
      raise SganError(f"{path} is table {res.get('table')!r}, not {table.name!r}.")
    cell = [r for r in res["rows"] if r["labels"] == n]
    if not cell:
      raise SganError(f"{path} has no {n}-label cell; it has {sorted({r['labels'] for r in res['rows']})}.")
    for r in cell:
      key = (n, r["mode"], r["seed"])
      if key in origin:
        raise SganError(f"{n} labels, {r['mode']}, seed {r['seed']} is given twice ({origin[key]} "
                        f"and {src}); give each run once.")
      origin[key] = src
    rows += cell
    sources.setdefault(n, []).append(src)
  _check_one_test_set(rows)
  for r in rows:  # reports written before rows carried their speed: read it from the run
    wd = os.path.join(origin[(r["labels"], r["mode"], r["seed"])], f"labels_{r['labels']}",
                      f"seed_{r['seed']}")
    if "s_per_epoch" not in r and os.path.isdir(wd):
      r.update(run_speed(wd, r["mode"], r["epochs"]))
  labels = sorted(sources)
  cells = aggregate(rows)
  per_cell = {n: table_text.epochs_text([c for c in cells if c["labels"] == n]) for n in labels}
  budgets = (f"epochs: {per_cell[labels[0]]}" if len(set(per_cell.values())) == 1 else
             "epochs per cell: " + "; ".join(f"{n} labels: {t}" for n, t in per_cell.items()))
  result = {"table": table.name, "title": table.title + f" ({budgets})",
            "source": table.source, "seeds": sorted({r["seed"] for r in rows}), "labels": labels,
            "sources": {str(n): sources[n][0] if len(sources[n]) == 1 else sources[n]
                        for n in labels},
            "rows": rows, "cells": cells}
  # The per-cell curves are the SGAN runs' (plots.plot_cell_curves).
  write_outputs(table, result, out, lambda n, s: os.path.join(
      origin.get((n, "sgan", s), sources[n][0]), f"labels_{n}", f"seed_{s}"))
  return result


def aggregate(rows: list[dict]) -> list[dict]:
  """Mean/std per (labels, mode) of the selected and of the last-epoch test error."""
  out = []
  for n in sorted({r["labels"] for r in rows}):
    for mode in sorted({r["mode"] for r in rows}):
      sel = [r for r in rows if r["labels"] == n and r["mode"] == mode]
      if sel:
        errs = [r["test_err"] for r in sel]
        last = [r["final_test_err"] for r in sel]
        out.append({"labels": n, "mode": mode, "n_seeds": len(errs),
                    "test_err_mean": float(np.mean(errs)), "test_err_std": float(np.std(errs)),
                    "test_errs": errs,
                    "final_test_err_mean": float(np.mean(last)),
                    "final_test_err_std": float(np.std(last)),
                    "epochs": sorted({r["epochs"] for r in sel}),
                    "num_test": sel[0]["num_test"],
                    "train_s_total": float(sum(r["train_s"] for r in sel))})
  return out


def write_outputs(table: Table, result: dict, root: str,
                  run_dir: Optional[Callable[[int, int], str]] = None) -> None:
  """The table files in ``root``; with ``run_dir(n, seed)`` (the runs' folders) also the
  per-cell curves (:func:`sgan_jax.plots.plot_cell_curves`)."""
  os.makedirs(root, exist_ok=True)
  with open(os.path.join(root, "results.json"), "w") as f:
    json.dump(result, f, indent=1)
  with open(os.path.join(root, "results.csv"), "w", newline="") as f:
    # Rows merged from older reports may lack the newer fields (machine, s_per_epoch).
    w = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in result["rows"] for k in r)))
    w.writeheader()
    w.writerows(result["rows"])
  with open(os.path.join(root, "table.md"), "w") as f:
    f.write(table_text.markdown(table, result))
  try:  # the figures need matplotlib, which is optional
    from sgan_jax import plots
    plots.plot_error_vs_labels(table, result, os.path.join(root, "error_vs_labels.png"))
    if run_dir is not None:
      plots.plot_cell_curves(table, result, run_dir, os.path.join(root, "test_error_vs_epoch.png"))
  except ImportError:
    pass
