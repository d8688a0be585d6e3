"""Table runner: cells x seeds, resume, outputs; CIFAR-10/SVHN configs on TFDS mock data."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from sgan_jax import cli, configs, machine, reports, rundir, table_text
from sgan_jax import state as state_lib
from sgan_jax import tables
from sgan_jax.errors import SganError
from tests.helpers import blobs, tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiments"))  # the result scripts

TABLE = tables.Table(name="t", title="tiny", labels=(4, 8), published={4: "1 ± 1"},
                     source="nowhere", modes=("sgan", "supervised"))


def test_table_runs_cells_resumes_and_writes_outputs(tmp_path):
  cfg = tiny_config(epochs=1, val_size=16)
  logs = []
  res = tables.run_table(TABLE, cfg, [0, 1], str(tmp_path), dataset=blobs(), log=logs.append)
  assert len(res["rows"]) == 2 * 2 * 2 and len(res["cells"]) == 4
  # Each seed its own labeled subset.
  a = np.load(tmp_path / "labels_4" / "seed_0" / "labeled_indices.npy")
  b = np.load(tmp_path / "labels_4" / "seed_1" / "labeled_indices.npy")
  assert len(a) == 4 and not np.array_equal(np.sort(a), np.sort(b))
  for f in ("results.csv", "results.json", "table.md", "error_vs_labels.png"):
    assert (tmp_path / f).stat().st_size > 0
  assert (tmp_path / "labels_8" / "seed_1" / "curves.png").exists()
  md = (tmp_path / "table.md").read_text()
  assert "| 4 |" in md and "1 ± 1" in md
  # Every run is listed with the machine it recorded when it started.
  here = machine.short(machine.describe())
  recorded = json.loads((tmp_path / "labels_4" / "seed_1" / "data.json").read_text())["machine"]
  assert machine.short(recorded) == here and {r["machine"] for r in res["rows"]} == {here}
  for n, s in [(4, 0), (4, 1), (8, 0), (8, 1)]:
    assert f"| {n} | {s} | " in md.split("**Per seed**")[1]
  cell = next(c for c in res["cells"] if c["labels"] == 4 and c["mode"] == "sgan")
  errs = [r["test_err"] for r in res["rows"] if r["labels"] == 4 and r["mode"] == "sgan"]
  assert cell["test_err_mean"] == pytest.approx(np.mean(errs))
  # Rerun: every cell is read back, nothing retrained, same numbers.
  logs.clear()
  again = tables.run_table(TABLE, cfg, [0, 1], str(tmp_path), dataset=blobs(), log=logs.append)
  assert sum("done, read back" in line for line in logs) == 4
  assert again["cells"] == res["cells"]
  # A larger budget continues the runs from their checkpoints.
  logs.clear()
  more = tables.run_table(TABLE, cfg, [0], str(tmp_path), epochs=2, dataset=blobs(),
                          log=logs.append, labels=[4])
  assert any("resumed from" in line and "epoch 1" in line for line in logs)
  assert {r["epochs"] for r in more["rows"]} == {2}


def test_cell_config_uses_per_class_when_it_can_and_a_total_otherwise():
  even = tables.cell_config(tiny_config(), 20, 10, 3, None)
  assert (even.labels_per_class, even.num_labeled, even.data_seed) == (2, None, 3)
  odd = tables.cell_config(tiny_config(), 25, 10, 3, 7)
  assert (odd.labels_per_class, odd.label_rate, odd.num_labeled, odd.epochs) == (None, None, 25, 7)


def test_one_subset_table_varies_only_the_training_seed(tmp_path):
  cfg = tiny_config(epochs=1, val_size=16)
  res = tables.run_table(TABLE, cfg, [0, 1], str(tmp_path), dataset=blobs(), log=lambda s: None,
                         labels=[4], data_seed=5)
  a, b = (np.load(tmp_path / "labels_4" / f"seed_{s}" / "labeled_indices.npy") for s in (0, 1))
  np.testing.assert_array_equal(a, b)
  assert "one subset: data_seed=5" in res["title"] and "one subset" in (tmp_path / "table.md").read_text()
  cell = tables.cell_config(cfg, 4, 4, 1, None, data_seed=5)
  assert (cell.seed, cell.data_seed) == (1, 5)
  ra, rb = (json.loads((tmp_path / "labels_4" / f"seed_{s}" / "summary.json").read_text())
            for s in (0, 1))
  assert ra["data_seed"] == rb["data_seed"] == 5 and (ra["seed"], rb["seed"]) == (0, 1)


def test_cell_fields_are_exactly_what_a_cell_overrides():
  # The CLI refuses --set on CELL_FIELDS; any other field must reach the cell unchanged.
  bases = [tiny_config(seed=0, data_seed=0, labels_per_class=2),
           tiny_config(seed=9, data_seed=5, labels_per_class=None, label_rate=0.5),
           tiny_config(seed=4, data_seed=8, labels_per_class=None, num_labeled=30)]
  for k in tables.CELL_FIELDS:  # the bases differ in every one of them
    assert len({getattr(b, k) for b in bases}) > 1, k
  cells = [tables.cell_config(b, 20, 10, 3, None) for b in bases]
  assert cells[0] == cells[1] == cells[2]
  c = tiny_config(lr=1e-2, epochs=5, val_size=32)
  cell = tables.cell_config(c, 20, 10, 3, None)
  assert (cell.lr, cell.epochs, cell.val_size) == (1e-2, 5, 32)


def test_uneven_label_count_runs_a_balanced_cell(tmp_path):
  table = tables.Table(name="t5", title="tiny", labels=(5,), published={}, source="nowhere",
                       modes=("sgan",))
  res = tables.run_table(table, tiny_config(epochs=1, val_size=16), [0], str(tmp_path),
                         dataset=blobs(), log=lambda s: None)
  idx = np.load(tmp_path / "labels_5" / "seed_0" / "labeled_indices.npy")
  y = blobs().y_train[idx]
  assert len(idx) == 5 and sorted(np.bincount(y, minlength=4).tolist()) == [1, 1, 1, 2]
  assert res["rows"][0]["labels"] == 5


# Both configs take the same path (32x32 conv pair, tfds source); CIFAR-10's run is the
# slower one and stays in the slow set.
# ~25 s each (the 32x32 conv pair compiles); the TFDS source itself: tests/test_data.py.
@pytest.mark.parametrize("name", [pytest.param("cifar10_fm", marks=pytest.mark.slow),
                                  pytest.param("svhn_fm", marks=pytest.mark.slow)])
def test_cifar_svhn_configs_run_end_to_end_on_tfds_mock_data(name, tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")
  table, cfg = configs.load_table(name)
  # The real architecture at a reduced width and a few iterations: the data path, the
  # config's model and objectives, selection and the table outputs, not accuracy.
  cfg = cfg.replace(labels_per_class=2, val_size=20, epochs=1, iters_per_epoch=1, batch_size=8,
                    d_width=4, g_width=4, init_examples=16, num_devices=1, eval_every=1,
                    checkpoint_every=1)
  with tfds.testing.mock_data(num_examples=60):
    res = tables.run_table(table, cfg, [0], str(tmp_path), labels=[20], log=lambda s: None)
  assert res["cells"][0]["labels"] == 20 and 0 <= res["rows"][0]["test_err"] <= 1
  summary = json.load(open(tmp_path / "labels_20" / "seed_0" / "summary.json"))
  assert summary["dataset"] == cfg.dataset and summary["num_val"] == 20


def test_run_table_cli_reports_unknown_table():
  r = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "run_table.py"), "nope"],
                     capture_output=True, text=True, cwd=ROOT)
  assert r.returncode == 2 and "mnist_fm_table" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("name", ["mnist_fm_table", "mnist_odena_table", "cifar10_fm", "svhn_fm",
                                  "mnist_badgan", "mnist_wgan", "mnist_cond"])
def test_table_configs_build_their_models(name):
  import jax
  import jax.numpy as jnp
  from sgan_jax import train
  table, cfg = configs.load_table(name)
  shape = (32, 32, 3) if cfg.dataset in ("cifar10", "svhn_cropped") else (28, 28, 1)
  m = state_lib.build_models(cfg, shape, 10, 600)
  d = jax.eval_shape(lambda: m.disc.init({"params": jax.random.key(0), "noise": jax.random.key(1)},
                                          jnp.zeros((2, *shape)), train=False))
  assert jax.tree.leaves(d)
  for n in table.labels:
    tables.cell_config(cfg, n, 10, 1, None)  # every cell is a valid config


def test_selected_within_budget_follows_trainings_rule():
  recs = [{"epoch": e, "val_err": v, "test_err": t}
          for e, v, t in [(1, .5, .6), (2, .3, .4), (3, .3, .2), (4, .1, .1)]]
  assert reports.selected_within(recs, 3)["epoch"] == 2  # ties: the first, as train() keeps
  assert reports.selected_within(recs, 4)["epoch"] == 4
  assert reports.selected_within(recs[:2], 3) is None  # the run never reached the budget
  # eval_every=2: no evaluation at epoch 3, where a 3-epoch run would have evaluated.
  assert reports.selected_within([recs[1], recs[3]], 3) is None


def test_train_seconds_to_a_budget():
  recs = [{"epoch": 1, "step": 10, "wall_s": 30.0, "it_per_s": None},
          {"epoch": 2, "step": 20, "wall_s": 9.0, "it_per_s": 2.0}]  # a resumed process
  assert reports.train_seconds_to(recs, 2) == 10.0  # steps over steady-state speed
  assert reports.train_seconds_to(recs, 1) == 30.0  # first chunk only: its wall time
  assert np.isnan(reports.train_seconds_to([{"epoch": 1, "step": 10}], 1))


def test_seconds_per_epoch_is_the_median_within_one_process():
  recs = [{"epoch": 1, "wall_s": 40.0},  # compilation included
          {"epoch": 2, "wall_s": 50.0},
          {"epoch": 3, "wall_s": 90.0},   # slowed by other work
          {"epoch": 4, "wall_s": 45.0},   # a resumed process: compilation, wall_s restarted
          {"epoch": 5, "wall_s": 57.0},
          {"epoch": 7, "wall_s": 79.0},   # eval_every=2
          {"epoch": 8, "wall_s": 90.0}]
  assert reports.seconds_per_epoch(recs) == 11.0  # median of 10, 40, 12, 11, 11
  assert reports.seconds_per_epoch(recs[:1]) is None
  assert reports.seconds_per_epoch(recs[2:4]) is None


def test_shorter_budget_of_a_constant_lr_run_is_the_shorter_run():
  from sgan_jax import data, train
  ds = blobs()
  cfg = tiny_config(epochs=5, lr_decay_epochs=0)
  sp = data.make_splits(ds, labels_per_class=2, label_rate=None, val_size=16, data_seed=1)
  long = train.train(cfg, sp, log=lambda s: None)
  short = train.train(cfg.replace(epochs=3), sp, log=lambda s: None)
  sel = reports.selected_within(long["history"], 3)
  assert sel["test_err"] == short["summary"]["selected_test_err"]
  assert sel["epoch"] == short["summary"]["best_val_epoch"]
  assert reports.selected_within(long["history"], 5)["test_err"] == long["summary"]["selected_test_err"]


def test_report_at_budget_reads_runs_of_different_lengths(tmp_path):
  """Runs of 3 and 2 epochs reported at a 2-epoch budget: the 3-epoch run counts as the
  2-epoch run it contains (selection within its first 2 epochs); nothing is trained."""
  cfg = tiny_config(epochs=2, val_size=16, lr_decay_epochs=0)
  tables.run_table(TABLE, cfg, [0], str(tmp_path), dataset=blobs(), log=lambda s: None, labels=[4])
  tables.run_table(TABLE, cfg, [0], str(tmp_path), epochs=3, dataset=blobs(), log=lambda s: None,
                   labels=[8])
  before = sorted(p.name for p in (tmp_path / "labels_8" / "seed_0").iterdir())
  logs = []
  res = reports.report_at_budget(TABLE, str(tmp_path), [0], 2, log=logs.append)
  assert sorted(p.name for p in (tmp_path / "labels_8" / "seed_0").iterdir()) == before
  recs = [json.loads(l) for l in open(tmp_path / "labels_8" / "seed_0" / "metrics_sgan.jsonl")]
  assert len(recs) == 3
  row = next(r for r in res["rows"] if r["labels"] == 8 and r["mode"] == "sgan")
  assert row["test_err"] == reports.selected_within(recs, 2)["test_err"] and row["epochs"] == 2
  assert row["final_test_err"] == next(r for r in recs if r["epoch"] == 2)["test_err"]
  md = (tmp_path / "budget_2" / "table.md").read_text()
  assert "2-epoch budget" in md and "| 4 |" in md and "| 8 |" in md
  # The unselected last epoch in its own column, from the same rows.
  assert "SGAN (ours), last epoch" in md
  cell8 = next(c for c in res["cells"] if c["labels"] == 8 and c["mode"] == "sgan")
  assert cell8["final_test_err_mean"] == row["final_test_err"]
  line8 = md.split("| 8 |")[1].splitlines()[0]
  assert line8.split("|")[2].strip() == table_text._fmt(cell8, TABLE.unit, "final_test_err")
  # One seed: its value alone, no "± 0" standing for a spread nobody measured.
  assert "±" not in line8
  assert line8.split("|")[2].strip() == table_text._value(row["final_test_err"], TABLE.unit,
                                                             cell8["num_test"])
  assert (tmp_path / "budget_2" / "error_vs_labels.png").stat().st_size > 0
  # A budget no run reached is an error; a run shorter than it is skipped by name.
  with pytest.raises(SganError, match="reached epoch 4"):
    reports.report_at_budget(TABLE, str(tmp_path), [0], 4, log=logs.append)
  res3 = reports.report_at_budget(TABLE, str(tmp_path), [0], 3, log=logs.append)
  assert {r["labels"] for r in res3["rows"]} == {8}
  assert any("labels_4" in line and "trained for 2 epochs" in line for line in logs)


def test_report_at_budget_reads_unfinished_runs_and_checks_their_test_sets(tmp_path):
  """A run still training (no summary.json) is reported from the data.json it wrote at
  its start; a run recording neither file, or cells on different test sets, is an error."""
  cfg = tiny_config(epochs=2, val_size=16, lr_decay_epochs=0)
  tables.run_table(TABLE, cfg, [0, 1], str(tmp_path), dataset=blobs(), log=lambda s: None,
                   labels=[4])
  runs = [tmp_path / "labels_4" / f"seed_{s}" for s in (0, 1)]
  data_json = json.loads((runs[0] / "data.json").read_text())
  summary = json.loads((runs[0] / "summary.json").read_text())
  assert data_json == {k: v for k, v in summary.items() if k in data_json}
  assert data_json["num_test"] == len(blobs().y_test)
  full = reports.report_at_budget(TABLE, str(tmp_path), [0, 1], 2, labels=[4])
  (runs[1] / "summary.json").unlink()  # seed 1 as it stood while training
  res = reports.report_at_budget(TABLE, str(tmp_path), [0, 1], 2, labels=[4])
  assert res["rows"] == full["rows"]
  (runs[1] / "data.json").unlink()  # a run from before data.json, unfinished
  with pytest.raises(SganError, match=r"\(labels, seed\) \[\(4, 1\)\] record no test-set size"):
    reports.report_at_budget(TABLE, str(tmp_path), [0, 1], 2, labels=[4])
  (runs[1] / "data.json").write_text(json.dumps({**data_json, "num_test": 7}))
  with pytest.raises(SganError, match="different sizes"):
    reports.report_at_budget(TABLE, str(tmp_path), [0, 1], 2, labels=[4])


def test_report_at_budget_reads_runs_without_a_validation_split(tmp_path):
  """val_size=0 (the papers' protocol): the row at a budget is that epoch's model, as the
  table run reports its final model, and the selection is named for it."""
  cfg = tiny_config(epochs=3, val_size=0, lr_decay_epochs=0)
  full = tables.run_table(TABLE, cfg, [0], str(tmp_path), dataset=blobs(), log=lambda s: None,
                          labels=[4])
  assert {r["selection"] for r in full["rows"]} == {"final model (no validation split)"}
  key = lambda r: (r["mode"], r["test_err"], r["final_test_err"], r["best_val_err"],
                   r["best_val_epoch"], r["epochs"], r["selection"])
  res = reports.report_at_budget(TABLE, str(tmp_path), [0], 3, labels=[4])
  assert sorted(map(key, res["rows"])) == sorted(map(key, full["rows"]))
  # table.md names the final model, without a last-epoch column that would repeat it.
  md = (tmp_path / "budget_3" / "table.md").read_text()
  assert "final model (no validation split), reported on test" in md, md
  assert "selected on validation" not in md and "last epoch" not in md, md
  assert "SGAN final model | vs published band |" in md, md
  run = tmp_path / "labels_4" / "seed_0"
  recs = rundir.read_jsonl(str(run / "metrics_sgan.jsonl"))
  rows, missing = reports.run_rows_at(TABLE, str(run), 4, 0, 2)
  sgan = next(r for r in rows if r["mode"] == "sgan")
  assert sgan["test_err"] == sgan["final_test_err"] == recs[1]["test_err"] and not missing
  (run / "metrics_sgan.jsonl").write_text(
      "".join(json.dumps(r) + "\n" for r in recs if r["epoch"] != 2))
  _, missing = reports.run_rows_at(TABLE, str(run), 4, 0, 2)
  assert missing == [f"{run} (sgan): no evaluation at epoch 2 (reached epoch 3, "
                     "evaluating every 1)"]


def test_run_table_cli_checks_seeds_labels_and_budgets(capsys):
  for args, match in ((["--seeds", "1,a"], "--seeds must be comma-separated integers"),
                      (["--seeds", "1,2,1"], "--seeds lists a value twice"),
                      (["--labels", "0,100"], "--labels must be >= 1"),
                      (["--epochs", "0"], "--epochs must be at least 1 epoch"),
                      (["--report_budget", "0"], "--report_budget must be at least 1 epoch"),
                      # Each cell sets these itself: a --set would be silently undone.
                      (["--set", "data_seed=1"], "--set data_seed: each table cell sets these"),
                      (["--set", "seed=4", "--set", "labels_per_class=5"],
                       "--set seed, labels_per_class: each table cell sets these")):
    # Refused before any data is loaded or anything trains (mnist is not available here).
    assert cli.main(["table", "mnist_fm_table", *args]) == 2, args
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err, (args, err)


def test_report_at_budget_refuses_decaying_schedules(tmp_path):
  cfg = tiny_config(epochs=2, val_size=16, lr_decay_epochs=1)
  tables.run_table(TABLE, cfg, [0], str(tmp_path), dataset=blobs(), log=lambda s: None, labels=[4])
  with pytest.raises(SganError, match="decays its learning rate"):
    reports.report_at_budget(TABLE, str(tmp_path), [0], 1, labels=[4])


def test_published_cells_are_parsed_for_the_plot():
  t = tables.Table(name="p", title="p", labels=(20, 100, 1000),
                   published={20: "1677 ± 452", 100: "93 ± 6.5", 1000: "SGAN better"},
                   source="s", modes=("sgan",), unit="errors")
  pub = table_text.published_errors(t, 10000)
  assert set(pub) == {20, 100}  # the cell in words is left out
  assert pub[100] == pytest.approx((0.93, 0.065))
  pct = tables.Table(name="q", title="q", labels=(4,), published={4: "18.63 ± 2.32"},
                     source="s", modes=("sgan",), unit="%")
  assert table_text.published_errors(pct, 10000)[4] == pytest.approx((18.63, 2.32))
  # 93 ± 6.5 errors of 10,000: 86.5-99.5 is the band.
  assert [table_text.band_position(e / 1e4, pub[100]) for e in (86, 87, 93, 99, 100)] == [
      "below", "inside", "inside", "inside", "above"]


def test_epochs_text_names_the_modes_only_when_their_epochs_differ():
  sgan, sup = {"mode": "sgan", "epochs": [300]}, {"mode": "supervised", "epochs": [10]}
  assert table_text.epochs_text([sup, sgan]) == "SGAN 300, supervised-only 10"
  assert table_text.epochs_text([sgan, dict(sup, epochs=[300])]) == "300"
  assert table_text.epochs_text([{"mode": "sgan", "epochs": [20, 300]}]) == "20/300"


def test_merge_takes_each_cell_from_its_own_report(tmp_path):
  """A 4-label cell at 1 epoch and an 8-label cell at 2 epochs, from two roots, in one
  table: rows copied unchanged, each cell's budget in the epochs column; the sources, a
  folder that is not a merge, a missing cell and a foreign table are refused."""
  cfg = tiny_config(epochs=1, val_size=16, lr_decay_epochs=0)
  short = tables.run_table(TABLE, cfg, [0], str(tmp_path / "a"), dataset=blobs(),
                           log=lambda s: None, labels=[4])
  long = tables.run_table(TABLE, cfg, [0], str(tmp_path / "b"), epochs=2, dataset=blobs(),
                          log=lambda s: None, labels=[8])
  out = tmp_path / "merged"
  res = reports.merge_results(TABLE, [(8, str(tmp_path / "b")), (4, str(tmp_path / "a"))], str(out))
  assert res["labels"] == [4, 8]
  assert sorted(res["rows"], key=lambda r: (r["labels"], r["mode"])) == sorted(
      short["rows"] + long["rows"], key=lambda r: (r["labels"], r["mode"]))
  md = (out / "table.md").read_text()
  assert "| 4 |" in md and md.split("| 4 |")[1].splitlines()[0].rstrip().endswith("| 1 | 1 |")
  # A report written before rows carried their speed gets it from the run's metrics.
  timed = [r["s_per_epoch"] for r in long["rows"]]
  assert all(t is not None and t > 0 for t in timed)
  old = json.loads((tmp_path / "b" / "results.json").read_text())
  for r in old["rows"]:
    del r["s_per_epoch"], r["machine"]
  (tmp_path / "b" / "results.json").write_text(json.dumps(old))
  again = reports.merge_results(TABLE, [(8, str(tmp_path / "b"))], str(tmp_path / "m0"))
  assert [r["s_per_epoch"] for r in again["rows"]] == timed
  assert {r["machine"] for r in again["rows"]} == {machine.short(machine.describe())}
  assert md.split("| 8 |")[1].splitlines()[0].rstrip().endswith("| 1 | 2 |")
  assert "(epochs per cell: 4 labels: 1; 8 labels: 2)" in md and (out / "error_vs_labels.png").stat().st_size > 0
  # Rewriting an earlier merge is fine; a source or a table root is never overwritten.
  reports.merge_results(TABLE, [(4, str(tmp_path / "a"))], str(out))
  before = (tmp_path / "a" / "results.json").read_text()
  with pytest.raises(SganError, match="one of the sources"):
    reports.merge_results(TABLE, [(4, str(tmp_path / "a"))], str(tmp_path / "a"))
  with pytest.raises(SganError, match="not a merge"):
    reports.merge_results(TABLE, [(8, str(tmp_path / "b"))], str(tmp_path / "a"))
  assert (tmp_path / "a" / "results.json").read_text() == before
  with pytest.raises(SganError, match="no 8-label cell"):
    reports.merge_results(TABLE, [(8, str(tmp_path / "a"))], str(tmp_path / "m2"))
  with pytest.raises(SganError, match="given twice"):
    reports.merge_results(TABLE, [(4, str(tmp_path / "a")), (4, str(tmp_path / "a"))], str(tmp_path / "m2"))
  with pytest.raises(SganError, match="Cannot read"):
    reports.merge_results(TABLE, [(4, str(tmp_path / "nowhere"))], str(tmp_path / "m2"))
  other = tables.Table(name="u", title="u", labels=(4,), published={}, source="s")
  with pytest.raises(SganError, match="is table 't', not 'u'"):
    reports.merge_results(other, [(4, str(tmp_path / "a"))], str(tmp_path / "m2"))


def test_a_column_runs_alone_and_merges_beside_the_other(tmp_path):
  """``modes=["supervised"]`` trains only that column: into its own folder (merged with the
  SGAN runs of another, per (mode, seed), the same row twice refused) or into the SGAN
  runs' folder, whose summary keeps the SGAN column."""
  cfg = tiny_config(epochs=1, val_size=16, lr_decay_epochs=0)
  quiet = lambda s: None
  sg = tables.run_table(TABLE, cfg, [0, 1], str(tmp_path / "a"), dataset=blobs(), log=quiet,
                        labels=[4], modes=["sgan"])
  assert {r["mode"] for r in sg["rows"]} == {"sgan"}
  sup = tables.run_table(TABLE, cfg, [0, 1], str(tmp_path / "c"), dataset=blobs(), log=quiet,
                         labels=[4], modes=["supervised"])
  assert {r["mode"] for r in sup["rows"]} == {"supervised"}
  assert not (tmp_path / "c" / "labels_4" / "seed_0" / "metrics_sgan.jsonl").exists()
  res = reports.merge_results(TABLE, [(4, str(tmp_path / "a")), (4, str(tmp_path / "c"))],
                              str(tmp_path / "m"))
  assert sorted((r["mode"], r["seed"]) for r in res["rows"]) == [
      ("sgan", 0), ("sgan", 1), ("supervised", 0), ("supervised", 1)]
  md = (tmp_path / "m" / "table.md").read_text().split("| 4 |")[1].splitlines()[0]
  assert md.count(" ± ") == 4  # SGAN, supervised-only, the SGAN's last epoch, published
  with pytest.raises(SganError, match="seed 0 is given twice"):
    reports.merge_results(TABLE, [(4, str(tmp_path / "a")), (4, str(tmp_path / "a"))],
                          str(tmp_path / "m2"))
  # Into the SGAN runs' own folder: the SGAN column is read back, not lost or retrained.
  before = (tmp_path / "a" / "labels_4" / "seed_0" / "metrics_sgan.jsonl").read_text()
  both = tables.run_table(TABLE, cfg, [0], str(tmp_path / "a"), dataset=blobs(), log=quiet,
                          labels=[4], modes=["supervised"])
  summary = json.loads((tmp_path / "a" / "labels_4" / "seed_0" / "summary.json").read_text())
  assert {"sgan", "supervised"} <= set(summary) and [r["mode"] for r in both["rows"]] == ["supervised"]
  assert (tmp_path / "a" / "labels_4" / "seed_0" / "metrics_sgan.jsonl").read_text() == before
  with pytest.raises(SganError, match="not one of them"):
    tables.run_table(tables.Table(name="t", title="t", labels=(4,), published={}, source="s",
                                  modes=("sgan",)),
                     cfg, [0], str(tmp_path / "x"), dataset=blobs(), log=quiet, modes=["supervised"])


def test_run_table_cli_merge_arguments_are_checked(tmp_path, capsys):
  assert cli.main(["table", "mnist_fm_table", "--merge", "200=x"]) == 2
  assert "--workdir" in capsys.readouterr().err
  assert cli.main(["table", "mnist_fm_table", "--merge", "two=x", "--workdir", str(tmp_path)]) == 2
  assert "expected N=DIR" in capsys.readouterr().err


def test_result_scripts_refuse_bad_arguments_without_a_traceback(tmp_path, capsys):
  import curve_table
  import plot_curves
  import tabular_benchmark
  assert plot_curves.main([str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "x.png")]) == 2
  assert "pass metrics_<mode>.jsonl files" in capsys.readouterr().err
  (tmp_path / "empty.jsonl").write_text("")
  assert plot_curves.main([str(tmp_path / "empty.jsonl"), "--out", str(tmp_path / "x.png")]) == 2
  assert "no records" in capsys.readouterr().err
  (tmp_path / "m.jsonl").write_text(json.dumps({"mode": "sgan", "epoch": 1, "test_err": .1}) + "\n")
  for band in ("0.9", "x,1", "0.9,-1"):
    assert plot_curves.main([str(tmp_path / "m.jsonl"), "--band", band,
                             "--out", str(tmp_path / "x.png")]) == 2
    assert "--band takes MEAN,STD" in capsys.readouterr().err
  assert plot_curves.main([f"own subset={tmp_path / 'm.jsonl'}", "--band", "0.9,0.042",
                           "--out", str(tmp_path / "x.png")]) == 0
  assert (tmp_path / "x.png").stat().st_size > 0
  assert curve_table.main([str(tmp_path / "missing.jsonl")]) == 2
  assert "No such file" in capsys.readouterr().err
  for args, match in ((["--datasets", "iris"], "--datasets takes some of"),
                      (["--fractions", "0.1,1.0"], "--fractions takes label fractions in (0, 1)"),
                      (["--fractions", "a"], "--fractions takes"),
                      (["--seeds", "0"], "--seeds and --epochs must be >= 1")):
    with pytest.raises(SystemExit) as e:
      tabular_benchmark.main([*args, "--out", str(tmp_path / "tab")])
    assert e.value.code == 2 and match in capsys.readouterr().err, args
  assert not (tmp_path / "tab").exists()  # refused before writing anything
  # --out holding another script's runs.jsonl: refused, and that file is left as it was.
  (tmp_path / "other").mkdir()
  foreign = json.dumps({"config": "x", "seed": 1}) + "\n"
  (tmp_path / "other" / "runs.jsonl").write_text(foreign)
  with pytest.raises(SystemExit) as e:
    tabular_benchmark.main(["--out", str(tmp_path / "other")])
  err = capsys.readouterr().err
  assert e.value.code == 2 and "lacks the field 'dataset'" in err and "Point --out" in err, err
  assert (tmp_path / "other" / "runs.jsonl").read_text() == foreign


def _fake_run(folder, test_errs, val_errs, cfg):
  os.makedirs(folder)
  with open(os.path.join(folder, "config.json"), "w") as f:
    json.dump(cfg.to_dict(), f)
  with open(os.path.join(folder, "data.json"), "w") as f:
    json.dump({"num_val": int(cfg.val_size)}, f)
  with open(os.path.join(folder, "metrics_sgan.jsonl"), "w") as f:
    for e, (t, v) in enumerate(zip(test_errs, val_errs), 1):
      f.write(json.dumps({"mode": "sgan", "epoch": e, "step": 10 * e, "wall_s": 1.0 * e,
                          "it_per_s": 10.0, "test_err": t, "val_err": v}) + "\n")


def test_compare_runs_gives_selected_last_epoch_and_window_mean_per_group(tmp_path, capsys):
  import compare_runs
  cfg = tiny_config(val_size=16, lr_decay_epochs=0)  # a shorter budget is a prefix of the run
  # Group A: seed 1 selects epoch 2 (lowest validation, first of the ties); epochs past the
  # budget are ignored. Group B: one seed.
  _fake_run(tmp_path / "a" / "seed_1", [.5, .4, .3, .2, .0], [.5, .1, .1, .2, .0], cfg)
  _fake_run(tmp_path / "a" / "seed_2", [.6, .5, .1, .3, .0], [.6, .5, .4, .3, .0], cfg)
  _fake_run(tmp_path / "b" / "seed_7", [.9, .8, .7, .6, .5], [.9, .8, .7, .6, .5], cfg)
  # Group C: no validation split (val_size=0): the budget epoch's model, not the lowest
  # test error (epoch 2).
  _fake_run(tmp_path / "c" / "seed_3", [.5, .1, .3, .2, .0], [None] * 5,
            cfg.replace(val_size=0))
  out = tmp_path / "cmp.md"
  assert compare_runs.main(["--budget", "4", "--window", "2", "--out", str(out),
                            f"A={tmp_path / 'a'}", f"B={tmp_path / 'b'}",
                            f"C={tmp_path / 'c'}"]) == 0
  res = json.loads((tmp_path / "cmp.json").read_text())
  a, b = res["A"], res["B"]
  assert [(r["seed"], r["epoch"], r["test_err"], r["last_test_err"])
          for r in res["C"]["runs"]] == [(3, 4, .2, .2)]
  # Without data.json the config says there was no split; a damaged one skips the run.
  (tmp_path / "c" / "seed_3" / "data.json").unlink()
  assert compare_runs.main(["--budget", "4", "--window", "2", "--out", str(out),
                            f"C={tmp_path / 'c'}"]) == 0
  assert json.loads((tmp_path / "cmp.json").read_text())["C"]["runs"][0]["epoch"] == 4
  (tmp_path / "c" / "seed_3" / "data.json").write_text("{not json")
  capsys.readouterr()
  assert compare_runs.main(["--budget", "4", f"C={tmp_path / 'c'}"]) == 0
  assert "seed_3: unreadable run folder" in capsys.readouterr().err
  assert [(r["seed"], r["epoch"], r["test_err"]) for r in a["runs"]] == [(1, 2, .4), (2, 4, .3)]
  assert [r["last_test_err"] for r in a["runs"]] == [.2, .3]
  assert [r["window_test_err"] for r in a["runs"]] == pytest.approx([.25, .2])
  assert a["test_err_mean"] == pytest.approx(.35) and a["test_err_std"] == pytest.approx(.05)
  assert a["last_test_err_mean"] == pytest.approx(.25)
  assert a["window_test_err_mean"] == pytest.approx(.225)
  assert b["runs"][0]["seed"] == 7 and b["window_test_err_mean"] == pytest.approx(.65)
  assert "mean of the last 2 epochs" in out.read_text()
  # A window longer than the budget is refused with its reason.
  assert compare_runs.main(["--budget", "4", "--window", "5", f"A={tmp_path / 'a'}"]) == 2
  assert "--window must be in [1, --budget]" in capsys.readouterr().err


def test_curate_copies_small_files_only_and_the_table_is_computed_from_them(tmp_path, capsys):
  import curate_table
  cfg = tiny_config(epochs=2, baseline_epochs=1, val_size=16, lr_decay_epochs=0)
  res = tables.run_table(TABLE, cfg, [0, 1], str(tmp_path / "runs"), dataset=blobs(),
                         log=lambda s: None, labels=[4])
  out = tmp_path / "results"
  cur = curate_table.curate(TABLE, str(tmp_path / "runs"), str(out), [4], [0, 1], 2,
                            log=lambda s: None)
  kept = sorted(os.listdir(out / "labels_4" / "seed_0"))
  assert "metrics_sgan.jsonl" in kept and "labeled_indices.npy" in kept and "data.json" in kept
  assert not [f for f in kept if "checkpoint" in f or f.endswith(".msgpack") or f == "samples"]
  key = lambda r: (r["seed"], r["mode"], r["test_err"], r["final_test_err"], r["best_val_epoch"],
                   r["epochs"])  # the baseline at its own 1 epoch, the SGAN at 2
  assert sorted(map(key, cur["rows"])) == sorted(map(key, res["rows"]))
  assert (out / "table.md").exists() and (out / "results.json").exists()
  reports.merge_results(TABLE, [(4, str(out))], str(tmp_path / "merged"))  # mergeable
  with pytest.raises(SganError, match="seed_7 holds no run"):
    curate_table.curate(TABLE, str(tmp_path / "runs"), str(tmp_path / "r2"), [4], [7], 2)
  assert not (tmp_path / "r2").exists()  # nothing copied before the check
  # A finished run shorter than the budget is refused before anything is copied, and
  # told apart from one still training.
  with pytest.raises(SganError, match=r"seed_0 \(sgan\): trained for 2 epochs \(its config's "
                     r"epochs\), fewer than the 3-epoch budget"):
    curate_table.curate(TABLE, str(tmp_path / "runs"), str(tmp_path / "r2"), [4], [0, 1], 3)
  assert not (tmp_path / "r2").exists()
  running = tmp_path / "running"
  shutil.copytree(out / "labels_4" / "seed_0", running)
  conf = json.loads((running / "config.json").read_text())
  (running / "config.json").write_text(json.dumps({**conf, "epochs": 5}))
  _, missing = reports.run_rows_at(TABLE, str(running), 4, 0, 3)
  assert missing[0] == f"{running} (sgan): not finished, reached epoch 2 of 3"
  _, missing = reports.run_rows_at(TABLE, str(running), 4, 0, 6)  # still training, 5 < 6
  assert missing[0] == (f"{running} (sgan): its config trains 5 epochs, fewer than the 6-epoch "
                        "budget (reached epoch 2); read it at a budget of at most 5")
  # A run past the budget without an evaluation at it is named as such, not as unfinished.
  gap = tmp_path / "gap"
  shutil.copytree(out / "labels_4" / "seed_0", gap)
  recs = rundir.read_jsonl(str(gap / "metrics_sgan.jsonl"))
  (gap / "metrics_sgan.jsonl").write_text(
      "".join(json.dumps(r) + "\n" for r in recs if r["epoch"] != 1))
  _, missing = reports.run_rows_at(TABLE, str(gap), 4, 0, 1)
  assert missing == [f"{gap} (sgan): no validation evaluation at epoch 1 (reached epoch 2, "
                     "evaluating every 1)"]
  with pytest.raises(SganError, match="both source and destination"):
    curate_table.curate(TABLE, str(out), str(out), [4], [0], 2)
  args = [str(tmp_path / "runs"), str(tmp_path / "r3"), "--table", "mnist_fm_table",
          "--seeds", "7", "--budget", "2"]
  assert curate_table.main(args + ["--labels", "4"]) == 2
  assert "seed_7 holds no run" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    curate_table.main(args + ["--labels", "x"])
  assert "comma-separated integers" in capsys.readouterr().err


def test_mean_std_shows_no_spread_for_one_run():
  assert table_text.mean_std(1.234, 0.5, 3) == "1.23 ± 0.50"
  assert table_text.mean_std(1.234, 0.0, 1) == "1.23"
  assert table_text.mean_std(-0.5, 0.2, 2, signed=True) == "-0.50 ± 0.20"
  assert table_text.mean_std(0.5, 0.2, 2, signed=True) == "+0.50 ± 0.20"
  assert table_text.mean_std(0.0251, 0.0, 1, lambda v: f"{v * 10000:.0f}") == "251"
