"""The compiled part: one iteration, the scanned epoch, the vmapped seeds, prediction.

Per iteration (the reference's order): one discriminator step on a labeled, an
unlabeled and a generated batch, then one generator step on its own unlabeled batch.
Iterations run inside ``lax.scan`` over a chunk (an epoch) with the data resident on
device, so small models are not bound by Python dispatch; the host supplies only the
epoch's batch indices. Every ``jit``, ``scan``, ``vmap`` and buffer donation of the
library is in this module.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Optional

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from sgan_jax import objectives
from sgan_jax.config import Config
from sgan_jax.objectives import Objective
from sgan_jax.state import Models, TrainState, build_models, sample_classes, sample_z


def train_iteration(m: Models, obj: Objective, state: TrainState, x_lab: jax.Array,
                    y_lab: jax.Array, x_unl: jax.Array, x_unl2: jax.Array,
                    prior: Optional[jax.Array] = None) -> tuple[TrainState, dict]:
  """One discriminator step, then (SGAN) one generator step.

  Args:
    x_lab: ``(B, *shape)`` labeled batch; y_lab: ``(B,)``.
    x_unl: ``(B, *shape)`` unlabeled batch for the D step (no labels exist for it).
    x_unl2: ``(B, *shape)`` a second unlabeled batch for the G step.
    prior: ``(K,)`` target of the class-balance term (:func:`objectives.class_prior`).
  Returns ``(new_state, metrics)`` with scalar metrics.
  """
  key, k_z, k_d, k_z2, k_g = jax.random.split(state.key, 5)
  n_lab, n_unl = x_lab.shape[0], x_unl.shape[0]
  g_state, x_fake, x_all = state.g_state, None, x_lab
  if obj.sgan:
    x_fake, g_upd = m.gen.apply({"params": state.g_params, **g_state},
                                sample_z(k_z, n_unl, m.cfg.latent_dim),
                                sample_classes(m, jax.random.fold_in(k_z, 1), n_unl),
                                train=True, mutable=["batch_stats"])
    g_state = {**g_state, **g_upd}
    x_fake = jax.lax.stop_gradient(x_fake).astype(x_lab.dtype)
    x_all = jnp.concatenate([x_lab, x_unl, x_fake])

  def d_apply(d_params, x, k, groups):
    """Training-mode forward; ``((logits, features), batch_stats updates)``. ``groups``:
    the streams in ``x``, which the DCGAN critic's batch norm normalises one by one, so
    one pass over all streams equals one pass per stream."""
    return m.disc.apply({"params": d_params, **state.d_frozen}, x, train=True, groups=groups,
                        rngs={"noise": k}, mutable=["batch_stats"])

  def d_loss(d_params):
    (logits, _), d_upd = d_apply(d_params, x_all, k_d, x_all.shape[0] // n_lab)
    forward = lambda x, k: d_apply(d_params, x, k, 1)[0][0]
    total, out = obj.d_loss(logits, y_lab, n_lab, n_unl, forward, x_unl, x_fake, k_d, prior)
    return total, (out, d_upd)

  d_grads, (metrics, d_upd) = jax.grad(d_loss, has_aux=True)(state.d_params)
  d_updates, d_opt = m.tx_d.update(d_grads, state.d_opt, state.d_params)
  d_params = optax.apply_updates(state.d_params, d_updates)
  d_avg = optax.incremental_update(d_params, state.d_avg, m.cfg.avg_rate)
  new = state.replace(step=state.step + 1, d_params=d_params, d_opt=d_opt, d_avg=d_avg, key=key,
                      d_frozen={**state.d_frozen, **d_upd})
  if not obj.sgan:
    return new, metrics

  z2 = sample_z(k_z2, x_unl2.shape[0], m.cfg.latent_dim)
  c2 = sample_classes(m, jax.random.fold_in(k_z2, 1), x_unl2.shape[0])
  feats_real = None
  if obj.needs_real_features:
    # The real half does not depend on G: one forward pass, no backward through it.
    (_, feats_real), _ = d_apply(d_params, x_unl2, k_g, 1)
    feats_real = jax.lax.stop_gradient(feats_real)

  def g_loss(g_params):
    x_gen, upd = m.gen.apply({"params": g_params, **g_state}, z2, c2, train=True,
                             mutable=["batch_stats"])
    # The generator step reads D's running statistics but does not update them.
    (logits_fake, feats_fake), _ = d_apply(d_params, x_gen.astype(x_unl2.dtype),
                                           jax.random.fold_in(k_g, 1), 1)
    loss, parts = obj.g_loss(logits_fake, feats_fake, feats_real, c2)
    return loss, (upd, parts)

  (loss, (g_upd, g_parts)), g_grads = jax.value_and_grad(g_loss, has_aux=True)(state.g_params)
  g_updates, g_opt = m.tx_g.update(g_grads, state.g_opt, state.g_params)
  g_params = optax.apply_updates(state.g_params, g_updates)
  metrics = {**metrics, **g_parts, "loss_gen": loss}
  return new.replace(g_params=g_params, g_state={**g_state, **g_upd}, g_opt=g_opt), metrics


def _epoch(m: Models, obj: Objective, state: TrainState, y_lab: jax.Array, batches, idx):
  """``lax.scan`` of :func:`train_iteration` over ``idx``'s ``T`` iterations;
  ``batches(i)`` gathers one iteration's ``(x_lab, y_lab, x_unl, x_unl2)``."""
  prior = objectives.class_prior(m.cfg, y_lab, m.num_classes)

  def body(st, i):
    return train_iteration(m, obj, st, *batches(i), prior)

  return jax.lax.scan(body, state, idx)  # metrics: per-iteration (T,) arrays


def make_train_chunk(m: Models, mode: str = "sgan", mesh: Optional[Mesh] = None):
  """Jitted ``(state, data, idx) -> (state, metrics)`` running ``T`` iterations on device.

  Args (of the returned function):
    data: ``{"x_lab": (N_l, *shape), "y_lab": (N_l,), "x_unl": (N_u, *shape)}``, resident
      and replicated.
    idx: ``{"lab": (T, B), "unl": (T, B), "unl2": (T, B)}`` int32 batch indices.
  Returns the new state (input buffers donated) and per-iteration metrics, shape ``(T,)``.

  With a ``mesh``, the state and data are replicated and every batch is split over the
  ``"data"`` axis (``jit`` over ``NamedSharding``; XLA inserts the gradient all-reduce,
  and the generator's batch-norm statistics are over the global batch), so N devices
  compute what one device would.
  """
  obj = objectives.make_objective(m.cfg, mode)
  shard = (lambda x: x) if mesh is None else (
      lambda x: jax.lax.with_sharding_constraint(x, NamedSharding(mesh, P("data"))))

  def chunk(state, data, idx):
    get = lambda name, i: shard(data[name][i])
    batches = lambda i: (get("x_lab", i["lab"]), get("y_lab", i["lab"]), get("x_unl", i["unl"]),
                         get("x_unl", i["unl2"]))
    return _epoch(m, obj, state, data["y_lab"], batches, idx)

  if mesh is None:
    return jax.jit(chunk, donate_argnums=0)
  rep = NamedSharding(mesh, P())
  return jax.jit(chunk, in_shardings=(rep, rep, NamedSharding(mesh, P(None, "data"))),
                 out_shardings=(rep, rep), donate_argnums=0)


def make_seeds_chunk(m: Models, mode: str = "sgan"):
  """Jitted ``(states, data, idx) -> (states, metrics)`` for S stacked replicas.

  Args (of the returned function):
    states: a :class:`TrainState` whose leaves have a leading ``S`` axis.
    data: ``{"x": (N, *shape), "y_lab": (S, N_l), "lab": (S, N_l), "unl": (S, N_u)}``: one
      resident copy of the training images and, per replica, the rows of its labeled
      subset and of its unlabeled set (each replica its own validation hold-out).
    idx: ``{"lab" | "unl" | "unl2": (S, T, B)}`` batch indices into each replica's rows.
  Returns states (donated inputs) and per-iteration metrics of shape ``(S, T)``.
  """
  obj = objectives.make_objective(m.cfg, mode)

  def chunk(states, data, idx):
    x = data["x"]

    def one(state, y_lab, lab, unl, idx1):
      # Rows gathered through the replica's index arrays are the rows the sequential run
      # gathers from its own x_lab = x[lab] and x_unl = x[unl].
      batches = lambda i: (x[lab[i["lab"]]], y_lab[i["lab"]], x[unl[i["unl"]]], x[unl[i["unl2"]]])
      return _epoch(m, obj, state, y_lab, batches, idx1)

    return jax.vmap(one)(states, data["y_lab"], data["lab"], data["unl"], idx)

  return jax.jit(chunk, donate_argnums=0)


def make_predict(m: Models):
  """Jitted ``(params, frozen, x) -> logits``, deterministic (no noise)."""

  @jax.jit
  def predict(params, frozen, x):
    logits, _ = m.disc.apply({"params": params, **frozen}, x, train=False)
    return logits

  return predict


def make_sample_grid(m: Models):
  """Jitted ``(g_params, g_state) -> (100, *shape)`` samples from a fixed latent batch.

  The same ``z`` (and, for a conditional generator, classes ``0..K-1`` repeated) at
  every evaluation, so successive grids show how the generator evolves.
  """
  z = sample_z(jax.random.key(20161), 100, m.cfg.latent_dim)
  labels = jnp.arange(100) % m.num_classes if m.cfg.conditional else None

  @jax.jit
  def grid(g_params, g_state):
    return m.gen.apply({"params": g_params, **g_state}, z, labels, train=False)

  return grid


@dataclasses.dataclass(frozen=True)
class Compiled:
  models: Models
  chunk: object
  predict: object
  sample_grid: object


@functools.lru_cache(maxsize=16)
def _compiled(graph_cfg: Config, example_shape: tuple, num_classes: int, iters: int,
              epochs: int, mode: str, mesh: Mesh) -> Compiled:
  m = build_models(graph_cfg, example_shape, num_classes, iters, epochs)
  return Compiled(m, make_train_chunk(m, mode, mesh if mesh.size > 1 else None),
                  make_predict(m), make_sample_grid(m))


def compiled(cfg: Config, example_shape: tuple, num_classes: int, iters: int, epochs: int,
             mode: str, mesh: Mesh) -> Compiled:
  """Models and jitted functions for a run, shared by runs whose configs differ only in
  fields outside the compiled program (seed, data, names: ``Config.graph_config``), so
  seeds after the first skip compilation. ``models.cfg`` is the run's own ``cfg``."""
  c = _compiled(cfg.graph_config(), tuple(example_shape), num_classes, iters, epochs, mode, mesh)
  return dataclasses.replace(c, models=dataclasses.replace(c.models, cfg=cfg))
