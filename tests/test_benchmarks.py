"""The benchmark scripts run and write the documented fields (no timing is asserted)."""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
import bench_steps  # noqa: E402
from sgan_jax import machine  # noqa: E402
from sgan_jax.config import Config  # noqa: E402

REQUIRED = ("model", "label_rate", "global_batch", "devices", "platform", "dtype",
            "steps_per_sec", "examples_per_sec", "compile_s", "flops_per_step", "peak_flops")


@pytest.mark.slow  # ~30 s; the summaries from known timings (below) stay in the default set
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
    assert r["flops_per_step"] > 0 and r["bytes_per_step"] > 0
    assert r["peak_flops"] == pytest.approx(max(r["peak_flops_measurements"]), abs=1)
    assert r["steps_per_sec_min"] <= r["steps_per_sec"] <= r["steps_per_sec_max"]
    assert r["examples_per_step"] == 4 * 8 and r["rounds"] == 2
  md = (tmp_path / "b.md").read_text()
  assert "| mlp | 0.01 |" in md and "spread across label rates" in md


def test_bench_steps_summaries_from_known_timings(tmp_path, monkeypatch):
  """Median, range, throughput and the peak from given timings: no real measurement."""
  speeds = {0.01: [3.0, 1.0, 2.0], 1.0: [10.0, 40.0, 20.0]}  # steps/s per round
  peaks = iter([5e9, 9e9, 7e9, 6e9])  # 3 before timing + 1 per (model, batch)
  monkeypatch.setattr(bench_steps, "measure_peak_flops", lambda *a, **k: next(peaks))
  monkeypatch.setattr(bench_steps, "prepare", lambda **c: {"rate": c["label_rate"], "row": {
      "model": c["model"], "label_rate": c["label_rate"], "num_labeled": 10, "dtype": c["dtype"],
      "global_batch": c["batch"], "examples_per_step": 4 * c["batch"], "compile_s": 1.0,
      "flops_per_step": 1e6}})
  monkeypatch.setattr(bench_steps, "time_round", lambda p: speeds[p["rate"]].pop(0))
  out = tmp_path / "k.jsonl"
  assert bench_steps.main(["--models", "mlp", "--label_rates", "0.01,1.0", "--batches", "8",
                           "--rounds", "3", "--out", str(out)]) == 0
  a, b = [json.loads(l) for l in out.read_text().splitlines()]
  assert (a["steps_per_sec"], a["steps_per_sec_min"], a["steps_per_sec_max"]) == (2.0, 1.0, 3.0)
  assert (b["steps_per_sec"], b["steps_per_sec_min"], b["steps_per_sec_max"]) == (20.0, 10.0, 40.0)
  assert a["examples_per_sec"] == 2.0 * 32 and b["achieved_flops"] == 20.0 * 1e6
  assert a["peak_flops"] == b["peak_flops"] == 9e9
  assert a["peak_flops_measurements"] == [5e9, 9e9, 7e9, 6e9]
  assert b["fraction_of_peak"] == pytest.approx(20.0 * 1e6 / 9e9)
  md = (tmp_path / "k.md").read_text()
  assert "| mlp | 0.01 | 10 | 8 | float32 | 2.0 | 1.0-3.0 | 64 |" in md
  assert "| mlp | 8 | float32 | 163.6% |" in md  # (20 - 2) / mean(2, 20)


def test_host_cpu_names_the_family_and_the_vector_isa(tmp_path):
  info = tmp_path / "cpuinfo"
  core = ("processor\t: {n}\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\n"
          "model name\t: AMD EPYC\nflags\t\t: fpu sse4_2 avx2 avx512f avx512bw\n\n")
  info.write_text(core.format(n=0) + core.format(n=1))
  assert machine.host_cpu(str(info)) == "AMD EPYC (family 26 model 2), 2 cores, avx512f"
  info.write_text(core.format(n=0).replace(" avx512f avx512bw", ""))
  assert machine.host_cpu(str(info)).endswith("1 cores, avx2")
  assert machine.host_cpu(str(tmp_path / "missing"))  # falls back to platform's name


def test_a_run_names_its_machine_by_the_accelerator_or_else_the_cpu():
  here = machine.describe()
  assert here["devices"] >= 1 and here["cpu"] == machine.host_cpu()
  assert machine.short({**here, "platform": "cpu"}) == here["cpu"]
  gpu = {**here, "platform": "gpu", "device_kind": "NVIDIA H200", "devices": 8}
  assert machine.short(gpu) == "8 x NVIDIA H200"
  assert machine.short(None) == "not recorded"


def test_variants_are_timed_beside_the_model_and_labelled(tmp_path, monkeypatch):
  monkeypatch.setattr(bench_steps, "Config", lambda **kw: Config(
      **{**kw, "d_hidden": (32, 16), "g_hidden": (32,), "latent_dim": 8}))
  out = tmp_path / "v.jsonl"
  assert bench_steps.main(["--models", "mlp", "--label_rates", "0.01", "--batches", "8",
                           "--iters", "2", "--reps", "1", "--rounds", "1", "--peak_n", "128",
                           "--variant", "nonoise:input_noise=0,hidden_noise=0", "--out", str(out)]) == 0
  rows = [json.loads(l) for l in out.read_text().splitlines()]
  assert [r.get("variant") for r in rows] == [None, "nonoise"]
  assert rows[1]["overrides"] == {"input_noise": 0, "hidden_noise": 0}
  # The variant really changes the program: no Gaussian noise means fewer FLOPs.
  assert rows[1]["flops_per_step"] < rows[0]["flops_per_step"]
  assert "| mlp (nonoise) | 0.01 |" in (tmp_path / "v.md").read_text()
  # A list value keeps its commas: same as the --set parser gives for it alone.
  from sgan_jax.config import parse_override
  assert bench_steps.parse_variant("w:d_hidden=64,32,latent_dim=4")[1] == {
      "d_hidden": parse_override("d_hidden=64,32")[1], "latent_dim": 4}
  with pytest.raises(SystemExit, match="name:key=value"):
    bench_steps.parse_variant("input_noise=0")


def test_rounds_rotate_so_every_configuration_leads_once(monkeypatch):
  order = []
  monkeypatch.setattr(bench_steps, "prepare", lambda **c: {"name": c["name"], "row": {
      "examples_per_step": 4, "flops_per_step": 1.0}})
  monkeypatch.setattr(bench_steps, "time_round", lambda p: order.append(p["name"]) or 1.0)
  bench_steps.bench_group([{"name": n} for n in "abc"], rounds=3)
  assert order == list("abc" "bca" "cab")


def test_profile_step_attributes_noise_time_to_random_numbers(tmp_path, monkeypatch):
  """The profile splits the real chunk's op time by category; turning the noise layers
  off removes most random-number operations (the latent samples and key splits stay)."""
  import profile_step  # noqa: E402
  monkeypatch.setattr(bench_steps, "Config", lambda **kw: Config(
      **kw, d_hidden=(32, 16), g_hidden=(32,), latent_dim=8))
  res = {}
  for name, extra in (("noise", ["--top", "5"]),
                      ("none", ["--set", "input_noise=0", "--set", "hidden_noise=0"])):
    out = tmp_path / f"{name}.json"
    assert profile_step.main(["--batch", "8", "--iters", "2", "--peak_n", "128", "--bw_mib", "4",
                              "--out", str(out), *extra]) == 0
    res[name] = json.loads(out.read_text())
  ms = res["noise"]["ms_per_iteration"]
  assert ms["matmul"] > 0 and ms["random numbers"] > 0
  rng_ops = lambda r: r["ops_per_iteration"].get("random numbers", 0)
  assert 0 < rng_ops(res["none"]) < rng_ops(res["noise"]) / 2
  assert res["noise"]["peak_flops"] > 0 and res["none"]["overrides"] == ["input_noise=0", "hidden_noise=0"]
  assert res["noise"]["bytes_per_step"] > 0 and res["noise"]["bandwidth_bytes_per_s"] > 0
  # --top lists the costliest operations, costliest first, each within its category's total.
  top = res["noise"]["top_ops"]
  assert len(top) == 5 and res["none"]["top_ops"] == []
  t = [o["ms_per_iteration"] for o in top]
  assert t == sorted(t, reverse=True) and t[0] > 0
  for o in top:
    assert o["ms_per_iteration"] <= ms[o["category"]] + 1e-9 and o["name"] and o["opcode"]


def test_profile_categories():
  import profile_step  # noqa: E402
  # A dot fusion that absorbed a noise layer's add is matmul time; the noise alone is not.
  assert profile_step.category("fusion", "jit(f)/GaussianNoise_0/add", {"dot"}) == "matmul"
  assert profile_step.category("fusion", "jit(f)/GaussianNoise_0/add", {"add"}) == "random numbers"
  assert profile_step.category("fusion", "jit(_normal_real)/jit(_uniform)/while/body/add",
                               {"add"}) == "random numbers"
  assert profile_step.category("fusion", "jit(f)/WNDense_0/dot_general", {"dot", "add"}) == "matmul"
  assert profile_step.category("convolution", "jit(f)/conv", set()) == "convolution"
  assert profile_step.category("fusion", "jit(f)/relu", {"maximum"}) == \
      "elementwise / reduction / other"
  # Tuple-typed instructions (nested tuples included) are parsed too.
  tup = ('%while.3 = (s32[], (f32[8]{0}, u32[2]{0})) while(%t), condition=%c, body=%b, '
         'metadata={op_name="jit(f)/while"}')
  assert profile_step.hlo_ops(tup)["while.3"][:2] == ("while", "jit(f)/while")
  ops = profile_step.hlo_ops(jax_hlo_of_small_function())
  assert any(op == "dot" or "dot" in fused for op, _, fused in ops.values())


def jax_hlo_of_small_function() -> str:
  import jax
  import jax.numpy as jnp
  f = jax.jit(lambda a, b: jnp.maximum(a @ b, 0.0) + 1.0)
  return f.lower(jnp.ones((4, 4)), jnp.ones((4, 4))).compile().as_text()


def test_time_to_accuracy_reads_the_first_evaluation_at_target(tmp_path, capsys):
  import time_to_accuracy  # noqa: E402
  run = tmp_path / "run"
  run.mkdir()
  recs = [{"epoch": e, "step": 10 * e, "wall_s": 60.0 * e, "it_per_s": 5.0, "test_err": err}
          for e, err in [(1, 0.30), (2, 0.021), (3, 0.019), (4, 0.015)]]
  # A record without the key (e.g. no evaluation that epoch) is skipped, not a crash.
  skipped = {"epoch": 0, "step": 0, "wall_s": 1.0, "it_per_s": None, "test_err": None}
  (run / "metrics_sgan.jsonl").write_text("\n".join(json.dumps(r) for r in [skipped] + recs))
  (run / "config.json").write_text(json.dumps({"avg_rate": 0.001, "noise_rng": "hash", "seed": 1}))
  never = tmp_path / "never"
  never.mkdir()
  (never / "metrics_sgan.jsonl").write_text(json.dumps(recs[0]))
  (never / "config.json").write_text(json.dumps({"avg_rate": 0.001, "on_d_wins": "rollback"}))
  empty = tmp_path / "empty.jsonl"
  empty.write_text("")
  out = tmp_path / "tta.md"
  assert time_to_accuracy.main([str(run / "metrics_sgan.jsonl"), str(never / "metrics_sgan.jsonl"),
                                str(empty), "--target", "0.02", "--out", str(out)]) == 0
  cap = capsys.readouterr()
  printed = cap.out
  assert "1.90% at epoch 3 (step 30), 3.0 min" in printed and "never reached 2.00%" in printed
  assert "empty.jsonl: no evaluation" in cap.err
  table = out.read_text()
  assert "| avg_rate=0.001, noise_rng=hash | 3 | 30 | 5.0 | **3.0** |" in table  # on_d_wins=warn
  assert "| avg_rate=0.001, on_d_wins=rollback | 1 epochs: not reached (best 30.00%)" in table


@pytest.mark.parametrize("args,match", [
    (["--label_rates", "0.01,x"], "--label_rates takes fractions"),
    (["--label_rates", "0"], "label rates must be in (0, 1]"),
    (["--batches", "0"], "batches >= 1"),
    (["--models", "resnet"], "--models takes mlp and/or conv")])
def test_bench_steps_refuses_bad_arguments_before_measuring(args, match, capsys, monkeypatch):
  monkeypatch.setattr(bench_steps, "measure_peak_flops", lambda *a, **k: pytest.fail("measured"))
  with pytest.raises(SystemExit) as e:
    bench_steps.main(args)
  assert e.value.code == 2 and match in capsys.readouterr().err


def test_seed_and_accuracy_benchmarks_refuse_bad_arguments(tmp_path, capsys):
  import bench_seeds  # noqa: E402
  import time_to_accuracy  # noqa: E402
  for args, match in ((["--model", "resnet"], "--model takes mlp or conv"),
                      (["--replicas", "0"], "must be >= 1")):
    with pytest.raises(SystemExit) as e:
      bench_seeds.main(args)
    assert e.value.code == 2 and match in capsys.readouterr().err
  assert time_to_accuracy.main([str(tmp_path / "missing.jsonl")]) == 2
  assert "pass metrics_<mode>.jsonl files" in capsys.readouterr().err


def test_bench_sklearn_protocol_keeps_test_labels_out_and_writes_its_table(tmp_path, capsys):
  import numpy as np
  import bench_sklearn
  x, y, mask = bench_sklearn.load("wine", "")
  pool, test, y_pool = bench_sklearn.split("wine", x, y, mask, ("fraction", 0.2), seed=1)
  assert len(np.intersect1d(pool, test)) == 0 and len(pool) + len(test) == len(y)
  labeled = y_pool != -1
  np.testing.assert_array_equal(y_pool[labeled], y[pool][labeled])  # the pool's own labels
  counts = np.bincount(y[pool], minlength=3)
  np.testing.assert_array_equal(np.bincount(y_pool[labeled], minlength=3),
                                np.maximum(1, np.round(0.2 * counts)))  # stratified
  fixed = np.arange(len(y)) >= 150  # a given test split (MNIST's): exactly those rows
  pool, test, _ = bench_sklearn.split("wine", x, y, fixed, ("labels", 6), seed=0)
  np.testing.assert_array_equal(test, np.flatnonzero(fixed))
  np.testing.assert_array_equal(pool, np.flatnonzero(~fixed))
  _, _, y_reg = bench_sklearn.split("friedman1", x, x[:, 0], None, ("labels", 10), seed=0)
  assert np.sum(~np.isnan(y_reg)) == 10
  out = tmp_path / "r"
  assert bench_sklearn.main(["--datasets", "wine", "--fractions", "0.2", "--seeds", "0",
                             "--methods", "label_spreading", "--out", str(out)]) == 0
  row = json.loads((out / "runs.jsonl").read_text())
  assert row["method"] == "label_spreading" and row["num_test"] == 54 and 0 <= row["test_error"] < 0.5
  assert "| wine | 25 (0.2 of pool) | – | – | " in (out / "table.md").read_text()
  # A rows file that is not this benchmark's is a usage error naming it, on both paths.
  other = tmp_path / "other"
  other.mkdir()
  (other / "runs.jsonl").write_text('{"epoch": 1}\n')
  for extra in (["--table"], ["--datasets", "wine", "--fractions", "0.2", "--seeds", "0"]):
    with pytest.raises(SystemExit):
      bench_sklearn.main(extra + ["--out", str(other)])
    assert "lacks the field 'dataset'" in capsys.readouterr().err
