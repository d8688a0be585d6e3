"""Host copies of a train state packed into one flat array per dtype, for checkpoints.

``pack`` turns a pytree of host arrays into ``{"float32": (n,), "int32": (m,), ...}``;
``unpack`` with a template of the same structure inverts it; ``layout`` records each leaf's
path, dtype and shape, so a restore can name the first leaf that differs.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np


def state_to_host(state) -> Any:
  """Device -> host copy; PRNG keys become their raw uint32 data."""
  return jax.device_get(state.replace(key=jax.random.key_data(state.key)))


# Why pack: tensorstore's Python binding leaks a few hundred bytes per ``Spec.to_json()``
# call and orbax's OCDBT path makes one per saved array, so saving ~90 small leaves every
# epoch grew the resident memory by ~140 KB per checkpoint (measured: 85 MB over a 1-hour
# soak). One array per dtype (and no OCDBT, see sgan_jax.checkpoint.Checkpointer) avoids it and saves faster.
def pack(tree) -> dict[str, np.ndarray]:
  """Concatenates a pytree's leaves (host arrays) into one flat array per dtype."""
  groups: dict[str, list] = {}
  for leaf in jax.tree.leaves(tree):
    a = np.asarray(leaf)
    groups.setdefault(a.dtype.name, []).append(a.ravel())
  return {k: np.concatenate(v) for k, v in groups.items()}


def packed_shapes(template) -> dict[str, jax.ShapeDtypeStruct]:
  """Shapes :func:`pack` produces for a pytree like ``template``."""
  sizes: dict[str, tuple] = {}
  for leaf in jax.tree.leaves(template):
    a = np.asarray(leaf)
    n, _ = sizes.get(a.dtype.name, (0, a.dtype))
    sizes[a.dtype.name] = (n + a.size, a.dtype)
  return {k: jax.ShapeDtypeStruct((n,), dt) for k, (n, dt) in sizes.items()}


def layout(tree) -> list:
  """``[[path, dtype, shape], ...]`` for every leaf: what a packed checkpoint holds."""
  return [[jax.tree_util.keystr(path), np.asarray(leaf).dtype.name, list(np.shape(leaf))]
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)]


def unpack(packed: dict, template):
  """Inverse of :func:`pack`: splits the flat arrays back into ``template``'s structure."""
  offsets = {k: 0 for k in packed}
  leaves, treedef = jax.tree.flatten(template)
  out = []
  for leaf in leaves:
    a = np.asarray(leaf)
    k, o = a.dtype.name, offsets[a.dtype.name]
    out.append(np.asarray(packed[k][o:o + a.size]).reshape(a.shape))
    offsets[k] = o + a.size
  return jax.tree.unflatten(treedef, out)
