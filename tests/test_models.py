"""Model shapes, weight norm, data-dependent init and noise behaviour."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sgan_jax.layers import WNDense
from sgan_jax.models import ConvDiscriminator, ConvGenerator, MLPDiscriminator, MLPGenerator

K = jax.random.key(0)


@pytest.mark.parametrize("disc,shape,feat", [
    (MLPDiscriminator(hidden=(20, 12)), (8, 8, 1), 12),
    (ConvDiscriminator(width=4), (16, 16, 3), 8),
])
@pytest.mark.parametrize("fake", [False, True])
def test_discriminator_returns_logits_and_features(disc, shape, feat, fake):
  disc = disc.clone(fake_logit=fake)
  x = jnp.ones((5, *shape))
  v = disc.init({"params": K, "noise": K}, x, train=False)
  logits, f = disc.apply(v, x, train=True, rngs={"noise": K})
  assert logits.shape == (5, 10 + fake) and f.shape == (5, feat)


@pytest.mark.parametrize("gen,shape", [
    (MLPGenerator(out_shape=(8, 8, 1), hidden=(16,)), (8, 8, 1)),
    (ConvGenerator(out_shape=(16, 16, 3), width=4), (16, 16, 3)),
])
def test_generator_shapes_and_range(gen, shape):
  z = jax.random.uniform(K, (6, 100))
  v = gen.init({"params": K}, z, train=False)
  x, upd = gen.apply(v, z, train=True, mutable=["batch_stats"])
  assert x.shape == (6, *shape) and "batch_stats" in upd
  lo = 0.0 if gen.output_activation == "sigmoid" else -1.0
  assert float(x.min()) >= lo and float(x.max()) <= 1.0


def _ddi(disc, x):
  v = disc.init({"params": K, "noise": K}, x[:1], train=False)
  (l0, f0), v2 = disc.apply(v, x, train=True, init_mode=True, mutable=["params", "weightnorm"],
                            rngs={"noise": K})
  return v, v2, l0


@pytest.mark.parametrize("disc,shape,target_std", [
    (MLPDiscriminator(hidden=(40, 30)), (8, 8, 1), 1.0),
    (ConvDiscriminator(width=4), (16, 16, 3), 0.1),
])
def test_data_dependent_init_normalises_preactivations(disc, shape, target_std):
  x = jax.random.uniform(jax.random.key(1), (256, *shape))
  v, v2, l_init = _ddi(disc, x)
  # Afterwards the network computes, with the same noise, exactly what the init pass output.
  l_after, _ = disc.apply(v2, x, train=True, rngs={"noise": K})
  np.testing.assert_allclose(l_after, l_init, atol=2e-4)
  np.testing.assert_allclose(np.std(np.asarray(l_after), 0), target_std, rtol=1e-3)
  np.testing.assert_allclose(np.mean(np.asarray(l_after), 0), 0.0, atol=1e-3 * max(1, target_std * 10))
  # Hidden scales are frozen (weightnorm collection), the output scale is a parameter.
  assert "weightnorm" in v2 and all("scale" not in p or name == max(v2["params"])
                                    for name, p in v2["params"].items())
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), v["weightnorm"], v2["weightnorm"])
  assert all(jax.tree.leaves(changed))


def test_weight_norm_is_invariant_to_kernel_scale():
  layer = WNDense(7)
  x = jax.random.normal(K, (4, 5))
  v = layer.init(K, x)
  v2 = jax.tree_util.tree_map_with_path(
      lambda p, a: a * 3.0 if "kernel" in str(p) else a, v)
  np.testing.assert_allclose(layer.apply(v, x), layer.apply(v2, x), rtol=1e-4, atol=1e-5)


def test_noise_only_in_training_mode():
  d = MLPDiscriminator(hidden=(16,))
  x = jnp.ones((3, 4, 4, 1))
  v = d.init({"params": K, "noise": K}, x, train=False)
  a, _ = d.apply(v, x, train=False)
  b, _ = d.apply(v, x, train=False)
  np.testing.assert_array_equal(a, b)
  c, _ = d.apply(v, x, train=True, rngs={"noise": jax.random.key(1)})
  e, _ = d.apply(v, x, train=True, rngs={"noise": jax.random.key(2)})
  assert not np.allclose(c, e)
