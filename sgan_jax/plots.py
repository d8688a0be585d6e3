"""Figures of table runs (matplotlib, drawn off-screen): error against label count, a run's
curves, and each cell's test error by epoch with the published band.
"""

from __future__ import annotations

import os
import textwrap
from typing import Callable, Optional

import numpy as np

from sgan_jax.reports import Table
from sgan_jax.table_text import published_errors
from sgan_jax.rundir import read_jsonl


def _pyplot():
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def plot_error_vs_labels(table: Table, result: dict, path: str) -> None:
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(6, 4.2))
  for mode, name in (("sgan", "SGAN"), ("supervised", "supervised-only")):
    cs = [c for c in result["cells"] if c["mode"] == mode]
    if cs:
      ax.errorbar([c["labels"] for c in cs], [100 * c["test_err_mean"] for c in cs],
                  yerr=[100 * c["test_err_std"] for c in cs], marker="o", capsize=4,
                  label=f"{name} (ours)")
  pub = published_errors(table, result["cells"][0]["num_test"]) if result["cells"] else {}
  if pub:
    ns = sorted(pub)
    ax.errorbar(ns, [pub[n][0] for n in ns], yerr=[pub[n][1] for n in ns], marker="s",
                capsize=4, linestyle="--", color="gray", label="published")
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.set_xticks(list(result["labels"]))
  ax.set_xticklabels([str(n) for n in result["labels"]])
  ax.minorticks_off()
  ax.set_xlabel("labeled examples")
  ax.set_ylabel("test error (%)")
  ax.set_title(textwrap.fill(result["title"], 60), fontsize=9)
  ax.grid(True, which="both", alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot_run_curves(run_dir: str, modes=("sgan", "supervised")) -> Optional[str]:
  """``curves.png`` in a run folder: validation/test error and losses against epoch."""
  recs = {}
  for mode in modes:
    p = os.path.join(run_dir, f"metrics_{mode}.jsonl")
    if os.path.exists(p):
      recs[mode] = read_jsonl(p)
  if not recs:
    return None
  plt = _pyplot()
  fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
  for mode, rs in recs.items():
    ep = [r["epoch"] for r in rs]
    a1.plot(ep, [100 * r["test_err"] for r in rs], label=f"{mode} test")
    if rs and rs[0].get("val_err") is not None:
      a1.plot(ep, [100 * r["val_err"] for r in rs], "--", label=f"{mode} validation")
    for k in sorted({k for r in rs for k in r if k.startswith("loss")}):
      a2.plot(ep, [r.get(k, np.nan) for r in rs], label=f"{mode} {k}")
  a1.set_yscale("log")
  a1.set_xlabel("epoch")
  a1.set_ylabel("error (%), averaged weights")
  a2.set_xlabel("epoch")
  a2.set_ylabel("loss (epoch mean)")
  a2.set_yscale("symlog", linthresh=1e-2)
  for a in (a1, a2):
    a.grid(True, alpha=0.3)
    a.legend(fontsize=7)
  fig.tight_layout()
  path = os.path.join(run_dir, "curves.png")
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def published_band(ax, mean: float, std: float, end: int, label: str) -> None:
  """A published mean ± std drawn on ``ax`` as a band over the last tenth of ``end`` epochs."""
  ax.fill_between([0.9 * end, end], mean - std, mean + std, color="tab:red", alpha=0.4,
                  zorder=3, label=label)


def plot_cell_curves(table: Table, result: dict, run_dir: Callable[[int, int], str],
                     path: str) -> Optional[str]:
  """``test_error_vs_epoch.png``: per cell (label count), each seed's SGAN test error by
  epoch (thin), their mean (bold), and the published mean ± std as a band at the epoch
  the paper reports (its unit: errors or %). ``run_dir(n, seed)``: a run's folder."""
  cells = sorted({r["labels"] for r in result["rows"] if r["mode"] == "sgan"})
  if not cells:
    return None
  num_test = result["cells"][0]["num_test"]
  scale = num_test if table.unit == "errors" else 100.0
  pub = published_errors(table, num_test)
  plt = _pyplot()
  fig, axes = plt.subplots(1, len(cells), figsize=(4.2 * len(cells), 4.4), squeeze=False)
  for ax, n in zip(axes[0], cells):
    seeds = sorted(r["seed"] for r in result["rows"] if r["labels"] == n and r["mode"] == "sgan")
    curves = []
    for s in seeds:
      recs = read_jsonl(os.path.join(run_dir(n, s), "metrics_sgan.jsonl"))
      curves.append({r["epoch"]: scale * r["test_err"] for r in recs})
      ax.plot(list(curves[-1]), list(curves[-1].values()), lw=0.7, alpha=0.6, label=f"seed {s}")
    common = sorted(set.intersection(*(set(c) for c in curves)))
    ax.plot(common, [np.mean([c[e] for c in curves]) for e in common], lw=2.0, color="black",
            label=f"mean of {len(seeds)}")
    if n in pub:
      m, sd = (v * num_test / 100 if table.unit == "errors" else v for v in pub[n])
      end = table.published_epoch or max(common[-1], 1)
      published_band(ax, m, sd, end, f"published {table.published[n]} (epoch {end})")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test errors" if table.unit == "errors" else "test error (%)")
    ax.set_title(f"{n} labels", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    # Below the panel: inside it would hide the published band or a seed's curve.
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2,
              frameon=False)
  # ~55 characters fit above one 4.2-inch panel at this size.
  fig.suptitle(textwrap.fill(result["title"], min(110, 55 * len(cells))), fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100, bbox_inches="tight")
  plt.close(fig)
  return path
