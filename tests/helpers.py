"""What tests share: a tiny config of the embedded dataset, a tiny run built from it, and torchvision-style
ResNet weights.

from helpers import tiny_config, tiny_run
"""

import numpy as np

from adamix_jax import data, sharding, steps
from adamix_jax.config import base_config, set_path
from adamix_jax.experiment import make_experiment


def tiny_config(data_dir: str, **overrides):
  """A width-4 CIFAR ResNet-18 on 200 training and 100 test images of the embedded dataset, 1 device."""
  config = base_config()
  config.data.name = "fashion_mnist_subset"
  config.data.data_dir = data_dir
  config.data.max_train_examples = 200
  config.data.max_eval_examples = 100
  config.model.width = 4
  config.batch_size = 20
  config.eval_batch_size = 40
  config.num_epochs = 2
  config.num_devices = 1
  config.eval.median_of_last = 2
  config.log.progress = False
  config.log.every_steps = 1
  for key, value in overrides.items():
    set_path(config, key, value)
  return config


def tiny_run(config, total_steps: int = 10):
  """(mesh, experiment, a fresh state, the jitted train step) of `config` on its `num_devices` devices."""
  mesh = sharding.make_mesh(config.num_devices)
  info = data.data_info(config)
  experiment = make_experiment(config, info, mesh)
  train_step = steps.make_train_step(
    experiment.method, experiment.nets, experiment.tx, experiment.parts.ema, info, mesh, total_steps
  )
  return mesh, experiment, experiment.init(), train_step


def torchvision_state(rng, bottleneck: bool, stage_sizes, width: int, groups: int, width_per_group: int):
  """A random state dict with torchvision's keys and shapes (OIHW convolutions), written from its layout."""
  state = {}

  def conv(key, out_channels, in_channels, k):
    state[key] = rng.normal(0, np.sqrt(2 / (in_channels * k * k)), (out_channels, in_channels, k, k))

  def bn(key, channels):
    state[f"{key}.weight"] = rng.uniform(0.5, 1.5, channels)
    state[f"{key}.bias"] = rng.normal(0, 0.1, channels)
    state[f"{key}.running_mean"] = rng.normal(0, 0.1, channels)
    state[f"{key}.running_var"] = rng.uniform(0.5, 1.5, channels)
    state[f"{key}.num_batches_tracked"] = np.array(7)

  conv("conv1.weight", width, 3, 7)
  bn("bn1", width)
  inplanes, expansion = width, 4 if bottleneck else 1
  for stage, blocks in enumerate(stage_sizes, start=1):
    planes = width * 2 ** (stage - 1)
    for index in range(blocks):
      prefix = f"layer{stage}.{index}"
      stride = 2 if stage > 1 and index == 0 else 1
      if bottleneck:
        mid = int(planes * width_per_group / 64) * groups
        conv(f"{prefix}.conv1.weight", mid, inplanes, 1)
        conv(f"{prefix}.conv2.weight", mid, mid // groups, 3)
        conv(f"{prefix}.conv3.weight", planes * 4, mid, 1)
        for number, channels in ((1, mid), (2, mid), (3, planes * 4)):
          bn(f"{prefix}.bn{number}", channels)
      else:
        conv(f"{prefix}.conv1.weight", planes, inplanes, 3)
        conv(f"{prefix}.conv2.weight", planes, planes, 3)
        bn(f"{prefix}.bn1", planes)
        bn(f"{prefix}.bn2", planes)
      if stride != 1 or inplanes != planes * expansion:
        conv(f"{prefix}.downsample.0.weight", planes * expansion, inplanes, 1)
        bn(f"{prefix}.downsample.1", planes * expansion)
      inplanes = planes * expansion
  state["fc.weight"] = rng.normal(size=(10, inplanes))
  state["fc.bias"] = rng.normal(size=10)
  return {key: np.asarray(value, np.float32 if value.ndim else np.int64) for key, value in state.items()}
