"""The configuration every run starts from, and the recipes config files share: pure data.

Config files in `configs/` call `base_config()` and change what their setting needs. Every key below is
documented where it is defined; `--config.KEY=VALUE` overrides any of them from the command line.
This module imports nothing of the package's and nothing heavy (a config file evaluates in milliseconds).
Each part of a run reads its own section into a typed options object that checks it (`adamix_jax.options`);
`adamix_jax.validation.validate` asks every part before anything is compiled.
"""

import importlib.util
import os

import ml_collections

__all__ = [
  "ConfigError",
  "EVALUATION_KEYS",
  "EVALUATION_PREFIXES",
  "RUNTIME_KEYS",
  "RUNTIME_PREFIXES",
  "OFFICIAL_DM",
  "base_config",
  "from_file",
  "cutout_config",
  "free_on_resume",
  "from_saved",
  "official_dm_recipe",
  "randaugment_config",
  "random_resized_crop_recipe",
  "set_path",
]


# Keys that say where and how a run runs, not what it learns: a resumed run may change them (other devices,
# hosts, logging, checkpointing), and `compare` groups runs that differ only in these and the seed.
RUNTIME_KEYS = ("data.data_dir", "data.download", "num_devices", "eval_batch_size", "data.workers", "data.input_slices")
RUNTIME_PREFIXES = ("distributed.", "log.", "checkpoint.", "resume.")
# Keys that change what is evaluated and reported, never what is trained: a resumed run may change them too.
EVALUATION_KEYS = ("data.eval_split", "data.max_eval_examples", "data.eval_resize")
EVALUATION_PREFIXES = ("eval.",)


def free_on_resume(key: str) -> bool:
  """Whether a resumed run may change `key` (dotted) without changing what it trains."""
  return key in RUNTIME_KEYS + EVALUATION_KEYS or key.startswith(RUNTIME_PREFIXES + EVALUATION_PREFIXES)


class ConfigError(ValueError):
  """A configuration value that cannot work. The message says which key and what would."""


def randaugment_config(num_ops: int) -> ml_collections.ConfigDict:
  """RandAugment options (data/rand_augment.py): the FixMatch policy at full magnitude; num_ops 0 is off."""
  options = ml_collections.ConfigDict()
  options.num_ops = num_ops  # Operations drawn per image; 0: off.
  options.level = 30.0  # Magnitude level out of max_level (max_level: each range's far end).
  options.max_level = 30.0
  options.level_std = 0.0  # > 0: each operation's level ~ normal(level, level_std), clipped to [0, max_level].
  options.prob = 0.5  # Probability that each drawn operation is applied.
  options.negate_prob = 0.5  # Probability that a directed operation is negated.
  options.operations = ()  # Names of data/rand_augment.py's operations to draw from; (): the 14 FixMatch ones.
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
  config.data.name = "cifar100"  # One of adamix_jax.data.datasets.DATASETS, or "image_folder" (your images).
  config.data.data_dir = ""  # Prepared data ("": $TFDS_DATA_DIR or ~/tensorflow_datasets); image_folder: ROOT.
  config.data.download = True  # Download and prepare a missing tfds dataset when the network allows.
  config.data.train_split = ""  # The training split (image_folder: the sub-folder); "": the dataset's own.
  config.data.eval_split = ""  # The evaluation split; "": the dataset's own (image_folder: "test").
  config.data.mean = ()  # Per-channel normalisation in [0, 1]; (): the dataset's, or computed from training images.
  config.data.std = ()
  config.data.channels = 0  # image_folder: 1 (grey) or 3 (RGB) for every image; 0: the images' own (one kind).
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
  config.data.workers = 0  # Host threads that decode and augment images; 0: one per CPU core, at most 16.
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
  config.model.norm_before_pool = False  # ConvNeXt: norm the last map at every position, then pool (AlignMix).

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
  config.mixup.cutmix_alpha = 1.0  # deit, transmix: alpha of the CutMix branch (mixup.alpha is MixUp's).
  config.mixup.cutmix_prob = 0.5  # deit, transmix: probability that a batch takes the CutMix branch.
  config.mixup.transmix_ratio = 0.5  # transmix: weight of CutMix's area lambda against the attention lambda.
  config.mixup.resizemix_scope = (0.1, 0.8)  # ResizeMix: range of the pasted image's side ratio.
  config.mixup.fmix_decay_power = 3.0  # FMix: spectrum decay.
  config.mixup.manifoldmix_stages = (0, 1, 2)  # ManifoldMix: inputs of stages 1-3 it may mix (0: after the stem).
  # GridMix: ranges each step draws from (OpenMixup's CIFAR settings): holes across, hole and cut aspect, cut area.
  config.mixup.gridmix_n_holes = (2, 6)
  config.mixup.gridmix_hole_aspect_ratio = (1.0, 1.0)
  config.mixup.gridmix_cut_area_ratio = (0.5, 1.0)
  config.mixup.gridmix_cut_aspect_ratio = (0.5, 2.0)
  config.mixup.smoothmix_lam = "reference"  # SmoothMix label weights: "reference" (OpenMixup's) or "area".

  # docs/method.md#puzzlemix: PuzzleMix's graph-cut masks and transport (OpenMixup's CIFAR settings).
  config.puzzlemix = ml_collections.ConfigDict()
  config.puzzlemix.blocks = (2, 4, 8)  # Blocks per side of the mask, one drawn per step.
  config.puzzlemix.beta = 1.2  # Label smoothness (divided by blocks x 16).
  config.puzzlemix.gamma = 0.5  # Data smoothness.
  config.puzzlemix.eta = 0.2  # Prior of the mask's mean around lambda.
  config.puzzlemix.neigh_size = 4  # Pixel neighbourhoods compared across block borders.
  config.puzzlemix.n_labels = 3  # Mask values {0, 0.5, 1}; 2: binary.
  config.puzzlemix.transport = True  # Move salient blocks under the mask (optimal transport).
  config.puzzlemix.transport_eps = 0.8  # Weight of the distance moved.
  config.puzzlemix.pixel_std = ()  # () : the reference's CIFAR-10 / ImageNet std (colour); else per channel.

  # docs/method.md#co-mixup: Co-Mixup's joint labellings of a group (the authors' CIFAR-100 settings).
  config.comixup = ml_collections.ConfigDict()
  config.comixup.blocks = 4  # Blocks per side of each output's labelling grid.
  config.comixup.part = 20  # Images mixed together: the batch is cut into groups of this many.
  config.comixup.beta = 0.32  # Label smoothness (divided by blocks^2).
  config.comixup.gamma = 1.0  # Weight of the overlap between outputs (diversity; divided by blocks^2).
  config.comixup.thres = 0.83  # tau: an input's use by the other outputs counts above tau x blocks^2 blocks.
  config.comixup.thres_type = "hard"  # "hard" (the whole use, above tau) or "soft" (the use beyond tau).
  config.comixup.eta = 0.05  # Weight of the Dirichlet(mixup.alpha) prior over the inputs (divided by blocks^2).
  config.comixup.omega = 0.001  # Weight of the inputs' compatibility (distance between their salient points).
  config.comixup.resolve = True  # Push apart outputs that use the same inputs (set_resolve).
  config.comixup.iterations = 4  # Passes over the outputs at most (m_niter).
  config.comixup.clean_lam = 1.0  # Clean cross-entropy's weight, 2 x clean_lam / classes; 0: none.

  # docs/method.md#alignmix: AlignMix's transport plan between feature maps (OpenMixup's settings).
  config.alignmix = ml_collections.ConfigDict()
  config.alignmix.eps = 0.1  # Entropic regularisation of the Sinkhorn plan.
  config.alignmix.max_iter = 100  # Sinkhorn iterations at most (fewer once the potentials settle).
  config.alignmix.alternate = "manifoldmix"  # Half the steps: "manifoldmix", "mixup" (images) or "none".

  # docs/method.md#attentivemix: AttentiveMix+'s attending network (OpenMixup's CIFAR settings).
  config.attentivemix = ml_collections.ConfigDict()
  config.attentivemix.pretrained = ""  # Its weights: a torchvision .npz, or the workdir of a run of ours.
  config.attentivemix.backbone = "resnet18"  # The .npz's architecture (ImageNet stem).
  config.attentivemix.input_size = 224  # Images resized (bilinear) to this for it; 0: as they are.
  config.attentivemix.top_k = 0  # Cells each image keeps; 0: floor(cells x lam) (AttentiveMix+).

  # docs/method.md#smmix: SMMix's squares of patches on DeiT (OpenMixup's DeiT-S settings).
  config.smmix = ml_collections.ConfigDict()
  config.smmix.side_ratios = (0.25, 0.75)  # Square sides drawn from these shares of the token grid's side.
  config.smmix.prob = 0.8  # Share of the steps that run SMMix; the rest MixUp with mixup.alpha.

  config.loss = ml_collections.ConfigDict()
  config.loss.label_smoothing = 0.0  # eps: targets (1 - eps) * target + eps / C (supervised methods).
  config.loss.dm = ml_collections.ConfigDict()  # docs/method.md#decoupled-mixup; eta = 0 turns it off.
  config.loss.dm.eta = 0.0
  config.loss.dm.mode = "both"  # "both", "less" (minority source only) or "more" (majority only).
  config.loss.dm.lam_power = 1.0  # eta_i = eta * lam_i ** lam_power.
  config.loss.dm.threshold = 0.5  # Minority/majority boundary of "less"/"more".
  config.loss.dm.official_pairing = False  # The official eta-to-class pairing (the first mixed row's class order).

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

  # docs/method.md#samix: SAMix is AutoMix (config.automix) with SAMix's Mix Block and mask loss.
  config.samix = ml_collections.ConfigDict()
  config.samix.lam_mul_k = 0.25  # k of the Mix Block's lambda rescaling (OpenMixup's CIFAR value).
  config.samix.mask_adjust = 0.25  # Probability per iteration of rescaling the classifier's masks to lambda.

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

  config.resume = ml_collections.ConfigDict()  # docs/workdir.md#resuming-with-other-settings
  # Keys whose change the resumed run accepts on purpose, comma-separated (e.g. "batch_size,optimizer.lr"):
  # they apply from the saved step on, recorded in WORKDIR/config_changes.jsonl. Other changes are refused.
  config.resume.accept_changes = ""

  config.log = ml_collections.ConfigDict()
  config.log.every_steps = 50  # TensorBoard and metrics.jsonl training scalars.
  config.log.progress = True  # The progress line on process 0.
  config.log.images_every_steps = 1000  # TensorBoard pictures of fixed mixed samples and masks (0: never).
  config.log.image_count = 8  # Samples in those pictures (the first test images).
  return config


def from_file(spec: str) -> ml_collections.ConfigDict:
  """A config file's config, as `--config FILE.py[:VARIANT]` gives it to the command line (for notebooks).

      config = from_file("configs/quickstart.py:adautomix,e16")

  Raises:
    ConfigError: the file does not exist, or has no `get_config`.
  """
  path, _, variant = spec.partition(".py:")
  path = path if path.endswith(".py") else path + ".py"
  if not os.path.isfile(path):
    raise ConfigError(f"No config file {path} (from {os.getcwd()}); give a path like configs/quickstart.py:VARIANT.")
  module_spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ConfigError(f"{path} has no get_config(); a config file defines one that returns the config.")
  return module.get_config(variant) if variant else module.get_config()


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
