"""The experiment entry point, run as a user runs it (subprocess)."""

import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAIN = os.path.join(ROOT, "experiments", "main.py")


def run(*args, cwd):
  env = dict(os.environ, PYTHONPATH=ROOT)
  return subprocess.run([sys.executable, MAIN, *args], cwd=cwd, env=env, capture_output=True,
                        text=True, timeout=600)


def sgan_jax(*args, cwd):
  """The installed command (``python -m sgan_jax.cli`` is what ``sgan-jax`` runs), from a
  folder outside the repository and without PYTHONPATH."""
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  return subprocess.run([sys.executable, "-m", "sgan_jax.cli", *args], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=600)


def test_quickstart_config_runs_seeds_and_reports_both(tmp_path):
  # The installed command from a folder outside the repository, with the packaged config.
  r = sgan_jax("train", "--config", "digits", "--set", "epochs=2", "--set", "eval_every=1",
               "--set", "num_devices=1", "--set", "d_hidden=[64,32]", "--set", "g_hidden=[64]",
               "--seeds", "0,1", "--workdir", str(tmp_path / "w"), cwd=tmp_path)
  assert r.returncode == 0, r.stderr
  assert "SGAN: test accuracy" in r.stdout and "supervised-only: test accuracy" in r.stdout
  assert "over 2 seeds" in r.stdout and "ETA" in r.stdout
  agg = json.loads((tmp_path / "w" / "summary.json").read_text())
  assert agg["seeds"] == [0, 1] and len(agg["sgan"]["test_errs"]) == 2
  # each seed has its own labeled subset, recorded
  import numpy as np
  a = np.load(tmp_path / "w" / "seed_0" / "labeled_indices.npy")
  b = np.load(tmp_path / "w" / "seed_1" / "labeled_indices.npy")
  assert len(a) == 30 and not np.array_equal(a, b)


def test_bad_config_key_is_a_clear_error_not_a_traceback(tmp_path):
  r = run("--config", "digits", "--set", "epoch=3", cwd=tmp_path)
  assert r.returncode == 2
  assert "Unknown config key 'epoch'" in r.stderr and "Did you mean 'epochs'" in r.stderr
  assert "Traceback" not in r.stderr


def test_unknown_config_name(tmp_path):
  r = run("--config", "nope", cwd=tmp_path)
  assert r.returncode == 2 and "No config 'nope'" in r.stderr and "digits" in r.stderr


def test_missing_data_file_is_a_clear_error(tmp_path):
  r = run("--config", "mnist_fm", "--set", "dataset=/nonexistent/mnist.npz", cwd=tmp_path)
  assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr


def test_bad_seed_list_is_a_clear_error(tmp_path):
  r = run("--config", "digits", "--seeds", "0,x", cwd=tmp_path)
  assert r.returncode == 2 and "--seeds must be comma-separated integers" in r.stderr
  assert "Traceback" not in r.stderr


def test_seed_overrides_that_would_be_ignored_are_refused(tmp_path):
  # run_seeds sets data_seed = seed per run; a --set of either beside --seeds was dropped.
  for args, match in ((["--set", "data_seed=1"], "--set data_seed: each run's seed picks"),
                      (["--set", "seed=3", "--seeds", "1"], "--set seed: each run's seed picks")):
    r = run("--config", "digits", *args, cwd=tmp_path)
    assert r.returncode == 2 and match in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_console_script_is_declared():
  text = open(os.path.join(ROOT, "pyproject.toml")).read()
  assert 'sgan-jax = "sgan_jax.cli:main"' in text


def test_help_runs_from_any_directory(tmp_path):
  r = sgan_jax("--help", cwd=tmp_path)
  assert r.returncode == 0 and "train" in r.stdout and "table" in r.stdout


def test_command_errors_are_messages(tmp_path, capsys):
  from sgan_jax import cli
  import pytest
  with pytest.raises(SystemExit) as e:  # argparse's own message and status
    cli.main(["fly"])
  assert e.value.code == 2 and "invalid choice: 'fly'" in capsys.readouterr().err
  for args, match in ((["train", "--config", "nope"], "No config 'nope'"),
                      (["train", "--config", str(tmp_path / "missing.py")], "No config file"),
                      (["table", "digits"], "without a TABLE"),
                      (["train", "--set", "learning_rate=0.1"], "Did you mean 'lr'"),
                      (["train", "--set", "second_avg_rate=1e-4"], "was removed")):
    assert cli.main(args) == 2, args
    err = capsys.readouterr().err
    assert err.startswith("error: ") and match in err, (args, err)


def _readme_block(lang, containing):
  blocks = re.findall(rf"```{lang}\n(.*?)```", open(os.path.join(ROOT, "README.md")).read(), re.S)
  return next(b for b in blocks if containing in b)


def _small_images(path, n=500, k=10):
  import numpy as np
  rng = np.random.default_rng(0)
  x, y = rng.integers(0, 256, (n, 8, 8), dtype=np.uint8), np.arange(n) % k
  os.makedirs(os.path.dirname(path), exist_ok=True)
  np.savez(path, x_train=x, y_train=y, x_test=x[:100], y_test=y[:100])
  return x, y


SMALL_MODEL = {"epochs": 1, "iters_per_epoch": 1, "d_hidden": [16], "g_hidden": [16],
               "latent_dim": 8, "init_examples": 50, "num_devices": 1, "baseline": False}


def test_readme_own_data_examples_run_on_small_data(tmp_path, monkeypatch, capsys):
  # The README's own-data command and Python snippet as written, on 500 images, with a small
  # model and one epoch added (val_size=5000 and 1000 used to fail on data this size).
  from sgan_jax import cli
  import shlex
  monkeypatch.chdir(tmp_path)
  x, y = _small_images(str(tmp_path / "path" / "to" / "my_data.npz"))
  argv = shlex.split(_readme_block("bash", "dataset=path/to/my_data.npz").replace("\\\n", " "))
  assert argv[:2] == ["sgan-jax", "train"] and "--workdir" not in argv
  tiny = [a for k, v in SMALL_MODEL.items() for a in ("--set", f"{k}={json.dumps(v)}")]
  assert cli.main(argv[1:] + tiny + ["--seeds", "0"]) == 0, capsys.readouterr().err
  # Named after the data file (and the config), not the config alone.
  assert (tmp_path / "runs" / "my_data_mnist_fm" / "seed_0" / "summary.json").exists()
  # The end of the run says how much disk the folder and its checkpoints take.
  assert re.search(r"runs/my_data_mnist_fm takes [\d.]+ [KM]B on disk, checkpoints [\d.]+ [KM]B",
                   capsys.readouterr().out)
  snippet = _readme_block("python", "experiment.train_and_evaluate")
  assert "epochs=100)" in snippet
  small = ", ".join(f"{k}={tuple(v) if isinstance(v, list) else v!r}" for k, v in SMALL_MODEL.items())
  scope = {"x_train": x, "y_train": y, "x_test": x[:100], "y_test": y[:100]}
  exec(snippet.replace("epochs=100)", small + ")"), scope)
  assert scope["summary"]["num_val"] == 50 and len(scope["agg"]["sgan"]["test_errs"]) == 3
