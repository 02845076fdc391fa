"""Test set-up: 8 emulated CPU devices, the embedded dataset prepared once, and a tiny config."""

import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_platforms", "cpu")

import pytest  # noqa: E402

from adamix_jax import data, sharding, steps  # noqa: E402
from adamix_jax.config import base_config, set_path  # noqa: E402
from adamix_jax.experiment import make_experiment  # noqa: E402

_OWN_CACHE = pytest.StashKey[str]()  # The cache directory this run made (and removes at the end).


def pytest_configure(config):
  """One persistent XLA compilation cache for the whole run: the test workers and the training processes
  they start share it, so a program compiled once (the same tiny step in many runs) is loaded after."""
  if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="adamix_jax_test_xla_")
    config.stash[_OWN_CACHE] = os.environ["JAX_COMPILATION_CACHE_DIR"]
  jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])


def pytest_unconfigure(config):
  if _OWN_CACHE in config.stash:
    shutil.rmtree(config.stash[_OWN_CACHE], ignore_errors=True)


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory) -> str:
  """A tfds data directory holding the prepared embedded dataset (and nothing else)."""
  directory = str(tmp_path_factory.mktemp("tensorflow_datasets"))
  config = tiny_config(directory)
  data.prepared_builder(config)
  return directory


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
  train_step = steps.make_train_step(experiment.method, experiment.nets, experiment.tx, config, info, mesh, total_steps)
  return mesh, experiment, experiment.init(), train_step
