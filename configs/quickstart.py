"""Quickstart: a narrow CIFAR ResNet-18 on the embedded Fashion-MNIST subset, a few minutes on a CPU.

    python -m adamix_jax.main --config configs/quickstart.py --workdir runs/quickstart

The dataset ships with the package (10,000 train / 2,000 test images, 28x28 grey, 10 classes) and goes
through the same input pipeline as CIFAR-100: reflect-pad-4 random crop, horizontal flip, per-channel
normalisation. Measured on a 2-core CPU: 85.55% top-1 (online/one) in about 5 minutes (README).
"""

from adamix_jax.config import base_config


def get_config():
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
  config.log.images_every_steps = 100  # TensorBoard pictures of the mixing (with --config.method=adautomix).
  return config
