"""Run configuration as data: one frozen dataclass, validated on construction.

Configs are plain values; experiment files (``experiments/configs/*.py``) define
``get_config() -> Config`` and the command line overrides fields with
``--set key=value``. Unknown keys and wrong types raise :class:`SganError` naming
the key and the closest valid one.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from typing import Any, Optional, Tuple

from sgan_jax.errors import SganError


@dataclasses.dataclass(frozen=True)
class Config:
  """Everything a run depends on. Field docs are in README's config table."""

  name: str = "custom"
  # --- data
  dataset: str = "digits"              # digits | mnist | cifar10 | svhn_cropped | path/to/file.npz
  data_dir: Optional[str] = None       # TFDS data_dir
  pixel_range: str = "0,1"             # "0,1" (sigmoid G), "-1,1" (tanh G), "none" (linear G, tabular)
  labels_per_class: Optional[int] = 10 # exactly one of labels_per_class / label_rate / num_labeled
  label_rate: Optional[float] = None   # fraction of the training split, stratified
  num_labeled: Optional[int] = None    # total labels, balanced (n % K classes get one more)
  val_size: int = 0                    # examples held out of the training split for selection
  data_seed: int = 1                   # chooses validation split and labeled subset
  seed: int = 0                        # parameters, noise and batch order
  # --- model
  model: str = "mlp"                   # mlp | conv (improved-gan 32x32) | dcgan (Odena-style)
  d_hidden: Tuple[int, ...] = (1000, 500, 250, 250, 250)
  g_hidden: Tuple[int, ...] = (500, 500)
  d_width: int = 96                    # conv/dcgan discriminator first-stage channels
  g_width: int = 128                   # conv/dcgan generator last-stage channels
  input_noise: float = 0.3
  hidden_noise: float = 0.5
  noise_rng: str = "threefry"          # threefry (jax.random) | hash (sgan_jax.noise: ~4x cheaper on CPU)
  latent_dim: int = 100
  parameterization: str = "k"          # k (Salimans) | k+1 (Odena)
  compute_dtype: str = "float32"       # float32 | bfloat16 (params stay float32)
  num_devices: int = 0                 # data-parallel devices; 0 = all visible devices
  # --- objective
  task: str = "classification"         # classification | regression (two-headed discriminator)
  regression_loss: str = "squared"     # squared | huber (regression head, labeled rows)
  huber_delta: float = 1.0
  g_loss: str = "feature_matching"     # feature_matching | non_saturating | minimax | wasserstein
                                       # | non_saturating+feature_matching
  d_objective: str = "gan"             # gan (Salimans real/fake log-loss) | wasserstein (critic + GP)
  gp_weight: float = 10.0              # gradient-penalty weight (d_objective=wasserstein)
  entropy_weight: float = 0.0          # Bad-GAN conditional entropy on unlabeled logits (D)
  balance_weight: float = 0.0          # KL(unlabeled batch's mean p(y|x) || labeled class freq.) (D)
  pullaway_weight: float = 0.0         # Bad-GAN pull-away term on generated features (G)
  conditional: bool = False            # generator takes the class; G(z, c) should look like c
  cond_weight: float = 1.0             # weight of the generator's class cross-entropy
  fm_order: int = 2                    # 2: mean squared (MNIST); 1: mean absolute (CIFAR/SVHN)
  unlabeled_weight: float = 1.0
  # --- optimisation
  batch_size: int = 100                # per stream (labeled, unlabeled, generated)
  lr: float = 0.003
  lr_decay_epochs: int = 100           # linear decay to 0 over the last N epochs
  b1: float = 0.5
  b2: float = 0.999
  eps_root: float = 1e-8               # Adam epsilon inside the square root (reference)
  epochs: int = 300
  iters_per_epoch: Optional[int] = None  # default: unlabeled examples // batch_size
  avg_rate: float = 1e-4               # Polyak average a <- a + rate * (p - a), a0 = 0
  second_avg_rate: float = 0.0         # a second average of D, evaluated beside (0 = none)
  init_examples: int = 500             # batch for data-dependent weight-norm init
  # --- evaluation / output
  eval_every: int = 1                  # epochs between evaluations
  baseline: bool = True                # also train the supervised-only baseline
  baseline_epochs: Optional[int] = None  # default: same as epochs
  checkpoint_every: int = 1            # epochs between checkpoints (with a workdir)
  keep_checkpoints: int = 3            # latest N kept, plus the best on validation
  on_nonfinite: str = "stop"           # stop | rollback (to the last checkpoint, new key)
  on_d_wins: str = "warn"              # warn | rollback (to a checkpoint >= 2 epochs back, new key)
  tensorboard: bool = False            # also write TensorBoard scalars to <workdir>/tb/<mode>

  def __post_init__(self):
    _check_types(self)
    _check_values(self)

  # -- construction helpers
  def replace(self, **kw) -> "Config":
    return from_dict({**self.to_dict(), **kw})

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


def _unknown_key(key: str) -> SganError:
  close = difflib.get_close_matches(key, FIELDS, n=1)
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
  if cfg.val_size < 0:
    raise SganError(f"val_size must be >= 0, got {cfg.val_size}.")
  if cfg.lr_decay_epochs < 0:
    raise SganError(f"lr_decay_epochs must be >= 0, got {cfg.lr_decay_epochs}.")
  if not 0.0 < cfg.avg_rate <= 1.0:
    raise SganError(f"avg_rate must be in (0, 1], got {cfg.avg_rate}.")
  if not 0.0 <= cfg.second_avg_rate <= 1.0:
    raise SganError(f"second_avg_rate must be in [0, 1] (0 = no second average), got "
                    f"{cfg.second_avg_rate}.")
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
