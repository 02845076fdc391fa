"""The input of a labeled-subset run: a labeled stream and, for semi-supervised methods, an unlabeled one.

Both streams are iteration-based: the example at position p of a slice's stream (p = step * per-step share
+ place in the batch) is a pure function of (seed, stream, slice, p). Round r = p // n of a slice of n
examples is a permutation drawn from the round's own key, and each step's crops, flips, RandAugment and
Cutout come from generators keyed by the step (`input_pipeline.generator`). A run resumed at step t
therefore starts both streams at exactly the batches an uninterrupted run would see, with no epoch
bookkeeping.

The labeled stream holds the labeled subset (`labeled_subset.py`), augmented by the `config.data` recipe.
The unlabeled stream holds the whole training split (labeled examples included, as in FixMatch), each
example in a weak view (crop and flip with `semisup.weak_crop_padding`) and a strong view (crop and flip,
RandAugment, Cutout: `semisup.strong`); its true labels travel along for the pseudo-label accuracy metric
and are never used by a loss. Each process holds only its own slices of both.
"""

import dataclasses
import functools
from collections.abc import Iterator

import ml_collections
import numpy as np

from adamix_jax.data import augment, loader
from adamix_jax.data.input_pipeline import SHUFFLE, InputPipeline, generator
from adamix_jax.data.options import DataOptions, SemisupOptions
from adamix_jax.data.sources import DataInfo
from adamix_jax.data.splits import Split

LABELED, UNLABELED = 1, 2  # Stream ids, mixed into each stream's keys.


def semisup_views(config: ml_collections.ConfigDict) -> tuple[DataOptions, DataOptions]:
  """The recipes of the weak and the strong view: config.data with the crop, RandAugment and Cutout replaced."""
  data, semisup = DataOptions.from_config(config), SemisupOptions.from_config(config)
  weak = dataclasses.replace(
    data,
    crop_padding=semisup.weak_crop_padding,
    randaugment=dataclasses.replace(data.randaugment, num_ops=0),
    cutout=dataclasses.replace(data.cutout, size=0),
  )
  strong = semisup.strong
  strong = dataclasses.replace(
    data, crop_padding=strong.crop_padding, randaugment=strong.randaugment, cutout=strong.cutout
  )
  return weak, strong


class _Stream:
  """One slice's iteration-based stream: positions -> examples, each round a fresh permutation."""

  def __init__(self, split: Split, seed: int, stream: int, slice_id: int):
    self.split, self.key = split, (seed, stream, slice_id)

  @functools.lru_cache(maxsize=4)  # noqa: B019  (a few rounds per stream, for the stream's life)
  def _order(self, round_index: int) -> np.ndarray:
    seed, stream, slice_id = self.key
    return generator(seed, stream, round_index, slice_id, SHUFFLE).permutation(len(self.split))

  def indices(self, positions: np.ndarray) -> np.ndarray:
    """The split's example at each stream position (int [k])."""
    n = len(self.split)
    rounds, offsets = np.divmod(positions, n)
    out = np.empty_like(positions)
    for r in np.unique(rounds):
      here = rounds == r
      out[here] = self._order(int(r))[offsets[here]]
    return out


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
    self.steps_per_epoch = steps_per_epoch
    size, channels = info.image_shape[0], info.image_shape[-1]
    weak, strong = semisup_views(config)
    self.weak_view, self.strong_view = augment.View(weak, size, channels), augment.View(strong, size, channels)
    seed, name = config.seed, f"{self.options.name}'s labeled examples"
    labeled_split = self.train_split.subset(labeled_indices)
    labeled = [labeled_split.slice(k, self.slice_count) for k in self._slice_ids]
    self._labeled = [
      _Stream(self._ready(split, name), seed, LABELED, k) for k, split in zip(self._slice_ids, labeled, strict=True)
    ]
    self._unlabeled = None
    if unlabeled:
      self._unlabeled = [
        _Stream(split, seed, UNLABELED, k) for k, split in zip(self._slice_ids, self._train_slices, strict=True)
      ]
    self.labeled_batch = config.batch_size // process_count
    self.unlabeled_batch = self.labeled_batch * SemisupOptions.from_config(config).unlabeled_ratio

  def _part(self, streams: list[_Stream], per_step: int, step: int, views: list[augment.View]):
    """(labels int32 [per_step], one uint8 [per_step, S, S, C] per view) of one step, the slices side by side."""
    per_slice = per_step // len(streams)
    positions = step * per_slice + np.arange(per_slice)
    labels, viewed = [], [[] for _ in views]
    for stream in streams:
      images, slice_labels = stream.split.take(stream.indices(positions))
      labels.append(slice_labels)
      key = (stream.key[0], stream.key[1], step, stream.key[2])
      for index, view in enumerate(views):
        viewed[index].append(self.augmented(view, images, key, index))
    return np.concatenate(labels), *(np.concatenate(v) for v in viewed)

  def train_batches(self, epoch: int, start_batch: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """The process's batches of steps [epoch * S + start_batch, (epoch + 1) * S), S the steps of an epoch.

    Yields:
      {"images": uint8 [b, H, W, C], "labels": int32 [b]} (the labeled batch, b = batch_size / processes)
      and, with the unlabeled stream, "weak" and "strong" uint8 [mu b, H, W, C] and "unlabeled_labels"
      int32 [mu b] (true labels, for metrics only).
    """

    def make(step: int) -> dict[str, np.ndarray]:
      labels, images = self._part(self._labeled, self.labeled_batch, step, [self.view])
      batch = {"images": images, "labels": labels}
      if self._unlabeled is not None:
        views = [self.weak_view, self.strong_view]
        batch["unlabeled_labels"], batch["weak"], batch["strong"] = self._part(
          self._unlabeled, self.unlabeled_batch, step, views
        )
      return batch

    first = epoch * self.steps_per_epoch
    return loader.ahead(self.pool, make, range(first + start_batch, first + self.steps_per_epoch), self.depth)
