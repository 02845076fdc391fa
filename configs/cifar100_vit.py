"""CIFAR-100 with the transformer-era backbones: DeiT-S and Swin-T at 224x224, ConvNeXt-T at 32x32.

    python -m adamix_jax.main --config configs/cifar100_vit.py:swin_t_adautomix --workdir runs/c100_swin_adautomix
    python -m adamix_jax.main --config configs/cifar100_vit.py:deit_s_transmix --workdir runs/c100_deit_transmix
    python -m adamix_jax.main --config configs/cifar100_vit.py:convnext_t_deit,e600 --workdir runs/c100_cnx_deit
    python -m adamix_jax.main --config configs/cifar100_vit.py:swin_t_adautomix,smoke --workdir /tmp/vit_smoke

Variants (`configs/cifar100_vit.py:<BACKBONE>_<METHOD>[,e600][,smoke]`):
  BACKBONE: deit_s (DeiT-S/16), swin_t (Swin-T), convnext_t (ConvNeXt-T with OpenMixup's 32x32 stem).
  METHOD: adautomix; deit (the DeiT recipe: CutMix alpha 1 or MixUp alpha 0.8, drawn per batch); mixup
    (alpha 0.8); cutmix (alpha 2); transmix (DeiT-S only: MixUp alpha 0.8 with probability 0.2, else CutMix
    alpha 1 with TransMix's attention lambda); puzzlemix (alpha 2, OpenMixup's CIFAR PuzzleMix settings; at 224
    the reference's ImageNet std for its smoothness term); alignmix (Swin-T and ConvNeXt-T: alpha 2, each step
    AlignMix of the last feature maps or MixUp of the images; ConvNeXt-T's heads pool its normed map,
    config.model.norm_before_pool); attentivemix (alpha 2, the attention of an ImageNet ResNet-50 at 224: add
    --config.attentivemix.pretrained=resnet50.npz, adamix_jax/models/pretrained.py says how to make it); erm
    ("Vanilla"); smmix (DeiT-S only: each step SMMix with probability 0.8, else MixUp alpha 1).
  e200 (default), e600: epochs. smoke: 1 epoch (no warm-up) on 1,000 images at a narrow width, to check
    a setup.

The paper's numbers (median top-1 of the last 10 epochs, 200 / 600 epochs; AdAutoMix: ema/one, the
others: online/one):
  | method    | DeiT-S        | Swin-T        | ConvNeXt-T    |
  | erm       | 65.81 / 68.50 | 78.41 / 81.29 | 78.70 / 80.65 |
  | mixup     | 69.98 / 76.35 | 76.78 / 83.67 | 81.13 / 83.08 |
  | cutmix    | 74.12 / 79.54 | 80.64 / 83.38 | 82.46 / 83.20 |
  | deit      | 75.92 / 79.38 | 81.25 / 84.41 | 83.09 / 84.12 |
  | transmix  | 76.17 / 79.33 | (81.33 / 84.45: needs attention a Swin does not have) | - |
  | puzzlemix | 73.60 / 81.01 | 80.33 / 84.74 | 82.29 / 84.17 |
  | alignmix  | -             | 78.91 / 83.34 | 80.88 / 83.03 |
  | attentivemix | 75.89 / 80.33 | 81.13 / 83.69 | 82.59 / 83.04 |
  | smmix     | 74.49 / 80.05 | (81.55 / -: OpenMixup's Swin attention is not reproduced) | - |
  | adautomix | -             | 84.33 / 85.34 | 83.54 / -     |

The recipe (OpenMixup's `configs/classification/cifar100/{adautomix/vit, mixups/vits}`): batch 100; AdamW
(betas 0.9 / 0.999, eps 1e-8), weight decay 0.05 except on norms, biases, layer scales, the class token,
position embeddings and relative-position tables; a linear warm-up from 1e-5 of the lr, then a per-step
cosine; label smoothing 0.1 on every cross-entropy; stochastic depth 0.1 (DeiT-S), 0.2 (Swin-T), 0.3
(ConvNeXt-T). Data: at 224, RandomResizedCrop (scale 0.8-1, bicubic) and flip, evaluation resized to 224
(bicubic); ConvNeXt-T keeps CIFAR's reflect-pad-4 crop at 32. Then RandAugment: 2 of the 14 FixMatch
operations, level 7 of 10 drawn with std 0.5 ("rand-m7-mstd0.5"), each applied with probability 0.5,
grey (114, 123, 125) brought in by geometric ones.
  Baselines: lr 1e-3 (Swin-T 5e-4) to 1e-6 after 20 warm-up epochs; gradient norm clipped to 5 (none
    for ConvNeXt-T).
  AdAutoMix: lr 5e-4 to 1e-4 (ConvNeXt-T 2e-3 to 1e-4) after 20 warm-up epochs (DeiT-S 5); the generator
    1e-3 to 1e-4 on its own cosine with the same warm-up; gradient norm clipped to 10 (none for
    ConvNeXt-T); N = 3 (Swin-T: drawn from {2, 3} each step, lam_margin 0); lambda as an input channel of
    the generator, nearest upsampling of its masks; EMA teacher 0.999 -> 0.99996 over the last 75%. The
    generator reads DeiT-S's tokens after block 6 (14x14x384), Swin-T's stage 3 after patch merging
    (7x7x768), ConvNeXt-T's stage 3 (8x8x384). ConvNeXt-T's AdAutoMix log is not public: its optimiser
    settings are those of OpenMixup's AutoMix ConvNeXt-T config.
Known difference: OpenMixup's RandAugment rotates, shears and translates with bicubic sampling; here the
sampling is PIL's nearest neighbour (data/rand_augment.py).
"""

from adamix_jax.config import base_config, random_resized_crop_recipe

BACKBONES = {"deit_s": "deit_s", "swin_t": "swin_t", "convnext_t": "convnext_t_cifar"}
METHODS = (
  "adautomix", "deit", "mixup", "cutmix", "transmix", "smmix", "puzzlemix", "alignmix", "attentivemix", "erm",
)  # fmt: skip
LENGTHS = {"e200": 200, "e600": 600}
DROP_PATH = {"deit_s": 0.1, "swin_t": 0.2, "convnext_t": 0.3}
SMOKE_WIDTH = {"deit_s": 48, "swin_t": 24, "convnext_t": 24}
FEATURE_STAGE = {"deit_s": 5, "swin_t": 2, "convnext_t": 2}
# backbone -> (lr, warm-up epochs, gradient clip) of AdAutoMix; the floor is 1e-4.
ADAUTOMIX_OPTIMIZER = {"deit_s": (5e-4, 5, 10.0), "swin_t": (5e-4, 20, 10.0), "convnext_t": (2e-3, 20, 0.0)}
# backbone -> (lr, gradient clip) of the baselines; 20 warm-up epochs, floor 1e-6.
BASELINE_OPTIMIZER = {"deit_s": (1e-3, 5.0), "swin_t": (5e-4, 5.0), "convnext_t": (1e-3, 0.0)}
MIXUP_ALPHA = {
  "mixup": 0.8,
  "cutmix": 2.0,
  "deit": 0.8,
  "transmix": 0.8,
  "puzzlemix": 2.0,
  "alignmix": 2.0,
  "attentivemix": 2.0,
  "smmix": 1.0,
  "adautomix": 1.0,
  "erm": 1.0,
}


def _valid_choices() -> str:
  return ", ".join([f"{b}_{m}" for b in BACKBONES for m in METHODS] + [*LENGTHS, "smoke"])


def _recipe(config, backbone: str) -> None:
  """What every run of `backbone` shares: data, AdamW, label smoothing, stochastic depth."""
  config.data.name = "cifar100"
  config.model.name = BACKBONES[backbone]
  config.model.drop_path = DROP_PATH[backbone]
  if backbone != "convnext_t":
    random_resized_crop_recipe(config, image_size=224, eval_resize=224, resize_method="bicubic")
    config.data.crop_scale = (0.8, 1.0)
  ra = config.data.randaugment
  ra.num_ops, ra.level, ra.max_level, ra.level_std, ra.fill = 2, 7.0, 10.0, 0.5, (114, 123, 125)
  config.num_epochs = 200
  config.batch_size = 100
  config.eval.median_of_last = 10
  config.loss.label_smoothing = 0.1
  options = config.optimizer
  options.name = "adamw"
  options.weight_decay = 0.05
  options.decay_norm_and_bias = False
  options.schedule = "cosine_per_step"
  options.warmup_ratio = 1e-5


def _adautomix(config, backbone: str) -> None:
  lr, warmup, clip = ADAUTOMIX_OPTIMIZER[backbone]
  options = config.optimizer
  options.lr, options.min_lr, options.warmup_epochs, options.grad_clip = lr, 1e-4, warmup, clip
  options.generator.lr, options.generator.min_lr = 1e-3, 1e-4
  config.generator.feature_stage = FEATURE_STAGE[backbone]
  config.generator.lam_concat = True
  config.generator.upsample_mode = "nearest"
  config.ema.end_momentum = 0.99996
  config.ema.adjust_start = 0.25
  if backbone == "swin_t":
    config.adautomix.random_num = True
    config.adautomix.lam_margin = 0.0


def _baseline(config, backbone: str, method: str) -> None:
  lr, clip = BASELINE_OPTIMIZER[backbone]
  options = config.optimizer
  options.lr, options.min_lr, options.warmup_epochs, options.grad_clip = lr, 1e-6, 20, clip
  if method == "deit":
    config.mixup.cutmix_alpha, config.mixup.cutmix_prob = 1.0, 0.5
  elif method == "transmix":
    config.mixup.cutmix_alpha, config.mixup.cutmix_prob, config.mixup.transmix_ratio = 1.0, 0.8, 0.5
  elif method == "alignmix":  # OpenMixup's mix_mode=["mixup", "alignmix"]; ConvNeXt's gap_before_final_norm=False.
    config.alignmix.alternate = "mixup"
    config.model.norm_before_pool = backbone == "convnext_t"
  elif method == "attentivemix":  # OpenMixup's backbone_k: torchvision's ResNet-50.
    config.attentivemix.backbone = "resnet50"


def get_config(variants: str = "swin_t_adautomix"):
  config = base_config()
  chosen = None
  length, smoke = 200, False
  for variant in filter(None, variants.split(",")):
    backbone, _, method = variant.rpartition("_")
    if backbone in BACKBONES and method in METHODS:
      chosen = (backbone, method)
    elif variant in LENGTHS:
      length = LENGTHS[variant]
    elif variant == "smoke":
      smoke = True
    else:
      raise ValueError(f"Unknown variant {variant!r} of configs/cifar100_vit.py. Valid choices: {_valid_choices()}.")
  if chosen is None:
    raise ValueError(f"configs/cifar100_vit.py needs a <backbone>_<method> variant. Valid choices: {_valid_choices()}.")
  backbone, method = chosen
  if method in ("transmix", "smmix") and backbone != "deit_s":
    raise ValueError(
      f"{backbone}_{method}: {method} reads the class token's attention, and {backbone} has no class token. It "
      f"runs on deit_s (deit_s_{method}); for this backbone the DeiT recipe is {backbone}_deit."
    )
  if method == "alignmix" and backbone == "deit_s":
    raise ValueError(
      "deit_s_alignmix: AlignMix aligns the feature map the head reads, and DeiT-S's head reads its class token. "
      "It runs on swin_t and convnext_t (swin_t_alignmix, convnext_t_alignmix)."
    )
  _recipe(config, backbone)
  config.method = method
  config.mixup.alpha = MIXUP_ALPHA[method]
  if method == "adautomix":
    _adautomix(config, backbone)
  else:
    _baseline(config, backbone, method)
  config.num_epochs = length
  if smoke:
    config.num_epochs = 1
    config.optimizer.warmup_epochs = 0.0
    config.model.width = SMOKE_WIDTH[backbone]
    config.data.max_train_examples = 1000
    config.data.max_eval_examples = 1000
  return config
