"""The configuration every run starts from, and the checks that reject a bad one before compiling.

Config files in `configs/` call `base_config()` and change what their setting needs. Every key below is
documented where it is defined; `--config.KEY=VALUE` overrides any of them from the command line.
"""

import os

import ml_collections

from adamix_jax import distributed, generators, losses, methods, models, schedules, train_state
from adamix_jax.data import augment, datasets, input_pipeline, rand_augment
from adamix_jax.methods import adautomix


class ConfigError(ValueError):
  """A configuration value that cannot work. The message says which key and what would."""


def randaugment_config(num_ops: int) -> ml_collections.ConfigDict:
  """RandAugment options (data/rand_augment.py): the FixMatch policy at full magnitude; num_ops 0 is off."""
  options = ml_collections.ConfigDict()
  options.num_ops = num_ops  # Operations drawn per image; 0: off.
  options.level = 30.0  # Magnitude level out of max_level (max_level: each range's far end).
  options.max_level = 30.0
  options.prob = 0.5  # Probability that each drawn operation is applied.
  options.negate_prob = 0.5  # Probability that a directed operation is negated.
  options.operations = tuple(rand_augment.FIXMATCH_OPERATIONS)  # The 14 FixMatch operations.
  options.fill = (128, 128, 128)  # Colour brought in by rotations, shears, translations.
  return options


def cutout_config(size: int, fill=(128, 128, 128), prob: float = 1.0) -> ml_collections.ConfigDict:
  """Cutout options: one size x size square of `fill` (size 0 is off), cut with probability `prob`."""
  return ml_collections.ConfigDict({"size": size, "fill": fill, "prob": prob})


def base_config() -> ml_collections.ConfigDict:
  """The defaults: ERM, CIFAR ResNet-18, the paper's CIFAR-100 data and optimiser recipe."""
  config = ml_collections.ConfigDict()
  config.method = "erm"  # One of adamix_jax.methods.METHODS.
  config.seed = 0  # Seeds the initialisation, the data order and augmentation, and the mixing plans.
  config.num_epochs = 200
  config.batch_size = 100  # Global batch: split evenly over the devices (and hosts).
  config.eval_batch_size = 500  # Global evaluation batch; the last batch is padded, never dropped.
  config.num_devices = 0  # Devices of the ('data',) mesh; 0 means every device JAX sees.

  config.distributed = ml_collections.ConfigDict()  # Multi-host runs (adamix_jax.distributed).
  config.distributed.mode = "auto"  # "auto" (TPU pods, SLURM, a coordinator given), "on" or "off".
  config.distributed.coordinator_address = ""  # host:port of process 0, for GPU clusters without SLURM.
  config.distributed.num_processes = 0  # With coordinator_address: the number of processes.
  config.distributed.process_id = -1  # With coordinator_address: this process's index.

  config.data = ml_collections.ConfigDict()
  config.data.name = "cifar100"  # One of adamix_jax.data.datasets.DATASETS.
  config.data.data_dir = ""  # Where tfds keeps prepared data; "": $TFDS_DATA_DIR or ~/tensorflow_datasets.
  config.data.download = True  # Download and prepare a missing dataset when the network allows.
  config.data.augment = "crop_flip"  # Training crop: "crop_flip" (CIFAR) or "random_resized_crop" (ImageNet).
  config.data.crop_padding = 4  # crop_flip: random crop to the image size after reflect padding by this much.
  config.data.crop_scale = (0.08, 1.0)  # random_resized_crop: range of the crop's share of the image area.
  config.data.image_size = 0  # Side of the square model input; 0: the dataset's own (fixed-size datasets).
  config.data.resize_method = "bilinear"  # "bilinear" or "bicubic", for random_resized_crop and evaluation.
  config.data.eval_resize = 0  # Evaluation: shorter side resized to this, then centre crop (0: image_size).
  config.data.flip = True  # Random horizontal flip.
  config.data.randaugment = randaugment_config(num_ops=0)  # After crop and flip (data/rand_augment.py).
  config.data.cutout = cutout_config(size=0)  # After RandAugment: one square of `fill`.
  config.data.max_train_examples = 0  # Use only the first N training examples (0: all). For smoke runs.
  config.data.max_eval_examples = 0  # Evaluate only the first N test examples (0: all).
  config.data.cache = True  # Keep the decoded split in host memory (small datasets).
  config.data.shuffle_buffer = 0  # 0: the whole split (an exact permutation per epoch).
  config.data.input_slices = 0  # Slices of the training split, each shuffled on its own; 0: one per process.

  config.model = ml_collections.ConfigDict()
  config.model.name = "cifar_resnet18"  # One of adamix_jax.models.BACKBONES.
  config.model.width = 0  # Base channel count; 0: the architecture's published width.
  config.model.init = "official"  # "official" (docs/method.md#initialisation) or "flax".
  config.model.pretrained = ""  # .npz of torchvision ResNet weights for the backbone (models/pretrained.py).
  config.model.sync_batch_norm = False  # Normalise with statistics of the global batch, not each device's.
  config.model.dtype = "float32"  # Compute dtype (models.DTYPES); parameters stay float32.
  config.model.window = 0  # Swin's attention window side; 0: the published 7.
  config.model.drop_path = 0.0  # Stochastic depth of the last block (transformer backbones), linear from 0.

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = "sgd"  # "sgd" (PyTorch's, coupled L2) or "adamw" (decoupled decay).
  config.optimizer.lr = 0.1  # At batch_size 100, as the paper; not rescaled automatically.
  config.optimizer.min_lr = 0.0  # Floor of the per-epoch cosine annealing.
  config.optimizer.momentum = 0.9
  config.optimizer.nesterov = False
  config.optimizer.weight_decay = 1e-4  # Coupled L2, added to the gradient as PyTorch SGD does.
  config.optimizer.decay_norm_and_bias = True  # False: no decay on 1-D leaves, class token, position tables.
  config.optimizer.betas = (0.9, 0.999)  # AdamW.
  config.optimizer.eps = 1e-8  # AdamW.
  config.optimizer.schedule = "cosine_per_epoch"  # Or "cosine_per_step" (mmcv by_epoch=False), with warm-up.
  config.optimizer.warmup_epochs = 0.0  # cosine_per_step: linear warm-up over this many epochs.
  config.optimizer.warmup_ratio = 1e-5  # The warm-up starts at this fraction of the scheduled lr.
  config.optimizer.grad_clip = 0.0  # > 0: clip the global gradient norm (all groups together) to this.
  config.optimizer.generator = ml_collections.ConfigDict()  # The mask generator's own schedule (paramwise lr).
  config.optimizer.generator.lr = 0.0  # 0: the generator follows the classifier's lr and min_lr.
  config.optimizer.generator.min_lr = 0.0  # Floor of the generator's cosine when its lr is set.

  config.mixup = ml_collections.ConfigDict()  # The static mixups (adamix_jax.mixing).
  config.mixup.alpha = 1.0  # lambda ~ Beta(alpha, alpha).
  config.mixup.resizemix_scope = (0.1, 0.8)  # ResizeMix: range of the pasted image's side ratio.
  config.mixup.fmix_decay_power = 3.0  # FMix: spectrum decay.
  config.mixup.manifoldmix_stages = (0, 1, 2)  # ManifoldMix: inputs of stages 1-3 it may mix (0: after the stem).

  config.loss = ml_collections.ConfigDict()
  config.loss.dm = ml_collections.ConfigDict()  # docs/method.md#decoupled-mixup; eta = 0 turns it off.
  config.loss.dm.eta = 0.0
  config.loss.dm.mode = "both"  # "both", "less" (minority source only) or "more" (majority only).
  config.loss.dm.lam_power = 1.0  # eta_i = eta * lam_i ** lam_power.
  config.loss.dm.threshold = 0.5  # Minority/majority boundary of "less"/"more".
  config.loss.dm.official_pairing = False  # Reproduce the official eta-to-class pairing by row 0's class order.

  config.adautomix = ml_collections.ConfigDict()  # docs/method.md#adautomix; official CIFAR defaults.
  config.adautomix.num_mix = 3  # N, images mixed per sample (2 or more).
  config.adautomix.random_num = False  # Draw N uniformly from {2, ..., num_mix} every iteration (is_random).
  config.adautomix.beta = 0.3  # Weight of the adversarial CE against the cosine term (beta_radio).
  config.adautomix.mixup_ratio = 0.5  # N >= 3: weight of the vanilla N-mixup term against the clean CE.
  config.adautomix.lam_margin = (
    0.03  # Classifier batch falls back to constant masks when lambda_1 is this close to 0 or 1.
  )
  config.adautomix.adversarial_period = 2  # Steps 0, P, 2P, ... are adversarial; the others cooperative.
  config.adautomix.cosine_term = "minimize_similarity"  # The official sign; "maximize_similarity": 1 - S.

  config.automix = ml_collections.ConfigDict()  # docs/method.md#automix (OpenMixup's CIFAR defaults).
  config.automix.lam_margin = 0.08  # Classifier batch: vanilla mixup when lambda is this close to 0 or 1.
  config.automix.mask_loss = 0.1  # Weight of the mask loss.
  config.automix.mask_margin = 0.1  # The mask loss ignores area errors up to this margin.

  config.semisup = (
    ml_collections.ConfigDict()
  )  # A labeled subset, and FixMatch / DMixMatch (docs/method.md#semi-supervised-learning).
  config.semisup.num_labeled = 0  # Labeled examples, class-balanced, chosen from config.seed; 0: every label.
  config.semisup.labeled_indices = ""  # Or a file of training-split indices (.json, .txt, .npy) to use as labeled.
  config.semisup.unlabeled_ratio = 7  # Unlabeled images per labeled one in a step: batch_size * ratio of them.
  config.semisup.threshold = 0.95  # A pseudo-label counts where the teacher's top probability is >= this.
  config.semisup.unlabeled_weight = 1.0  # Weight of the FixMatch term.
  config.semisup.weak_crop_padding = 2  # The weak view: reflect-pad random crop and flip.
  config.semisup.strong = ml_collections.ConfigDict()  # The strong view: crop and flip, RandAugment, Cutout.
  config.semisup.strong.crop_padding = 4
  config.semisup.strong.randaugment = randaugment_config(num_ops=3)
  config.semisup.strong.cutout = cutout_config(size=4, fill=(125, 123, 114), prob=0.5)
  config.semisup.mix_ramp = "compound"  # dmixmatch: weight ramp of the labeled x unlabeled term (MIX_RAMPS).

  config.generator = ml_collections.ConfigDict()  # The mask generator of AdAutoMix / AutoMix.
  config.generator.feature_stage = 2  # Backbone stage output it reads (2: stage 3 of a ResNet).
  config.generator.reduction = 2  # Attention width = channels // reduction.
  config.generator.lam_concat = False  # Append lambda as a constant feature channel.
  config.generator.upsample_mode = "bilinear"  # "bilinear" or "nearest", up to the image size.
  config.generator.attention_norm = False  # BN after the q/k convolutions (ImageNet R50).

  config.ema = ml_collections.ConfigDict()  # docs/method.md#the-ema-teacher
  config.ema.momentum = 0.999  # Held for the first adjust_start fraction of training.
  config.ema.end_momentum = 0.999999  # Reached by cosine at the last step.
  config.ema.adjust_start = 0.1  # Fraction of training after which the cosine schedule applies.
  # ERM and the static mixups have no teacher: track = True also keeps an EMA of their classifier (parameters
  # and BatchNorm statistics) and evaluates it as ema/*. AdAutoMix and AutoMix always have one.
  config.ema.track = False

  config.eval = ml_collections.ConfigDict()
  config.eval.every_epochs = 1
  config.eval.report = "auto"  # The reported number: "<online|ema>/<head>" ("auto": the method's), median top-1...
  config.eval.median_of_last = 10  # ... over this many last evaluations.

  config.checkpoint = ml_collections.ConfigDict()
  config.checkpoint.keep = 3  # Latest checkpoints kept, in addition to the best one.
  config.checkpoint.every_steps = 0  # Also save every N steps inside an epoch (0: at epoch ends only).
  config.checkpoint.asynchronous = True

  config.log = ml_collections.ConfigDict()
  config.log.every_steps = 50  # TensorBoard and metrics.jsonl training scalars.
  config.log.progress = True  # The progress line on process 0.
  config.log.images_every_steps = 1000  # TensorBoard pictures of fixed mixed samples and masks (0: never).
  config.log.image_count = 8  # Samples in those pictures (the first test images).
  return config


def from_saved(saved: dict) -> ml_collections.ConfigDict:
  """The config a checkpoint saved (its JSON), on today's defaults: keys added since it was saved get their
  default values, so runs of older versions can still be looked at and evaluated."""
  config = base_config()
  config.update(saved)
  return config


def set_path(config: ml_collections.ConfigDict, key: str, value) -> None:
  """config[a][b][c] = value for key "a.b.c", as `--config.a.b.c=value` would set it."""
  node = config
  *parents, leaf = key.split(".")
  for parent in parents:
    node = node[parent]
  node[leaf] = value


# OpenMixup's Decoupled Mixup settings per backbone and static mixup, (alpha, eta, mode, lam_power), from
# `configs/classification/cifar100/mixups/decouple/` (docs/method.md#decoupled-mixup).
OFFICIAL_DM = {
  "r18": {
    "mixup": (0.2, 0.01, "more", 0.5),
    "cutmix": (0.2, 0.1, "less", 0.5),
    "fmix": (0.2, 0.01, "less", 0.0),
    "manifoldmix": (0.5, 0.01, "more", 0.0),
    "resizemix": (0.2, 0.1, "less", 0.5),
    "saliencymix": (0.2, 0.01, "less", 0.0),
  },
  "rx50": {
    "mixup": (0.2, 0.01, "both", 1.0),
    "cutmix": (0.2, 0.1, "both", 1.0),
    "fmix": (0.2, 0.5, "both", 0.0),
    "manifoldmix": (2.0, 0.05, "both", 1.0),
    "resizemix": (0.2, 0.01, "less", 0.0),
    "saliencymix": (0.2, 0.1, "both", 1.0),
  },
}


def official_dm_recipe(config: ml_collections.ConfigDict, backbone: str) -> None:
  """Sets config.method's OpenMixup DM setting for `backbone` ("r18" or "rx50"): mixup.alpha and loss.dm."""
  settings = OFFICIAL_DM[backbone].get(config.method)
  if settings is None:
    valid = ", ".join(OFFICIAL_DM[backbone])
    raise ValueError(f"No official DM setting for method {config.method!r}. Methods that have one: {valid}.")
  alpha, eta, mode, lam_power = settings
  config.mixup.alpha = alpha
  config.loss.dm.eta, config.loss.dm.mode, config.loss.dm.lam_power = eta, mode, lam_power
  config.loss.dm.threshold = 0.5


def random_resized_crop_recipe(
  config: ml_collections.ConfigDict, image_size: int, eval_resize: int = 0, resize_method: str = "bilinear"
) -> None:
  """The ImageNet-style data recipe: RandomResizedCrop + flip for training, resize + centre crop to evaluate."""
  config.data.augment = "random_resized_crop"
  config.data.image_size = image_size
  config.data.eval_resize = eval_resize
  config.data.resize_method = resize_method


def _positive(config, *keys, allow_zero=False):
  for key in keys:
    value = _get(config, key)
    if value < 0 or (value == 0 and not allow_zero):
      bound = ">= 0" if allow_zero else "> 0"
      raise ConfigError(f"config.{key} = {value!r} must be {bound}.")


def _get(config, key):
  node = config
  for part in key.split("."):
    node = node[part]
  return node


def _choice(value, choices, key):
  if value not in choices:
    raise ConfigError(f"config.{key} = {value!r} is not known. Valid choices: {', '.join(sorted(choices))}.")


def reported_head(config: ml_collections.ConfigDict) -> str:
  """The "<online|ema>/<head>" whose median top-1 is the reported number: config.eval.report or the method's."""
  return reported_head_of(config.method, config.eval.report)


def reported_head_of(method: str, report: str) -> str:
  """`reported_head` from the values of config.method and config.eval.report."""
  return methods.METHODS[method].reported if report == "auto" else report


def _validate_view_options(config: ml_collections.ConfigDict, prefix: str) -> None:
  """The RandAugment and Cutout options under config.<prefix> (data, or semisup.strong)."""
  options = _get(config, f"{prefix}.randaugment")
  ra, cut = f"{prefix}.randaugment", f"{prefix}.cutout"
  _positive(config, f"{ra}.num_ops", f"{ra}.level", f"{cut}.size", f"{prefix}.crop_padding", allow_zero=True)
  _positive(config, f"{ra}.max_level")
  if options.level > options.max_level:
    raise ConfigError(f"config.{ra}.level = {options.level} exceeds max_level = {options.max_level}.")
  for key in (f"{ra}.prob", f"{ra}.negate_prob", f"{cut}.prob"):
    if not 0.0 <= _get(config, key) <= 1.0:
      raise ConfigError(f"config.{key} = {_get(config, key)!r} must lie in [0, 1].")
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
  if config.model.drop_path and issubclass(methods.METHODS[config.method], methods.FixMatch):  # Semi-supervised.
    raise ConfigError(
      f"config.model.drop_path is not yet supported by the semi-supervised method {config.method!r}: leave it 0."
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
  for key in ("ema.momentum", "ema.end_momentum", "ema.adjust_start"):
    if not 0.0 <= _get(config, key) <= 1.0:
      raise ConfigError(f"config.{key} = {_get(config, key)!r} must lie in [0, 1].")
  for key in ("batch_size", "eval_batch_size"):
    if _get(config, key) % num_devices:
      raise ConfigError(
        f"config.{key} = {_get(config, key)} is not divisible by the {num_devices} devices of the mesh. "
        f"Use a multiple of {num_devices}, or set config.num_devices."
      )
  _positive(config, "mixup.alpha", "mixup.fmix_decay_power")
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
