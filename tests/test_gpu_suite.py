"""The accelerator suite runs end to end at tiny sizes and writes every part's rows."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BENCH = os.path.join(ROOT, "benchmarks")
sys.path.insert(0, BENCH)
import gpu_suite  # noqa: E402

DEVICE_FIELDS = ("part", "platform", "device_kind", "jax", "jaxlib", "dtype")


def rows(path):
  return [json.loads(line) for line in open(path)]


def run_script(args, **kw):
  """The suite as the device machine runs it: its own process, one device, ``PYTHONPATH``
  at the repository (tests' 8 fake CPU devices would shard every step program)."""
  flags = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split() if "device_count" not in f)
  env = {**os.environ, "PYTHONPATH": ROOT, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}
  return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                        cwd=ROOT, **kw)


@pytest.mark.slow  # ~60 s on 2 cores: kept out of the default suite's 7 minutes
def test_tiny_run_writes_rows_for_each_part_and_the_summary(tmp_path):
  # A budget no machine reaches: what is measured must not depend on how busy the cores are
  # (the budget's skipping has its own test below).
  out = run_script([os.path.join(BENCH, "gpu_suite.py"), "--tiny", "--budget_s", "100000",
                    "--out", str(tmp_path)], timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  steps, seeds = rows(tmp_path / "gpu_steps.jsonl"), rows(tmp_path / "gpu_seeds.jsonl")
  assert not [r for r in steps if "skipped_groups" in r]
  paper, history = rows(tmp_path / "gpu_paper.jsonl"), rows(tmp_path / "gpu_paper_history.jsonl")
  for r in steps + seeds + paper:
    missing = [k for k in DEVICE_FIELDS if k not in r]
    assert not missing, (r["part"], missing)
    assert r["tiny"] is True
  # Part 1: the on-device epoch loop (float32 and bfloat16) beside a step per dispatch,
  # then the grid; every row against both measured peaks.
  loops = [r["iters_per_dispatch"] for r in steps if r["group"].startswith("mlp, an epoch")]
  assert loops == [63, 1] and {r["dtype"] for r in steps} == {"float32", "bfloat16"}
  for r in steps:
    assert r["steps_per_sec"] > 0 and r["flops_per_step"] > 0 and r["compile_s"] >= 0
    assert r["peak_flops_bfloat16"] > 0 and r["peak_flops_float32"] > 0
    assert r["fraction_of_peak"] == r[f"fraction_of_{r['dtype']}_peak"]
  # Part 2: both ways of running the replicas, an epoch per dispatch.
  (s,) = seeds
  assert s["replicas"] == 2 and s["sequential_replica_it_per_s"] > 0 and s["vmap_replica_it_per_s"] > 0
  assert s["speedup"] == pytest.approx(s["vmap_replica_it_per_s"] / s["sequential_replica_it_per_s"], rel=1e-2)
  # Part 3: a row per seed, a summary row, a history row per epoch with its wall time.
  per_seed, summ = paper[:-1], paper[-1]
  assert [r["seed"] for r in per_seed] == [1, 2] and summ["summary"] and summ["note"] is None
  assert summ["epochs_run"] == summ["epochs_target"] == 2 and summ["dataset"] == "synthetic 28x28"
  for r in per_seed:
    assert r["final_errors"] == round(r["final_test_err"] * summ["num_test"])
    assert r["selected_errors"] is not None and 1 <= r["best_val_epoch"] <= 2
  assert [h["epoch"] for h in history] == [1, 2] and history[0]["wall_s"] <= history[1]["wall_s"]
  assert len(history[0]["test_errs"]) == 2 and "time_to_2pct_s" in summ
  md = (tmp_path / "gpu_summary.md").read_text()
  for head in ("## Goals", "## 1. Step throughput", "## 2. Seeds", "## 3. MNIST-100", "| mean ± std |"):
    assert head in md
  assert "epoch per dispatch" in md and "vmapped seeds vs sequential" in md
  log = (tmp_path / "gpu_log.txt").read_text()
  assert "[sgan x2] epoch 2/2" in log and "done in" in log


def test_parts_over_budget_are_skipped_and_say_so(tmp_path, monkeypatch):
  # The paper part's epoch time as if measured: 10 s an epoch, far more than is left.
  monkeypatch.setattr(gpu_suite.bench_seeds, "measure", lambda cfg, shape, S, iters, reps, **k: {
      "replicas": S, "iters_per_dispatch": iters, "vmap_replica_it_per_s": S * iters / 10.0,
      "compile_s_vmap": 1.0})
  assert gpu_suite.main(["--tiny", "--parts", "steps,paper", "--budget_s", "0.01",
                         "--out", str(tmp_path)]) == 0
  (steps,) = rows(tmp_path / "gpu_steps.jsonl")
  assert steps["skipped_groups"][0].startswith("mlp, an epoch per dispatch")
  (paper,) = rows(tmp_path / "gpu_paper.jsonl")
  assert paper["epochs_run"] == 0 and paper["epochs_target"] == 2
  assert "2 epochs would take" in paper["note"] and paper["estimated_s_per_epoch"] == pytest.approx(12.0)
  md = (tmp_path / "gpu_summary.md").read_text()
  assert "steps: over its budget share, skipped" in md and "paper: skipped" in md


def test_plan_epochs_runs_what_fits():
  assert gpu_suite.plan_epochs(300, 1.0, 20, 400) == 300
  assert gpu_suite.plan_epochs(300, 1.0, 20, 120) == 100
  assert gpu_suite.plan_epochs(300, 1.0, 20, 10) == 0


@pytest.mark.parametrize("args,match", [
    (["--tiny", "--parts", "steps,flops"], "--parts takes a comma-separated subset"),
    (["--parts", "paper"], "the paper part needs --mnist"),
    (["--tiny", "--mnist", "no/such.npz"], "is not a file"),
    (["--tiny", "--label_rates", "0"], "label rates must be in (0, 1]"),
    (["--tiny", "--replicas", "0"], "must be >= 1"),
    (["--tiny", "--rounds", "0"], "must be >= 1")])
def test_bad_arguments_are_refused_before_measuring(args, match, tmp_path, capsys, monkeypatch):
  monkeypatch.setattr(gpu_suite, "device_info", lambda: pytest.fail("measured"))
  with pytest.raises(SystemExit) as e:
    gpu_suite.main(args + ["--out", str(tmp_path)])
  assert e.value.code == 2 and match in capsys.readouterr().err


def test_unreadable_mnist_file_is_an_error_line(tmp_path, capsys):
  bad = tmp_path / "mnist.npz"
  bad.write_text("not an npz")
  assert gpu_suite.main(["--parts", "paper", "--mnist", str(bad), "--out", str(tmp_path / "o")]) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and "Traceback" not in err


def test_out_is_required_without_the_OUT_variable(capsys, monkeypatch):
  monkeypatch.delenv("OUT", raising=False)
  with pytest.raises(SystemExit) as e:
    gpu_suite.main(["--tiny"])
  assert e.value.code == 2 and "--out is needed" in capsys.readouterr().err


def test_the_suite_imports_without_tensorflow_datasets():
  """The device machine has no TFDS: nothing the suite imports may need it."""
  code = ("import sys; sys.modules['tensorflow_datasets'] = None; "
          f"sys.path.insert(0, {BENCH!r}); import gpu_suite; "
          "assert sys.modules['tensorflow_datasets'] is None; print('ok')")
  out = run_script(["-c", code], timeout=120)
  assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_errors_text_gives_spread_only_over_several_seeds():
  one = {"seeds": [1], "final_errors_mean": 92.0, "final_errors_std": 0.0}
  assert gpu_suite.errors_text(one, "final") == "92.0"
  assert gpu_suite.errors_text(one, "selected") == "-"
  two = dict(one, seeds=[1, 2], final_errors_std=3.25)
  assert gpu_suite.errors_text(two, "final") == "92.0 ± 3.2"
