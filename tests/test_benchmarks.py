"""The benchmark scripts run and write the documented fields (no timing is asserted)."""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
import bench_steps  # noqa: E402
from sgan_jax.config import Config  # noqa: E402

REQUIRED = ("model", "label_rate", "global_batch", "devices", "platform", "dtype",
            "steps_per_sec", "examples_per_sec", "compile_s", "flops_per_step", "peak_flops")


def test_bench_steps_writes_every_required_field(tmp_path, monkeypatch):
  # The real script on a small MLP (the benchmark's own sizes take minutes to compile here).
  monkeypatch.setattr(bench_steps, "Config", lambda **kw: Config(
      **kw, d_hidden=(32, 16), g_hidden=(32,), latent_dim=8))
  out = tmp_path / "b.jsonl"
  assert bench_steps.main(["--models", "mlp", "--label_rates", "0.01,1.0", "--batches", "8",
                           "--iters", "2", "--reps", "1", "--rounds", "2", "--peak_n", "256", "--out", str(out)]) == 0
  rows = [json.loads(l) for l in out.read_text().splitlines()]
  assert [r["label_rate"] for r in rows] == [0.01, 1.0]
  for r in rows:
    missing = [k for k in REQUIRED if k not in r]
    assert not missing, missing
    assert r["flops_per_step"] > 0 and r["peak_flops"] == pytest.approx(max(r["peak_flops_measurements"]), abs=1)
    assert r["steps_per_sec_min"] <= r["steps_per_sec"] <= r["steps_per_sec_max"]
    assert r["examples_per_step"] == 4 * 8 and r["rounds"] == 2
  md = (tmp_path / "b.md").read_text()
  assert "| mlp | 0.01 |" in md and "spread across label rates" in md


def test_rounds_rotate_so_every_configuration_leads_once(monkeypatch):
  order = []
  monkeypatch.setattr(bench_steps, "prepare", lambda **c: {"name": c["name"], "row": {
      "examples_per_step": 4, "flops_per_step": 1.0}})
  monkeypatch.setattr(bench_steps, "time_round", lambda p: order.append(p["name"]) or 1.0)
  bench_steps.bench_group([{"name": n} for n in "abc"], rounds=3)
  assert order == list("abc" "bca" "cab")
