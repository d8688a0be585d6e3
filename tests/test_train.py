"""Training loop: end to end, jit vs eager, determinism, label isolation, multi-device."""

import dataclasses
import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sgan_jax import evaluation
from sgan_jax import guards
from sgan_jax import state as state_lib
from sgan_jax import objectives, step
from sgan_jax import rundir
from sgan_jax import data
from sgan_jax import sharding
from sgan_jax import experiment, train
from sgan_jax.errors import SganError
from tests.helpers import (ADAM_LINEAR, assert_devices_agree, blobs, rig_val_errors, splits_for,
                           tiny_config, tiny_conv_config)


def _np(x):
  if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    x = jax.random.key_data(x)
  return np.asarray(x)


@pytest.mark.parametrize("mode,param", [("sgan", "k"), ("sgan", "k+1"), ("supervised", "k")])
def test_train_end_to_end(mode, param):
  cfg = tiny_config(parameterization=param)
  out = train.train(cfg, splits_for(cfg, blobs()), mode, log=lambda s: None)
  s = out["summary"]
  assert s["steps"] == 6 and len(out["history"]) == 2
  assert 0.0 <= s["final_test_err"] <= 1.0 and 0.0 <= s["selected_test_err"] <= 1.0
  assert all(np.isfinite(v) for v in out["history"][-1].values() if isinstance(v, float))
  assert (out["state"].g_params is None) == (mode == "supervised")


def _fresh(cfg, ds):
  sp = splits_for(cfg, ds)
  m = state_lib.build_models(cfg, sp.x_unl.shape[1:], sp.num_classes, 3)
  st = state_lib.init_state(m, jax.random.key(cfg.seed), jnp.asarray(sp.x_unl[:32]))
  return sp, m, st


@pytest.mark.slow  # ~30 s: op-by-op dispatch compiles every op of the step on its own
def test_train_iteration_jit_matches_eager():
  cfg = tiny_config()
  sp, m, st = _fresh(cfg, blobs())
  xl = jnp.asarray(np.resize(sp.x_lab, (16, *sp.x_lab.shape[1:])))
  yl = jnp.asarray(np.resize(sp.y_lab, (16,)))
  xu, xu2 = jnp.asarray(sp.x_unl[:16]), jnp.asarray(sp.x_unl[16:32])
  obj = objectives.make_objective(cfg)
  eager, me = step.train_iteration(m, obj, st, xl, yl, xu, xu2)
  jitted, mj = jax.jit(lambda s: step.train_iteration(m, obj, s, xl, yl, xu, xu2))(st)
  for a, b in zip(jax.tree.leaves((eager, me)), jax.tree.leaves((jitted, mj))):
    np.testing.assert_allclose(_np(a), _np(b), rtol=2e-5, atol=2e-6)


def test_same_seed_is_bitwise_reproducible():
  cfg = tiny_config()
  ds = blobs()
  a = train.train(cfg, splits_for(cfg, ds), log=lambda s: None)
  b = train.train(cfg, splits_for(cfg, ds), log=lambda s: None)
  for x, y in zip(jax.tree.leaves(a["state"]), jax.tree.leaves(b["state"])):
    np.testing.assert_array_equal(_np(x), _np(y))
  assert [h["test_err"] for h in a["history"]] == [h["test_err"] for h in b["history"]]


def test_labels_of_unlabeled_examples_cannot_influence_training(tmp_path):
  """Relabel most non-labeled training examples: from the dataset to the trained weights,
  everything a run produces must be bitwise unchanged."""
  cfg = tiny_config(val_size=0, baseline=False)
  ds = blobs()
  sp = splits_for(cfg, ds)
  # select_labeled takes each class's first examples in a seeded permutation; an example
  # placed after every chosen one can take any label without changing that choice.
  pos = np.argsort(np.random.RandomState(cfg.data_seed).permutation(len(ds.y_train)))
  late = np.flatnonzero(pos > pos[sp.lab_idx].max())
  assert len(late) > len(ds.y_train) // 2
  y2 = ds.y_train.copy()
  y2[late] = (y2[late] + 1) % ds.num_classes
  ds2 = dataclasses.replace(ds, y_train=y2)
  sp2 = splits_for(cfg, ds2)
  np.testing.assert_array_equal(sp2.lab_idx, sp.lab_idx)
  # The whole pipeline (splits, training, exported weights) sees only the dataset.
  runs = []
  for name, d in (("a", ds), ("b", ds2)):
    wd = tmp_path / name
    runs.append((experiment.train_and_evaluate(cfg, str(wd), d, log=lambda s: None), wd))
  (sa, a), (sb, b) = runs
  for f in ("classifier_sgan.msgpack", "generator.msgpack", "labeled_indices.npy"):
    assert (a / f).read_bytes() == (b / f).read_bytes(), f"{f} depends on hidden labels"
  assert sa["sgan"]["final_test_err"] == sb["sgan"]["final_test_err"]
  # And the splits object exposes no labels for the unlabeled stream at all.
  assert {f.name for f in dataclasses.fields(sp)} >= {"x_unl"}
  assert not [f.name for f in dataclasses.fields(sp) if f.name.startswith("y_unl")]


@pytest.mark.parametrize("make_cfg,side,ch,extra", [(tiny_config, 8, 1, {}),
                                                    pytest.param(tiny_config, 8, 1, {"noise_rng": "hash"},
                                                                 marks=pytest.mark.slow),
                                                    # a batch statistic: global-batch mean
                                                    (tiny_config, 8, 1, {"balance_weight": 1.0}),
                                                    # ~35 s: the MLP cases above keep sharding in the default set
                                                    pytest.param(tiny_conv_config, 16, 3, {},
                                                                 marks=pytest.mark.slow)])
def test_eight_devices_match_one_device(make_cfg, side, ch, extra):
  assert len(jax.devices()) == 8, "conftest fakes 8 CPU devices"
  ds = blobs(side=side, channels=ch)
  results = []
  for n in (1, 8):
    cfg = make_cfg(num_devices=n, epochs=1, iters_per_epoch=3, val_size=0, eps_root=ADAM_LINEAR,
                   **extra)
    results.append(train.train(cfg, splits_for(cfg, ds), log=lambda s: None)["state"])
  one, eight = results
  assert eight.d_params is not None
  assert_devices_agree(one, eight)
  sharding = jax.tree.leaves(eight.d_params)[0].sharding
  assert len(sharding.device_set) == 8


@pytest.mark.parametrize("model,side,ok", [("conv", 8, False), ("conv", 20, False), ("conv", 16, True),
                                           ("dcgan", 6, False), ("dcgan", 8, True)])
def test_image_size_the_conv_models_cannot_take_is_a_clear_error(model, side, ok):
  # Caught in review: 8x8 images reached the conv critic and gave NaN at step 1.
  cfg = tiny_config(model=model, d_width=4, g_width=4)
  if ok:
    state_lib.build_models(cfg, (side, side, 1), 4, 3)
  else:
    with pytest.raises(SganError, match=f"{side}x{side}"):
      state_lib.build_models(cfg, (side, side, 1), 4, 3)


def test_batch_must_divide_across_devices():
  with pytest.raises(SganError, match="does not divide across 8 devices"):
    sharding.make_mesh(0, batch_size=100)
  with pytest.raises(SganError, match="only 8"):
    sharding.make_mesh(9)


def test_lr_schedule_reference_shape():
  sched = state_lib.lr_schedule(0.003, 600, 300, 100)
  assert float(sched(jnp.asarray(0))) == pytest.approx(0.003)
  assert float(sched(jnp.asarray(199 * 600 + 599))) == pytest.approx(0.003)
  assert float(sched(jnp.asarray(250 * 600))) == pytest.approx(0.0015)
  assert float(sched(jnp.asarray(299 * 600))) == pytest.approx(0.00003)


def test_errors_from_outputs_drop_the_fake_column_and_give_rmse():
  out = np.array([[0.0, 2.0, 9.0], [3.0, 1.0, 9.0]])  # K=2 class logits + a large fake logit
  y = np.array([1, 1])
  assert evaluation.errors_from_outputs(out, y, tiny_config(parameterization="k+1")) == 0.5
  assert evaluation.errors_from_outputs(out[:, :2], y, tiny_config()) == 0.5
  # One error per leading index (several models at once).
  np.testing.assert_array_equal(
      evaluation.errors_from_outputs(np.stack([out, out[:, [1, 0, 2]]]), y,
                                tiny_config(parameterization="k+1")), [0.5, 0.5])
  reg = np.array([[1.0, 7.0], [3.0, -7.0]])  # output 0 is the regression head
  assert evaluation.errors_from_outputs(reg, np.zeros(2), tiny_config(task="regression")) == \
      pytest.approx(np.sqrt(5.0))


def test_epoch_indices_tile_labeled_and_permute_unlabeled():
  idx = data.epoch_indices(0, 3, n_lab=10, n_unl=60, iters=6, batch=10)
  assert idx["lab"].shape == (6, 10)
  for row in idx["lab"]:  # each tile is one permutation of the labeled set
    assert sorted(row) == list(range(10))
  assert sorted(idx["unl"].ravel()) == list(range(60))
  assert not np.array_equal(idx["unl"], idx["unl2"])
  np.testing.assert_array_equal(idx["unl"], data.epoch_indices(0, 3, 10, 60, 6, 10)["unl"])


def test_train_and_evaluate_writes_run_folder(tmp_path):
  cfg = tiny_config()
  summary = experiment.train_and_evaluate(cfg, str(tmp_path), blobs(), log=lambda s: None)
  for f in ("config.json", "labeled_indices.npy", "val_indices.npy", "metrics_sgan.jsonl",
            "metrics_supervised.jsonl", "summary.json", "classifier_sgan.msgpack"):
    assert (tmp_path / f).exists(), f
  lab = np.load(tmp_path / "labeled_indices.npy")
  assert len(lab) == 8 and summary["num_labeled"] == 8
  assert json.loads((tmp_path / "config.json").read_text())["seed"] == cfg.seed
  lines = (tmp_path / "metrics_sgan.jsonl").read_text().splitlines()
  assert len(lines) == 2 and "test_err" in json.loads(lines[-1])
  assert summary["selection"] == "best validation epoch"
  assert "supervised" in summary and "sgan" in summary


@pytest.mark.parametrize("model", ["mlp", pytest.param("dcgan", marks=pytest.mark.slow)])
def test_bfloat16_compute_keeps_float32_state(model):
  kw = dict(model=model, d_width=4, g_width=4) if model == "dcgan" else {}
  cfg = tiny_config(compute_dtype="bfloat16", epochs=1, **kw)
  out = train.train(cfg, splits_for(cfg, blobs()), log=lambda s: None)
  st = out["state"]
  for name in ("d_params", "d_opt", "d_avg", "g_params", "g_opt"):
    for leaf in jax.tree.leaves(getattr(st, name)):
      if jnp.issubdtype(leaf.dtype, jnp.floating):
        assert leaf.dtype == jnp.float32, name
  assert np.isfinite(out["history"][-1]["loss_unl"])
  # The discriminator's matrix products really run in bfloat16.
  x = jnp.asarray(blobs().x_test[:8])
  jaxpr = str(jax.make_jaxpr(step.make_predict(out["models"]))(st.d_avg, st.d_frozen, x))
  products = re.findall(r"(\w+)\[[\d,]*\] = (?:dot_general|conv_general_dilated)\[", jaxpr)
  assert products and set(products) == {"bf16"}, f"matrix products in {products}, not bf16"
  # The same weights evaluated in bf16 and f32 give nearly the same logits.
  m32 = state_lib.build_models(cfg.replace(compute_dtype="float32"), (8, 8, 1), 4, 3)
  f32 = step.make_predict(m32)(st.d_avg, st.d_frozen, x)
  bf16 = step.make_predict(out["models"])(st.d_avg, st.d_frozen, x)
  assert bf16.dtype == jnp.float32
  np.testing.assert_allclose(bf16, f32, atol=0.05 * float(jnp.abs(f32).max()) + 1e-3)


def test_chunk_compiles_once_per_run_whatever_the_label_rate():
  step._compiled.cache_clear()
  ds = blobs()
  cfg = tiny_config(epochs=3, val_size=0, labels_per_class=2)
  train.train(cfg, splits_for(cfg, ds), log=lambda s: None)
  chunk = step.compiled(cfg, (8, 8, 1), 4, 3, 3, "sgan", sharding.make_mesh(1, 16)).chunk
  assert chunk._cache_size() == 1  # three epochs, one compilation
  for lpc in (5, 9):  # other label counts: one new shape of the labeled set each, no more
    c2 = cfg.replace(labels_per_class=lpc)
    train.train(c2, splits_for(c2, ds), log=lambda s: None)
  assert chunk._cache_size() == 3
  c3 = cfg.replace(labels_per_class=None, label_rate=0.5)
  sp = splits_for(c3, ds)
  train.train(c3, sp, log=lambda s: None)
  assert chunk._cache_size() == 4


def test_d_wins_warning_fires_on_a_collapsed_unlabeled_loss_only():
  w = guards.d_wins_warning({"loss_unl": 0.0015, "loss_gen": 180.0})
  assert w is not None and "loss_unl=0.0015" in w and "another seed" in w
  assert "set on_d_wins=rollback" in w
  # A run that already rolls back is not told to set it.
  w = guards.d_wins_warning({"loss_unl": 0.0015}, rollback=True)
  assert "set on_d_wins" not in w and "another seed" in w
  for healthy in ({"loss_unl": 0.35}, {"loss_unl": guards.D_WINS_LOSS}, {"loss_unl": float("nan")}, {}):
    assert guards.d_wins_warning(healthy) is None


def test_d_wins_warning_is_logged_when_it_starts_and_after_a_recovery(monkeypatch):
  # Epochs 1-2 and 4 "fail": two warnings (epochs 1 and 4), none repeated while it lasts.
  pattern = iter(["bad", "bad", None, "bad"])
  seen = []
  monkeypatch.setattr(guards, "d_wins_warning", lambda mets, *a: seen.append(mets) or next(pattern))
  cfg = tiny_config(epochs=4, baseline=False)
  lines = []
  train.train(cfg, splits_for(cfg), "sgan", None, lines.append)
  warned = [l for l in lines if "warning:" in l]
  assert [l.split(":")[0] for l in warned] == ["[sgan] epoch 1", "[sgan] epoch 4"]
  assert len(seen) == 4 and all("loss_unl" in m for m in seen)
  # Supervised-only training has no GAN game to lose.
  seen.clear()
  train.train(cfg, splits_for(cfg), "supervised", None, lines.append)
  assert seen == []


def test_progress_eta_follows_the_last_block_speed():
  # 600 iterations in 30 s -> 20 it/s; 10 epochs left -> 6000 iterations -> 5 minutes.
  assert rundir.speed_text(600, 30.0, 10, compiled=False) == "20.0 it/s, ETA 5m00s"
  assert rundir.speed_text(600, 3.0, 10000, compiled=False) == "200.0 it/s, ETA 8h20m"
  assert rundir.speed_text(600, 12.34, 10, compiled=True) == "compiled+ran in 12.3s"


def test_evaluation_reads_the_average_for_validation_and_test():
  import types
  # A predictor that says class 0 for the averaged weights and class 1 for the live ones.
  predict = lambda params, frozen, x: np.tile([[1.0, 0.0]] if params == "avg" else [[0.0, 1.0]],
                                              (len(x), 1))
  st = types.SimpleNamespace(d_avg="avg", d_params="live", d_frozen={})
  zeros = np.zeros((5, 2), np.float32)
  sp = types.SimpleNamespace(x_val=zeros, y_val=np.zeros(5, int), x_test=zeros,
                             y_test=np.zeros(5, int))
  rec = evaluation.evaluate(predict, st, sp, tiny_config())
  assert rec == {"val_err": 0.0, "test_err": 0.0, "test_err_live": 1.0}
  no_val = types.SimpleNamespace(**{**vars(sp), "x_val": zeros[:0], "y_val": np.zeros(0, int)})
  assert evaluation.evaluate(predict, st, no_val, tiny_config())["val_err"] is None


def test_keep_selected_returns_the_selected_epochs_average(monkeypatch):
  """A host copy taken at the selected epoch, unchanged by the epochs after it (which
  donate the state's buffers): epoch 1 of a 2-epoch run (both epochs at full learning
  rate) is what a 1-epoch run ends with."""
  sp = splits_for(tiny_config())
  rig_val_errors(monkeypatch, [0.1, 0.3])
  two = train.train(tiny_config(epochs=2), sp, "sgan", None, lambda s: None, keep_selected=True)
  monkeypatch.undo()
  one = train.train(tiny_config(epochs=1), sp, "sgan", None, lambda s: None)
  assert two["summary"]["best_val_epoch"] == 1
  want = jax.device_get(one["state"].classifier_variables())
  assert jax.tree.structure(two["selected"]) == jax.tree.structure(want)
  for a, b in zip(jax.tree.leaves(two["selected"]), jax.tree.leaves(want)):
    np.testing.assert_array_equal(a, b)
  assert "selected" not in one


def test_read_jsonl_skips_blanks_drops_a_cut_last_line_and_names_damage(tmp_path):
  p = tmp_path / "metrics_sgan.jsonl"
  p.write_text('{"epoch": 1}\n\n{"epoch": 2}\n{"epoch": 3, "te')  # killed during an append
  assert rundir.read_jsonl(str(p)) == [{"epoch": 1}, {"epoch": 2}]
  p.write_text('{"epoch": 1}\n{"epo\n{"epoch": 3}\n')  # damaged before the end: not newer
  with pytest.raises(SganError, match=r"line 2 is not JSON.*damaged"):
    rundir.read_jsonl(str(p))
  assert rundir.read_jsonl(str(tmp_path / "none.jsonl"), missing_ok=True) == []
  with pytest.raises(FileNotFoundError):
    rundir.read_jsonl(str(tmp_path / "none.jsonl"))


def test_append_jsonl_after_a_cut_line_keeps_every_new_record(tmp_path):
  # A resumable benchmark appends after a kill left half a line: the new records must not be
  # glued to the fragment (unreadable, then dropped as the cut line by read_jsonl).
  p = tmp_path / "runs.jsonl"
  p.write_text('{"seed": 1}\n{"seed": 2, "acc')
  rundir.append_jsonl(str(p), [{"seed": 2}])
  rundir.append_jsonl(str(p), [{"seed": 3}])
  assert rundir.read_jsonl(str(p)) == [{"seed": 1}, {"seed": 2}, {"seed": 3}]
  p.write_text('{"seed": 1}')  # a whole record that lost only its newline is kept
  rundir.append_jsonl(str(p), [{"seed": 2}])
  assert p.read_text() == '{"seed": 1}\n{"seed": 2}\n'
  rundir.append_jsonl(str(tmp_path / "new.jsonl"), [{"a": 1}, {"a": 2}])
  assert rundir.read_jsonl(str(tmp_path / "new.jsonl")) == [{"a": 1}, {"a": 2}]
  p.write_text("")  # empty
  rundir.append_jsonl(str(p), [{"seed": 1}])
  assert p.read_text() == '{"seed": 1}\n'
  p.write_text('{"see')  # nothing but a fragment
  rundir.append_jsonl(str(p), [{"seed": 1}])
  assert p.read_text() == '{"seed": 1}\n'
