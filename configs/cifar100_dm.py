"""Static mixups with the Decoupled Mixup loss on CIFAR-100: the official OpenMixup DM settings.

    python -m adamix_jax.main --config configs/cifar100_dm.py:r18_cutmix --workdir runs/c100_r18_cutmix_dm

Variants `r18_<method>` (CIFAR ResNet-18) and `rx50_<method>` (CIFAR ResNeXt-50 32x4d) for the methods
mixup, cutmix, fmix, manifoldmix, resizemix and saliencymix, with each one's (alpha, eta, mode, lambda
power) from OpenMixup's `configs/classification/cifar100/mixups/decouple/` (docs/method.md#decoupled-mixup): 800 epochs,
SGD lr 0.1 cosine to 0, weight decay 1e-4 (5e-4 for rx50_resizemix), batch 100, threshold 0.5.

The DM paper's own numbers could not be read from the sources (docs/method.md#recipes-and-expected-numbers), so no
expected accuracy is given here; the same methods without DM are in configs/cifar100.py.
"""

from adamix_jax.config import OFFICIAL_DM, base_config, official_dm_recipe

BACKBONES = {"r18": "cifar_resnet18", "rx50": "cifar_resnext50_32x4d"}


def get_config(variant: str = "r18_mixup"):
  backbone, _, method = variant.partition("_")
  if method not in OFFICIAL_DM.get(backbone, {}):
    valid = ", ".join(f"{b}_{m}" for b in OFFICIAL_DM for m in OFFICIAL_DM[b])
    raise ValueError(f"Unknown variant {variant!r} of configs/cifar100_dm.py. Valid choices: {valid}.")
  config = base_config()
  config.data.name = "cifar100"
  config.model.name = BACKBONES[backbone]
  config.method = method
  config.num_epochs = 800
  config.batch_size = 100
  config.optimizer.lr = 0.1
  config.optimizer.min_lr = 0.0
  config.optimizer.weight_decay = 5e-4 if variant == "rx50_resizemix" else 1e-4
  official_dm_recipe(config, backbone)
  return config
