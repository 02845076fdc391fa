"""The host input of a run: numpy batches of uint8 images, made ahead in threads, without TensorFlow.

The training stream is a pure function of (seed, epoch, slice, position): each epoch of a slice is an
exact permutation drawn from its own key, and each batch's crops and flips (and each image's RandAugment
and Cutout) come from generators keyed by the batch and the image's place in it (`generator`). A resumed
run therefore sees exactly the batches an uninterrupted run would, and the thread count changes nothing.
Images stay uint8 on the host (four times less to copy) and are normalised on the device
(`adamix_jax.images.normalize`). Each process reads only its own slice of every split.
"""

import concurrent.futures
import functools
from collections.abc import Callable, Iterator

import ml_collections
import numpy as np

from adamix_jax.data import augment, loader
from adamix_jax.data.options import DataOptions
from adamix_jax.data.sources import DataInfo, open_dataset
from adamix_jax.data.splits import Split

SHUFFLE, BATCH, IMAGE = 0, 1, 2  # What a generator is for: the kinds in its key.
SUPERVISED = 0  # The stream id of the supervised epochs (a labeled-subset run's streams: subset_pipeline).


def generator(seed: int, stream: int, period: int, slice_index: int, kind: int, view: int = 0, index: int = 0):
  """The numpy Generator of one random choice of the input: a hash of all seven integers.

  `period` is the epoch (supervised) or the step or round (labeled-subset streams); `kind` is SHUFFLE,
  BATCH or IMAGE; `view` tells a batch's views apart; `index` is an image's place in its batch. The key
  always has seven words (numpy's SeedSequence pads short keys with zeros, so keys of different lengths
  could meet).
  """
  return np.random.default_rng((seed, stream, period, slice_index, kind, view, index))


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
  a pod run. Splits whose images have one size are decoded into host memory once, when first read.
  """

  def __init__(
    self, config: ml_collections.ConfigDict, info: DataInfo, *, process_index: int = 0, process_count: int = 1
  ):
    self.config, self.info, self.process_count = config, info, process_count
    self.options = options = DataOptions.from_config(config)
    self.dataset = open_dataset(options)
    self._train_name, self._eval_name = options.splits(self.dataset.spec)
    self.slice_count = input_slices(config, process_count)
    per_process = self.slice_count // process_count
    self._slice_ids = range(process_index * per_process, (process_index + 1) * per_process)
    self._process = (process_index, process_count)
    self.view = augment.View(options, info.image_shape[0], info.image_shape[-1])
    self.pool = concurrent.futures.ThreadPoolExecutor(options.worker_count, thread_name_prefix="adamix_jax-input")
    self.depth = 2 * options.worker_count + 2  # Batches in flight: every thread busy, two ready.

  def _ready(self, split: Split, description: str) -> Split:
    """`split`, decoded into memory when its images have one size."""
    if split.one_size:
      return split.decoded(self.info.image_shape[-1], self.options.worker_count, description)
    return split

  @functools.cached_property
  def train_split(self) -> Split:
    """The (possibly truncated) training split, whole (what this process's slices are cut from)."""
    return self.dataset.open_split(self._train_name).first(self.options.max_train_examples)

  @functools.cached_property
  def _train_slices(self) -> list[Split]:
    name = f"{self.options.name}'s {self._train_name} split"
    return [self._ready(self.train_split.slice(k, self.slice_count), name) for k in self._slice_ids]

  @functools.cached_property
  def _eval(self) -> Split:
    split = self.dataset.open_split(self._eval_name).first(self.options.max_eval_examples)
    return self._ready(split.slice(*self._process), f"{self.options.name}'s {self._eval_name} split")

  @staticmethod
  def augmented(view: augment.View, images, key: tuple[int, int, int, int], view_index: int = 0) -> np.ndarray:
    """The images (uint8 [k, H, W, C] or k encoded) of one batch's slice in `view`: uint8 [k, S, S, C].

    `key` = (seed, stream, period, slice) of the batch; with the view's index it keys the generators.
    """
    batch_rng = generator(*key, BATCH, view_index)
    image_rngs: Callable = lambda: [generator(*key, IMAGE, view_index, j) for j in range(len(images))]
    return view.batch(images, batch_rng, image_rngs)

  def train_batches(self, epoch: int, start_batch: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """The process's training batches of one epoch, from batch `start_batch` on.

    Yields:
      {"images": uint8 [b, H, W, C], "labels": int32 [b]} with b = batch_size / process_count. The epoch's
      last partial batch is dropped, so every epoch has the same number of steps.
    """
    config, slices = self.config, self._train_slices
    per_slice = config.batch_size // self.process_count // len(slices)
    steps = min(len(split) // per_slice for split in slices)
    orders = [
      generator(config.seed, SUPERVISED, epoch, k, SHUFFLE).permutation(len(split))
      for k, split in zip(self._slice_ids, slices, strict=True)
    ]

    def make(b: int) -> dict[str, np.ndarray]:
      images, labels = [], []
      for k, split, order in zip(self._slice_ids, slices, orders, strict=True):
        slice_images, slice_labels = split.take(order[b * per_slice : (b + 1) * per_slice])
        images.append(self.augmented(self.view, slice_images, (config.seed, SUPERVISED, epoch, k)))
        labels.append(slice_labels)
      return {"images": np.concatenate(images), "labels": np.concatenate(labels)}

    return loader.ahead(self.pool, make, range(start_batch, steps), self.depth)

  def _eval_images(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 [k, S, S, C] as the model sees them, int32 [k]) of evaluation examples `indices`."""
    images, labels = self._eval.take(indices)
    options, size = self.options, self.info.image_shape[0]
    if isinstance(images, np.ndarray) and images.shape[1] == size and not options.image_size:
      return images, labels
    resize_to, channels = options.eval_resize or size, self.info.image_shape[-1]
    processed = [augment.eval_image(image, size, resize_to, options.resize_method, channels) for image in images]
    return np.stack(processed), labels

  def eval_batches(self) -> Iterator[dict[str, np.ndarray]]:
    """Every evaluation example of this process exactly once, in order, padded to whole batches.

    Yields:
      {"images": uint8 [b, H, W, C], "labels": int32 [b], "mask": bool [b]}; mask is False on padding.
      Every process yields the same number of batches (`num_eval_batches`).
    """
    local_batch = self.config.eval_batch_size // self.process_count
    count, total = len(self._eval), num_eval_batches(self.info, self.config, self.process_count)

    def make(b: int) -> dict[str, np.ndarray]:
      indices = np.arange(b * local_batch, min((b + 1) * local_batch, count))
      images = np.zeros((local_batch, *self.info.image_shape), np.uint8)
      labels, mask = np.zeros(local_batch, np.int32), np.arange(local_batch) < len(indices)
      if len(indices):
        images[: len(indices)], labels[: len(indices)] = self._eval_images(indices)
      return {"images": images, "labels": labels, "mask": mask}

    return loader.ahead(self.pool, make, range(total), self.depth)

  def close(self) -> None:
    """Stops the pipeline's threads (batches not started are dropped)."""
    self.pool.shutdown(wait=False, cancel_futures=True)

  def first_eval_examples(self, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `count` evaluation images (uint8 [k, H, W, C]) and labels of this process."""
    return self._eval_images(np.arange(min(count, len(self._eval))))
