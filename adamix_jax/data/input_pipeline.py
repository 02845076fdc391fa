"""tensorflow-datasets -> tf.data on the host -> numpy batches of uint8 images.

The training stream is a pure function of (seed, epoch, slice, position): each epoch of a slice is an
exact permutation and each example's crop and flip come from stateless random ops, all keyed by
`stream_seed` (see there). A resumed run therefore sees exactly the batches an uninterrupted run would.
Images stay uint8 on the host (four times less to copy) and are normalised on the device
(`adamix_jax.images.normalize`). Each process reads only its own slice of every split.
"""

from collections.abc import Iterator

import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from adamix_jax import quiet
from adamix_jax.data import augment
from adamix_jax.data.datasets import DATASETS
from adamix_jax.data.sources import (
  DataInfo,
  folder_split,
  keep_tensorflow_on_the_host,
  prepared_builder,
  split_with_limit,
  yields_encoded_images,
)

tf = quiet.import_tensorflow()  # Until the data layer goes without it: gfile, summaries.


def stream_seed(seed: int, epoch: int, slice_index: int, *stream: int) -> np.ndarray:
  """The seed of one slice's epoch: int64 [2], a hash of (seed, epoch, slice_index[, stream]).

  numpy's `SeedSequence` mixes the integers (any size, no collisions by construction of the arithmetic);
  its first word seeds the epoch's shuffle, and each example's augmentation seed is
  `tf.random.experimental.stateless_fold_in(stream_seed, index in the shuffled epoch)`. `stream` names
  the streams of a labeled-subset run (`subset_pipeline.py`); the supervised stream has none.
  """
  return np.random.SeedSequence((seed, epoch, slice_index, *stream)).generate_state(2).astype(np.int64)


def load_split_slice(config, split: str, limit: int, index: int, count: int) -> tf.data.Dataset:
  """Slice `index` of `count` even slices of the first `limit` (0: all) examples of `split`: (image, label).

  Images are uint8 [H, W, C] for fixed-size tfds datasets and encoded bytes otherwise; the order is fixed.
  Not cached: the pipeline caches what it reads through to the end (a partly read cache is unsafe).
  """
  spec = DATASETS[config.data.name]
  if spec.source == "image_folder":
    files = folder_split(config, split)
    total = min(len(files.paths), limit) if limit else len(files.paths)
    start, stop = (total * index // count, total * (index + 1) // count)
    ds = tf.data.Dataset.from_tensor_slices((list(files.paths[start:stop]), files.labels[start:stop]))
    ds = ds.map(lambda path, label: (tf.io.read_file(path), label), num_parallel_calls=tf.data.AUTOTUNE)
  else:
    process_split = tfds.even_splits(split_with_limit(split, limit), n=count)[index]
    decoders = {"image": tfds.decode.SkipDecoding()} if yields_encoded_images(spec) else None
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
  if slices % process_count or (config.batch_size // process_count) % per_process:
    raise ValueError(
      f"config.data.input_slices = {slices} must be a multiple of the {process_count} processes, and each "
      f"process's batch ({config.batch_size // process_count}) a multiple of its {per_process} slices."
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
    keep_tensorflow_on_the_host()
    self.config, self.info, self.process_count = config, info, process_count
    spec = DATASETS[config.data.name]
    self._encoded = yields_encoded_images(spec)
    per_process = input_slices(config, process_count) // process_count
    limit = config.data.max_train_examples
    self._slice_ids = range(process_index * per_process, (process_index + 1) * per_process)
    cache = (lambda ds: ds.cache()) if config.data.cache else (lambda ds: ds)
    self._train = [
      cache(load_split_slice(config, spec.train_split, limit, k, per_process * process_count)) for k in self._slice_ids
    ]
    self._eval_source = load_split_slice(
      config, spec.eval_split, config.data.max_eval_examples, process_index, process_count
    )
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
      seed = stream_seed(config.seed, epoch, k)
      buffer = config.data.shuffle_buffer or examples.cardinality()
      if buffer == tf.data.UNKNOWN_CARDINALITY:
        buffer = 10_000
      ds = examples.shuffle(buffer, seed=int(seed[0]), reshuffle_each_iteration=False).enumerate()
      ds = ds.skip(start_batch * per_slice)

      def preprocess(index, example, seed=seed):
        image, label = example
        example_seed = tf.random.experimental.stateless_fold_in(tf.constant(seed), index)
        return augment.train_image(image, example_seed, config.data, size, self._encoded), label

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
