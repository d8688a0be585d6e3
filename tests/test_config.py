"""Config validation: unknown keys, wrong types, impossible values, CLI overrides."""

import pytest

from sgan_jax.config import Config, from_dict, parse_int_list, parse_override
from sgan_jax.errors import SganError


def test_defaults_are_valid_and_roundtrip():
  c = Config()
  assert from_dict(c.to_dict()) == c
  assert c.replace(epochs=3).epochs == 3


@pytest.mark.parametrize("kw", [{}, {"labels_per_class": None, "label_rate": 0.1},
                                {"labels_per_class": None, "num_labeled": 25}])
def test_label_selection_is_the_one_selector_as_make_splits_keywords(kw):
  sel = Config(**kw).label_selection()
  assert set(sel) == {"labels_per_class", "label_rate", "num_labeled"}
  chosen = [k for k, v in kw.items() if v is not None] or ["labels_per_class"]
  assert [k for k, v in sel.items() if v is not None] == chosen
  assert all(sel[k] == v for k, v in kw.items())


def test_unknown_key_suggests_closest():
  with pytest.raises(SganError, match="Unknown config key 'epoch'.*Did you mean 'epochs'"):
    from_dict({"epoch": 3})


@pytest.mark.parametrize("kw,match", [
    (dict(epochs="3"), "'epochs' must be int"),
    (dict(lr=True), "'lr' must be float"),
    (dict(d_hidden=(10, "a")), "'d_hidden'"),
    (dict(label_rate=1.5, labels_per_class=None), r"\(0, 1\]"),
    (dict(label_rate=0.1), "exactly one"),
    (dict(labels_per_class=None), "exactly one"),
    (dict(num_labeled=25), "exactly one"),
    (dict(num_labeled=0, labels_per_class=None), "'num_labeled' must be > 0"),
    (dict(model="resnet"), "'model' must be one of"),
    (dict(batch_size=0), "'batch_size' must be > 0"),
    (dict(b1=1.0), r"\[0, 1\)"),
    (dict(val_size=-1), "val_size"),
    (dict(fm_order=3), "fm_order"),
    (dict(lr=float("inf")), "finite"),
    (dict(avg_rate=float("nan")), "finite"),
    (dict(on_nonfinite="ignore"), "on_nonfinite"),
    (dict(on_d_wins="stop"), "on_d_wins"),
    (dict(seed=-1), r"'seed' must be in \[0, 2\*\*31\)"),
    (dict(data_seed=2**31), r"'data_seed' must be in \[0, 2\*\*31\)"),
])
def test_bad_values_raise(kw, match):
  with pytest.raises(SganError, match=match):
    Config(**kw)


def test_lists_become_tuples():
  assert from_dict({"d_hidden": [4, 5]}).d_hidden == (4, 5)


@pytest.mark.parametrize("text,want", [
    ("epochs=40", ("epochs", 40)),
    ("lr=1e-3", ("lr", 1e-3)),
    ("dataset=../x.npz", ("dataset", "../x.npz")),
    ("label_rate=None", ("label_rate", None)),
    ("baseline=false", ("baseline", False)),
    ("d_hidden=[8,8]", ("d_hidden", (8, 8))),
])
def test_parse_override(text, want):
  assert parse_override(text) == want


def test_parse_override_errors():
  with pytest.raises(SganError, match="key=value"):
    parse_override("epochs")
  with pytest.raises(SganError, match="Unknown config key"):
    parse_override("epohcs=3")


def test_parse_int_list():
  assert parse_int_list("3,1,2", "--seeds") == [3, 1, 2]
  assert parse_int_list("0", "--seeds") == [0]
  for text, match in (("1,a", "comma-separated integers"), ("1,,2", "comma-separated integers"),
                      ("", "comma-separated integers"), ("-1", ">= 0"), ("1,2,1", "twice")):
    with pytest.raises(SganError, match=match):
      parse_int_list(text, "--seeds")
  with pytest.raises(SganError, match="--labels must be >= 1"):
    parse_int_list("0,100", "--labels", minimum=1)
