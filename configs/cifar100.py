"""CIFAR-100 with ResNet-18 (CIFAR stem), the paper's data and optimiser recipe.

    python -m adamix_jax.main --config configs/cifar100.py --workdir runs/c100_r18
    python -m adamix_jax.main --config configs/cifar100.py:smoke --workdir /tmp/c100_smoke

Data: random crop 32 with 4-pixel reflect padding, horizontal flip, per-channel normalisation. Optimiser:
SGD momentum 0.9, weight decay 1e-4, lr 0.1 cosine-annealed per epoch to `optimizer.min_lr`, batch 100,
on one device as in the paper (batch 100 is split over the devices of the mesh; set
`--config.num_devices=1` to reproduce the single-GPU run exactly).

The data comes from `tfds.load('cifar100')`: on a machine with internet it is downloaded and prepared on
first use; offline the run stops at once and says how to prepare it.

Expected (ERM, "Vanilla" in ADAUTOMIX.md D.1, median top-1 of the last 10 epochs): 76.42 after 200 epochs,
77.73 after 400, 78.04 after 800.

Variants (`configs/cifar100.py:VARIANT`):
  default   200 epochs.
  e400      400 epochs.
  e800      800 epochs.
  smoke     1 epoch on 1,000 training and 1,000 test images with a width-16 network: checks the setup.
"""

from adamix_jax.config import base_config

VARIANTS = ("default", "e400", "e800", "smoke")


def get_config(variant: str = "default"):
  if variant not in VARIANTS:
    raise ValueError(f"Unknown variant {variant!r} of configs/cifar100.py. Valid choices: {', '.join(VARIANTS)}.")
  config = base_config()
  config.data.name = "cifar100"
  config.model.name = "cifar_resnet18"
  config.method = "erm"
  config.num_epochs = 200
  config.optimizer.lr = 0.1
  config.optimizer.min_lr = 0.0
  config.optimizer.weight_decay = 1e-4
  config.batch_size = 100
  if variant in ("e400", "e800"):
    config.num_epochs = int(variant[1:])
  if variant == "smoke":
    config.num_epochs = 1
    config.model.width = 16
    config.data.max_train_examples = 1000
    config.data.max_eval_examples = 1000
  return config
