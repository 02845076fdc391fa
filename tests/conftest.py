"""Test set-up: 8 emulated CPU devices, one XLA compilation cache, a data directory.

The helpers tests share (a tiny config, a tiny run) are in helpers.py."""

import os
import shutil
import tempfile

import jax

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_platforms", "cpu")

import pytest  # noqa: E402

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
  """An empty data directory: the embedded dataset the tests train on needs none, and nothing else is there."""
  return str(tmp_path_factory.mktemp("tensorflow_datasets"))
