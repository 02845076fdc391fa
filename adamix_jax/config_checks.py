"""The checks that reject a configuration that cannot work, before anything is built or compiled.

    validate(config, num_devices, process_count)   # raises ConfigError naming the key and the valid choices

Every message is one line: the key, its value, and what would work (the valid choices or bounds).
"""

import os

import ml_collections

from adamix_jax import distributed, generators, losses, methods, models, schedules, train_state
from adamix_jax.data import augment, datasets, input_pipeline, rand_augment
from adamix_jax.methods import adautomix


class ConfigError(ValueError):
  """A configuration value that cannot work. The message says which key and what would."""


def _positive(config, *keys, allow_zero=False):
  for key in keys:
    value = _get(config, key)
    if value < 0 or (value == 0 and not allow_zero):
      bound = ">= 0" if allow_zero else "> 0"
      raise ConfigError(f"config.{key} = {value!r} must be {bound}.")


def _in_unit_interval(config, *keys):
  for key in keys:
    if not 0.0 <= _get(config, key) <= 1.0:
      raise ConfigError(f"config.{key} = {_get(config, key)!r} must lie in [0, 1].")


def _get(config, key):
  node = config
  for part in key.split("."):
    node = node[part]
  return node


def _choice(value, choices, key):
  if value not in choices:
    raise ConfigError(f"config.{key} = {value!r} is not known. Valid choices: {', '.join(sorted(choices))}.")


def _validate_view_options(config: ml_collections.ConfigDict, prefix: str) -> None:
  """The RandAugment and Cutout options under config.<prefix> (data, or semisup.strong)."""
  options = _get(config, f"{prefix}.randaugment")
  ra, cut = f"{prefix}.randaugment", f"{prefix}.cutout"
  _positive(config, f"{ra}.num_ops", f"{ra}.level", f"{ra}.level_std", f"{cut}.size", allow_zero=True)
  _positive(config, f"{prefix}.crop_padding", allow_zero=True)
  _positive(config, f"{ra}.max_level")
  if options.level > options.max_level:
    raise ConfigError(f"config.{ra}.level = {options.level} exceeds max_level = {options.max_level}.")
  _in_unit_interval(config, f"{ra}.prob", f"{ra}.negate_prob", f"{cut}.prob")
  for name in options.operations:
    _choice(name, rand_augment.FIXMATCH_OPERATIONS, f"{ra}.operations")
  for key in (f"{ra}.fill", f"{cut}.fill"):
    fill = tuple(_get(config, key))
    if len(fill) != 3 or not all(0 <= v <= 255 for v in fill):
      raise ConfigError(f"config.{key} = {fill} must be three values in [0, 255] (one per channel).")


def _validate_data(config: ml_collections.ConfigDict) -> None:
  spec = datasets.DATASETS[config.data.name]
  _choice(config.data.augment, augment.AUGMENTATIONS, "data.augment")
  _choice(config.data.resize_method, augment.RESIZE_METHODS, "data.resize_method")
  _positive(config, "data.image_size", "data.eval_resize", allow_zero=True)
  if spec.image_size == 0 and config.data.image_size == 0:
    raise ConfigError(
      f"The images of config.data.name = {config.data.name!r} vary in size: set config.data.image_size "
      "(the side of the model's square input, e.g. 224) and config.data.augment = 'random_resized_crop'."
    )
  size = config.data.image_size or spec.image_size
  if config.data.augment == "crop_flip" and size != spec.image_size:
    raise ConfigError(
      f"config.data.augment = 'crop_flip' keeps the images' own size ({spec.image_size or 'varying'}), but "
      f"config.data.image_size = {config.data.image_size}. Use 'random_resized_crop', or image_size 0."
    )
  _validate_view_options(config, "data")
  try:
    models.check_input(config.model.name, size, width=config.model.width, window=config.model.window)
  except ValueError as error:
    raise ConfigError(str(error)) from None
  low, high = config.data.crop_scale
  if not 0 < low <= high <= 1:
    raise ConfigError(f"config.data.crop_scale = {(low, high)} must satisfy 0 < low <= high <= 1.")
  if config.data.eval_resize and config.data.eval_resize < size:
    raise ConfigError(
      f"config.data.eval_resize = {config.data.eval_resize} is smaller than the {size}-pixel centre crop."
    )


def uses_labeled_subset(config: ml_collections.ConfigDict) -> bool:
  """Whether the run trains on a labeled subset (config.semisup.num_labeled or labeled_indices)."""
  return bool(config.semisup.num_labeled or config.semisup.labeled_indices)


def _validate_semisup(config: ml_collections.ConfigDict) -> None:
  options, method = config.semisup, methods.METHODS[config.method]
  _positive(config, "semisup.num_labeled", "semisup.unlabeled_weight", "semisup.weak_crop_padding", allow_zero=True)
  _positive(config, "semisup.unlabeled_ratio")
  if not 0 < options.threshold <= 1:
    raise ConfigError(f"config.semisup.threshold = {options.threshold!r} must lie in (0, 1].")
  _choice(options.mix_ramp, schedules.MIX_RAMPS, "semisup.mix_ramp")
  _validate_view_options(config, "semisup.strong")
  if options.num_labeled and options.labeled_indices:
    raise ConfigError(
      f"config.semisup.num_labeled = {options.num_labeled} and config.semisup.labeled_indices = "
      f"{options.labeled_indices!r} both choose the labeled set. Set one of them."
    )
  if options.labeled_indices and not os.path.isfile(options.labeled_indices):
    raise ConfigError(
      f"config.semisup.labeled_indices = {options.labeled_indices!r} is not a file. Give a .json list, a .txt "
      "with one index per line, or a .npy of training-split indices."
    )
  if method.semi_supervised and not uses_labeled_subset(config):
    raise ConfigError(
      f"config.method = {config.method!r} learns from a labeled subset and the unlabeled rest: set "
      "config.semisup.num_labeled (e.g. 2500) or config.semisup.labeled_indices."
    )
  spec = datasets.DATASETS[config.data.name]
  if uses_labeled_subset(config) and (spec.source == "image_folder" or spec.image_size == 0):
    fixed = [name for name, s in datasets.DATASETS.items() if s.source != "image_folder" and s.image_size]
    raise ConfigError(
      f"A labeled subset needs a dataset of fixed-size images held in host memory; config.data.name = "
      f"{config.data.name!r} is not one. Valid choices: {', '.join(sorted(fixed))}."
    )


def validate(config: ml_collections.ConfigDict, num_devices: int, process_count: int = 1) -> None:
  """Rejects impossible values before anything is built or compiled.

  Args:
    config: the full run configuration.
    num_devices: devices the ('data',) mesh will have.
    process_count: JAX processes (hosts) of the run.

  Raises:
    ConfigError: naming the key, the value and the valid choices or bounds.
  """
  _choice(config.method, methods.METHODS, "method")
  _choice(config.data.name, datasets.DATASETS, "data.name")
  _choice(config.model.name, models.BACKBONES, "model.name")
  _choice(config.model.init, models.INITS, "model.init")
  _choice(config.model.dtype, models.DTYPES, "model.dtype")
  backbones = methods.METHODS[config.method].backbones
  if backbones is not None and config.model.name not in backbones:
    raise ConfigError(
      f"config.method = {config.method!r} runs on {', '.join(backbones)} (it reads the class token's attention), "
      f"not config.model.name = {config.model.name!r}."
    )
  if config.model.pretrained and not os.path.isfile(config.model.pretrained):
    raise ConfigError(
      f"config.model.pretrained = {config.model.pretrained!r} is not a file. Give the .npz of torchvision "
      "weights (adamix_jax/models/pretrained.py says how to convert a .pth), or '' to train from scratch."
    )
  _positive(config, "model.window", "model.drop_path", allow_zero=True)
  for option in ("window", "drop_path"):
    if config.model[option] and config.model.name not in models.OPTIONS[option]:
      raise ConfigError(
        f"config.model.{option} = {config.model[option]} applies to {', '.join(models.OPTIONS[option])}, not "
        f"{config.model.name}: leave it 0."
      )
  if config.model.drop_path >= 1:
    raise ConfigError(f"config.model.drop_path = {config.model.drop_path} must be below 1.")
  if not 0 <= config.loss.label_smoothing < 1:
    raise ConfigError(f"config.loss.label_smoothing = {config.loss.label_smoothing!r} must lie in [0, 1).")
  for key in ("model.drop_path", "loss.label_smoothing"):
    if _get(config, key) and issubclass(methods.METHODS[config.method], methods.FixMatch):  # Semi-supervised.
      raise ConfigError(
        f"config.{key} is not yet supported by the semi-supervised method {config.method!r}: leave it 0."
      )
  _positive(config, "num_epochs", "batch_size", "eval_batch_size", "optimizer.lr", "eval.every_epochs")
  _positive(config, "eval.median_of_last", "checkpoint.keep", "log.every_steps", "log.image_count")
  _positive(config, "log.images_every_steps", allow_zero=True)
  _positive(config, "optimizer.min_lr", "optimizer.weight_decay", "optimizer.momentum", allow_zero=True)
  _choice(config.optimizer.name, train_state.OPTIMIZERS, "optimizer.name")
  _choice(config.optimizer.schedule, train_state.LR_SCHEDULES, "optimizer.schedule")
  _positive(config, "optimizer.warmup_epochs", "optimizer.grad_clip", "optimizer.eps", allow_zero=True)
  if not 0 < config.optimizer.warmup_ratio <= 1:
    raise ConfigError(f"config.optimizer.warmup_ratio = {config.optimizer.warmup_ratio} must be in (0, 1].")
  if config.optimizer.warmup_epochs and config.optimizer.schedule != "cosine_per_step":
    raise ConfigError(
      "config.optimizer.warmup_epochs needs config.optimizer.schedule = 'cosine_per_step' (the warm-up is per "
      "step, as mmcv's)."
    )
  if config.optimizer.warmup_epochs > config.num_epochs:
    raise ConfigError(
      f"config.optimizer.warmup_epochs = {config.optimizer.warmup_epochs} exceeds config.num_epochs = "
      f"{config.num_epochs}."
    )
  _positive(config, "data.crop_padding", "data.max_train_examples", "data.max_eval_examples", allow_zero=True)
  _validate_data(config)
  _validate_semisup(config)
  _choice(config.distributed.mode, distributed.MODES, "distributed.mode")
  _positive(config, "data.input_slices", allow_zero=True)
  try:
    input_pipeline.input_slices(config, process_count)
  except ValueError as error:
    raise ConfigError(str(error)) from None
  _positive(config, "checkpoint.every_steps", "model.width", "num_devices", "data.shuffle_buffer", allow_zero=True)
  _positive(config, "optimizer.generator.lr", "optimizer.generator.min_lr", allow_zero=True)
  for prefix in ("optimizer", "optimizer.generator"):
    lr, min_lr = _get(config, f"{prefix}.lr"), _get(config, f"{prefix}.min_lr")
    if min_lr > lr and (prefix == "optimizer" or lr > 0):
      raise ConfigError(f"config.{prefix}.min_lr = {min_lr} exceeds config.{prefix}.lr = {lr}.")
  _in_unit_interval(config, "ema.momentum", "ema.end_momentum", "ema.adjust_start")
  for key in ("batch_size", "eval_batch_size"):
    if _get(config, key) % num_devices:
      raise ConfigError(
        f"config.{key} = {_get(config, key)} is not divisible by the {num_devices} devices of the mesh. "
        f"Use a multiple of {num_devices}, or set config.num_devices."
      )
  _positive(config, "mixup.alpha", "mixup.fmix_decay_power", "mixup.cutmix_alpha")
  _in_unit_interval(config, "mixup.cutmix_prob", "mixup.transmix_ratio")
  _positive(config, "loss.dm.eta", "loss.dm.lam_power", allow_zero=True)
  _choice(config.loss.dm.mode, losses.DM_MODES, "loss.dm.mode")
  low, high = config.mixup.resizemix_scope
  if not 0 < low <= high <= 1:
    raise ConfigError(f"config.mixup.resizemix_scope = {(low, high)} must satisfy 0 < low <= high <= 1.")
  if not set(config.mixup.manifoldmix_stages) <= {0, 1, 2} or not config.mixup.manifoldmix_stages:
    raise ConfigError(
      f"config.mixup.manifoldmix_stages = {config.mixup.manifoldmix_stages} must be a subset of (0, 1, 2)."
    )
  if config.loss.dm.eta > 0 and not methods.METHODS[config.method].accepts_dm:
    dm_methods = [name for name, cls in methods.METHODS.items() if cls.accepts_dm]
    raise ConfigError(
      f"config.loss.dm.eta = {config.loss.dm.eta} needs a mixing method; config.method = {config.method!r}. "
      f"Valid choices: {', '.join(sorted(dm_methods))}."
    )
  if config.adautomix.num_mix < 2:
    raise ConfigError(f"config.adautomix.num_mix = {config.adautomix.num_mix} must be >= 2.")
  _choice(config.adautomix.cosine_term, adautomix.COSINE_TERMS, "adautomix.cosine_term")
  _choice(config.generator.upsample_mode, generators.UPSAMPLE_MODES, "generator.upsample_mode")
  _positive(config, "adautomix.adversarial_period")
  if config.eval.report == "auto":
    return
  method = methods.METHODS[config.method]
  network, _, head = config.eval.report.partition("/")
  networks = ("online", "ema") if method.keeps_ema(config) else ("online",)
  if network not in networks or head not in method.head_names:
    valid = [f"{n}/{h}" for n in networks for h in method.head_names]
    hint = "" if "ema" in networks else " (ema/* needs config.ema.track = True for this method)"
    raise ConfigError(
      f"config.eval.report = {config.eval.report!r} is not known. Valid choices: auto, {', '.join(valid)}{hint}."
    )
