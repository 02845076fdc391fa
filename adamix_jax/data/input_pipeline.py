"""tensorflow-datasets -> tf.data on the host -> numpy batches of uint8 images.

The training stream is a pure function of (seed, epoch, position): each epoch is an exact permutation
drawn from (seed, epoch), and each example's crop and flip come from stateless random ops keyed by
(seed, epoch, index in the epoch). A resumed run therefore sees exactly the batches an uninterrupted run
would. Images stay uint8 on the host (four times less to copy) and are normalised on the device
(`normalize`). Each process reads only its own slice of every split.
"""

import concurrent.futures
import dataclasses
import os
import socket
import urllib.parse
from collections.abc import Iterator

import jax.numpy as jnp
import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from adamix_jax.data import fashion_mnist_subset  # noqa: F401  (registers the embedded builder)
from adamix_jax.data.datasets import DATASETS, DatasetSpec

# TensorFlow only feeds the host pipeline: keep it off the accelerators JAX uses.
tf.config.set_visible_devices([], "GPU")


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
  """

  num_classes: int
  image_shape: tuple[int, int, int]
  num_train: int
  num_eval: int
  mean: tuple[float, ...]
  std: tuple[float, ...]


def normalize(images, mean, std):
  """uint8 images [..., C] -> float32 (images / 255 - mean) / std, per channel."""
  images = jnp.asarray(images, jnp.float32) / 255.0
  return (images - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


def _data_dir(config: ml_collections.ConfigDict) -> str | None:
  return config.data.data_dir or os.environ.get("TFDS_DATA_DIR") or None


def _reachable(url: str, timeout: float = 3.0) -> bool:
  """Whether a TCP connection to `url`'s host opens within `timeout` seconds (DNS included)."""
  parsed = urllib.parse.urlparse(url)
  port = parsed.port or (443 if parsed.scheme == "https" else 80)

  def connect():
    with socket.create_connection((parsed.hostname, port), timeout=timeout):
      return True

  pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
  try:
    return pool.submit(connect).result(timeout=timeout)
  except Exception:  # noqa: BLE001  (any failure means: not reachable now)
    return False
  finally:
    pool.shutdown(wait=False)


def prepared_builder(config: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
  """The tfds builder of `config.data.name`, prepared.

  The embedded dataset is prepared locally on first use. Another dataset that is not prepared is
  downloaded only when `config.data.download` is set and its source answers within seconds; otherwise
  this fails at once (never tfds's minutes-long retry loop) with the directory searched and the way to
  prepare it.

  Raises:
    DataNotPreparedError: the data is missing and cannot be fetched now.
  """
  spec: DatasetSpec = DATASETS[config.data.name]
  builder = tfds.builder(spec.tfds_name, data_dir=_data_dir(config))
  if builder.is_prepared():
    return builder
  if spec.embedded:
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
  raise DataNotPreparedError(
    f"Dataset {spec.tfds_name!r} is not prepared in {builder.data_dir} and {reason}.\n"
    f"{spec.prepare_hint.replace('DIR', os.path.dirname(os.path.dirname(builder.data_dir)))}\n"
    "Point config.data.data_dir (or TFDS_DATA_DIR) at the directory that holds the prepared data."
  )


def _split(base: str, limit: int) -> str:
  return f"{base}[:{limit}]" if limit else base


def data_info(config: ml_collections.ConfigDict) -> DataInfo:
  """Reads shapes, classes and split sizes from the prepared dataset's info."""
  spec = DATASETS[config.data.name]
  info = prepared_builder(config).info
  image, label = (info.features[key] for key in info.supervised_keys)
  return DataInfo(
    num_classes=label.num_classes,
    image_shape=tuple(image.shape),
    num_train=info.splits[_split(spec.train_split, config.data.max_train_examples)].num_examples,
    num_eval=info.splits[_split(spec.eval_split, config.data.max_eval_examples)].num_examples,
    mean=spec.mean,
    std=spec.std,
  )


def _load(config, split: str, process_index: int, process_count: int) -> tf.data.Dataset:
  """The process's slice of `split` as (image uint8 [H, W, C], label int32), in a fixed order."""
  process_split = tfds.even_splits(split, n=process_count)[process_index]
  ds = prepared_builder(config).as_dataset(split=process_split, as_supervised=True, shuffle_files=False)
  ds = ds.map(lambda image, label: (image, tf.cast(label, tf.int32)), num_parallel_calls=tf.data.AUTOTUNE)
  return ds.cache() if config.data.cache else ds


def _augment(image: tf.Tensor, seed: tf.Tensor, padding: int, flip: bool) -> tf.Tensor:
  """Random crop after reflect padding, then a random horizontal flip, from a stateless seed [2]."""
  crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  if padding:
    padded = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]], mode="REFLECT")
    image = tf.image.stateless_random_crop(padded, tf.shape(image), seed=crop_seed)
  if flip:
    image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
  return image


def num_eval_batches(info: DataInfo, config: ml_collections.ConfigDict, process_count: int = 1) -> int:
  """Evaluation batches per process: enough for the largest process slice, the last one padded."""
  largest_slice = -(-info.num_eval // process_count)
  local_batch = config.eval_batch_size // process_count
  return -(-largest_slice // local_batch)


class InputPipeline:
  """The host input of one run: training epochs and evaluation passes over this process's slices.

  The decoded splits are built once and, with `config.data.cache`, kept in host memory after their first
  complete pass, so later epochs and evaluations do not decode again.
  """

  def __init__(
    self, config: ml_collections.ConfigDict, info: DataInfo, *, process_index: int = 0, process_count: int = 1
  ):
    self.config, self.info, self.process_count = config, info, process_count
    spec = DATASETS[config.data.name]
    self._train = _load(config, _split(spec.train_split, config.data.max_train_examples), process_index, process_count)
    self._eval = _load(config, _split(spec.eval_split, config.data.max_eval_examples), process_index, process_count)

  def train_batches(self, epoch: int, start_batch: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """The process's training batches of one epoch, from batch `start_batch` on.

    Yields:
      {"images": uint8 [b, H, W, C], "labels": int32 [b]} with b = batch_size / process_count. The epoch's
      last partial batch is dropped, so every epoch has the same number of steps.
    """
    config = self.config
    local_batch = config.batch_size // self.process_count
    order_seed = (config.seed * 1_000_003 + epoch) % 2**31
    buffer = config.data.shuffle_buffer or self._train.cardinality()
    if buffer == tf.data.UNKNOWN_CARDINALITY:
      buffer = 10_000
    ds = self._train.shuffle(buffer, seed=order_seed, reshuffle_each_iteration=False).enumerate()
    ds = ds.skip(start_batch * local_batch)

    def augment(index, example):
      image, label = example
      seed = tf.stack([tf.constant(config.seed, tf.int64) * 100_003 + epoch, index])
      return _augment(image, seed, config.data.crop_padding, config.data.flip), label

    ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(local_batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    for images, labels in ds.as_numpy_iterator():
      yield {"images": images, "labels": labels}

  def eval_batches(self) -> Iterator[dict[str, np.ndarray]]:
    """Every evaluation example of this process exactly once, in order, padded to whole batches.

    Yields:
      {"images": uint8 [b, H, W, C], "labels": int32 [b], "mask": bool [b]}; mask is False on padding.
      Every process yields the same number of batches (`num_eval_batches`).
    """
    local_batch = self.config.eval_batch_size // self.process_count
    ds = self._eval.map(lambda image, label: (image, label, True))
    total = num_eval_batches(self.info, self.config, self.process_count) * local_batch
    padding = tf.data.Dataset.from_tensors((tf.zeros(self.info.image_shape, tf.uint8), 0, False))
    ds = ds.concatenate(padding.repeat()).take(total)
    for images, labels, mask in ds.batch(local_batch).prefetch(tf.data.AUTOTUNE).as_numpy_iterator():
      yield {"images": images, "labels": labels, "mask": mask}
