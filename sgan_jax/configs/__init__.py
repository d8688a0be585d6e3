"""Named configs: each module defines ``get_config() -> Config`` (and a table config also
``TABLE``). ``sgan-jax train --config <name>`` takes a name here or a path to such a file."""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil

from sgan_jax.errors import SganError

CONFIG_DIR = os.path.dirname(os.path.abspath(__file__))


def names(tables_only: bool = False) -> list[str]:
  """The configs shipped with the package (``tables_only``: those that define a table)."""
  out = sorted(m.name for m in pkgutil.iter_modules([CONFIG_DIR]) if not m.name.startswith("_"))
  return [n for n in out if hasattr(load_module(n), "TABLE")] if tables_only else out


def load_module(name_or_path: str):
  """The config module of a shipped name or a ``.py`` path."""
  if name_or_path.endswith(".py"):
    if not os.path.exists(name_or_path):
      raise SganError(f"No config file {name_or_path!r}.")
    spec = importlib.util.spec_from_file_location("_sgan_config", name_or_path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
  if name_or_path.startswith("_") or not os.path.exists(os.path.join(CONFIG_DIR, name_or_path + ".py")):
    raise SganError(f"No config {name_or_path!r}; choose one of {names()} or pass a path to a "
                    ".py file defining get_config().")
  return importlib.import_module(f"sgan_jax.configs.{name_or_path}")


def load_config(name_or_path: str):
  mod = load_module(name_or_path)
  if not hasattr(mod, "get_config"):
    raise SganError(f"Config {name_or_path!r} defines no get_config().")
  return mod.get_config()


def load_table(name: str):
  """``(TABLE, base config)`` of a table config."""
  mod = load_module(name)
  if not hasattr(mod, "TABLE"):
    raise SganError(f"{name!r} is a config without a TABLE; tables: {names(tables_only=True)}.")
  return mod.TABLE, mod.get_config()
