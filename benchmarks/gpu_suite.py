"""One-command accelerator suite: step throughput, vmapped seeds, the MNIST-100 protocol.

  PYTHONPATH=. python3 benchmarks/gpu_suite.py --mnist data_local/mnist.npz --out $OUT
  PYTHONPATH=. python3 benchmarks/gpu_suite.py --tiny --out /tmp/suite   # CPU, < 1 minute

Parts, in this order (``--parts`` picks some); each writes its rows as soon as they are
done, so a run stopped from outside keeps what finished:

1. ``steps``: ``bench_steps``'s measurement (compile timed apart, median steps/s over
   interleaved rounds, FLOPs per iteration from XLA's cost analysis) of the MLP pair and
   the 32x32 conv pair at each label rate, batch 100 and ``--large_batch``, float32 and
   bfloat16 compute, against a bfloat16 and a float32 matmul peak measured in the same
   run; first the MNIST pair with an epoch per dispatch (the on-device loop) beside a
   step per dispatch.
2. ``seeds``: ``bench_seeds``'s measurement: ``--replicas`` replicas of the MNIST-100 config
   vmapped in one program vs one after another, an epoch per dispatch.
3. ``paper``: the MNIST-100 feature-matching protocol (``mnist_fm_table``: 100 labels,
   1,000 validation images, 300 epochs), ``--replicas`` seeds vmapped by
   ``sgan_jax.seeds``: test errors at the last epoch and validation-selected, per seed and
   mean ± std, wall time, and the time to 2% mean test error.

``--budget_s`` bounds the whole run: a step group (most important first) is started only if
it is foreseen to end within the first fifth of it, the seeds part only before 30% of it has
passed, and the protocol runs as many of its epochs as the measured epoch time leaves room
for, saying so in its row.
Output under ``--out``: ``gpu_steps.jsonl``, ``gpu_seeds.jsonl``, ``gpu_paper.jsonl`` (a row
per seed and a summary row), ``gpu_paper_history.jsonl`` (per epoch), ``gpu_summary.md``
and ``gpu_log.txt``. Every row names the device, driver/CUDA versions where readable, the
JAX version and the compute dtype.
"""

import time

STARTED = time.perf_counter()  # --budget_s counts from here, the imports included

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from typing import Callable, Optional  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_seeds  # noqa: E402
import bench_steps  # noqa: E402
from sgan_jax import data as data_lib  # noqa: E402
from sgan_jax import experiment  # noqa: E402
from sgan_jax import seeds as seeds_lib  # noqa: E402
from sgan_jax import table_text, tables  # noqa: E402
from sgan_jax.configs import load_table  # noqa: E402
from sgan_jax.config import Config  # noqa: E402
from sgan_jax.errors import SganError  # noqa: E402
from sgan_jax.machine import host_cpu  # noqa: E402
from sgan_jax.rundir import append_jsonl  # noqa: E402

PARTS = ("steps", "seeds", "paper")
# Shares of --budget_s after which no new step group / seeds measurement is started.
STEPS_SHARE, SEEDS_SHARE = 0.2, 0.3
# The protocol's epoch costs more than part 2's chunk alone (evaluation, host checks).
EPOCH_MARGIN = 1.2
TARGET_ERR = 0.02
LABELS = 100
# Tiny model sizes: the same programs, compiled and run in seconds on a CPU.
TINY_FIELDS = {"mlp": dict(d_hidden=(32, 16), g_hidden=(32,), latent_dim=8),
               "conv": dict(d_width=8, g_width=8, latent_dim=8)}


# --------------------------------------------------------------------------- device
def _nvidia_smi() -> dict:
  """Driver and CUDA versions from ``nvidia-smi``; empty where it is absent or fails."""
  out = {}
  try:
    q = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,name", "--format=csv,noheader"],
                       capture_output=True, text=True, timeout=20)
    if q.returncode == 0 and q.stdout.strip():
      driver, _, name = q.stdout.splitlines()[0].partition(",")
      out.update(driver_version=driver.strip(), gpu_name=name.strip())
    h = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=20)
    m = re.search(r"CUDA Version:\s*([\d.]+)", h.stdout)
    if m:
      out["cuda_driver_api"] = m.group(1)
  except (OSError, subprocess.SubprocessError):
    pass
  return out


def device_info() -> dict:
  """What every row records: device kind, driver/CUDA versions where readable, JAX."""
  import jaxlib
  d = jax.devices()[0]
  info = {"platform": d.platform, "device_kind": d.device_kind, "devices": jax.device_count(),
          "jax": jax.__version__, "jaxlib": jaxlib.__version__,
          "matmul_precision": str(jax.config.jax_default_matmul_precision or "default"),
          "cpu": host_cpu()}
  for attr, key in (("compute_capability", "compute_capability"),):
    if getattr(d, attr, None) is not None:
      info[key] = str(getattr(d, attr))
  try:
    info["platform_version"] = str(d.client.platform_version)
  except Exception:  # backends differ in what they expose; this field is optional
    pass
  if d.platform == "gpu":
    info.update(_nvidia_smi())
  return info


# --------------------------------------------------------------------------- output
class Writer:
  """Rows per part as JSON lines, the markdown summary and a log, rewritten as they grow."""

  def __init__(self, out: str, info: dict):
    os.makedirs(out, exist_ok=True)
    self.out, self.info, self.rows, self.t0 = out, info, {p: [] for p in PARTS}, time.perf_counter()
    self.history, self.notes = [], []
    open(self.path("gpu_log.txt"), "w").close()

  def path(self, name: str) -> str:
    return os.path.join(self.out, name)

  def log(self, msg: str) -> None:
    line = f"[{time.perf_counter() - self.t0:7.1f}s] {msg}"
    print(line, flush=True)
    with open(self.path("gpu_log.txt"), "a") as f:
      f.write(line + "\n")

  def _write(self, name: str, text: str) -> None:
    tmp = self.path(name + ".tmp")
    with open(tmp, "w") as f:
      f.write(text)
    os.replace(tmp, self.path(name))

  def progress(self, row: dict) -> None:
    """Appends a row to the protocol's history while it runs (rewritten when it ends)."""
    append_jsonl(self.path("gpu_paper_history.jsonl"), [row])

  def put(self, part: str, rows: list, history: Optional[list] = None) -> None:
    """Replaces ``part``'s rows (each gets the device fields) and rewrites the files."""
    self.rows[part] = [{"part": part, **self.info, **r} for r in rows]
    self._write(f"gpu_{part}.jsonl", "".join(json.dumps(r) + "\n" for r in self.rows[part]))
    if history is not None:
      self.history = history
      self._write("gpu_paper_history.jsonl", "".join(json.dumps(r) + "\n" for r in history))
    self._write("gpu_summary.md", summary_markdown(self.info, self.rows, self.notes))


# --------------------------------------------------------------------------- part 1
def step_groups(tiny: bool, rates: list, large_batch: int, platform: str, reps: int,
                rounds: int) -> list:
  """``(title, configs, rounds)`` per timed group, most important first (the budget drops
  the tail): the MNIST pair's on-device loop, then each model x batch x dtype over rates.
  ``reps`` chunks are timed per configuration in each of ``rounds`` interleaved rounds."""
  batch, n_unl = (8, 504) if tiny else (100, 10000)
  fields = lambda model: TINY_FIELDS[model] if tiny else None
  # An MNIST epoch: 60,000 images, 100 of them labeled (10 per class of 6,000).
  epoch_unl = 504 if tiny else 60000  # tiny: the 500-image init batch of parts 2 and 3
  loop = [dict(model="mlp", label_rate=1 / 600, batch=batch, iters=epoch_unl // batch, reps=reps,
               dtype=dt, n_unl=epoch_unl, overrides=fields("mlp"))
          for dt in (("float32",) if tiny else ("float32", "bfloat16"))]
  loop.append(dict(model="mlp", label_rate=1 / 600, batch=batch, iters=1, reps=(20 if tiny else 100) * reps,
                   dtype="float32", n_unl=epoch_unl, overrides=fields("mlp")))
  groups = [("mlp, an epoch per dispatch vs a step per dispatch", loop, rounds)]
  order = [("conv", batch, "bfloat16"), ("mlp", batch, "float32"), ("mlp", batch, "bfloat16"),
           ("conv", batch, "float32"), ("conv", large_batch, "bfloat16"),
           ("conv", large_batch, "float32"), ("mlp", large_batch, "float32"),
           ("mlp", large_batch, "bfloat16")]
  if tiny:  # the loop's and one bfloat16 group: a conv pair takes minutes to compile on a CPU
    order = order[-1:]
  for model, b, dt in order:
    iters = 2 if tiny else 100
    if model == "conv" and platform == "cpu" and not tiny:
      iters //= 10  # a conv iteration costs ~100x an MLP one on CPU
    iters = max(2, iters * batch // b)  # a chunk of about the same number of examples
    groups.append((f"{model}, batch {b}, {dt}",
                   [dict(model=model, label_rate=r, batch=b, iters=iters, reps=reps, dtype=dt,
                         n_unl=max(n_unl, 2 * b), overrides=fields(model)) for r in rates], rounds))
  return groups


def part_steps(a, w: Writer, deadline: float) -> None:
  peak_n = a.peak_n or (128 if a.tiny else 8192 if w.info["platform"] == "gpu" else 1024)
  dtypes = {"bfloat16": jnp.bfloat16, "float32": jnp.float32}
  # Best of several (spread through the part): "% of peak" is then conservative.
  peaks = {k: [bench_steps.measure_peak_flops(peak_n, dtype=dt) for _ in range(2)]
           for k, dt in dtypes.items()}
  w.log("matmul peaks (GFLOP/s): " + ", ".join(f"{k} {max(v) / 1e9:.1f}" for k, v in peaks.items()))
  rows, skipped = [], []

  def finish(rs):
    for r in rs:
      loop = r["iters_per_dispatch"]
      r["loop"] = "step per dispatch" if loop == 1 else f"{loop} iterations per dispatch"
      for k, v in peaks.items():
        r[f"peak_flops_{k}"] = max(v)
        r[f"fraction_of_{k}_peak"] = r["achieved_flops"] / max(v)
      r["fraction_of_peak"] = r[f"fraction_of_{r['dtype']}_peak"]  # bench_steps' column
      r["peak_n"] = peak_n
    return rs

  spent = {}  # model -> [seconds, configurations]: a group's time foreseen from its model's
  for title, configs, rounds in step_groups(a.tiny, a.rates, a.large_batch, w.info["platform"],
                                            a.reps, a.rounds):
    model = configs[0]["model"]
    secs, n = spent.get(model) or [sum(v[0] for v in spent.values()), sum(v[1] for v in spent.values())]
    if time.perf_counter() + (secs / n * len(configs) if n else 0) > deadline:
      skipped.append(title)
      continue
    w.log(f"steps: {title} ({len(configs)} configurations)")
    t = time.perf_counter()
    rows += bench_steps.bench_group(configs, rounds)
    v = spent.setdefault(model, [0.0, 0])
    v[0], v[1] = v[0] + time.perf_counter() - t, v[1] + len(configs)
    for r in rows[-len(configs):]:
      r["group"] = title
    w.put("steps", finish(rows))
  for k, dt in dtypes.items():
    peaks[k].append(bench_steps.measure_peak_flops(peak_n, dtype=dt))
  rows = finish(rows)
  if skipped:
    w.notes.append(f"steps: over its budget share, skipped: {'; '.join(skipped)}")
    rows.append({"skipped_groups": skipped})
  w.put("steps", rows)


# --------------------------------------------------------------------------- part 2
def part_seeds(a, w: Writer, cfg: Config, shape: tuple, iters: int) -> dict:
  w.log(f"seeds: {a.replicas} replicas vmapped vs sequential, {iters} iterations per dispatch")
  r = bench_seeds.measure(cfg, shape, a.replicas, iters, 1 if a.tiny else 2)
  w.log(f"seeds: sequential {r['sequential_replica_it_per_s']:.1f}, vmapped "
        f"{r['vmap_replica_it_per_s']:.1f} replica-it/s ({r['speedup']:.2f}x)")
  w.put("seeds", [r])
  return r


# --------------------------------------------------------------------------- part 3
def train_replicas(cfg: Config, ds: data_lib.Dataset, seeds: list,
                   log: Callable[[str], None]) -> dict:
  """The one call into the vmapped seed runner; adapt here when its API changes.

  Returns ``sgan_jax.seeds.train_seeds``'s dict: ``summaries`` (per seed), ``histories``
  (per seed, per evaluated epoch), ``replica_it_per_s``, ``compile_s``.
  """
  return seeds_lib.train_seeds(cfg, ds, seeds, log=log)


def plan_epochs(target: int, sec_per_epoch: float, overhead_s: float, time_left: float) -> int:
  """Epochs that fit in ``time_left`` seconds (at most ``target``; 0 when none fit)."""
  if sec_per_epoch <= 0:
    return target
  return int(max(0, min(target, (time_left - overhead_s) // sec_per_epoch)))


def paper_rows(out: dict, stamps: dict, num_test: int, target_epochs: int,
               published: Optional[tuple]) -> tuple:
  """``(rows, history)``: a row per seed, a summary row, and per-epoch means with wall times."""
  errs = lambda e: None if e is None else round(e * num_test)
  rows = [{"seed": seed, "epochs": len(h), "final_test_err": s["final_test_err"],
           "final_errors": errs(s["final_test_err"]),
           "selected_test_err": s.get("selected_test_err"),
           "selected_errors": errs(s.get("selected_test_err")),
           "best_val_epoch": s.get("best_val_epoch")}
          for seed, s, h in zip(out["seeds"], out["summaries"], out["histories"])]
  history = []
  for recs in zip(*out["histories"]):
    e = recs[0]["epoch"]
    test = [r["test_err"] for r in recs]
    history.append({"epoch": e, "wall_s": stamps.get(e), "test_err_mean": float(np.mean(test)),
                    "test_errs": test, "val_errs": [r["val_err"] for r in recs]})
  reached = next((h for h in history if h["test_err_mean"] <= TARGET_ERR), None)
  summ = {"summary": True, "seeds": [r["seed"] for r in rows], "epochs_run": len(history),
          "epochs_target": target_epochs, "num_test": num_test,
          "replica_it_per_s": out["replica_it_per_s"], "compile_s": out["compile_s"],
          "epoch_to_2pct": reached and reached["epoch"], "time_to_2pct_s": reached and reached["wall_s"]}
  for key in ("final", "selected"):
    vals = [r[f"{key}_test_err"] for r in rows if r[f"{key}_test_err"] is not None]
    if vals:
      summ.update({f"{key}_errors_mean": float(np.mean(vals)) * num_test,
                   f"{key}_errors_std": float(np.std(vals)) * num_test})
  if published:
    m, s = published[0] * num_test / 100, published[1] * num_test / 100
    summ["published_errors"] = f"{m:g} ± {s:g}"
    summ["final_within_published"] = bool(abs(summ["final_errors_mean"] - m) <= s)
  return rows + [summ], history


def part_paper(a, w: Writer, table, cfg: Config, ds: data_lib.Dataset, iters: int,
               seeds_row: Optional[dict], deadline: float) -> None:
  seeds = list(range(1, a.replicas + 1))
  target = cfg.epochs
  shape = ds.x_train.shape[1:]
  if not (seeds_row and seeds_row["replicas"] == a.replicas and seeds_row["iters_per_dispatch"] == iters):
    w.log("paper: timing the vmapped epoch first (no seeds part to estimate from)")
    seeds_row = bench_seeds.measure(cfg, shape, a.replicas, iters, 1, sequential=False)
  sec_epoch = EPOCH_MARGIN * a.replicas * iters / seeds_row["vmap_replica_it_per_s"]
  overhead = 2 * seeds_row["compile_s_vmap"] + 5  # train chunk, evaluation program, splits
  left = deadline - time.perf_counter()
  epochs = plan_epochs(target, sec_epoch, overhead, left)
  est = overhead + target * sec_epoch
  w.log(f"paper: ~{sec_epoch:.2f} s/epoch, {target} epochs ~{est:.0f} s, {left:.0f} s left: "
        f"running {epochs}")
  note = None if epochs == target else (
      f"{target} epochs would take ~{est:.0f} s but {left:.0f} s of --budget_s were left: "
      f"ran {epochs}")
  base = {"estimated_s_per_epoch": sec_epoch, "estimated_total_s": est, "note": note}
  if epochs == 0:
    w.notes.append(f"paper: skipped, {note}")
    w.put("paper", [{"summary": True, "epochs_run": 0, "epochs_target": target, **base}])
    return
  if note:
    w.notes.append(f"paper: {note}")
  t0, stamps = time.perf_counter(), {}
  open(w.path("gpu_paper_history.jsonl"), "w").close()

  def log(msg):  # wall time from the call (data splits and compilation included)
    m = re.search(r"epoch (\d+)/", msg)
    epoch = int(m.group(1)) if m else len(stamps) + 1
    stamps[epoch] = round(time.perf_counter() - t0, 2)
    w.log("paper: " + msg)
    w.progress({"epoch": epoch, "wall_s": stamps[epoch], "line": msg})  # kept if stopped

  # Fewer epochs are the same run cut short: this config's learning rate is constant
  # (lr_decay_epochs=0), so the schedule does not depend on the epoch count.
  out = train_replicas(cfg.replace(epochs=epochs), ds, seeds, log)
  wall = time.perf_counter() - t0
  num_test = len(ds.y_test)
  pub = table_text.published_errors(table, num_test).get(LABELS) if a.mnist else None
  rows, history = paper_rows(out, stamps, num_test, target, pub)
  rows[-1].update(base, wall_s=round(wall, 2), dataset=ds.name, config=cfg.name,
                  dtype=cfg.compute_dtype)
  for r in rows[:-1]:
    r["dtype"] = cfg.compute_dtype
  s = rows[-1]
  w.log(f"paper: {s['epochs_run']} epochs in {wall:.0f} s, last-epoch errors "
        f"{errors_text(s, 'final')} of {num_test}")
  w.put("paper", rows, history)


def errors_text(summ: dict, key: str) -> str:
  """The summary row's ``"mean ± std"`` test errors over its seeds, ``key`` "final" or
  "selected" (:func:`sgan_jax.table_text.mean_std`); "-" when not measured."""
  if f"{key}_errors_mean" not in summ:
    return "-"
  return table_text.mean_std(summ[f"{key}_errors_mean"], summ[f"{key}_errors_std"],
                             len(summ["seeds"]), "{:.1f}".format)


def synthetic_mnist(n_train: int = 1100, n_test: int = 500, seed: int = 0) -> data_lib.Dataset:
  """MNIST-shaped stand-in for --tiny: a noisy prototype image per class, ``(N, 28, 28)``.

  The MNIST shape lets the tiny protocol share part 1's initialisation programs, which
  run op by op and are compiled once per shape.
  """
  rng = np.random.default_rng(seed)
  protos = rng.random((10, 28, 28))
  make = lambda n: (np.arange(n) % 10, rng.random((n, 28, 28)))
  (ytr, ntr), (yte, nte) = make(n_train), make(n_test)
  return data_lib.from_arrays(0.5 * protos[ytr] + 0.5 * ntr, ytr, 0.5 * protos[yte] + 0.5 * nte,
                              yte, num_classes=10, name="synthetic 28x28")


def paper_config(a) -> tuple:
  """``(table, cfg, dataset)``: the 100-label cell of ``mnist_fm_table`` (tiny: small model,
  2 epochs of 10 iterations, on synthetic MNIST-shaped data unless --mnist is given)."""
  table, base = load_table("mnist_fm_table")
  if a.tiny:
    base = base.replace(epochs=2, iters_per_epoch=10, val_size=100, **TINY_FIELDS["mlp"])
  base = base.replace(dataset=a.mnist or "", compute_dtype=a.paper_dtype)
  ds = experiment.load_data(base) if a.mnist else synthetic_mnist()
  cfg = tables.cell_config(base, LABELS, ds.num_classes, seed=1, epochs=None)
  return table, cfg, ds


# --------------------------------------------------------------------------- summary
def _fmt(x, spec=".1f", none="-"):
  return none if x is None else format(x, spec)


def summary_markdown(info: dict, rows: dict, notes: list) -> str:
  """The goals first, then each part's table."""
  head = (f"{info['devices']} x {info['platform']} ({info['device_kind']}"
          + "".join(f", {k} {info[k]}" for k in ("driver_version", "cuda_driver_api",
                                                  "compute_capability") if k in info)
          + f"), JAX {info['jax']}, jaxlib {info['jaxlib']}")
  steps = [r for r in rows["steps"] if "steps_per_sec" in r]
  seeds = rows["seeds"][0] if rows["seeds"] else None
  paper = next((r for r in rows["paper"] if r.get("summary")), None)
  goal = lambda ok: "**yes**" if ok else "**no**"
  lines = [f"# Accelerator suite: {info['device_kind']}", "", head, "", "## Goals", ""]
  if info.get("tiny"):
    lines += ["--tiny: tiny shapes and lengths; these lines test the suite, not the goals.", ""]
  for r in steps:
    if r["model"] == "mlp" and r["iters_per_dispatch"] > 1 and r["group"].startswith("mlp, an epoch"):
      lines.append(f"- MNIST pair, batch {r['global_batch']}, {r['dtype']}, an epoch per dispatch: "
                   f"{r['steps_per_sec']:.0f} it/s (goal >= 2,000: {goal(r['steps_per_sec'] >= 2000)})")
  if seeds:
    lines.append(f"- {seeds['replicas']} vmapped seeds vs sequential: {seeds['speedup']:.2f}x "
                 f"(goal >= 5x: {goal(seeds['speedup'] >= 5)})")
  if paper and paper.get("epochs_run"):
    m = errors_text(paper, "final")
    if "published_errors" in paper and paper["epochs_run"] == paper["epochs_target"]:
      verdict = f"goal inside {paper['published_errors']}: {goal(paper['final_within_published'])}"
    else:
      verdict = ("not checked: " + (f"{paper['epochs_run']} of {paper['epochs_target']} epochs"
                                    if "published_errors" in paper else "not MNIST"))
    lines.append(f"- {len(paper['seeds'])} seeds, {paper['dataset']}, 100 labels, last epoch: {m} errors of "
                 f"{paper['num_test']} ({verdict})")
  for r in steps:
    if r["model"] == "conv" and r["dtype"] == "bfloat16" and r["label_rate"] == max(
        q["label_rate"] for q in steps if q["model"] == "conv"):
      lines.append(f"- conv pair, batch {r['global_batch']}, bfloat16: "
                   f"{r['achieved_flops'] / 1e12:.2f} TFLOP/s = "
                   f"{100 * r['fraction_of_bfloat16_peak']:.1f}% of the measured bfloat16 peak")
  lines += [f"- {n}" for n in notes]
  if steps:
    p = steps[0]
    lines += ["", "## 1. Step throughput", "",
              f"Measured matmul peaks ({p['peak_n']}^3): bfloat16 {p['peak_flops_bfloat16'] / 1e12:.2f} "
              f"TFLOP/s, float32 {p['peak_flops_float32'] / 1e12:.2f} TFLOP/s "
              f"(matmul precision: {info['matmul_precision']}). \"% of peak\": of the row's dtype.", "",
              bench_steps.markdown_table(steps, extra=(
                  ("iterations/dispatch", lambda r: str(r["iters_per_dispatch"])),
                  ("% of bf16 peak", lambda r: f"{100 * r['fraction_of_bfloat16_peak']:.1f}%"),
                  ("% of f32 peak", lambda r: f"{100 * r['fraction_of_float32_peak']:.1f}%")))]
  if seeds:
    lines += ["", "## 2. Seeds: vmapped vs sequential", "",
              "| replicas | model | batch | dtype | iterations/dispatch | sequential replica-it/s | "
              "vmapped replica-it/s | speedup | compile s (seq / vmap) |", "|---|---|---|---|---|---|---|---|---|",
              f"| {seeds['replicas']} | {seeds['model']} | {seeds['batch']} | {seeds['dtype']} | "
              f"{seeds['iters_per_dispatch']} | {seeds['sequential_replica_it_per_s']:.1f} | "
              f"{seeds['vmap_replica_it_per_s']:.1f} | {seeds['speedup']:.2f}x | "
              f"{seeds['compile_s_sequential']:.1f} / {seeds['compile_s_vmap']:.1f} |"]
  if paper:
    lines += ["", "## 3. MNIST-100 feature matching, seeds vmapped", ""]
    if paper.get("epochs_run"):
      lines += [f"{paper['dataset']}, {paper['epochs_run']} of {paper['epochs_target']} epochs, "
                f"seeds {paper['seeds']}, {paper['dtype']}, each seed its own labeled "
                f"subset and validation split; wall {paper['wall_s']:.0f} s "
                f"(compile {paper['compile_s']:.1f} s), {_fmt(paper['replica_it_per_s'])} replica-it/s; "
                f"mean test error <= 2% at epoch {_fmt(paper['epoch_to_2pct'], 'd', 'never')}"
                f" ({_fmt(paper['time_to_2pct_s'], '.0f', '-')} s).", "",
                "| seed | last-epoch errors | validation-selected errors (epoch) |", "|---|---|---|"]
      for r in rows["paper"]:
        if not r.get("summary"):
          lines.append(f"| {r['seed']} | {r['final_errors']} | {_fmt(r['selected_errors'], 'd')} "
                       f"({_fmt(r['best_val_epoch'], 'd')}) |")
      lines.append(f"| {'mean ± std' if len(paper['seeds']) > 1 else 'mean'} | "
                   f"{errors_text(paper, 'final')} | "
                   f"{errors_text(paper, 'selected')} |")
    else:
      lines.append("Not run: " + str(paper.get("note")))
  return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main
def main(argv=None, started: Optional[float] = None) -> int:
  """``started``: the ``perf_counter`` time --budget_s counts from (default: now)."""
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--mnist", default=None, help="MNIST .npz (x_train, y_train, x_test, y_test); "
                 "needed by the paper part unless --tiny")
  p.add_argument("--out", default=os.environ.get("OUT"), help="output folder (default: $OUT)")
  p.add_argument("--tiny", action="store_true", help="the same code paths at tiny sizes (CPU, < 1 minute)")
  p.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset of " + ",".join(PARTS))
  p.add_argument("--budget_s", type=float, default=480.0, help="wall-clock budget of the whole run")
  p.add_argument("--replicas", type=int, default=None, help="seeds in parts 2 and 3 (default 10; tiny 2)")
  p.add_argument("--label_rates", default=None, help="label rates of part 1's groups "
                 "(default 0.001,0.01,0.1,1.0; tiny 1.0)")
  p.add_argument("--large_batch", type=int, default=None, help="the large batch of part 1 (default 1000; tiny 16)")
  p.add_argument("--reps", type=int, default=None, help="timed chunks per configuration and "
                 "round in part 1 (default 3; tiny 1); a step per dispatch times 100x as many")
  p.add_argument("--rounds", type=int, default=None,
                 help="interleaved timing rounds in part 1 (default 3; tiny 1)")
  p.add_argument("--peak_n", type=int, default=None,
                 help="matmul size for the peaks (default 8192 on GPU, 1024 on CPU, tiny 128)")
  p.add_argument("--paper_dtype", default="float32", choices=("float32", "bfloat16"),
                 help="compute dtype of parts 2 and 3")
  a = p.parse_args(argv)
  parts = a.parts.split(",")
  if not parts or not set(parts) <= set(PARTS):
    p.error(f"--parts takes a comma-separated subset of {','.join(PARTS)}, got {a.parts!r}")
  if not a.out:
    p.error("--out is needed (or set OUT)")
  a.label_rates = a.label_rates or ("1.0" if a.tiny else "0.001,0.01,0.1,1.0")
  try:
    a.rates = [float(r) for r in a.label_rates.split(",")]
  except ValueError:
    p.error(f"--label_rates takes fractions such as 0.01,1.0, got {a.label_rates!r}")
  if not all(0 < r <= 1 for r in a.rates):
    p.error(f"label rates must be in (0, 1], got {a.rates}")
  a.replicas = (2 if a.tiny else 10) if a.replicas is None else a.replicas
  a.large_batch = (16 if a.tiny else 1000) if a.large_batch is None else a.large_batch
  a.reps = (1 if a.tiny else 3) if a.reps is None else a.reps
  a.rounds = (1 if a.tiny else 3) if a.rounds is None else a.rounds
  if min(a.replicas, a.large_batch, a.reps, a.rounds, a.peak_n or 1) < 1 or a.budget_s <= 0:
    p.error("--replicas, --large_batch, --reps, --rounds and --peak_n must be >= 1 and "
            "--budget_s > 0")
  if a.mnist and not os.path.isfile(a.mnist):
    p.error(f"--mnist {a.mnist!r} is not a file; copy ../shared/datasets/mnist.npz into the "
            "repository (e.g. data_local/) and pass that path")
  if "paper" in parts and not (a.mnist or a.tiny):
    p.error("the paper part needs --mnist PATH (or --tiny, or --parts without paper)")

  flag = "--xla_backend_optimization_level=0"
  if a.tiny and flag not in os.environ.get("XLA_FLAGS", ""):
    # Halves CPU compile time (read when JAX's backend starts, at the first device query);
    # the program is the same, only rounding details differ.
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flag).strip()
  t0 = started or time.perf_counter()
  try:
    w = Writer(a.out, device_info())
    w.info["tiny"] = a.tiny
    w.log(f"device: {json.dumps(w.info)}")
    table = cfg = ds = None
    if "seeds" in parts or "paper" in parts:
      table, cfg, ds = paper_config(a)
      n_unl = len(ds.y_train) - data_lib.val_count(cfg.val_size, len(ds.y_train))
      iters = cfg.iters_per_epoch or max(1, n_unl // cfg.batch_size)
    if "steps" in parts:
      part_steps(a, w, t0 + STEPS_SHARE * a.budget_s)
    seeds_row = None
    if "seeds" in parts:
      if time.perf_counter() < t0 + SEEDS_SHARE * a.budget_s:
        seeds_row = part_seeds(a, w, cfg, ds.x_train.shape[1:], iters)
      else:
        w.notes.append("seeds: skipped, the steps part used its budget share")
        w.put("seeds", [])
    if "paper" in parts:
      part_paper(a, w, table, cfg, ds, iters, seeds_row, t0 + a.budget_s)
  except SganError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  w.log(f"done in {time.perf_counter() - t0:.0f} s; results in {a.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main(started=STARTED))
