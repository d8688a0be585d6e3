"""Tabular classification and regression: CSV loading, encoding, errors, end to end."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

from sgan_jax import evaluation
from sgan_jax import step
from sgan_jax import tabular, train
from sgan_jax.errors import SganError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_csv(path, n=120, seed=0, label_frac=0.5, regression=False, drop_target=False):
  rng = np.random.default_rng(seed)
  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["age", "city", "dose"] + ([] if drop_target else ["outcome"]))
    for i in range(n):
      age = rng.normal(50, 10)
      city = ["paris", "lyon", "nice"][i % 3]
      dose = rng.normal(0, 1)
      if regression:
        y = f"{2 * dose + 0.1 * (age - 50):.4f}"
      else:
        y = "sick" if dose + 0.05 * (age - 50) > 0 else "well"
      row = [f"{age:.3f}", city, f"{dose:.4f}"]
      if not drop_target:
        row.append(y if rng.random() < label_frac else "")
      w.writerow(row)
  return path


def test_csv_encoding_and_splits(tmp_path):
  s, pre = tabular.load_table(str(write_csv(tmp_path / "t.csv")), "outcome", seed=0)
  assert pre.task == "classification" and pre.classes == ["sick", "well"]
  assert pre.categorical == {"city": ["lyon", "nice", "paris"]} and pre.dim == 5
  n_lab = len(s.y_lab) + len(s.y_val) + len(s.y_test)
  assert len(s.x_unl) == 120 - len(s.y_val) - len(s.y_test) and 40 < n_lab < 80
  # standardised with training-split statistics: mean 0 / std 1 on x_unl, not on val/test
  np.testing.assert_allclose(s.x_unl[:, [0, 4]].mean(0), 0, atol=1e-5)
  np.testing.assert_allclose(s.x_unl[:, [0, 4]].std(0), 1, atol=1e-4)
  np.testing.assert_array_equal(s.x_unl[:, 1:4].sum(1), 1)  # one-hot city
  np.testing.assert_array_equal(s.x_lab, s.x_unl[s.lab_idx])  # labeled rows are in the stream


def test_regression_target_is_standardised(tmp_path):
  s, pre = tabular.load_table(str(write_csv(tmp_path / "r.csv", regression=True)), "outcome")
  assert pre.task == "regression" and s.y_lab.dtype == np.float32
  # Standardised with the labeled training rows' statistics: mean 0, std 1 there.
  np.testing.assert_allclose(s.y_lab.mean(), 0, atol=1e-5)
  np.testing.assert_allclose(s.y_lab.std(), 1, rtol=1e-4)
  # Decoding gives back the CSV's own values: the labeled training rows' targets.
  _, cols = tabular.read_csv(str(tmp_path / "r.csv"))
  raw = {float(v) for v in cols["outcome"] if v}
  decoded = pre.decode(np.stack([s.y_lab, np.zeros_like(s.y_lab)], 1))
  strays = [float(d) for d in decoded if min(abs(d - r) for r in raw) > 1e-4]
  assert not strays, f"decoded targets not in the CSV: {strays[:3]}"
  assert len({round(float(d), 4) for d in decoded}) == len(s.y_lab)


@pytest.mark.parametrize("edit,match", [
    (lambda rows: rows[3].__setitem__(0, "fifty"), r"Column 'age' line 4 holds 'fifty'.*not a number"),
    (lambda rows: rows[5].__setitem__(2, ""), r"Column 'dose' line 6 is empty"),
    (lambda rows: [r.__setitem__(3, "") for r in rows[1:]], "No labeled rows"),
    (lambda rows: rows[2].append("extra"), "line 3 has 5 fields"),
])
def test_csv_errors(tmp_path, edit, match):
  p = write_csv(tmp_path / "e.csv")
  rows = list(csv.reader(open(p)))
  edit(rows)
  with open(p, "w", newline="") as f:
    csv.writer(f).writerows(rows)
  with pytest.raises(SganError, match=match):
    tabular.load_table(str(p), "outcome")


def _edit_csv(path, edit):
  rows = list(csv.reader(open(path)))
  edit(rows)
  with open(path, "w", newline="") as f:
    csv.writer(f).writerows(rows)
  return path


@pytest.mark.parametrize("line", [41, 219, 250])
def test_errors_name_the_csv_line_wherever_the_row_lands(tmp_path, line):
  # Rows are split into training, validation and test rows; a bad cell is named by its
  # line in the file, not its position in one of the subsets (was: line 41 as "row 37").
  p = _edit_csv(write_csv(tmp_path / "e.csv", n=260),
                lambda rows: rows[line - 1].__setitem__(0, "fifty"))
  with pytest.raises(SganError, match=rf"Column 'age' line {line} holds 'fifty'"):
    tabular.load_table(str(p), "outcome")
  # A blank line and a quoted field over two lines above it: still the file's line.
  text = open(p).read().split("\n")
  text[1:1] = ["", '50.1,"paris', '",0.2,']  # a row whose city spans lines 3-4
  open(p, "w").write("\n".join(text))
  with pytest.raises(SganError, match=rf"Column 'age' line {line + 3} holds 'fifty'"):
    tabular.load_table(str(p), "outcome")


def test_numeric_target_with_a_typo_is_refused_naming_the_cell(tmp_path):
  # --task auto used to make every distinct value of such a column a class.
  p = _edit_csv(write_csv(tmp_path / "r.csv", n=200, label_frac=1.0, regression=True),
                lambda rows: rows[80].__setitem__(3, "unknown"))
  with pytest.raises(SganError, match=r"Target column 'outcome' holds numbers except in 1 of "
                                      r"200 labeled rows \(line 81: 'unknown'\)"):
    tabular.load_table(str(p), "outcome")
  _, pre = tabular.load_table(str(p), "outcome", task="classification")  # as it is, if asked
  assert len(pre.classes) > 100


def test_auto_task_refuses_many_classes_and_single_row_classes(tmp_path):
  p = _edit_csv(write_csv(tmp_path / "c.csv", n=120, label_frac=1.0),
                lambda rows: [r.__setitem__(3, f"id{i}") for i, r in enumerate(rows[1:])])
  with pytest.raises(SganError, match=r"120 distinct values among 120 labeled rows, more than "
                                      r"20 classes"):
    tabular.load_table(str(p), "outcome")
  p = _edit_csv(write_csv(tmp_path / "l.csv", n=120, label_frac=1.0),
                lambda rows: rows[9].__setitem__(3, "rare"))
  with pytest.raises(SganError, match=r"class\(es\) 'rare' \(line 10\) have a single labeled row"):
    tabular.load_table(str(p), "outcome")
  s, pre = tabular.load_table(str(p), "outcome", task="classification")
  assert pre.classes == ["rare", "sick", "well"] and 0 in s.y_lab  # trained on, as asked


def test_missing_target_and_class_without_training_label(tmp_path):
  p = write_csv(tmp_path / "m.csv")
  with pytest.raises(SganError, match="Target column 'result' not found"):
    tabular.load_table(str(p), "result")
  rows = list(csv.reader(open(p)))
  labeled = [i for i, r in enumerate(rows[1:], 1) if r[3]]
  for r in rows[1:]:  # three rows of class "rare": 40% test + 50% validation takes all three
    r[3] = r[3] and "common"
  for i in labeled[:3]:
    rows[i][3] = "rare"
  with open(p, "w", newline="") as f:
    csv.writer(f).writerows(rows)
  with pytest.raises(SganError, match="Class 'rare' has no labeled training row"):
    tabular.load_table(str(p), "outcome", val_fraction=0.5, test_fraction=0.4)


def test_npz_tables(tmp_path):
  x = np.random.default_rng(0).normal(size=(60, 4))
  y = np.where(np.arange(60) % 3 == 0, x[:, 0] * 2, np.nan)
  np.savez(tmp_path / "t.npz", x=x, y=y)
  s, pre = tabular.load_table(str(tmp_path / "t.npz"), "y", task="regression")
  assert pre.dim == 4 and len(s.x_unl) + len(s.y_val) + len(s.y_test) == 60
  np.savez(tmp_path / "bad.npz", x=x)
  with pytest.raises(SganError, match="arrays x"):
    tabular.load_table(str(tmp_path / "bad.npz"), "y")


@pytest.mark.parametrize("regression", [False, True])
def test_fit_and_predict_in_process(tmp_path, regression):
  s, pre = tabular.load_table(str(write_csv(tmp_path / "d.csv", regression=regression)), "outcome")
  cfg = tabular.default_config(pre.task, epochs=3, iters_per_epoch=4, eval_every=1,
                               batch_size=16, d_hidden=(16, 8), g_hidden=(16,), init_examples=32)
  res = tabular.fit(s, pre, cfg, str(tmp_path / "model"), log=lambda line: None)
  for mode in ("sgan", "supervised"):
    assert np.isfinite(res[mode]["selected_test_err"])
  predict, pre2 = tabular.load_predictor(str(tmp_path / "model"))
  _, cols = tabular.read_csv(str(write_csv(tmp_path / "new.csv", n=7, seed=3, drop_target=True)))
  preds = predict(cols)
  assert len(preds) == 7
  if regression:
    assert all(np.isfinite(float(p)) for p in preds)
  else:
    assert set(preds) <= {"sick", "well"}


def test_regression_train_path_reports_rmse(tmp_path):
  s, pre = tabular.load_table(str(write_csv(tmp_path / "r.csv", regression=True)), "outcome")
  cfg = tabular.default_config("regression", epochs=2, iters_per_epoch=3, eval_every=1,
                               batch_size=16, d_hidden=(16,), g_hidden=(16,), init_examples=32)
  out = train.train(cfg, s, "sgan", log=lambda line: None)
  rmse = out["history"][-1]["test_err"]
  pred = evaluation.predict_all(step.make_predict(out["models"]), out["state"].d_avg,
                           out["state"].d_frozen, s.x_test)[:, 0]
  np.testing.assert_allclose(rmse, np.sqrt(np.mean((pred - s.y_test) ** 2)), rtol=1e-5)


def test_cli_fit_then_predict_on_new_csv(tmp_path):
  data = write_csv(tmp_path / "train.csv")
  new = write_csv(tmp_path / "new.csv", n=9, seed=4, drop_target=True)
  env = dict(os.environ, PYTHONPATH=ROOT)
  script = os.path.join(ROOT, "experiments", "tabular.py")
  r = subprocess.run([sys.executable, script, "fit", "--data", str(data), "--target", "outcome",
                      "--out", str(tmp_path / "m"), "--set", "epochs=2", "--set", "eval_every=1",
                      "--set", "d_hidden=[16]", "--set", "g_hidden=[16]"],
                     env=env, capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr
  assert "SGAN: validation accuracy" in r.stdout and "supervised-only: validation accuracy" in r.stdout
  r = subprocess.run([sys.executable, script, "predict", "--model", str(tmp_path / "m"),
                      "--data", str(new), "--out", str(tmp_path / "p.csv")],
                     env=env, capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr
  out = list(csv.DictReader(open(tmp_path / "p.csv")))
  assert len(out) == 9 and all(row["prediction"] in ("sick", "well") for row in out)
  r = subprocess.run([sys.executable, script, "fit", "--data", str(data), "--target", "nope",
                      "--out", str(tmp_path / "x")], env=env, capture_output=True, text=True)
  assert r.returncode == 2 and "Target column 'nope' not found" in r.stderr
