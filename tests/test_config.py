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


def test_every_field_has_a_section_and_role_lists_derive_from_the_fields():
  from sgan_jax import resume, tables
  from sgan_jax.config import CELL, FIELDS, HOST, RESUME, RETIRED, SECTIONS, SEED, fields_with
  assert {f.metadata["section"] for f in FIELDS.values()} == set(SECTIONS)
  assert resume.RESUMABLE_DIFFERENCES == set(fields_with(RESUME)) | set(RETIRED)
  assert tables.CELL_FIELDS == fields_with(CELL)
  assert set(fields_with(SEED)) == {"seed", "data_seed"} <= set(fields_with(CELL))
  # for_seed sets exactly the SEED fields; graph_config resets exactly the HOST fields.
  base = Config(seed=4, data_seed=9, name="x", epochs=7)
  changed = lambda a, b: {k for k in FIELDS if getattr(a, k) != getattr(b, k)}
  assert changed(base, base.for_seed(5)) == set(fields_with(SEED))
  assert changed(base, base.for_seed(5, data_seed=9)) == {"seed"}
  g = Config(seed=4, data_seed=9, name="x", val_size=10, eval_every=3, lr=0.1).graph_config()
  assert g == Config(lr=0.1) and all(getattr(g, k) == FIELDS[k].default for k in fields_with(HOST))


def test_derived_quantities_are_methods():
  c = Config(epochs=30, baseline_epochs=None, batch_size=100)
  assert c.epochs_for("sgan") == 30 and c.epochs_for("supervised") == 30
  assert c.replace(baseline_epochs=5).epochs_for("supervised") == 5
  # At a shorter budget: a baseline shorter than the run stops at its own end.
  short = c.replace(epochs=300, baseline_epochs=10)
  assert [short.epochs_at("supervised", b) for b in (5, 10, 20, 300)] == [5, 10, 10, 10]
  assert short.epochs_at("sgan", 20) == 20 and c.epochs_at("supervised", 20) == 20
  assert c.iters_for(59000) == 590 and c.iters_for(50) == 1
  assert c.replace(iters_per_epoch=7).iters_for(59000) == 7
  with pytest.raises(SganError, match="mode must be one of"):
    c.epochs_for("gan")


def test_synonyms_and_retired_keys_get_their_own_messages():
  from sgan_jax.config import from_stored
  with pytest.raises(SganError, match="Did you mean 'lr'"):
    parse_override("learning_rate=0.1")
  with pytest.raises(SganError, match="Did you mean 'batch_size'"):
    from_dict({"batch": 3})
  with pytest.raises(SganError, match="'second_avg_rate' was removed"):
    from_dict({"second_avg_rate": 1e-4})
  # A stored config of a run made when the field existed still reads.
  assert from_stored({**Config().to_dict(), "second_avg_rate": 1e-4}) == Config()


@pytest.mark.parametrize("key,want", [
    ("LearningRate", "lr"), ("learning-rate", "lr"), ("Learning_Rate", "lr"),
    ("batchSize", "batch_size"), ("num-epochs", "epochs"), ("EMA", "avg_rate"),
    ("label-rate", "label_rate"), ("valSize", "val_size"), ("max_checkpoints", "keep_checkpoints")])
def test_other_spellings_of_a_key_suggest_the_field(key, want):
  # Case, hyphens and camelCase are normalised before the synonym table and the closest
  # match are consulted (difflib alone suggested avg_rate for some spellings of learning rate).
  with pytest.raises(SganError, match=f"Unknown config key '{key}'. Did you mean '{want}'"):
    parse_override(f"{key}=1")


def test_val_size_is_a_count_or_a_fraction():
  from sgan_jax import data
  assert data.val_count(0.1, 1300) == 130 and data.val_count(200, 1300) == 200
  assert data.val_count(0, 1300) == 0
  assert Config(val_size=0.25).val_size == 0.25
  for bad in (1.5, -1, 1000.5):
    with pytest.raises(SganError, match="val_size must be a number of examples"):
      Config(val_size=bad)


def test_models_of_a_run_carry_the_runs_own_config():
  from sgan_jax import train
  from tests.helpers import splits_for, tiny_config
  cfg = tiny_config(epochs=1, seed=3, name="mine")
  out = train.train(cfg, splits_for(cfg), log=lambda s: None)
  assert out["models"].cfg == cfg
