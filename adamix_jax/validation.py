"""Rejects a configuration that cannot work, before anything is built or compiled, by asking every part.

    parts = validate(config, num_devices, process_count)   # ConfigError: one line naming the key

Each part reads and checks its own section (`RunParts.read`): the run, the method, the model, the optimiser,
the EMA network, the data recipe and the labeled subset. What is left here is only what involves two parts
(a method that needs a class token and the backbone, a batch and the devices, an image size and a model).
"""

import dataclasses

from adamix_jax import distributed, losses, methods, resuming
from adamix_jax.config import ConfigError
from adamix_jax.data import input_pipeline
from adamix_jax.data.options import DataOptions, SemisupOptions
from adamix_jax.models import ModelOptions
from adamix_jax.options import Options, non_negative, one_of, option, positive
from adamix_jax.train_state import EMAOptions, OptimizerOptions


@dataclasses.dataclass(frozen=True)
class RunOptions(Options):
  """The run's own keys: the method's name, the batch, the devices, evaluation, checkpoints and logging."""

  method: str = option("method", one_of(methods.METHODS))
  seed: int = option("seed")
  num_epochs: int = option("num_epochs", positive)
  batch_size: int = option("batch_size", positive)
  eval_batch_size: int = option("eval_batch_size", positive)
  num_devices: int = option("num_devices", non_negative)
  distributed_mode: str = option("distributed.mode", one_of(distributed.MODES))
  eval_every_epochs: int = option("eval.every_epochs", positive)
  eval_report: str = option("eval.report")
  eval_median_of_last: int = option("eval.median_of_last", positive)
  checkpoint_keep: int = option("checkpoint.keep", positive)
  checkpoint_every_steps: int = option("checkpoint.every_steps", non_negative)
  checkpoint_asynchronous: bool = option("checkpoint.asynchronous")
  log_every_steps: int = option("log.every_steps", positive)
  log_progress: bool = option("log.progress")
  log_images_every_steps: int = option("log.images_every_steps", non_negative)
  log_image_count: int = option("log.image_count", positive)
  resume_accept_changes: str = option("resume.accept_changes", resuming.known_changes)


@dataclasses.dataclass(frozen=True)
class RunParts:
  """Every part's options, each read and checked from its own section of one config."""

  run: RunOptions
  method: Options  # The options class of the method (`Method.Options`).
  model: ModelOptions
  optimizer: OptimizerOptions
  ema: EMAOptions
  data: DataOptions
  semisup: SemisupOptions
  dm: losses.DecoupledMixupOptions

  @property
  def method_class(self) -> type[methods.Method]:
    return methods.METHODS[self.run.method]

  @classmethod
  def read(cls, config) -> "RunParts":
    """Reads every part (the first bad value raises ConfigError)."""
    run = RunOptions.from_config(config)
    return cls(
      run=run,
      method=methods.METHODS[run.method].Options.from_config(config),
      model=ModelOptions.from_config(config),
      optimizer=OptimizerOptions.from_config(config),
      ema=EMAOptions.from_config(config),
      data=DataOptions.from_config(config),
      semisup=SemisupOptions.from_config(config),
      dm=losses.DecoupledMixupOptions.from_config(config),
    )


def validate(config, num_devices: int, process_count: int = 1) -> RunParts:
  """Rejects impossible values before anything is built or compiled.

  Args:
    config: the full run configuration.
    num_devices: devices the ('data',) mesh will have.
    process_count: JAX processes (hosts) of the run.

  Returns:
    The parts' options.

  Raises:
    ConfigError: naming the key, the value and the valid choices or bounds.
  """
  parts = RunParts.read(config)
  run, method, model = parts.run, parts.method_class, parts.model
  if method.backbones is not None and model.name not in method.backbones:
    raise ConfigError(
      f"config.method = {run.method!r} runs on {', '.join(method.backbones)} (it reads the class token's "
      f"attention), not config.model.name = {model.name!r}."
    )
  if method.semi_supervised and model.drop_path:
    raise ConfigError(
      f"config.model.drop_path is not yet supported by the semi-supervised method {run.method!r}: leave it 0."
    )
  if parts.dm.eta > 0 and not method.accepts_dm:
    dm_methods = [name for name, cls in methods.METHODS.items() if cls.accepts_dm]
    raise ConfigError(
      f"config.loss.dm.eta = {parts.dm.eta} needs a mixing method; config.method = {run.method!r}. Valid "
      f"choices: {', '.join(sorted(dm_methods))}."
    )
  _check_labeled_subset(parts)
  if parts.data.input_size:  # 0: a folder's images, whose size is known once read (make_experiment checks it).
    model.check_input(parts.data.input_size)
  for key in ("batch_size", "eval_batch_size"):
    if getattr(run, key) % num_devices:
      raise ConfigError(
        f"config.{key} = {getattr(run, key)} is not divisible by the {num_devices} devices of the mesh. "
        f"Use a multiple of {num_devices}, or set config.num_devices."
      )
  try:
    input_pipeline.input_slices(config, process_count)
  except ValueError as error:
    raise ConfigError(str(error)) from None
  _check_report(parts)
  return parts


def _check_labeled_subset(parts: RunParts) -> None:
  method = parts.method_class
  if method.semi_supervised and not parts.semisup.labeled_subset:
    raise ConfigError(
      f"config.method = {parts.run.method!r} learns from a labeled subset and the unlabeled rest: set "
      "config.semisup.num_labeled (e.g. 2500) or config.semisup.labeled_indices."
    )


def _check_report(parts: RunParts) -> None:
  report = parts.run.eval_report
  if report == "auto":
    return
  method = parts.method_class
  network, _, head = report.partition("/")
  networks = ("online", "ema") if parts.ema.kept(method.has_teacher) else ("online",)
  if network not in networks or head not in method.head_names:
    valid = [f"{n}/{h}" for n in networks for h in method.head_names]
    hint = "" if "ema" in networks else " (ema/* needs config.ema.track = True for this method)"
    raise ConfigError(f"config.eval.report = {report!r} is not known. Valid choices: auto, {', '.join(valid)}{hint}.")
