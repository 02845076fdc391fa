"""Quickstart: a narrow CIFAR ResNet-18 on the embedded Fashion-MNIST subset, a few minutes on a CPU.

    python -m adamix_jax.main --config configs/quickstart.py --workdir runs/quickstart
    python -m adamix_jax.main --config configs/quickstart.py:adautomix --workdir runs/qs_adautomix
    python -m adamix_jax.main --config configs/quickstart.py:cutmix,dm,e16 --workdir runs/qs_cutmix_dm

The dataset ships with the package (10,000 train / 2,000 test images, 28x28 grey, 10 classes) and goes
through the same input pipeline as CIFAR-100: reflect-pad-4 random crop, horizontal flip, per-channel
normalisation. The recipe is configs/cifar100.py's at a CPU's scale (width 8, 8 epochs of 100 steps).
Measured on a 2-core CPU: ERM 84.35% top-1 (online/one) with jax 0.10.2, 83.65% with jax 0.12.1, in about
3 minutes (README).

Variants (`configs/quickstart.py:VARIANT[,VARIANT...]`):
  erm (default), mixup (alpha 1), cutmix (0.2), gridmix (0.2), smoothmix (0.2), puzzlemix (1), alignmix (2),
    comixup (2; groups of 20, 4 x 4 blocks of 7 pixels), attentivemix (2), smmix (1; with deit), automix, samix,
    adautomix: the method, with configs/cifar100.py's alphas, learning-rate floors and generator settings
    (PuzzleMix on the 28x28 images: 2 or 4 blocks a side and neighbourhoods of 7, which tile 28, and the
    data's grey std; AttentiveMix+ with no ImageNet network at hand: the attention of the ERM quickstart's
    network, runs/quickstart, trained first, on the images as they are);
  dm: adds the Decoupled Mixup loss with the method's official CIFAR ResNet-18 setting (mixup and cutmix;
    configs/cifar100_dm.py, which also sets alpha 0.2);
  e<N>: N epochs instead of 8 (e.g. e24);
  swin, convnext, deit: a small Swin-T (width 24, 4x4 windows), ConvNeXt-T (width 24) or DeiT-S (width 48,
    64x64 inputs: 4x4 patches of 16 pixels) instead of the ResNet, on 32x32 inputs (random-resized crops of
    the 28x28 images, scale 0.35-1, with flips) and the first 2,000 training images, so that a
    transformer-era backbone trains end to end in minutes on a CPU: `configs/quickstart.py:adautomix,swin,e10`
    (docs/training.md, "On a CPU in minutes"), `configs/quickstart.py:smmix,deit,e10`.

AdAutoMix, AutoMix and SAMix here have a faster EMA teacher than the paper's: momentum 0.99 -> 0.999 instead of
0.999 -> 0.999999, a named short-run deviation. The paper's schedule is made for 400,000 steps: its
momentum is >= 0.999 throughout, an average over >= 1,000 steps, so after this run's 800 the teacher is
still mostly its initial weights (reported ema/one 39% while the online network is at 81%), and the
generator, which reads the teacher's features, mixes with a poor network. configs/cifar100.py keeps the
official schedule.
"""

from adamix_jax.config import base_config, official_dm_recipe

METHOD_ALPHA = {
  "erm": 1.0, "mixup": 1.0, "cutmix": 0.2, "gridmix": 0.2, "smoothmix": 0.2, "puzzlemix": 1.0, "alignmix": 2.0,
  "comixup": 2.0, "attentivemix": 2.0, "smmix": 1.0, "automix": 2.0, "samix": 2.0, "adautomix": 1.0,
}  # fmt: skip
LEARNED = ("automix", "samix", "adautomix")
SMALL_BACKBONES = {"swin": "swin_t", "convnext": "convnext_t", "deit": "deit_s"}


def small_backbone(config, name: str) -> None:
  """A narrow transformer-era backbone on 32x32 crops (DeiT-S: 64x64, a 4x4 grid of its 16-pixel patches) of the
  first 2,000 images (the variants swin, convnext, deit)."""
  config.model.name = name
  config.model.width = 48 if name == "deit_s" else 24  # (DeiT-S's 6 heads of 8 channels.)
  if name == "swin_t":
    config.model.window = 4  # 32 / 4 = 8 tokens a side in the first stage: 2 x 2 windows of 4 x 4.
  config.data.augment = "random_resized_crop"
  config.data.crop_scale = (0.35, 1.0)
  config.data.image_size = 64 if name == "deit_s" else 32
  config.data.max_train_examples = 2000


def get_config(variants: str = "erm"):
  config = base_config()
  config.data.name = "fashion_mnist_subset"
  config.model.name = "cifar_resnet18"
  config.model.width = 8
  config.num_epochs = 8
  config.batch_size = 100
  config.eval_batch_size = 500
  config.optimizer.lr = 0.1
  config.eval.median_of_last = 1
  config.log.every_steps = 20
  config.log.images_every_steps = 100  # TensorBoard pictures of the mixing (learned methods).
  with_dm = False
  for variant in filter(None, variants.split(",")):
    if variant in METHOD_ALPHA:
      config.method = variant
      config.mixup.alpha = METHOD_ALPHA[variant]
    elif variant == "dm":
      with_dm = True
    elif variant in SMALL_BACKBONES:
      small_backbone(config, SMALL_BACKBONES[variant])
    elif variant.startswith("e") and variant[1:].isdigit() and int(variant[1:]) > 0:
      config.num_epochs = int(variant[1:])
    else:
      valid = ", ".join([*METHOD_ALPHA, "dm", *SMALL_BACKBONES, "e<N>"])
      raise ValueError(f"Unknown variant {variant!r} of configs/quickstart.py. Valid choices: {valid}.")
  if with_dm:
    official_dm_recipe(config, "r18")
  if config.method in LEARNED:  # As configs/cifar100.py, with the short-run teacher described above.
    config.optimizer.min_lr = 0.05
    config.ema.momentum = 0.99
    config.ema.end_momentum = 0.999
  if config.method == "automix":
    config.generator.upsample_mode = "nearest"
  if config.method == "attentivemix":  # The ERM quickstart's network attends (train it first).
    config.attentivemix.pretrained = "runs/quickstart"
    config.attentivemix.input_size = 0
  if config.method == "puzzlemix" and config.model.name == "cifar_resnet18":  # The 28x28 grey images.
    config.puzzlemix.blocks = (2, 4)  # Blocks of 14 and 7 pixels,
    config.puzzlemix.neigh_size = 7  # which neighbourhoods of 7 tile (CIFAR: 4 in blocks of 16, 8, 4).
    config.puzzlemix.pixel_std = (0.3530,)
  return config
