"""Small synthetic data and configs shared by tests (no downloads, seconds to run)."""

import jax
import numpy as np

from sgan_jax import data
from sgan_jax.config import Config


def blobs(n=160, k=4, side=8, channels=1, seed=0, n_test=40):
  """k classes of images, class c has a bright patch in position c; uint8."""
  rng = np.random.default_rng(seed)

  def make(m):
    y = np.arange(m) % k
    rng.shuffle(y)
    x = rng.integers(0, 60, size=(m, side, side, channels))
    half = side // 2
    for i, c in enumerate(y):
      r, q = divmod(c % 4, 2)
      x[i, r * half:(r + 1) * half, q * half:(q + 1) * half] += 180
    return np.clip(x, 0, 255).astype(np.uint8), y

  xtr, ytr = make(n)
  xte, yte = make(n_test)
  return data.from_arrays(xtr, ytr, xte, yte, name="blobs")


def splits_for(cfg: Config, ds=None) -> data.Splits:
  """The splits a run of ``cfg`` trains on (``ds`` defaults to :func:`blobs`)."""
  return data.splits_for(blobs() if ds is None else ds, cfg)


def tiny_config(**kw) -> Config:
  base = dict(name="tiny", dataset="blobs", labels_per_class=2, val_size=16, model="mlp",
              d_hidden=(32, 16), g_hidden=(32,), latent_dim=8, batch_size=16, epochs=2,
              iters_per_epoch=3, init_examples=32, eval_every=1, num_devices=1, avg_rate=0.1,
              lr_decay_epochs=1)
  base.update(kw)
  return Config(**base)


def tiny_conv_config(**kw) -> Config:
  return tiny_config(model="conv", d_width=4, g_width=4, pixel_range="-1,1", fm_order=1, **kw)


# Sharded reductions add in another order (~1e-7 relative). Adam divides by sqrt(v), so an
# element whose gradient is ~0 gets a full-size step of either sign from that noise alone
# (measured: up to 7e-3 apart after 3 steps for the conv pair). eps_root=1 makes the update
# linear in the gradient, so what is compared is what sharding can change -- gradients and
# batch statistics -- at a tight tolerance (measured: <= 6e-8 apart).
ADAM_LINEAR = 1.0


def assert_devices_agree(a, b, names=("d_params", "d_avg", "g_params", "g_state")):
  for name in names:
    assert getattr(a, name) is not None, name
    assert jax.tree.structure(getattr(a, name)) == jax.tree.structure(getattr(b, name)), name
    for x, y in zip(jax.tree.leaves(getattr(a, name)), jax.tree.leaves(getattr(b, name))):
      np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6, err_msg=name)


def rig_val_errors(monkeypatch, errs):
  """Makes the training loop's next evaluations report ``errs`` (one each) as validation
  error; later ones are real. Which epoch is "best" then follows from the test, not from
  how a tiny run happens to go."""
  from sgan_jax import evaluation
  real, left = evaluation.evaluate, list(errs)

  def evaluate(*args):
    rec = real(*args)
    return {**rec, "val_err": left.pop(0)} if left else rec

  monkeypatch.setattr(evaluation, "evaluate", evaluate)


def estimator_params(**kw) -> dict:
  """SGANClassifier / SGANRegressor parameters for tests: a tiny network that still learns
  well-separated data in a few epochs (a fast Polyak average), seeded."""
  base = dict(hidden_layer_sizes=(16,), generator_layer_sizes=(8,), latent_dim=4, batch_size=16,
              max_epochs=3, iters_per_epoch=10, random_state=0,
              config_overrides={"init_examples": 32, "avg_rate": 0.3})
  base.update(kw)
  return base
