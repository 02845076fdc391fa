"""tensorflow-datasets -> tf.data on the host -> numpy batches of uint8 images.

The training stream is a pure function of (seed, epoch, position): each epoch is an exact permutation
drawn from (seed, epoch), and each example's crop and flip come from stateless random ops keyed by
(seed, epoch, index in the epoch). A resumed run therefore sees exactly the batches an uninterrupted run
would. Images stay uint8 on the host (four times less to copy) and are normalised on the device
(`normalize`). Each process reads only its own slice of every split.
"""

import concurrent.futures
import dataclasses
import functools
import os
import socket
import urllib.parse
from collections.abc import Iterator

import jax.numpy as jnp
import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from adamix_jax.data import (
  augment,
  fashion_mnist_subset,  # noqa: F401  (registers the embedded builder)
  image_folder,
)
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


def _folder_root(config: ml_collections.ConfigDict) -> str:
  """DATA_DIR/<name> of an image-folder dataset (DATA_DIR defaults as tfds's: ~/tensorflow_datasets)."""
  base = _data_dir(config) or os.path.join(os.path.expanduser("~"), "tensorflow_datasets")
  return os.path.join(base, DATASETS[config.data.name].name)


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
  spec: DatasetSpec = DATASETS[config.data.name]
  builder = tfds.builder(spec.name, data_dir=_data_dir(config))
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
  raise _not_prepared(spec, builder.data_dir, reason, os.path.dirname(os.path.dirname(builder.data_dir)))


@functools.lru_cache(maxsize=8)
def _cached_folder_split(root: str, split: str, classes: tuple[str, ...] | None) -> image_folder.FolderSplit:
  return image_folder.list_split(root, split, classes)


def _folder_split(config: ml_collections.ConfigDict, split: str) -> image_folder.FolderSplit:
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


def _encoded(spec: DatasetSpec) -> bool:
  """Whether the source yields encoded image bytes (decoded in the augmentation) rather than uint8 arrays."""
  return spec.source == "image_folder" or spec.image_size == 0


def _split(base: str, limit: int) -> str:
  return f"{base}[:{limit}]" if limit else base


def data_info(config: ml_collections.ConfigDict) -> DataInfo:
  """Reads classes and split sizes from the prepared dataset; the image shape is the one the model sees."""
  spec = DATASETS[config.data.name]
  if spec.source == "image_folder":
    train, test = _folder_split(config, spec.train_split), _folder_split(config, spec.eval_split)
    num_classes, channels = len(train.classes), 3
    limit = lambda n, cap: min(n, cap) if cap else n
    num_train = limit(len(train.paths), config.data.max_train_examples)
    num_eval = limit(len(test.paths), config.data.max_eval_examples)
  else:
    info = prepared_builder(config).info
    image, label = (info.features[key] for key in info.supervised_keys)
    num_classes, channels = label.num_classes, image.shape[-1]
    num_train = info.splits[_split(spec.train_split, config.data.max_train_examples)].num_examples
    num_eval = info.splits[_split(spec.eval_split, config.data.max_eval_examples)].num_examples
  size = config.data.image_size or spec.image_size
  return DataInfo(num_classes, (size, size, channels), num_train, num_eval, spec.mean, spec.std)


def _load(config, split: str, limit: int, index: int, count: int) -> tf.data.Dataset:
  """Slice `index` of `count` even slices of the first `limit` (0: all) examples of `split`: (image, label).

  Images are uint8 [H, W, C] for fixed-size tfds datasets and encoded bytes otherwise; the order is fixed.
  Not cached: the pipeline caches what it reads through to the end (a partly read cache is unsafe).
  """
  spec = DATASETS[config.data.name]
  if spec.source == "image_folder":
    files = _folder_split(config, split)
    total = min(len(files.paths), limit) if limit else len(files.paths)
    start, stop = (total * index // count, total * (index + 1) // count)
    ds = tf.data.Dataset.from_tensor_slices((list(files.paths[start:stop]), files.labels[start:stop]))
    ds = ds.map(lambda path, label: (tf.io.read_file(path), label), num_parallel_calls=tf.data.AUTOTUNE)
  else:
    process_split = tfds.even_splits(_split(split, limit), n=count)[index]
    decoders = {"image": tfds.decode.SkipDecoding()} if _encoded(spec) else None
    ds = prepared_builder(config).as_dataset(
      split=process_split,
      as_supervised=True,
      shuffle_files=False,
      decoders=decoders,
      read_config=tfds.ReadConfig(try_autocache=False),  # One cache, ours (`data.cache`), read to its end.
    )
    ds = ds.map(lambda image, label: (image, tf.cast(label, tf.int32)), num_parallel_calls=tf.data.AUTOTUNE)
  return ds


def num_eval_batches(info: DataInfo, config: ml_collections.ConfigDict, process_count: int = 1) -> int:
  """Evaluation batches per process: enough for the largest process slice, the last one padded."""
  largest_slice = -(-info.num_eval // process_count)
  local_batch = config.eval_batch_size // process_count
  return -(-largest_slice // local_batch)


def input_slices(config: ml_collections.ConfigDict, process_count: int) -> int:
  """Slices of the training split: `config.data.input_slices`, or one per process.

  Raises:
    ValueError: the slices cannot be shared evenly by the processes and their batches.
  """
  slices = config.data.input_slices or process_count
  per_process = slices // process_count
  if slices % process_count or (config.batch_size // process_count) % per_process or slices > 1000:
    raise ValueError(
      f"config.data.input_slices = {slices} must be at most 1000 and a multiple of the {process_count} "
      f"processes, and each process's batch ({config.batch_size // process_count}) a multiple of its "
      f"{per_process} slices."
    )
  return slices


class InputPipeline:
  """The host input of one run: training epochs and evaluation passes over this process's slices.

  The training split is cut into `input_slices` even slices (default: one per process); each process
  reads only its own slices, each shuffled on its own, and its share of every global batch takes the
  same number of examples from each. The global batches therefore depend on the slice count, not on
  the number of processes: with `data.input_slices` fixed, a run on one host sees exactly the batches of
  a pod run. The decoded splits are built once and, with `config.data.cache`, kept in host memory after
  their first complete pass, so later epochs and evaluations do not decode again.
  """

  def __init__(
    self, config: ml_collections.ConfigDict, info: DataInfo, *, process_index: int = 0, process_count: int = 1
  ):
    self.config, self.info, self.process_count = config, info, process_count
    spec = DATASETS[config.data.name]
    self._encoded = _encoded(spec)
    per_process = input_slices(config, process_count) // process_count
    limit = config.data.max_train_examples
    self._slice_ids = range(process_index * per_process, (process_index + 1) * per_process)
    cache = (lambda ds: ds.cache()) if config.data.cache else (lambda ds: ds)
    self._train = [
      cache(_load(config, spec.train_split, limit, k, per_process * process_count)) for k in self._slice_ids
    ]
    self._eval_source = _load(config, spec.eval_split, config.data.max_eval_examples, process_index, process_count)
    self._eval = cache(self._eval_source)
    self._num_local_eval = int(self._eval_source.cardinality())  # Known: tfds asserts it, folders list it.

  def train_batches(self, epoch: int, start_batch: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """The process's training batches of one epoch, from batch `start_batch` on.

    Yields:
      {"images": uint8 [b, H, W, C], "labels": int32 [b]} with b = batch_size / process_count. The epoch's
      last partial batch is dropped, so every epoch has the same number of steps.
    """
    config, size = self.config, self.info.image_shape[0]
    per_slice = config.batch_size // self.process_count // len(self._train)
    streams = []
    for k, examples in zip(self._slice_ids, self._train, strict=True):
      order_seed = (config.seed * 1_000_003 + epoch + 7_919 * k) % 2**31
      buffer = config.data.shuffle_buffer or examples.cardinality()
      if buffer == tf.data.UNKNOWN_CARDINALITY:
        buffer = 10_000
      ds = examples.shuffle(buffer, seed=order_seed, reshuffle_each_iteration=False).enumerate()
      ds = ds.skip(start_batch * per_slice)

      def preprocess(index, example, k=k):
        image, label = example
        seed = tf.stack([tf.constant(config.seed, tf.int64) * 100_003 + epoch, index * 1_000 + k])
        return augment.train_image(image, seed, config.data, size, self._encoded), label

      ds = ds.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
      streams.append(ds.batch(per_slice, drop_remainder=True))
    if len(streams) == 1:
      ds = streams[0]
    else:
      ds = tf.data.Dataset.zip(tuple(streams)).map(
        lambda *parts: tuple(tf.concat([part[i] for part in parts], 0) for i in range(2))
      )
    for images, labels in ds.prefetch(tf.data.AUTOTUNE).as_numpy_iterator():
      yield {"images": images, "labels": labels}

  def _eval_examples(self, ds: tf.data.Dataset) -> tf.data.Dataset:
    """(image uint8 [H, W, C] as the model sees it, label, True) for each example of `ds`."""
    config, size = self.config, self.info.image_shape[0]
    if self._encoded or config.data.image_size:
      resize_to, method = config.data.eval_resize or size, config.data.resize_method
      return ds.map(
        lambda image, label: (augment.eval_image(image, size, resize_to, method, self._encoded), label, True),
        num_parallel_calls=tf.data.AUTOTUNE,
      )
    return ds.map(lambda image, label: (image, label, True))

  def eval_batches(self) -> Iterator[dict[str, np.ndarray]]:
    """Every evaluation example of this process exactly once, in order, padded to whole batches.

    Yields:
      {"images": uint8 [b, H, W, C], "labels": int32 [b], "mask": bool [b]}; mask is False on padding.
      Every process yields the same number of batches (`num_eval_batches`).
    """
    local_batch = self.config.eval_batch_size // self.process_count
    total = num_eval_batches(self.info, self.config, self.process_count) * local_batch
    padding = tf.data.Dataset.from_tensors((tf.zeros(self.info.image_shape, tf.uint8), 0, False))
    # Padded to whole batches, not cut with take(): the cache must be read to its end to be kept.
    ds = self._eval_examples(self._eval).concatenate(padding.repeat(total - self._num_local_eval))
    for images, labels, mask in ds.batch(local_batch).prefetch(tf.data.AUTOTUNE).as_numpy_iterator():
      yield {"images": images, "labels": labels, "mask": mask}

  def first_eval_examples(self, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `count` evaluation images (uint8 [k, H, W, C]) and labels of this process.

    Read past the cache: stopping early inside a cached dataset would leave a truncated cache behind.
    """
    ds = self._eval_examples(self._eval_source).take(count).batch(count)
    images, labels, _ = next(ds.as_numpy_iterator())
    return images, labels
