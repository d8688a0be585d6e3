"""Run configuration as data: one frozen dataclass, validated on construction.

Each field belongs to a section (data, model, objective, optimiser, run) and declares its
roles (:data:`HOST`, :data:`RESUME`, :data:`SEED`, :data:`CELL`) on itself; derived
quantities (epochs of a mode, iterations per epoch, the compiled program's part) are
methods. Configs are plain values; config files (``sgan_jax/configs/*.py``) define
``get_config() -> Config`` and the command line overrides fields with
``--set key=value``. Unknown keys and wrong types raise :class:`SganError` naming
the key and the closest valid one.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
import types
import typing
from typing import Any, Optional, Tuple

from sgan_jax.errors import SganError


# Roles a field can have, declared on the field (``_f``) and nowhere else; every list of
# fields by role is derived from these (:func:`fields_with`).
HOST = "host"      # not part of the compiled program: runs differing only here share it
RESUME = "resume"  # may differ between a checkpoint and the run resuming from it
SEED = "seed"      # set by each seed of a multi-seed run
CELL = "cell"      # set by each (label count, seed) cell of a table
SECTIONS = ("data", "model", "objective", "optimiser", "run")


def _f(default, section: str, *roles: str):
  return dataclasses.field(default=default, metadata={"section": section, "roles": frozenset(roles)})


@dataclasses.dataclass(frozen=True)
class Config:
  """Everything a run depends on, flat (``--set key=value``), each field in one section.

  Field docs are in docs/api.md's config table; roles are declared on the fields.
  """

  name: str = _f("custom", "run", HOST, RESUME)
  # --- data
  dataset: str = _f("digits", "data", HOST)  # digits | mnist | cifar10 | svhn_cropped | path/to/file.npz
  data_dir: Optional[str] = _f(None, "data", HOST, RESUME)  # TFDS data_dir
  pixel_range: str = _f("0,1", "data")  # "0,1" (sigmoid G), "-1,1" (tanh G), "none" (linear G, tabular)
  # exactly one of labels_per_class / label_rate / num_labeled
  labels_per_class: Optional[int] = _f(10, "data", HOST, CELL)
  label_rate: Optional[float] = _f(None, "data", HOST, CELL)  # fraction of the training split, stratified
  num_labeled: Optional[int] = _f(None, "data", HOST, CELL)  # total labels, balanced (n % K classes get one more)
  # examples held out of the training split for selection, or a fraction of it (0 < v < 1)
  val_size: float = _f(0, "data", HOST)
  data_seed: int = _f(1, "data", HOST, SEED, CELL)  # chooses validation split and labeled subset
  seed: int = _f(0, "run", HOST, SEED, CELL)  # parameters, noise and batch order
  # --- model
  model: str = _f("mlp", "model")  # mlp | conv (improved-gan 32x32) | dcgan (Odena-style)
  d_hidden: Tuple[int, ...] = _f((1000, 500, 250, 250, 250), "model")
  g_hidden: Tuple[int, ...] = _f((500, 500), "model")
  d_width: int = _f(96, "model")  # conv/dcgan discriminator first-stage channels
  g_width: int = _f(128, "model")  # conv/dcgan generator last-stage channels
  input_noise: float = _f(0.3, "model")
  hidden_noise: float = _f(0.5, "model")
  noise_rng: str = _f("threefry", "model")  # threefry (jax.random) | hash (sgan_jax.noise: ~4x cheaper on CPU)
  latent_dim: int = _f(100, "model")
  parameterization: str = _f("k", "model")  # k (Salimans) | k+1 (Odena)
  compute_dtype: str = _f("float32", "model")  # float32 | bfloat16 (params stay float32)
  num_devices: int = _f(0, "run", RESUME)  # data-parallel devices; 0 = all visible devices
  # --- objective
  task: str = _f("classification", "objective")  # classification | regression (two-headed D)
  regression_loss: str = _f("squared", "objective")  # squared | huber (regression head)
  huber_delta: float = _f(1.0, "objective")
  # feature_matching | non_saturating | minimax | wasserstein | non_saturating+feature_matching
  g_loss: str = _f("feature_matching", "objective")
  d_objective: str = _f("gan", "objective")  # gan (Salimans real/fake log-loss) | wasserstein (critic + GP)
  gp_weight: float = _f(10.0, "objective")  # gradient-penalty weight (d_objective=wasserstein)
  entropy_weight: float = _f(0.0, "objective")  # Bad-GAN conditional entropy on unlabeled logits (D)
  balance_weight: float = _f(0.0, "objective")  # KL(unlabeled mean p(y|x) || labeled class freq.) (D)
  pullaway_weight: float = _f(0.0, "objective")  # Bad-GAN pull-away term on generated features (G)
  conditional: bool = _f(False, "objective")  # generator takes the class; G(z, c) should look like c
  cond_weight: float = _f(1.0, "objective")  # weight of the generator's class cross-entropy
  fm_order: int = _f(2, "objective")  # 2: mean squared (MNIST); 1: mean absolute (CIFAR/SVHN)
  unlabeled_weight: float = _f(1.0, "objective")
  # --- optimisation
  batch_size: int = _f(100, "optimiser")  # per stream (labeled, unlabeled, generated)
  lr: float = _f(0.003, "optimiser")
  lr_decay_epochs: int = _f(100, "optimiser")  # linear decay to 0 over the last N epochs
  b1: float = _f(0.5, "optimiser")
  b2: float = _f(0.999, "optimiser")
  eps_root: float = _f(1e-8, "optimiser")  # Adam epsilon inside the square root (reference)
  epochs: int = _f(300, "optimiser", RESUME)
  iters_per_epoch: Optional[int] = _f(None, "optimiser")  # default: unlabeled examples // batch_size
  avg_rate: float = _f(1e-4, "optimiser")  # Polyak average a <- a + rate * (p - a), a0 = 0
  init_examples: int = _f(500, "model")  # batch for data-dependent weight-norm init
  # --- evaluation / output
  eval_every: int = _f(1, "run", HOST, RESUME)  # epochs between evaluations
  baseline: bool = _f(True, "run", HOST, RESUME)  # also train the supervised-only baseline
  baseline_epochs: Optional[int] = _f(None, "run", RESUME)  # default: same as epochs
  checkpoint_every: int = _f(1, "run", HOST)  # epochs between checkpoints (with a workdir)
  # latest N kept, plus the best on validation; None: 1, or 3 with on_d_wins=rollback
  keep_checkpoints: Optional[int] = _f(None, "run", HOST, RESUME)
  on_nonfinite: str = _f("stop", "run", HOST, RESUME)  # stop | rollback (to the last checkpoint, new key)
  on_d_wins: str = _f("warn", "run", HOST, RESUME)  # warn | rollback (to a checkpoint >= 2 epochs back)
  tensorboard: bool = _f(False, "run", HOST, RESUME)  # TensorBoard scalars in <workdir>/tb/<mode>

  def __post_init__(self):
    _check_types(self)
    _check_values(self)

  # -- construction helpers
  def replace(self, **kw) -> "Config":
    return from_dict({**self.to_dict(), **kw})

  def epochs_for(self, mode: str) -> int:
    """Epochs a mode trains: ``epochs`` for the SGAN, ``baseline_epochs`` (default: the
    same) for the supervised-only baseline."""
    check_mode(mode)
    return self.epochs if mode == "sgan" else (self.baseline_epochs or self.epochs)

  def epochs_at(self, mode: str, budget: int) -> int:
    """Epochs a mode had trained when the SGAN had trained ``budget`` of its ``epochs``: a
    baseline shorter than the run (``baseline_epochs``) stops at its own end."""
    own = self.epochs_for(mode)
    return min(budget, own) if own < self.epochs else budget

  def iters_for(self, num_unlabeled: int) -> int:
    """Iterations per epoch: ``iters_per_epoch``, or one pass over the unlabeled set."""
    return self.iters_per_epoch or max(1, num_unlabeled // self.batch_size)

  def for_seed(self, seed: int, data_seed: Optional[int] = None) -> "Config":
    """This config for one seed of a multi-seed run: ``seed`` picks the keys and, unless a
    ``data_seed`` is given (one labeled subset for every seed), also the labeled subset and
    validation split. Sets exactly the :data:`SEED` fields."""
    return self.replace(seed=seed, data_seed=seed if data_seed is None else data_seed)

  def graph_config(self) -> "Config":
    """This config with every :data:`HOST` field at its default: the part that shapes the
    compiled program (two runs whose graph configs are equal share one)."""
    return self.replace(**{n: FIELDS[n].default for n in fields_with(HOST)})

  def label_selection(self) -> dict:
    """The labeled-subset selector as ``data.make_splits`` keywords (exactly one is set)."""
    return dict(labels_per_class=self.labels_per_class, label_rate=self.label_rate,
                num_labeled=self.num_labeled)

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=1, sort_keys=True)


FIELDS = {f.name: f for f in dataclasses.fields(Config)}
_HINTS = typing.get_type_hints(Config)
MODES = ("sgan", "supervised")
# Fields that existed once: stored configs (run folders, checkpoints) may hold them, and
# they are dropped on reading; a user setting one is told why it went.
RETIRED = {"second_avg_rate": "a second Polyak average evaluated beside the first; its "
                              "finding is in docs/results.md (the 1e-3 and 1e-4 averages agree "
                              "within seed spread at 300 epochs)"}
# Names users try for a field, answered in the unknown-key message.
SYNONYMS = {"learning_rate": "lr", "batch": "batch_size", "batchsize": "batch_size",
            "n_epochs": "epochs", "num_epochs": "epochs", "epoch": "epochs",
            "beta1": "b1", "beta2": "b2", "labels": "num_labeled", "n_labeled": "num_labeled",
            "random_state": "seed", "ema_rate": "avg_rate", "ema": "avg_rate",
            "devices": "num_devices", "hidden": "d_hidden", "z_dim": "latent_dim",
            "validation_size": "val_size", "val_split": "val_size", "val_fraction": "val_size",
            "learning_rate_decay": "lr_decay_epochs", "lr_rate": "lr", "step_size": "lr",
            "keep": "keep_checkpoints", "max_checkpoints": "keep_checkpoints",
            "dataset_path": "dataset", "data": "dataset",
            "hidden_sizes": "d_hidden", "noise_dim": "latent_dim", "nz": "latent_dim",
            "batch_size_per_device": "batch_size", "epochs_per_eval": "eval_every"}


def fields_with(role: str) -> tuple[str, ...]:
  """The names of the fields declared with ``role``, in declaration order."""
  return tuple(n for n, f in FIELDS.items() if role in f.metadata["roles"])


def check_mode(mode: str) -> None:
  if mode not in MODES:
    raise SganError(f"mode must be one of {MODES}, got {mode!r}.")


def _spelling(key: str) -> str:
  """``key`` as a config field would spell it: ``LearningRate``, ``learning-rate`` ->
  ``learning_rate``."""
  key = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key.strip())
  return re.sub(r"[-\s.]+", "_", key).lower()


def _unknown_key(key: str) -> SganError:
  if key in RETIRED:
    return SganError(f"Config key {key!r} was removed ({RETIRED[key]}); drop it.")
  norm = _spelling(key)
  if norm in FIELDS:
    close = [norm]
  elif norm in SYNONYMS:
    close = [SYNONYMS[norm]]
  else:
    close = difflib.get_close_matches(norm, FIELDS, n=1)
  hint = f" Did you mean {close[0]!r}?" if close else ""
  return SganError(f"Unknown config key {key!r}.{hint} Valid keys: {', '.join(sorted(FIELDS))}.")


def from_dict(d: dict) -> Config:
  """Builds a Config from a mapping, rejecting unknown keys (with a suggestion)."""
  if not isinstance(d, dict):
    raise SganError(f"A config must be a mapping of key -> value, got {type(d).__name__}.")
  for k in d:
    if k not in FIELDS:
      raise _unknown_key(str(k))
  coerced = {k: _coerce_tuple(k, v) for k, v in d.items()}
  return Config(**coerced)


def from_stored(d: dict) -> Config:
  """A config a run folder or checkpoint recorded: :data:`RETIRED` keys are dropped."""
  return from_dict({k: v for k, v in d.items() if k not in RETIRED})


def _coerce_tuple(key, value):
  if _HINTS[key] == Tuple[int, ...] and isinstance(value, list):
    return tuple(value)
  return value


def _type_ok(value, hint) -> bool:
  origin = typing.get_origin(hint)
  if origin in (typing.Union, types.UnionType):
    return any(_type_ok(value, a) for a in typing.get_args(hint))
  if hint is type(None):
    return value is None
  if origin is tuple:
    return isinstance(value, tuple) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value)
  if hint is float:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
  if hint is int:
    return isinstance(value, int) and not isinstance(value, bool)
  return isinstance(value, hint)


def _type_name(hint) -> str:
  return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")


def _check_types(cfg: Config) -> None:
  for name, hint in _HINTS.items():
    value = getattr(cfg, name)
    if not _type_ok(value, hint):
      raise SganError(f"Config key {name!r} must be {_type_name(hint)}, got {value!r} "
                      f"({type(value).__name__}).")


def _choice(cfg, name, choices):
  if getattr(cfg, name) not in choices:
    raise SganError(f"Config key {name!r} must be one of {list(choices)}, got "
                    f"{getattr(cfg, name)!r}.")


def _positive(cfg, *names):
  for n in names:
    v = getattr(cfg, n)
    if v is not None and not v > 0:
      raise SganError(f"Config key {n!r} must be > 0, got {v!r}.")


def _check_values(cfg: Config) -> None:
  for name in FIELDS:
    v = getattr(cfg, name)
    if isinstance(v, float) and not math.isfinite(v):
      raise SganError(f"Config key {name!r} must be a finite number, got {v!r}.")
  given = [n for n in ("labels_per_class", "label_rate", "num_labeled")
           if getattr(cfg, n) is not None]
  if len(given) != 1:
    raise SganError("Set exactly one of 'labels_per_class', 'label_rate' and 'num_labeled' "
                    "(set the others to None, e.g. --set labels_per_class=null); got "
                    f"labels_per_class={cfg.labels_per_class!r}, label_rate={cfg.label_rate!r}, "
                    f"num_labeled={cfg.num_labeled!r}.")
  if cfg.label_rate is not None and not 0.0 < cfg.label_rate <= 1.0:
    raise SganError(f"label_rate must be in (0, 1] (a fraction of the training split), "
                    f"got {cfg.label_rate!r}.")
  _positive(cfg, "labels_per_class", "num_labeled", "batch_size", "lr", "epochs", "iters_per_epoch",
            "latent_dim", "init_examples", "eval_every", "d_width", "g_width",
            "baseline_epochs", "checkpoint_every", "keep_checkpoints")
  for n in ("seed", "data_seed"):  # numpy's RandomState takes 32-bit seeds (offsets added)
    if not 0 <= getattr(cfg, n) < 2**31:
      raise SganError(f"Config key {n!r} must be in [0, 2**31), got {getattr(cfg, n)}.")
  if cfg.num_devices < 0:
    raise SganError(f"num_devices must be >= 0 (0 = all devices), got {cfg.num_devices}.")
  _check_val_size(cfg.val_size)
  if cfg.lr_decay_epochs < 0:
    raise SganError(f"lr_decay_epochs must be >= 0, got {cfg.lr_decay_epochs}.")
  if not 0.0 < cfg.avg_rate <= 1.0:
    raise SganError(f"avg_rate must be in (0, 1], got {cfg.avg_rate}.")
  for n in ("input_noise", "hidden_noise", "unlabeled_weight", "eps_root", "huber_delta"):
    if getattr(cfg, n) < 0:
      raise SganError(f"Config key {n!r} must be >= 0, got {getattr(cfg, n)}.")
  for n in ("b1", "b2"):
    if not 0.0 <= getattr(cfg, n) < 1.0:
      raise SganError(f"Config key {n!r} must be in [0, 1), got {getattr(cfg, n)}.")
  _choice(cfg, "pixel_range", ("0,1", "-1,1", "none"))
  _choice(cfg, "task", ("classification", "regression"))
  _choice(cfg, "regression_loss", ("squared", "huber"))
  if cfg.task == "regression" and cfg.parameterization != "k":
    raise SganError("task='regression' uses one real/fake logit; set parameterization='k'.")
  _choice(cfg, "on_nonfinite", ("stop", "rollback"))
  _choice(cfg, "on_d_wins", ("warn", "rollback"))
  _choice(cfg, "model", ("mlp", "conv", "dcgan"))
  _choice(cfg, "parameterization", ("k", "k+1"))
  _choice(cfg, "compute_dtype", ("float32", "bfloat16"))
  _choice(cfg, "noise_rng", ("threefry", "hash"))
  if cfg.noise_rng == "hash" and cfg.model != "mlp":
    raise SganError(f"noise_rng='hash' draws the MLP critic's Gaussian noise; model="
                    f"{cfg.model!r} regularises with dropout, which it does not change. "
                    "Remove noise_rng (or set it to 'threefry').")
  _choice(cfg, "g_loss", ("feature_matching", "non_saturating", "minimax", "wasserstein",
                          "non_saturating+feature_matching"))
  _choice(cfg, "d_objective", ("gan", "wasserstein"))
  for n in ("gp_weight", "entropy_weight", "balance_weight", "pullaway_weight", "cond_weight"):
    if getattr(cfg, n) < 0:
      raise SganError(f"Config key {n!r} must be >= 0, got {getattr(cfg, n)}.")
  if cfg.conditional and cfg.task == "regression":
    raise SganError("conditional=True generates samples of a chosen class; it needs "
                    "task='classification'.")
  if cfg.d_objective == "wasserstein" and cfg.model == "dcgan":
    raise SganError("d_objective='wasserstein' penalises each example's own input gradient, "
                    "which batch norm in the DCGAN discriminator couples across the batch "
                    "(WGAN-GP's authors drop it too); use model='mlp' or 'conv'.")
  for n in ("entropy_weight", "balance_weight"):
    if getattr(cfg, n) > 0 and cfg.task == "regression":
      raise SganError(f"{n} > 0 needs class probabilities; it applies to "
                      "task='classification' only.")
  if cfg.pullaway_weight > 0 and cfg.batch_size < 2:
    raise SganError("pullaway_weight > 0 compares generated samples pairwise; use batch_size >= 2.")
  _choice(cfg, "fm_order", (1, 2))
  if any(h <= 0 for h in cfg.d_hidden + cfg.g_hidden):
    raise SganError("d_hidden and g_hidden widths must all be > 0.")


def _check_val_size(v: float) -> None:
  """``val_size``: a count of examples (a whole number >= 0) or a fraction in (0, 1)."""
  if v < 0 or (v >= 1 and float(v) != int(v)):
    raise SganError(f"val_size must be a number of examples (0, 1000, ...) or a fraction of "
                    f"the training split between 0 and 1 (0.1 = 10%), got {v}.")


def parse_override(text: str) -> tuple[str, Any]:
  """Parses ``key=value`` from the command line; the value is JSON when it parses."""
  if "=" not in text:
    raise SganError(f"Override {text!r} must look like key=value (e.g. epochs=40).")
  key, raw = text.split("=", 1)
  key = key.strip()
  if key not in FIELDS:
    raise _unknown_key(key)
  try:
    value = json.loads(raw)
  except json.JSONDecodeError:
    value = None if raw in ("None", "none", "null") else raw
  if raw in ("true", "True"):
    value = True
  elif raw in ("false", "False"):
    value = False
  return key, _coerce_tuple(key, value)


def parse_int_list(text: str, what: str, minimum: int = 0) -> list[int]:
  """Parses a command line's ``"1,2,3"`` (seeds, label counts) into distinct integers
  ``>= minimum``.

  A repeated value would run (or count) one cell twice and shrink the reported spread, so
  it is an error like a non-integer.
  """
  try:
    values = [int(v) for v in text.split(",")]
  except ValueError:
    raise SganError(f"{what} must be comma-separated integers such as 1,2,3; got {text!r}.") from None
  if any(v < minimum for v in values):
    raise SganError(f"{what} must be >= {minimum}; got {text!r}.")
  if len(set(values)) != len(values):
    raise SganError(f"{what} lists a value twice ({text!r}); give each once.")
  return values
