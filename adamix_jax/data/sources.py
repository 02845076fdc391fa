"""Where a run's data comes from and what it is: the prepared tfds builder or image folder, and `DataInfo`.

A dataset that is not prepared is prepared here when that can succeed now (the embedded one always; others
when `config.data.download` is set and their source answers), and otherwise fails at once with the
directory searched and how to prepare it: never tfds's minutes-long download retry loop.
"""

import concurrent.futures
import contextlib
import dataclasses
import functools
import io
import os
import socket
import urllib.parse

import ml_collections
import numpy as np
import tensorflow_datasets as tfds
from absl import logging as absl_logging

from adamix_jax import quiet
from adamix_jax.data import (
  fashion_mnist_subset,  # noqa: F401  (registers the embedded builder)
  image_folder,
)
from adamix_jax.data.datasets import DATASETS, DatasetSpec

tf = quiet.import_tensorflow()  # Until the data layer goes without it: gfile, summaries.


def keep_tensorflow_on_the_host() -> None:
  """Hides the GPUs from TensorFlow, which only feeds the host pipeline, so they stay JAX's.

  Called before the first TensorFlow work of a run. Does nothing where TensorFlow sees no GPU, and warns
  where its devices were already initialised (by the caller's own TensorFlow use) and can no longer change.
  """
  if not tf.config.get_visible_devices("GPU"):
    return
  try:
    tf.config.set_visible_devices([], "GPU")
  except RuntimeError:
    print("warning: TensorFlow already initialised its GPUs; it may hold accelerator memory JAX needs.")


@contextlib.contextmanager
def _quiet_tfds():
  """Silences tfds's own messages: its "Downloading and preparing" line (said even when nothing is
  downloaded), its progress bars and its absl warnings. Errors still raise."""
  verbosity = absl_logging.get_verbosity()
  absl_logging.set_verbosity(absl_logging.ERROR)
  tfds.display_progress_bar(False)
  try:
    with contextlib.redirect_stdout(io.StringIO()):
      yield
  finally:
    tfds.display_progress_bar(True)
    absl_logging.set_verbosity(verbosity)


class DataNotPreparedError(RuntimeError):
  """The dataset is not prepared and cannot be downloaded now. The message says how to prepare it."""


@dataclasses.dataclass(frozen=True)
class DataInfo:
  """What the model and the loop need to know about the data of a run.

  Attributes:
    num_classes: classes of the label feature.
    image_shape: (H, W, C) of one image.
    num_train, num_eval: examples in the (possibly truncated) train and evaluation splits, all processes.
    mean, std: per-channel normalisation of images in [0, 1].
    class_names: the name of each label, where the dataset has them (pictures); () otherwise.
  """

  num_classes: int
  image_shape: tuple[int, int, int]
  num_train: int
  num_eval: int
  mean: tuple[float, ...]
  std: tuple[float, ...]
  class_names: tuple[str, ...] = ()


def _data_dir(config: ml_collections.ConfigDict) -> str | None:
  return config.data.data_dir or os.environ.get("TFDS_DATA_DIR") or None


def _folder_root(config: ml_collections.ConfigDict) -> str:
  """DATA_DIR/<name> of an image-folder dataset (DATA_DIR defaults as tfds's: ~/tensorflow_datasets)."""
  base = _data_dir(config) or os.path.join(os.path.expanduser("~"), "tensorflow_datasets")
  return os.path.join(base, DATASETS[config.data.name].name)


def _reachable(url: str, timeout: float = 3.0) -> bool:
  """Whether a TCP connection to `url`'s host opens within `timeout` seconds, name lookup included.

  tfds has no connect timeout of its own: offline, its download retries for minutes. The lookup (which
  `socket` cannot time out) runs in a worker thread so the answer comes within `timeout` in any case.
  """
  parsed = urllib.parse.urlparse(url)
  port = parsed.port or (443 if parsed.scheme == "https" else 80)

  def connect():
    with socket.create_connection((parsed.hostname, port), timeout=timeout):
      return True

  pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
  try:
    return pool.submit(connect).result(timeout=timeout)
  except Exception:  # Any failure (no route, no name, refused, timeout) means: not reachable now.
    return False
  finally:
    pool.shutdown(wait=False)


def _not_prepared(spec: DatasetSpec, where: str, reason: str, data_dir: str) -> DataNotPreparedError:
  return DataNotPreparedError(
    f"Dataset {spec.name!r} is not prepared in {where} ({reason}).\n"
    f"{spec.prepare_hint.replace('DIR', data_dir)}\n"
    "Point config.data.data_dir (or TFDS_DATA_DIR) at the directory that holds the prepared data."
  )


def prepared_builder(config: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
  """The tfds builder of `config.data.name`, prepared.

  The embedded dataset is prepared locally on first use. Another dataset that is not prepared is
  downloaded only when `config.data.download` is set and its source answers within seconds; otherwise
  this fails at once (never tfds's minutes-long retry loop) with the directory searched and the way to
  prepare it.

  Raises:
    DataNotPreparedError: the data is missing and cannot be fetched now.
  """
  keep_tensorflow_on_the_host()
  spec: DatasetSpec = DATASETS[config.data.name]
  with _quiet_tfds():  # Its "no dataset_info.json" warning before a first preparation says nothing useful.
    builder = tfds.builder(spec.name, data_dir=_data_dir(config))
    prepared = builder.is_prepared()
  if prepared:
    return builder
  if spec.embedded:
    print(
      f"Preparing the embedded dataset {spec.name!r} in {builder.data_dir} (it ships with adamix_jax: nothing "
      "is downloaded; once, a few seconds).",
      flush=True,
    )
    with _quiet_tfds():
      builder.download_and_prepare()
    return builder
  urls = list(getattr(builder, "url_infos", None) or {})
  if config.data.download and urls and all(_reachable(url) for url in urls):
    builder.download_and_prepare()
    return builder
  reason = (
    "config.data.download is False"
    if not config.data.download
    else f"{urls[0] if urls else 'its source'} cannot be reached"
  )
  raise _not_prepared(spec, builder.data_dir, reason, os.path.dirname(os.path.dirname(builder.data_dir)))


@functools.lru_cache(maxsize=8)
def _cached_folder_split(root: str, split: str, classes: tuple[str, ...] | None) -> image_folder.FolderSplit:
  return image_folder.list_split(root, split, classes)


def folder_split(config: ml_collections.ConfigDict, split: str) -> image_folder.FolderSplit:
  """The files of an image-folder split, labelled by the training split's classes.

  Raises:
    DataNotPreparedError: the folder is missing or not laid out as <split>/<class>/<image>.
  """
  spec, root = DATASETS[config.data.name], _folder_root(config)
  try:
    classes = image_folder.class_names(root, spec.train_split)
    return _cached_folder_split(root, split, classes)
  except image_folder.FolderLayoutError as error:
    raise _not_prepared(spec, root, str(error), os.path.dirname(root)) from error


def yields_encoded_images(spec: DatasetSpec) -> bool:
  """Whether the source yields encoded image bytes (decoded in the augmentation) rather than uint8 arrays."""
  return spec.source == "image_folder" or spec.image_size == 0


def split_with_limit(base: str, limit: int) -> str:
  return f"{base}[:{limit}]" if limit else base


def data_info(config: ml_collections.ConfigDict) -> DataInfo:
  """Reads classes and split sizes from the prepared dataset; the image shape is the one the model sees."""
  spec = DATASETS[config.data.name]
  if spec.source == "image_folder":
    train, test = folder_split(config, spec.train_split), folder_split(config, spec.eval_split)
    num_classes, channels, names = len(train.classes), 3, train.classes
    limit = lambda n, cap: min(n, cap) if cap else n
    num_train = limit(len(train.paths), config.data.max_train_examples)
    num_eval = limit(len(test.paths), config.data.max_eval_examples)
  else:
    info = prepared_builder(config).info
    image, label = (info.features[key] for key in info.supervised_keys)
    num_classes, channels, names = label.num_classes, image.shape[-1], tuple(label.names)
    num_train = info.splits[split_with_limit(spec.train_split, config.data.max_train_examples)].num_examples
    num_eval = info.splits[split_with_limit(spec.eval_split, config.data.max_eval_examples)].num_examples
  size = config.data.image_size or spec.image_size
  return DataInfo(num_classes, (size, size, channels), num_train, num_eval, spec.mean, spec.std, tuple(names))


def train_labels(config: ml_collections.ConfigDict) -> np.ndarray:
  """int64 [N], the label of every example of the (possibly truncated) training split, in order.

  Reads the labels only (images are not decoded). Fixed-size tfds datasets only (what a labeled subset needs).
  """
  spec = DATASETS[config.data.name]
  ds = prepared_builder(config).as_dataset(
    split=split_with_limit(spec.train_split, config.data.max_train_examples),
    as_supervised=True,
    shuffle_files=False,
    decoders={"image": tfds.decode.SkipDecoding()},
    read_config=tfds.ReadConfig(try_autocache=False),
  )
  batches = ds.map(lambda image, label: label).batch(65536).as_numpy_iterator()
  return np.concatenate(list(batches)).astype(np.int64)
