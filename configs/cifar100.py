"""CIFAR-100 with ResNet-18 (CIFAR stem), the paper's data and optimiser recipe; ERM or a static mixup.

    python -m adamix_jax.main --config configs/cifar100.py --workdir runs/c100_r18
    python -m adamix_jax.main --config configs/cifar100.py:cutmix,e800 --workdir runs/c100_r18_cutmix
    python -m adamix_jax.main --config configs/cifar100.py:smoke --workdir /tmp/c100_smoke

Data: random crop 32 with 4-pixel reflect padding, horizontal flip, per-channel normalisation. Optimiser:
SGD momentum 0.9, weight decay 1e-4, lr 0.1 cosine-annealed per epoch to `optimizer.min_lr` (0), batch
100, on one device as in the paper (batch 100 is split over the devices of the mesh; set
`--config.num_devices=1` to reproduce the single-GPU run exactly).

The data comes from tfds ('cifar100'): on a machine with internet it is downloaded and prepared on first
use; offline the run stops at once and says how to prepare it.

Variants (`configs/cifar100.py:VARIANT[,VARIANT...]`), one method and/or one length:
  erm (default)  plain training ("Vanilla").
  mixup          MixUp, alpha 1.        cutmix       CutMix, alpha 0.2.
  fmix           FMix, alpha 0.2.       resizemix    ResizeMix, alpha 1.
  saliencymix    SaliencyMix, alpha 0.2.
  manifoldmix    ManifoldMix, alpha 2 (features entering stages 1-3).
  e200 (default), e400, e800: epochs.
  smoke          1 epoch on 1,000 training and 1,000 test images, width 16: checks the setup.
Add the DM loss to any mixup with `--config.loss.dm.eta=0.1` (see configs/cifar100_dm.py for the official
per-method DM settings).

Expected (OpenMixup benchmark, median top-1 of the last 10 epochs; ADAUTOMIX.md D.1), 200 / 400 / 800
epochs: ERM 76.42 / 77.73 / 78.04; MixUp 78.52 / 79.34 / 79.12; CutMix 79.45 / 79.58 / 78.17; FMix 78.91 /
79.91 / 79.69; ResizeMix 79.56 / 79.19 / 80.01; SaliencyMix 79.75 / 79.64 / 79.12; ManifoldMix 79.18 /
80.18 / 80.35.
"""

from adamix_jax.config import base_config

# OpenMixup's CIFAR-100 benchmark alpha of each method.
METHOD_ALPHA = {
  "erm": None,
  "mixup": 1.0,
  "cutmix": 0.2,
  "fmix": 0.2,
  "resizemix": 1.0,
  "saliencymix": 0.2,
  "manifoldmix": 2.0,
}
LENGTHS = {"e200": 200, "e400": 400, "e800": 800}


def get_config(variants: str = "erm"):
  config = base_config()
  config.data.name = "cifar100"
  config.model.name = "cifar_resnet18"
  config.num_epochs = 200
  config.optimizer.lr = 0.1
  config.optimizer.min_lr = 0.0
  config.optimizer.weight_decay = 1e-4
  config.batch_size = 100
  for variant in filter(None, variants.split(",")):
    if variant == "default":
      continue
    if variant in METHOD_ALPHA:
      config.method = variant
      config.mixup.alpha = METHOD_ALPHA[variant] or config.mixup.alpha
    elif variant in LENGTHS:
      config.num_epochs = LENGTHS[variant]
    elif variant == "smoke":
      config.num_epochs = 1
      config.model.width = 16
      config.data.max_train_examples = 1000
      config.data.max_eval_examples = 1000
    else:
      valid = ", ".join([*METHOD_ALPHA, *LENGTHS, "smoke"])
      raise ValueError(f"Unknown variant {variant!r} of configs/cifar100.py. Valid choices: {valid}.")
  return config
