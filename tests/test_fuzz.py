"""Property-based: malformed input to the loaders and the config parser either works or
raises the project's own SganError, never anything else."""

import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sgan_jax import data
from sgan_jax.config import FIELDS, from_dict, parse_override
from sgan_jax.errors import SganError

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

dtypes = st.sampled_from([np.uint8, np.int32, np.float32, np.float64, np.bool_, np.int64])
arrays = dtypes.flatmap(lambda dt: hnp.arrays(
    dt, hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=5),
    elements=None if dt in (np.float32, np.float64) else None))


@SETTINGS
@given(x=arrays, y=arrays, xt=arrays, yt=arrays, rng=st.sampled_from(["0,1", "-1,1"]))
def test_from_arrays_success_or_sgan_error(x, y, xt, yt, rng):
  try:
    ds = data.from_arrays(x, y, xt, yt, pixel_range=rng)
  except SganError:
    return
  assert ds.x_train.dtype == np.float32 and np.isfinite(ds.x_train).all()
  assert ds.y_train.min() >= 0 and ds.y_train.max() < ds.num_classes


@SETTINGS
@given(y=hnp.arrays(np.int64, st.integers(0, 40), elements=st.integers(0, 5)),
       per_class=st.one_of(st.none(), st.integers(-2, 10)),
       rate=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
       k=st.integers(1, 7))
def test_select_labeled_success_or_sgan_error(y, per_class, rate, k):
  y = y[y < k] if k else y
  try:
    idx = data.select_labeled(y, k, per_class=per_class, rate=rate, seed=0)
  except SganError:
    return
  assert len(np.unique(idx)) == len(idx) and (len(idx) == 0 or idx.max() < len(y))


@SETTINGS
@given(blob=st.binary(max_size=300))
def test_load_npz_on_random_bytes(tmp_path_factory, blob):
  p = tmp_path_factory.mktemp("npz") / "f.npz"
  p.write_bytes(blob)
  try:
    data.load_npz(str(p))
  except SganError:
    pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=6)


@SETTINGS
@given(d=st.dictionaries(st.one_of(st.sampled_from(sorted(FIELDS)), st.text(max_size=10)),
                         json_values, max_size=6))
def test_from_dict_success_or_sgan_error(d):
  try:
    cfg = from_dict(d)
  except SganError:
    return
  assert from_dict(cfg.to_dict()) == cfg


@SETTINGS
@given(text=st.text(max_size=40), key=st.sampled_from(sorted(FIELDS)), value=json_values)
def test_parse_override_success_or_sgan_error(text, key, value):
  for t in (text, f"{key}={json.dumps(value)}", f"{key}={text}"):
    try:
      k, v = parse_override(t)
      from_dict({k: v})
    except SganError:
      pass
