"""Test set-up: 8 emulated CPU devices, one XLA compilation cache, the embedded dataset prepared once.

The helpers tests share (a tiny config, a tiny run) are in helpers.py."""

import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_platforms", "cpu")

import pytest  # noqa: E402
from helpers import tiny_config  # noqa: E402

from adamix_jax import data  # noqa: E402

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
