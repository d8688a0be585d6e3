"""Issue 7's objectives (Wasserstein + GP, Bad-GAN entropy and pull-away), the class-
conditional generator, and the DCGAN-style pair: losses against independent formulas,
and each option training end to end."""

import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sgan_jax import state as state_lib
from sgan_jax import objectives, step
from sgan_jax import data, losses, models, train
from sgan_jax.config import Config
from sgan_jax.errors import SganError
from tests.helpers import (ADAM_LINEAR, assert_devices_agree, blobs, rig_val_errors, splits_for,
                           tiny_config)

RNG = np.random.default_rng(0)


def _lse(a):
  m = a.max(-1, keepdims=True)
  return (m + np.log(np.exp(a - m).sum(-1, keepdims=True)))[:, 0]


@pytest.mark.parametrize("jit", [False, True])
def test_wasserstein_losses_match_formula(jit):
  lu, lf = RNG.normal(size=(7, 4)) * 3, RNG.normal(size=(5, 4)) * 3
  f = jax.jit(losses.d_wasserstein, static_argnums=2) if jit else losses.d_wasserstein
  np.testing.assert_allclose(f(lu, lf, "k"), _lse(lf).mean() - _lse(lu).mean(), rtol=1e-5)
  np.testing.assert_allclose(losses.g_wasserstein(lf), -_lse(lf).mean(), rtol=1e-5)
  # K+1: critic = logsumexp over the K real logits minus the fake logit.
  lu1 = np.concatenate([lu, RNG.normal(size=(7, 1))], 1)
  lf1 = np.concatenate([lf, RNG.normal(size=(5, 1))], 1)
  want = (_lse(lf1[:, :4]) - lf1[:, 4]).mean() - (_lse(lu1[:, :4]) - lu1[:, 4]).mean()
  np.testing.assert_allclose(losses.d_wasserstein(lu1, lf1, "k+1"), want, rtol=1e-5)


def test_gradient_penalty_known_gradient_norms():
  # Linear critic C(x) = x.w: gradient w everywhere, penalty (|w| - 1)^2.
  w = jnp.array([3.0, 4.0])
  x = jnp.asarray(RNG.normal(size=(6, 2)), jnp.float32)
  assert float(losses.gradient_penalty(lambda t: t @ w, x)) == pytest.approx(16.0, rel=1e-5)
  unit = w / 5.0
  assert float(losses.gradient_penalty(lambda t: t @ unit, x)) == pytest.approx(0.0, abs=1e-6)
  # C(x) = |x|^2 / 2 per example on images: gradient x_b, penalty mean (|x_b| - 1)^2.
  imgs = jnp.asarray(RNG.normal(size=(5, 3, 3, 1)), jnp.float32)
  want = np.mean((np.linalg.norm(np.asarray(imgs).reshape(5, -1), axis=1) - 1) ** 2)
  got = jax.jit(lambda t: losses.gradient_penalty(lambda u: 0.5 * jnp.sum(u ** 2, (1, 2, 3)), t))(imgs)
  assert float(got) == pytest.approx(want, rel=1e-5)


def test_interpolate_lies_on_segments():
  a, b = jnp.zeros((50, 2, 2)), jnp.ones((50, 2, 2))
  x = losses.interpolate(jax.random.key(0), a, b)
  eps = np.asarray(x)[:, 0, 0]
  np.testing.assert_allclose(np.asarray(x), np.broadcast_to(eps[:, None, None], x.shape))
  assert 0 <= eps.min() and eps.max() <= 1 and eps.std() > 0.1


def test_conditional_entropy_matches_formula():
  l = RNG.normal(size=(9, 5)) * 2
  p = np.exp(l - _lse(l)[:, None])
  np.testing.assert_allclose(losses.conditional_entropy(l), -(p * np.log(p)).sum(1).mean(),
                             rtol=1e-5)
  assert float(losses.conditional_entropy(jnp.zeros((3, 10)))) == pytest.approx(np.log(10), rel=1e-6)
  assert float(losses.conditional_entropy(jnp.eye(4) * 100)) == pytest.approx(0.0, abs=1e-6)
  # K+1: the fake column does not change the distribution over the K real classes.
  l1 = np.concatenate([l, RNG.normal(size=(9, 1))], 1)
  np.testing.assert_allclose(losses.conditional_entropy(l1, "k+1"),
                             losses.conditional_entropy(l1[:, :5] - l1[:, 5:]), rtol=1e-5)


@pytest.mark.parametrize("jit", [False, True])
def test_class_balance_is_kl_of_the_batch_mean_prediction(jit):
  f = jax.jit(losses.class_balance, static_argnums=1) if jit else losses.class_balance
  l = RNG.normal(size=(9, 5)) * 2
  pbar = np.exp(l - _lse(l)[:, None]).mean(0)
  np.testing.assert_allclose(f(l, "k"), np.sum(pbar * np.log(pbar * 5)), rtol=1e-5)
  prior = np.array([0.1, 0.2, 0.3, 0.25, 0.15])
  np.testing.assert_allclose(f(l, "k", prior), np.sum(pbar * np.log(pbar / prior)), rtol=1e-5)
  # Closed forms: every example sure of one class -> log K whatever each example's
  # confidence says; a batch split evenly over the classes -> 0 although each example is sure.
  assert float(f(jnp.zeros((6, 4)).at[:, 2].set(100.0), "k")) == pytest.approx(np.log(4), rel=1e-5)
  assert float(f(jnp.eye(4) * 100, "k")) == pytest.approx(0.0, abs=1e-6)
  # K+1: the fake column does not change the distribution over the K real classes.
  l1 = np.concatenate([l, RNG.normal(size=(9, 1)) * 3], 1)
  np.testing.assert_allclose(f(l1, "k+1"), f(l1[:, :5] - l1[:, 5:], "k"), rtol=1e-5)


def test_class_balance_gradient_takes_mass_from_the_crowded_class():
  # Three of four examples predict class 0: descending the loss lowers class 0's logits.
  l = jnp.asarray([[3.0, 0, 0], [3.0, 0, 0], [3.0, 0, 0], [0, 3.0, 0]])
  g = np.asarray(jax.grad(losses.class_balance)(l))
  assert (g[:3, 0] > 0).all() and (g[:3, 2] < 0).all()
  assert float(losses.class_balance(l - 0.1 * g)) < float(losses.class_balance(l))


def test_label_prior_is_smoothed_class_frequency():
  np.testing.assert_allclose(losses.label_prior(jnp.array([0, 1, 2, 0, 1, 2]), 3), [1 / 3] * 3,
                             rtol=1e-6)
  p = np.asarray(losses.label_prior(jnp.array([0, 0, 0, 1]), 3))  # class 2 has no label
  np.testing.assert_allclose(p, [4 / 7, 2 / 7, 1 / 7], rtol=1e-6)
  assert float(losses.class_balance(jnp.zeros((2, 3)).at[:, 2].set(50.0), "k", p)) < np.inf


def test_balance_term_uses_the_labeled_set_frequencies_and_changes_the_step():
  cfg = tiny_config(balance_weight=2.0, val_size=0)
  m = state_lib.build_models(cfg, (8, 8, 1), 4, 3)
  m_off = state_lib.build_models(cfg.replace(balance_weight=0.0), (8, 8, 1), 4, 3)
  assert objectives.class_prior(m_off.cfg, jnp.array([0, 1]), 4) is None
  np.testing.assert_allclose(objectives.class_prior(m.cfg, jnp.array([0, 0, 0, 1, 2, 3]), 4),
                             np.array([4, 2, 2, 2]) / 10, rtol=1e-6)
  sp = splits_for(cfg)
  st = state_lib.init_state(m, jax.random.key(0), jnp.asarray(sp.x_unl[:32], jnp.float32) / 255)
  x = jnp.asarray(sp.x_unl[:16], jnp.float32) / 255
  y = jnp.asarray(np.resize(sp.y_lab, 16))

  def one_step(models, prior):
    obj = objectives.make_objective(models.cfg)
    return jax.jit(functools.partial(step.train_iteration, models, obj, prior=prior))(
        st, x, y, x, x)

  off, m_off_mets = one_step(m_off, None)
  uni, m_uni = one_step(m, None)
  skew, m_skew = one_step(m, jnp.array([0.7, 0.1, 0.1, 0.1]))
  assert "loss_bal" not in m_off_mets
  assert float(m_skew["loss_bal"]) > float(m_uni["loss_bal"]) >= 0
  differs = lambda a, b: any(not np.array_equal(u, v) for u, v in
                             zip(jax.tree.leaves(a.d_params), jax.tree.leaves(b.d_params)))
  assert differs(off, uni) and differs(uni, skew)  # the weight and the prior reach D's step


def test_pull_away_matches_double_loop():
  f = RNG.normal(size=(6, 4))
  want = np.mean([(f[i] @ f[j] / np.linalg.norm(f[i]) / np.linalg.norm(f[j])) ** 2
                  for i in range(6) for j in range(6) if i != j])
  np.testing.assert_allclose(losses.pull_away(f), want, rtol=1e-5)
  assert float(losses.pull_away(jnp.eye(3))) == pytest.approx(0.0, abs=1e-7)
  assert float(losses.pull_away(jnp.ones((4, 3)))) == pytest.approx(1.0, rel=1e-5)


def test_conditional_xent_is_supervised_xent_on_requested_classes():
  l, c = RNG.normal(size=(8, 3)), RNG.integers(0, 3, 8)
  want = np.mean(_lse(l) - l[np.arange(8), c])
  np.testing.assert_allclose(losses.conditional_xent(l, c), want, rtol=1e-5)


def test_conditional_generator_uses_class():
  g = models.MLPGenerator((4, 4, 1), (8,), num_classes=3)
  z = jax.random.uniform(jax.random.key(0), (6, 5))
  c = jnp.array([0, 1, 2, 0, 1, 2])
  v = g.init(jax.random.key(1), z, c, train=False)
  a = g.apply(v, z, c, train=False)
  b = g.apply(v, z, (c + 1) % 3, train=False)
  assert a.shape == (6, 4, 4, 1) and not np.allclose(a, b)
  with pytest.raises(ValueError, match="class-conditional"):
    g.apply(v, z, train=False)
  with pytest.raises(ValueError, match="unconditional"):
    models.MLPGenerator((4, 4, 1), (8,)).init(jax.random.key(1), z, c)


def test_stream_batch_norm_normalises_each_stream_alone():
  bn = models.StreamBatchNorm()
  a = jnp.asarray(RNG.normal(size=(4, 3, 3, 2)) + 5, jnp.float32)
  b = jnp.asarray(RNG.normal(size=(4, 3, 3, 2)) * 3, jnp.float32)
  v = bn.init(jax.random.key(0), a, True)
  both, _ = bn.apply(v, jnp.concatenate([a, b]), True, 2, mutable=["batch_stats"])
  ya, _ = bn.apply(v, a, True, 1, mutable=["batch_stats"])
  yb, _ = bn.apply(v, b, True, 1, mutable=["batch_stats"])
  np.testing.assert_allclose(both, jnp.concatenate([ya, yb]), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.asarray(ya).mean((0, 1, 2)), 0.0, atol=1e-5)


def test_dcgan_pair_shapes():
  d = models.DCGANDiscriminator(10, width=4)
  x = jnp.zeros((3, 28, 28, 1))
  v = d.init({"params": jax.random.key(0), "noise": jax.random.key(1)}, x, train=False)
  (logits, feat), _ = d.apply(v, x, train=True, rngs={"noise": jax.random.key(2)},
                              mutable=["batch_stats"])
  assert logits.shape == (3, 11) and feat.shape == (3, 32)
  g = models.DCGANGenerator((28, 28, 1), width=8)
  gv = g.init(jax.random.key(0), jnp.zeros((2, 10)), train=False)
  out = g.apply(gv, jnp.zeros((2, 10)), train=False)
  assert out.shape == (2, 28, 28, 1) and float(out.min()) >= 0 and float(out.max()) <= 1


# The Wasserstein pair and the entropy + pull-away + balance terms are also pinned to
# recorded values in tests/test_trajectories.py.
@pytest.mark.parametrize("kw,extra_metrics", [
    pytest.param(dict(d_objective="wasserstein", g_loss="wasserstein"), {"loss_gp"},
                 marks=pytest.mark.slow),
    (dict(d_objective="wasserstein"), {"loss_gp"}),
    pytest.param(dict(entropy_weight=1.0, pullaway_weight=1.0), {"loss_ent", "loss_pt"},
                 marks=pytest.mark.slow),
    (dict(balance_weight=1.0, parameterization="k+1"), {"loss_bal"}),
    (dict(conditional=True), {"loss_cond"}),
    pytest.param(dict(model="dcgan", d_width=4, g_width=4, parameterization="k+1",
                      conditional=True, g_loss="non_saturating"), {"loss_cond"},
                 marks=pytest.mark.slow),  # ~25 s of conv compiles
])
def test_objectives_train_end_to_end(kw, extra_metrics):
  cfg = tiny_config(**kw)
  out = train.train(cfg, splits_for(cfg), log=lambda s: None)
  last = out["history"][-1]
  assert extra_metrics <= set(last), set(last)
  assert all(np.isfinite(last[k]) for k in extra_metrics | {"loss_gen", "loss_unl", "test_err"})


@pytest.mark.slow  # the conv pair's eight-device case is in the default set
def test_dcgan_eight_devices_match_one():
  ds = blobs()
  states = []
  for n in (1, 8):
    cfg = tiny_config(model="dcgan", d_width=4, g_width=4, parameterization="k+1",
                      num_devices=n, epochs=1, val_size=0, eps_root=ADAM_LINEAR)
    states.append(train.train(cfg, splits_for(cfg, ds), log=lambda s: None)["state"])
  # The critic's per-stream batch norm must use global-batch statistics: d_frozen holds them.
  assert_devices_agree(states[0], states[1], ("d_params", "d_frozen", "g_params", "g_state"))


def test_new_config_values_are_checked():
  with pytest.raises(SganError, match="d_objective"):
    Config(d_objective="wgan")
  with pytest.raises(SganError, match="entropy_weight"):
    Config(entropy_weight=-1.0)
  with pytest.raises(SganError, match="balance_weight"):
    Config(balance_weight=-0.5)
  with pytest.raises(SganError, match="balance_weight > 0 needs class probabilities"):
    Config(balance_weight=1.0, task="regression", pixel_range="none")
  with pytest.raises(SganError, match="batch norm"):
    Config(d_objective="wasserstein", model="dcgan")
  with pytest.raises(SganError, match="conditional"):
    Config(conditional=True, task="regression", pixel_range="none")


@pytest.mark.slow  # ~35 s: a conditional run, then a reference classifier fitted to judge it
def test_conditional_run_exports_labeled_npz_that_loads(tmp_path, monkeypatch):
  from sgan_jax import evaluator, experiment, generate
  cfg = tiny_config(conditional=True, epochs=3, val_size=16)
  rig_val_errors(monkeypatch, [0.5, 0.1, 0.3])  # "best" (epoch 2) is not the last epoch
  ds = blobs()
  wd = str(tmp_path / "run")
  experiment.train_and_evaluate(cfg, wd, ds, log=lambda s: None, modes=["sgan"])
  assert os.path.exists(os.path.join(wd, "samples", "epoch_0003.png"))
  out = str(tmp_path / "synth.npz")
  info = generate.export_labeled(wd, out, per_class=7)
  loaded = data.load_npz(out, num_classes=ds.num_classes)  # the project's own loader
  assert loaded.x_train.shape == (4 * 7, 8, 8, 1) and loaded.num_classes == 4
  np.testing.assert_array_equal(loaded.y_train, np.repeat(np.arange(4), 7))
  assert loaded.x_train.min() >= 0 and loaded.x_train.max() <= 1
  assert os.path.getsize(info["grid"]) > 0
  # The same samples again from the same seed; different ones from another seed.
  m, g_vars = generate.load_generator(wd)
  a, _ = generate.sample_per_class(m, g_vars, 3, seed=0)
  b, _ = generate.sample_per_class(m, g_vars, 3, seed=0)
  c, _ = generate.sample_per_class(m, g_vars, 3, seed=1)
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, c)
  # A reference classifier judges them (accuracy in [0, 1], finite per-class FID).
  ref = evaluator.fit_or_load(ds, str(tmp_path / "ref.msgpack"), epochs=1, log=lambda s: None)
  rep = evaluator.judge_samples(ref, loaded.x_train, loaded.y_train, ds.x_test, ds.y_test, 4)
  assert 0 <= rep["accuracy"] <= 1 and len(rep["per_class"]) == 4
  assert all(np.isfinite(r["fid"]) for r in rep["per_class"])
  lines = []
  again = evaluator.fit_or_load(ds, str(tmp_path / "ref.msgpack"), epochs=1, log=lines.append)
  # Loaded from the cache, not retrained (a tuple/list mismatch once made every call retrain).
  assert any("loaded" in ln for ln in lines) and not any("epoch" in ln for ln in lines), lines
  np.testing.assert_allclose(again.probs(ds.x_test), ref.probs(ds.x_test), rtol=1e-6)
  # A damaged cache (weights cut short, or its metadata) is retrained, not a traceback.
  blob = (tmp_path / "ref.msgpack").read_bytes()
  (tmp_path / "ref.msgpack").write_bytes(blob[:len(blob) // 2])
  lines = []
  evaluator.fit_or_load(ds, str(tmp_path / "ref.msgpack"), epochs=1, log=lines.append)
  assert any("does not match" in ln and "Retraining" in ln for ln in lines), lines
  assert (tmp_path / "ref.msgpack").read_bytes() == blob  # rebuilt, same seeds
  (tmp_path / "ref.msgpack.json").write_text("{not json")
  lines = []
  evaluator.fit_or_load(ds, str(tmp_path / "ref.msgpack"), epochs=1, log=lines.append)
  assert any("not valid JSON; retraining" in ln for ln in lines), lines
  # Valid JSON that is not the cache's metadata (not an object, or a key missing).
  for meta in ("[1, 2]", json.dumps({"config": {}, "shape": [8, 8, 1]})):
    (tmp_path / "ref.msgpack.json").write_text(meta)
    lines = []
    evaluator.fit_or_load(ds, str(tmp_path / "ref.msgpack"), epochs=1, log=lines.append)
    assert any("not a reference classifier's metadata" in ln for ln in lines), (meta, lines)
  # The matching metadata with its test accuracy gone is rebuilt too (it is printed on load).
  meta = json.loads((tmp_path / "ref.msgpack.json").read_text())
  (tmp_path / "ref.msgpack.json").write_text(json.dumps({**meta, "test_acc": None}))
  lines = []
  evaluator.fit_or_load(ds, str(tmp_path / "ref.msgpack"), epochs=1, log=lines.append)
  assert any("not a reference classifier's metadata" in ln for ln in lines), lines
  # Checkpointed generators: the final epoch's equals generator.msgpack; "best" is the
  # epoch selected on validation (summary.json), not the newest.
  m3, g3 = generate.load_generator(wd, "3")
  np.testing.assert_array_equal(generate.sample_per_class(m3, g3, 3, seed=0)[0], a)
  sel = json.load(open(os.path.join(wd, "summary.json")))["sgan"]["best_val_epoch"]
  assert sel == 2
  mb, gb = generate.load_generator(wd, "best")
  ms, gs = generate.load_generator(wd, str(sel))
  best_x = generate.sample_per_class(mb, gb, 3, seed=0)[0]
  np.testing.assert_array_equal(best_x, generate.sample_per_class(ms, gs, 3, seed=0)[0])
  assert not np.array_equal(best_x, a), "'best' gave the last epoch's generator"
  best = generate.export_labeled(wd, str(tmp_path / "best.npz"), per_class=3, checkpoint="best")
  assert data.load_npz(best["npz"], num_classes=4).x_train.shape == (12, 8, 8, 1)
  with pytest.raises(SganError, match="not among the kept checkpoints"):
    generate.load_generator(wd, "7")


def test_export_refuses_unconditional_runs_and_missing_folders(tmp_path):
  from sgan_jax import experiment, generate
  with pytest.raises(SganError, match="no config.json"):
    generate.export_labeled(str(tmp_path), str(tmp_path / "x.npz"), 3)
  wd = str(tmp_path / "run")
  experiment.train_and_evaluate(tiny_config(epochs=1, val_size=0), wd, blobs(), log=lambda s: None,
                                modes=["sgan"])
  with pytest.raises(SganError, match="not class-conditional"):
    generate.export_labeled(wd, str(tmp_path / "x.npz"), 3)


def test_judge_scores_class_ordered_samples_fairly():
  # Exported samples come grouped by class; the Inception Score must not see one class per
  # split (it once did, and reported ~1 for perfect samples).
  from sgan_jax import evaluator

  class OneHotJudge:  # "classifies" a sample by the class id written in its first value
    def _batched(self, x):
      c = x.reshape(len(x), -1)[:, 0].astype(int)
      return np.eye(10)[c], np.eye(10)[c] + 0.01 * x.reshape(len(x), -1)[:, :10]

  y = np.repeat(np.arange(10), 50)
  x = np.random.default_rng(0).random((500, 4, 4, 1))
  x[:, 0, 0, 0] = y
  rep = evaluator.judge_samples(OneHotJudge(), x, y, x, y, 10)
  assert rep["accuracy"] == 1.0
  assert rep["inception_score"] > 9  # ~K (10); random splits of 50 are not exactly balanced
