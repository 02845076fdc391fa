"""Typed, frozen options: each part of a run (a method, the model, the optimiser, the data) reads its own
section of the config into one of these, once, and it checks itself::

    @dataclasses.dataclass(frozen=True)
    class DecoupledMixupOptions(Options):
      section = "loss.dm"
      eta: float = option("eta", non_negative)
      mode: str = option("mode", one_of("both", "less", "more"))

    dm = DecoupledMixupOptions.from_config(config)      # reads config.loss.dm.{eta, mode}, checks them
    dm = DecoupledMixupOptions.defaults(eta=0.1)        # base_config()'s values, eta changed
    DecoupledMixupOptions(eta=-1.0, mode="both")        # ConfigError: config.loss.dm.eta = -1.0 must be >= 0.

Each field names its config key (relative to the section the options are read from) and the checks its
value must pass; a field whose type is itself an `Options` reads a sub-section. Construction runs every
check and then `check()` (the relations between fields), so an options object that exists is valid. A
failed check raises `ConfigError` with one line: the full key, the value and what would work. The defaults
live in one place, `config.base_config()`.
"""

import dataclasses
import typing
from collections.abc import Callable
from typing import Any, ClassVar

from adamix_jax import config as config_lib
from adamix_jax.config import ConfigError

# A check: value -> None when the value is fine, else the end of the error sentence ("must be > 0").
Check = Callable[[Any], str | None]


def option(key: str, *checks: Check, default: Any = dataclasses.MISSING) -> Any:
  """A field read from `key` (dotted, relative to the options' section) and held to `checks`.

  `default`: for options that are also built by hand (a RandAugment policy); a config always gives the value.
  """
  return dataclasses.field(default=default, metadata={"key": key, "checks": checks})


def positive(value) -> str | None:
  return None if value > 0 else "must be > 0"


def non_negative(value) -> str | None:
  return None if value >= 0 else "must be >= 0"


def unit_interval(value) -> str | None:
  return None if 0 <= value <= 1 else "must lie in [0, 1]"


def at_least(bound) -> Check:
  return lambda value: None if value >= bound else f"must be >= {bound}"


def below(bound) -> Check:
  return lambda value: None if value < bound else f"must be below {bound}"


def within(low, high, *, low_open: bool = False, high_open: bool = False) -> Check:
  """low <= value <= high, with either end open."""
  text = f"must lie in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
  return lambda value: (
    None if (low < value if low_open else low <= value) and (value < high if high_open else value <= high) else text
  )


def one_of(*choices: str) -> Check:
  """One of `choices` (or of an iterable of names given as the only argument)."""
  if len(choices) == 1 and not isinstance(choices[0], str):
    choices = tuple(choices[0])
  valid = ", ".join(map(str, sorted(choices)))
  return lambda value: None if value in choices else f"is not known. Valid choices: {valid}"


def each(check: Check) -> Check:
  """`check` on every element of a tuple."""

  def checked(values):
    for value in values:
      if (problem := check(value)) is not None:
        return f"has {value!r}, which {problem}"
    return None

  return checked


def ordered_range(low_bound: float = 0.0) -> Check:
  """A (low, high) pair with low_bound < low <= high <= 1."""
  return lambda pair: (
    None if len(pair) == 2 and low_bound < pair[0] <= pair[1] <= 1 else (f"must satisfy {low_bound} < low <= high <= 1")
  )


def colour(value) -> str | None:
  """Three values in [0, 255], one per channel."""
  ok = len(value) == 3 and all(0 <= v <= 255 for v in value)
  return None if ok else "must be three values in [0, 255] (one per channel)"


_TYPE_NAMES = {int: "an integer", float: "a number", bool: "True or False", str: "a string", tuple: "a tuple"}


def _typed(value, kind, key: str):
  """`value` as `kind` (int, float, bool, str, tuple[...]), or a ConfigError naming `key`."""
  origin = typing.get_origin(kind) or kind
  if origin is tuple and isinstance(value, list | tuple):
    return tuple(value)
  if origin is float and isinstance(value, int) and not isinstance(value, bool):
    return float(value)
  if isinstance(value, origin) and not (origin is int and isinstance(value, bool)):
    return value
  raise ConfigError(f"config.{key} must be {_TYPE_NAMES.get(origin, origin.__name__)}, not {value!r}.")


@dataclasses.dataclass(frozen=True)
class Options:
  """Base of every options class: declared fields, read from a config section, checked on construction.

  Attributes:
    section: where in the config these options usually live ("" for the top level).
    where: the section these were read from, when another (RandAugment's options live in two places);
      error messages name keys under it.
  """

  section: ClassVar[str] = ""
  where: str | None = dataclasses.field(default=None, kw_only=True, compare=False, repr=False)

  def __post_init__(self):
    for field in dataclasses.fields(self):
      if not field.metadata:
        continue
      value = getattr(self, field.name)
      if isinstance(value, Options):
        continue  # Checked when it was built.
      for check in field.metadata["checks"]:
        if (problem := check(value)) is not None:
          raise ConfigError(f"{self.key(field.name)} = {value!r} {problem}.")
    self.check()

  def check(self) -> None:
    """Relations between fields; raises ConfigError. Subclasses override it."""

  def key(self, name: str) -> str:
    """`config.<section>.<key>` of the field `name`, for messages."""
    key = next(f.metadata["key"] for f in dataclasses.fields(self) if f.name == name)
    section = self.section if self.where is None else self.where
    return f"config.{section}.{key}" if section else f"config.{key}"

  @classmethod
  def from_config(cls, config, section: str | None = None):
    """The options read from `config` (a ConfigDict or nested dict) under `section` (default: the class's)."""
    section = cls.section if section is None else section
    node = config
    for part in filter(None, section.split(".")):
      node = node[part]
    hints = typing.get_type_hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
      if not field.metadata or not field.init:
        continue
      key = field.metadata["key"]
      full = f"{section}.{key}" if section else key
      kind = hints[field.name]
      if isinstance(kind, type) and issubclass(kind, Options):
        values[field.name] = kind.from_config(config, full)
        continue
      value = node
      for part in key.split("."):
        value = value[part]
      values[field.name] = _typed(value, kind, full)
    return cls(**values, where=None if section == cls.section else section)

  @classmethod
  def defaults(cls, section: str | None = None, **changes):
    """The options of `config.base_config()` under `section`, with `changes` (field name -> value) applied."""
    return dataclasses.replace(cls.from_config(config_lib.base_config(), section), **changes)
