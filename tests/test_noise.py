"""Counter-hash Gaussian noise (sgan_jax.noise): distribution, independence, determinism."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P
from scipy import special, stats

from sgan_jax import state as state_lib
from sgan_jax import noise
from sgan_jax.config import Config
from sgan_jax.errors import SganError
from sgan_jax.layers import GaussianNoise

N = 1 << 20


@pytest.fixture(scope="module")
def draws():
  key = jax.random.key(0)
  return np.asarray(noise.hash_normal(key, (N // 1024, 1024))), key


def test_moments_and_shape_of_the_distribution(draws):
  z, _ = draws
  assert z.dtype == np.float32 and z.shape == (N // 1024, 1024)
  # Standard errors at n = 2**20: mean 0.001, std 0.0007, kurtosis 0.0024.
  assert abs(z.mean()) < 0.005 and abs(z.std() - 1) < 0.004
  assert abs(stats.kurtosis(z.ravel(), fisher=False) - 3) < 0.02
  # Kolmogorov-Smirnov distance to N(0, 1): 0.0019 is the 99.9% critical value at this n.
  zs = np.sort(z.ravel())
  ecdf = np.arange(1, N + 1) / N
  assert np.max(np.abs(ecdf - special.ndtr(zs))) < 0.0019
  assert np.all(np.isfinite(z)) and np.abs(z).max() < 6.5


def test_extreme_bits_give_finite_symmetric_normals():
  # 2**20 random draws almost never hit the end cells: test them directly.
  top = lambda m: np.uint32(m) << np.uint32(8)
  edge = np.array([top(0), top(1), top(2**24 - 2), top(2**24 - 1), top(2**23 - 1), top(2**23)],
                  np.uint32)
  z = np.asarray(noise.bits_to_normal(jnp.asarray(edge)))
  assert np.all(np.isfinite(z)) and 5.3 < z[3] < 5.5
  assert z[0] == -z[3] and z[1] == -z[2] and z[4] == -z[5]  # exactly symmetric
  assert z[4] < 0 < z[5] and abs(z[5]) < 1e-6  # the two cells around the median


def test_bits_are_balanced_and_a_bijection_per_key():
  b = np.asarray(noise.hash_bits(jax.random.key(1), (N,)))
  ones = np.stack([(b >> k) & 1 for k in range(32)]).mean(axis=1)
  assert np.all(np.abs(ones - 0.5) < 0.003), ones  # std error 0.0005 per bit
  assert len(np.unique(b)) == N  # a bijection of the index for a fixed key


def test_neighbours_and_other_keys_are_uncorrelated(draws):
  z, key = draws
  flat = z.ravel()
  corr = lambda a, b: np.corrcoef(a, b)[0, 1]
  bound = 4 / np.sqrt(N)  # 4 standard errors
  for lag in (1, 2, 1024):  # along a row, and the same unit in the next example
    assert abs(corr(flat[:-lag], flat[lag:])) < bound
  # Keys as training uses them: fold_in by step, and the halves of a split.
  others = [jax.random.fold_in(key, 1), jax.random.fold_in(key, 2), *jax.random.split(key)]
  for k in others:
    assert abs(corr(flat, np.asarray(noise.hash_normal(k, z.shape)).ravel())) < bound


def test_deterministic_and_identical_under_jit_vmap_and_sharding():
  key = jax.random.key(3)
  eager = noise.hash_normal(key, (16, 24))
  np.testing.assert_array_equal(eager, noise.hash_normal(key, (16, 24)))
  np.testing.assert_array_equal(eager, jax.jit(noise.hash_normal, static_argnums=1)(key, (16, 24)))
  keys = jax.random.split(key, 3)
  batched = jax.vmap(lambda k: noise.hash_normal(k, (16, 24)))(keys)
  for i in range(3):
    np.testing.assert_array_equal(batched[i], noise.hash_normal(keys[i], (16, 24)))
  # Sharded over the batch axis of 8 devices: each value depends only on its position.
  mesh = jax.make_mesh((8,), ("data",))
  f = jax.jit(lambda k: noise.hash_normal(k, (16, 24)),
              out_shardings=NamedSharding(mesh, P("data")))
  sharded = f(key)
  assert len(sharded.sharding.device_set) == 8
  np.testing.assert_array_equal(np.asarray(sharded), eager)


def test_threefry_is_jax_random_normal_and_unknown_rng_is_refused():
  key = jax.random.key(4)
  np.testing.assert_array_equal(noise.normal(key, (5, 7)), jax.random.normal(key, (5, 7)))
  assert noise.normal(key, (5, 7), "hash", jnp.bfloat16).dtype == jnp.bfloat16
  with pytest.raises(ValueError, match="threefry"):
    noise.normal(key, (5, 7), "philox")
  with pytest.raises(SganError, match="noise_rng"):
    Config(noise_rng="philox")
  # The conv critics use dropout: the option would change nothing there, so it is refused.
  with pytest.raises(SganError, match="dropout"):
    Config(noise_rng="hash", model="dcgan")


def test_the_option_reaches_the_noise_layers():
  # Both sources pass the distribution checks, so check that "hash" is what runs.
  from sgan_jax import train
  x = jnp.zeros((4, 6))
  rngs = {"noise": jax.random.key(7)}
  outs = {r: GaussianNoise(1.0, r).apply({}, x, deterministic=False, rngs=rngs)
          for r in noise.NOISE_RNGS}
  assert not np.allclose(outs["hash"], outs["threefry"])
  m = state_lib.build_models(Config(noise_rng="hash", d_hidden=(8,), g_hidden=(8,)), (6,), 3, 1)
  assert m.disc.noise_rng == "hash"
  params = m.disc.init({"params": jax.random.key(0), "noise": jax.random.key(1)}, x)
  apply = lambda d: d.apply(params, x, train=True, rngs=rngs)[0]
  threefry = m.disc.clone(noise_rng="threefry")
  assert not np.allclose(apply(m.disc), apply(threefry))
  np.testing.assert_array_equal(m.disc.apply(params, x, train=False)[0],
                                threefry.apply(params, x, train=False)[0])


@pytest.mark.parametrize("rng", noise.NOISE_RNGS)
def test_gaussian_noise_layer(rng):
  x = jnp.ones((256, 512))
  layer = GaussianNoise(0.3, rng)
  out = layer.apply({}, x, deterministic=False, rngs={"noise": jax.random.key(5)})
  assert abs(float(jnp.std(out - x)) - 0.3) < 0.003 and abs(float(jnp.mean(out - x))) < 0.003
  np.testing.assert_array_equal(layer.apply({}, x, deterministic=True), x)
