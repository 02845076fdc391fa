"""Preparing a tfds dataset once as ArrayRecord, converting an old tfrecord preparation, and reading both back
without TensorFlow. Needs TensorFlow (the `prepare` extra): skipped where it is not installed.

The real cifar10 builder prepares a small archive in CIFAR's binary format, written from the embedded
Fashion-MNIST images, with the builder's registered checksum patched to that archive's.
"""

import hashlib
import io
import os
import subprocess
import sys
import tarfile
from unittest import mock

import numpy as np
import pytest
from helpers import tiny_config

pytest.importorskip("tensorflow", reason="preparing needs the `prepare` extra")
pytestmark = pytest.mark.prepare

import tensorflow_datasets as tfds  # noqa: E402

from adamix_jax import data  # noqa: E402
from adamix_jax.data import fashion_mnist_subset, prepare  # noqa: E402

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"


def _archive(directory) -> tuple[str, np.ndarray, np.ndarray]:
  """A cifar-10-binary.tar.gz of 600 + 100 real 32 x 32 images; returns its path and the train images/labels."""
  arrays = fashion_mnist_subset.load_arrays()
  padded = np.pad(arrays["train_images"][:700], ((0, 0), (2, 2), (2, 2)))
  images = np.repeat(padded[..., None], 3, axis=-1)  # [700, 32, 32, 3]
  labels = arrays["train_labels"][:700]
  records = lambda part: b"".join(bytes([label]) + image.transpose(2, 0, 1).tobytes() for image, label in part)
  pairs = list(zip(images, labels, strict=True))
  path = os.path.join(directory, "cifar-10-binary.tar.gz")
  with tarfile.open(path, "w:gz") as tar:
    files = {f"data_batch_{i + 1}.bin": records(pairs[i * 120 : (i + 1) * 120]) for i in range(5)}
    files["test_batch.bin"] = records(pairs[600:])
    files["batches.meta.txt"] = "\n".join(fashion_mnist_subset.CLASS_NAMES).encode()
    for name, contents in files.items():
      info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
      info.size = len(contents)
      tar.addfile(info, io.BytesIO(contents))
  return path, images[:600], labels[:600]


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
  directory = tmp_path_factory.mktemp("manual")
  path, images, labels = _archive(str(directory))
  contents = open(path, "rb").read()
  url_info = tfds.core.download.checksums.UrlInfo(
    size=len(contents), checksum=hashlib.sha256(contents).hexdigest(), filename=os.path.basename(path)
  )
  return str(directory), {URL: url_info}, images, labels


def _read_back(data_dir) -> tuple[np.ndarray, np.ndarray]:
  config = tiny_config(data_dir, **{"data.name": "cifar10", "data.max_train_examples": 0, "data.crop_padding": 0,
                                    "data.flip": False})  # fmt: skip
  info = data.data_info(config)
  assert (info.num_classes, info.image_shape, info.num_train, info.num_eval) == (10, (32, 32, 3), 600, 100)
  split = data.InputPipeline(config, info).train_split
  images, labels = split.take(np.arange(len(split)))
  return images, labels


def _by_content(images, labels):
  order = np.lexsort(images.reshape(len(images), -1).T[::-1])
  return images[order], labels[order]


def test_prepared_as_array_record_and_read_back_exactly(archive, tmp_path):
  manual_dir, url_infos, images, labels = archive
  with mock.patch.object(tfds.builder_cls("cifar10"), "url_infos", url_infos):
    prepare.prepare("cifar10:3.0.2", str(tmp_path), manual_dir)
  read_images, read_labels = _read_back(str(tmp_path))
  decoded = np.stack([data.decoding.decode(image, 3) for image in read_images])
  ours, theirs = _by_content(decoded, read_labels), _by_content(images, labels.astype(np.int32))
  np.testing.assert_array_equal(ours[0], theirs[0])  # tfds shuffles the order; the examples are the same.
  np.testing.assert_array_equal(ours[1], theirs[1])
  # Training reads it without importing TensorFlow (installed here).
  script = (
    "import sys\n"
    "from helpers import tiny_config\n"
    "from adamix_jax import data\n"
    f"config = tiny_config({str(tmp_path)!r}, **{{'data.name': 'cifar10', 'data.max_train_examples': 0}})\n"
    "info = data.data_info(config)\n"
    "batch = next(data.InputPipeline(config, info).train_batches(0))\n"
    "print(info.num_train, batch['images'].shape, 'tensorflow' in sys.modules)\n"
  )
  tests_dir = os.path.dirname(os.path.abspath(__file__))
  result = subprocess.run([sys.executable, "-c", script], cwd=tests_dir, capture_output=True, text=True)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.split("\n")[-2] == "600 (20, 32, 32, 3) False"


def test_a_tfrecord_preparation_is_refused_with_the_command_then_converted(archive, tmp_path):
  manual_dir, url_infos, images, labels = archive
  with mock.patch.object(tfds.builder_cls("cifar10"), "url_infos", url_infos):
    builder = tfds.builder("cifar10:3.0.2", data_dir=str(tmp_path))  # tfds's default format: tfrecord.
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  data.open_dataset.cache_clear()
  with pytest.raises(data.DataNotPreparedError, match="prepared as tfrecord") as error:
    data.data_info(tiny_config(str(tmp_path), **{"data.name": "cifar10"}))
  assert f"python -m adamix_jax.data.prepare cifar10 --data_dir {tmp_path}" in str(error.value)
  command = [sys.executable, "-m", "adamix_jax.data.prepare", "cifar10", "--data_dir", str(tmp_path)]
  result = subprocess.run(command, capture_output=True, text=True, check=True)
  assert "Converting" in result.stdout and "train 600" in result.stdout
  data.open_dataset.cache_clear()
  read_images, read_labels = _read_back(str(tmp_path))
  decoded = np.stack([data.decoding.decode(image, 3) for image in read_images])
  np.testing.assert_array_equal(_by_content(decoded, read_labels)[0], _by_content(images, labels)[0])
