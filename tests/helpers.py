"""What tests share: a tiny config of the embedded dataset and a tiny run built from it.

from helpers import tiny_config, tiny_run
"""

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
