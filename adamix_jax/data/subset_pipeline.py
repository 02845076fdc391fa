"""The input of a labeled-subset run: a labeled stream and, for semi-supervised methods, an unlabeled one.

Both streams are iteration-based: the example at position p of a slice's stream (p = step * per-step share
+ place in the batch) is a pure function of (seed, stream, slice, p). Round r = p // n of a slice of n
examples is a permutation (`tf.random.experimental.index_shuffle` keyed by the round), and the example's
augmentation seed is folded from the round's key and p % n. A run resumed at step t therefore starts both
streams at exactly the batches an uninterrupted run would see, with no epoch bookkeeping.

The labeled stream holds the labeled subset (`labeled_subset.py`), augmented by the `config.data` recipe.
The unlabeled stream holds the whole training split (labeled examples included, as in FixMatch), each
example in a weak view (crop and flip with `semisup.weak_crop_padding`) and a strong view (crop and flip,
RandAugment, Cutout: `semisup.strong`); its true labels travel along for the pseudo-label accuracy metric
and are never used by a loss. Each process holds only its own slices of both, decoded, in host memory
(fixed-size datasets: CIFAR's 50,000 images take 150 MB).
"""

from collections.abc import Iterator

import ml_collections
import numpy as np

from adamix_jax import quiet
from adamix_jax.data import augment
from adamix_jax.data.datasets import DATASETS
from adamix_jax.data.input_pipeline import InputPipeline, input_slices, load_split_slice, stream_seed
from adamix_jax.data.sources import DataInfo

tf = quiet.import_tensorflow()  # Until the data layer goes without it: gfile, summaries.

LABELED, UNLABELED = 1, 2  # Stream ids, mixed into each stream's seed.


def semisup_views(config: ml_collections.ConfigDict) -> tuple[ml_collections.ConfigDict, ml_collections.ConfigDict]:
  """The data recipes of the weak and the strong view: config.data with the crop, RandAugment and Cutout replaced."""
  weak, strong = (ml_collections.ConfigDict(config.data.to_dict()) for _ in range(2))
  weak.crop_padding = config.semisup.weak_crop_padding
  weak.randaugment.num_ops, weak.cutout.size = 0, 0
  options = config.semisup.strong
  strong.crop_padding = options.crop_padding
  strong.randaugment = ml_collections.ConfigDict(options.randaugment.to_dict())
  strong.cutout = ml_collections.ConfigDict(options.cutout.to_dict())
  return weak, strong


def even_slice(values: np.ndarray, index: int, count: int) -> np.ndarray:
  """Slice `index` of `count` even slices of `values` (as tfds.even_splits cuts a split)."""
  total = len(values)
  return values[total * index // count : total * (index + 1) // count]


def _in_memory(ds: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
  """(uint8 images [n, H, W, C], int32 labels [n]) of a dataset of (image, label)."""
  images, labels = [], []
  for image_batch, label_batch in ds.batch(4096).as_numpy_iterator():
    images.append(image_batch)
    labels.append(label_batch)
  return np.concatenate(images), np.concatenate(labels).astype(np.int32)


def _constants(images: np.ndarray, labels: np.ndarray) -> tuple[tf.Tensor, tf.Tensor]:
  """Host-memory tensors of one slice's examples, made once and gathered from by every epoch's stream."""
  with tf.device("/cpu:0"):
    return tf.constant(images), tf.constant(labels)


def _labeled_examples(config: ml_collections.ConfigDict, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """The decoded examples at `indices` (sorted positions in the training split), in that order."""
  spec = DATASETS[config.data.name]
  ds = load_split_slice(config, spec.train_split, config.data.max_train_examples, 0, 1)  # The whole split.
  wanted = np.zeros(int(indices.max()) + 1, bool)
  wanted[indices] = True
  table, size = tf.constant(wanted), len(wanted)
  ds = ds.enumerate().filter(lambda i, _: tf.logical_and(i < size, tf.gather(table, tf.minimum(i, size - 1))))
  return _in_memory(ds.map(lambda i, example: example))


class SubsetPipeline(InputPipeline):
  """The host input of a labeled-subset run; evaluation is `InputPipeline`'s.

  Args:
    config: the run's config.
    info: the data's description.
    labeled_indices: int64 [L], sorted positions of the labeled examples in the training split.
    steps_per_epoch: steps the loop counts as one epoch (`experiment.steps_per_epoch`).
    unlabeled: also yield the unlabeled stream (semi-supervised methods).
    process_index, process_count: this process among the run's.
  """

  def __init__(
    self,
    config: ml_collections.ConfigDict,
    info: DataInfo,
    labeled_indices: np.ndarray,
    steps_per_epoch: int,
    *,
    unlabeled: bool,
    process_index: int = 0,
    process_count: int = 1,
  ):
    super().__init__(config, info, process_index=process_index, process_count=process_count)
    self._train = None  # The supervised epochs are not used here.
    self.steps_per_epoch = steps_per_epoch
    slices = input_slices(config, process_count)
    self.weak_view, self.strong_view = semisup_views(config)
    mine = [even_slice(labeled_indices, k, slices) for k in self._slice_ids]
    images, labels = _labeled_examples(config, np.concatenate(mine))
    bounds = np.cumsum([0] + [len(m) for m in mine])
    self._labeled = [_constants(images[a:b], labels[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    self._unlabeled = None
    if unlabeled:
      spec, limit = DATASETS[config.data.name], config.data.max_train_examples
      self._unlabeled = [
        _constants(*_in_memory(load_split_slice(config, spec.train_split, limit, k, slices))) for k in self._slice_ids
      ]
    self.labeled_batch = config.batch_size // process_count
    self.unlabeled_batch = self.labeled_batch * config.semisup.unlabeled_ratio

  def _stream(self, examples, stream: int, slice_id: int, per_step: int, start_step: int, views) -> tf.data.Dataset:
    """One slice's stream from step `start_step`: batches of per_step (label, view 1, view 2, ...)."""
    images, labels = examples
    n, size = int(images.shape[0]), self.info.image_shape[0]
    base = tf.constant(stream_seed(self.config.seed, 0, slice_id, stream))

    def example(position):
      round_seed = tf.random.experimental.stateless_fold_in(base, position // n)
      shuffle_seed, augment_seed = tf.unstack(tf.random.experimental.stateless_split(round_seed, 2))
      offset = position % n
      index = tf.random.experimental.index_shuffle(offset, shuffle_seed, tf.constant(n - 1, tf.int64))
      image, seed = tf.gather(images, index), tf.random.experimental.stateless_fold_in(augment_seed, offset)
      view_seeds = tf.unstack(tf.random.experimental.stateless_split(seed, len(views)))
      augmented = [augment.train_image(image, s, view, size, False) for s, view in zip(view_seeds, views, strict=True)]
      return (tf.gather(labels, index), *augmented)

    positions = tf.data.Dataset.range(start_step * per_step, np.iinfo(np.int64).max)
    ds = positions.map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(per_step, drop_remainder=True)

  def _combined(self, streams: list[tf.data.Dataset]) -> tf.data.Dataset:
    """The slices' batches side by side, concatenated along the batch."""
    if len(streams) == 1:
      return streams[0]
    return tf.data.Dataset.zip(tuple(streams)).map(
      lambda *parts: tuple(tf.concat([part[i] for part in parts], 0) for i in range(len(parts[0])))
    )

  def train_batches(self, epoch: int, start_batch: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """The process's batches of steps [epoch * S + start_batch, (epoch + 1) * S), S the steps of an epoch.

    Yields:
      {"images": uint8 [b, H, W, C], "labels": int32 [b]} (the labeled batch, b = batch_size / processes)
      and, with the unlabeled stream, "weak" and "strong" uint8 [mu b, H, W, C] and "unlabeled_labels"
      int32 [mu b] (true labels, for metrics only).
    """
    steps_per_epoch = self.steps_per_epoch
    start = epoch * steps_per_epoch + start_batch
    per_slice = len(self._slice_ids)
    labeled = self._combined([
      self._stream(examples, LABELED, k, self.labeled_batch // per_slice, start, [self.config.data])
      for k, examples in zip(self._slice_ids, self._labeled, strict=True)
    ])  # fmt: skip
    parts = {"labeled": labeled}
    if self._unlabeled is not None:
      parts["unlabeled"] = self._combined([
        self._stream(
          examples, UNLABELED, k, self.unlabeled_batch // per_slice, start, [self.weak_view, self.strong_view]
        )
        for k, examples in zip(self._slice_ids, self._unlabeled, strict=True)
      ])  # fmt: skip
    ds = tf.data.Dataset.zip(parts).take(steps_per_epoch - start_batch)
    for batch in ds.prefetch(tf.data.AUTOTUNE).as_numpy_iterator():
      labels, images = batch["labeled"]
      out = {"images": images, "labels": labels}
      if "unlabeled" in batch:
        out["unlabeled_labels"], out["weak"], out["strong"] = batch["unlabeled"]
      yield out
