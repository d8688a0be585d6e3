"""What a run trains: the modules and optimisers for a config, and the explicit state.

:func:`build_models` turns a :class:`~sgan_jax.config.Config` into the generator and
discriminator modules and their Adam optimisers (the learning-rate schedule included);
:func:`init_state` draws the initial :class:`TrainState` (random init, then the
reference's data-dependent weight-norm init). Everything that changes during training is
in the state; nothing else is mutable.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from sgan_jax.config import MODES, Config, check_mode
from sgan_jax.errors import SganError
from sgan_jax.models import (ConvDiscriminator, ConvGenerator, DCGANDiscriminator, DCGANGenerator,
                             MLPDiscriminator, MLPGenerator)

PyTree = Any
__all__ = ["MODES", "Models", "TrainState", "build_models", "init_state", "lr_schedule"]


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training. ``g_*`` are None in supervised mode."""

  step: jax.Array            # () int32, iterations done
  d_params: PyTree           # trainable discriminator parameters
  d_frozen: PyTree           # not trained by gradient: {"weightnorm": frozen scales} and/or
                             # {"batch_stats": running averages} (DCGAN discriminator)
  d_opt: PyTree
  d_avg: PyTree              # Polyak average of d_params, started at zero
  g_params: Optional[PyTree]
  g_state: Optional[PyTree]  # {"batch_stats": ...}
  g_opt: Optional[PyTree]
  key: jax.Array             # PRNG key for the next iteration

  def classifier_variables(self) -> dict:
    """The reported classifier, ``disc.apply``'s variables: the Polyak-averaged parameters
    with the frozen collections, ``{"params": d_avg, <frozen>: ...}``."""
    return {"params": self.d_avg, **self.d_frozen}


@dataclasses.dataclass(frozen=True)
class Models:
  disc: nn.Module
  gen: nn.Module
  tx_d: optax.GradientTransformation
  tx_g: optax.GradientTransformation
  cfg: Config
  example_shape: tuple
  num_classes: int
  iters_per_epoch: int


def build_models(cfg: Config, example_shape: tuple, num_classes: int, iters_per_epoch: int,
                 epochs: Optional[int] = None) -> Models:
  """Modules and optimisers for a config. ``example_shape`` excludes the batch axis."""
  dtype = jnp.bfloat16 if cfg.compute_dtype == "bfloat16" else None
  act = {"0,1": "sigmoid", "-1,1": "tanh", "none": "linear"}[cfg.pixel_range]
  fake = cfg.parameterization == "k+1"
  cond = num_classes if cfg.conditional else 0
  # Regression: output 0 is the regression head, output 1 the real/fake logit Z.
  outputs = 2 if cfg.task == "regression" else num_classes
  if cfg.model == "mlp":
    disc = MLPDiscriminator(outputs, tuple(cfg.d_hidden), cfg.input_noise, cfg.hidden_noise,
                            fake, dtype, cfg.noise_rng)
    gen = MLPGenerator(tuple(example_shape), tuple(cfg.g_hidden), act, dtype, cond)
  else:
    if len(example_shape) != 3:
      raise SganError(f"model={cfg.model!r} needs images (H, W, C); the data has examples of "
                      f"shape {example_shape}. Use model='mlp' for feature vectors.")
    h, w = example_shape[:2]
    # The conv pair upsamples from H/8 and the critic's valid 3x3 conv needs >= 3x3 after two
    # stride-2 stages; smaller images would give an empty feature map and NaN losses.
    step, least = (8, 16) if cfg.model == "conv" else (4, 4)
    if h % step or w % step or min(h, w) < least:
      raise SganError(f"model={cfg.model!r} needs images whose height and width are multiples "
                      f"of {step} and at least {least}; the data has {h}x{w}. Resize or pad the "
                      "images, or use model='mlp'" + (" or 'dcgan'" if cfg.model == "conv" else "") + ".")
    if cfg.model == "conv":
      disc = ConvDiscriminator(outputs, cfg.d_width, fake, dtype)
      gen = ConvGenerator(tuple(example_shape), cfg.g_width, act, dtype, cond)
    else:
      disc = DCGANDiscriminator(outputs, cfg.d_width, fake, dtype)
      gen = DCGANGenerator(tuple(example_shape), cfg.g_width, act, dtype, cond)
  epochs = epochs or cfg.epochs
  sched = lr_schedule(cfg.lr, iters_per_epoch, epochs, cfg.lr_decay_epochs)
  tx = lambda: optax.adam(sched, b1=cfg.b1, b2=cfg.b2, eps=0.0, eps_root=cfg.eps_root)
  return Models(disc, gen, tx(), tx(), cfg, tuple(example_shape), num_classes, iters_per_epoch)


def lr_schedule(base_lr: float, iters_per_epoch: int, epochs: int,
                decay_epochs: int) -> Callable[[jax.Array], jax.Array]:
  """The reference's per-epoch schedule: constant, then linear to 0 over the last epochs.

  ``lr(step) = base_lr * min((epochs - epoch) / decay_epochs, 1)`` with
  ``epoch = step // iters_per_epoch`` (MNIST: ``min(3 - epoch/100, 1)`` for 300 epochs).
  """
  if decay_epochs == 0:
    return optax.constant_schedule(base_lr)

  def schedule(step):
    epoch = (step // iters_per_epoch).astype(jnp.float32)
    return base_lr * jnp.clip((epochs - epoch) / decay_epochs, 0.0, 1.0)

  return schedule


def sample_z(key: jax.Array, n: int, latent_dim: int) -> jax.Array:
  """Latent codes ``z ~ U(0, 1)^latent_dim`` as in the reference: ``(n, latent_dim)``."""
  return jax.random.uniform(key, (n, latent_dim))


def sample_classes(m: Models, key: jax.Array, n: int) -> Optional[jax.Array]:
  """Uniform class ids ``(n,)`` for a conditional generator; None for an unconditional one."""
  if not m.cfg.conditional:
    return None
  return jax.random.randint(key, (n,), 0, m.num_classes)


def init_indices(seed: int, n: int, k: int) -> np.ndarray:
  """The ``k`` training examples used for data-dependent init, a function of ``seed``."""
  return np.random.default_rng([seed, 10**6]).permutation(n)[:k]


def init_state(m: Models, key: jax.Array, init_batch: jax.Array, mode: str = "sgan") -> TrainState:
  """Random init, then data-dependent weight-norm init on ``init_batch`` with noise on.

  Args:
    init_batch: ``(n, *example_shape)`` real training examples (the reference uses 500).
  """
  check_mode(mode)
  k_d, k_g, k_noise, k_gnoise, k_z, k_run = jax.random.split(key, 6)
  x0 = init_batch[:1]
  d_vars = m.disc.init({"params": k_d, "noise": k_noise}, x0, train=False)
  # Data-dependent init runs in training mode (noise/dropout on), as the reference does.
  _, d_vars = m.disc.apply(d_vars, init_batch, train=True, init_mode=True,
                           mutable=["params", "weightnorm", "batch_stats"],
                           rngs={"noise": k_noise})
  d_params = d_vars["params"]
  d_frozen = {k: v for k, v in d_vars.items() if k != "params"}
  g_params = g_state = g_opt = None
  if mode == "sgan":
    z = sample_z(k_z, init_batch.shape[0], m.cfg.latent_dim)
    c = sample_classes(m, jax.random.fold_in(k_z, 1), init_batch.shape[0])
    g_vars = m.gen.init({"params": k_g, "noise": k_gnoise}, z[:2],
                        None if c is None else c[:2], train=False)
    # Only layers that take init_mode (the conv generator's output layer) change here.
    _, g_vars = m.gen.apply(g_vars, z, c, train=True, init_mode=True,
                            mutable=["params", "batch_stats"])
    g_params = g_vars["params"]
    g_state = {k: v for k, v in g_vars.items() if k != "params"}
    g_opt = m.tx_g.init(g_params)
  return TrainState(step=jnp.zeros((), jnp.int32), d_params=d_params, d_frozen=d_frozen,
                    d_opt=m.tx_d.init(d_params), d_avg=jax.tree.map(jnp.zeros_like, d_params),
                    g_params=g_params, g_state=g_state, g_opt=g_opt, key=k_run)


def initial_state(m: Models, seed: int, x_unl: np.ndarray, mode: str) -> TrainState:
  """The state a run of ``seed`` starts from: :func:`init_state` on its init examples."""
  idx = init_indices(seed, len(x_unl), m.cfg.init_examples)
  return init_state(m, jax.random.key(seed), jnp.asarray(x_unl[idx]), mode)
