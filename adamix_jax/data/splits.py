"""A dataset once opened: random-access `Split`s of examples, and what the model must know (`Dataset`).

split = dataset.open_split("train").first(limit)   # every example of the (possibly truncated) split
part = split.slice(k, slices)                      # one process's (or slice's) even share
images, labels = part.take(np.array([3, 1, 4]))    # uint8 [3, H, W, C] (or 3 encoded images), int32 [3]
"""

import concurrent.futures
import dataclasses
from collections.abc import Callable

import numpy as np

from adamix_jax.config import ConfigError
from adamix_jax.data import decoding
from adamix_jax.data.datasets import DatasetSpec
from adamix_jax.data.options import DataOptions

STATS_SAMPLE = 10_000  # Normalisation statistics computed from (at most) this many training images.


class DataNotPreparedError(RuntimeError):
  """The dataset is not prepared and cannot be prepared now. The message says how to prepare it."""


class Split:
  """Random access to the examples of one split, in the split's fixed order.

  Either every image is in memory (`images`: uint8 [N, H, W, C]) or example i is read by `read(i)` as
  (encoded image bytes, label); `one_size` says the images read so all have one size (the pipeline then
  decodes them into memory once). `first` and `slice` of images held in memory are views, not copies.
  """

  def __init__(
    self,
    labels: np.ndarray | None,
    *,
    images: np.ndarray | None = None,
    read: Callable[[int], tuple[bytes, int]] | None = None,
    positions: np.ndarray | None = None,
    size: int | None = None,
    one_size: bool = False,
  ):
    self._labels, self.images, self._read = labels, images, read
    self.one_size = one_size or images is not None
    self._positions = positions  # Positions in the source of a read split; None: 0..size-1.
    self._size = len(labels) if labels is not None else size

  def __len__(self) -> int:
    return self._size

  @property
  def in_memory(self) -> bool:
    return self.images is not None

  def _source_positions(self, indices: np.ndarray) -> np.ndarray:
    return indices if self._positions is None else self._positions[indices]

  def take(self, indices: np.ndarray) -> tuple[np.ndarray | list[bytes], np.ndarray]:
    """(images, int32 labels [k]) of examples `indices` (int [k]): uint8 [k, H, W, C] in memory, else a
    list of k encoded images."""
    if self.in_memory:
      return self.images[indices], self._labels[indices]
    examples = [self._read(int(i)) for i in self._source_positions(np.asarray(indices))]
    return [image for image, _ in examples], np.asarray([label for _, label in examples], np.int32)

  def labels(self) -> np.ndarray:
    """int32 [N]: every example's label (a read split without a label list reads every example once)."""
    if self._labels is None:
      self._labels = self.take(np.arange(len(self)))[1]
    return self._labels

  def subset(self, indices: np.ndarray) -> "Split":
    """The examples at `indices` (int [k]), in that order."""
    indices = np.asarray(indices, np.int64)
    labels = None if self._labels is None else self._labels[indices]
    if self.in_memory:
      return Split(labels, images=self.images[indices])
    positions = self._source_positions(indices)
    return Split(labels, read=self._read, positions=positions, size=len(indices), one_size=self.one_size)

  def first(self, count: int) -> "Split":
    """The first `count` examples (0: all)."""
    if not count or count >= len(self):
      return self
    if self.in_memory:
      return Split(self._labels[:count], images=self.images[:count])
    return self.subset(np.arange(count))

  def slice(self, index: int, count: int) -> "Split":
    """Slice `index` of `count` even, contiguous slices (the first ones one example shorter when uneven)."""
    n = len(self)
    start, stop = n * index // count, n * (index + 1) // count
    if self.in_memory:
      return Split(self._labels[start:stop], images=self.images[start:stop])
    return self.subset(np.arange(start, stop))

  def decoded(self, channels: int, workers: int, description: str = "") -> "Split":
    """This split with every image decoded into memory (uint8 [N, H, W, C]; all must have one size)."""
    if self.in_memory:
      return self
    if description and len(self) >= 20_000:
      print(f"Decoding the {len(self):,} images of {description} into memory (once per run).", flush=True)
    chunks = np.array_split(np.arange(len(self)), max(1, len(self) // 256))

    def decode(chunk):
      images, labels = self.take(chunk)
      return np.stack([decoding.decode(image, channels) for image in images]), labels

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
      parts = list(pool.map(decode, chunks))
    return Split(np.concatenate([p[1] for p in parts]), images=np.concatenate([p[0] for p in parts]))


@dataclasses.dataclass(frozen=True)
class Dataset:
  """An opened dataset: what it is, and its splits (opened on first use).

  Attributes:
    spec: the registry's entry.
    class_names: the name of every class, in label order.
    channels: 1 (grey) or 3 (RGB).
    image_size: the side of every image when all are one square size; 0 otherwise.
    mean: per-channel mean (the dataset's, the config's, or computed from the training split).
    std: per-channel standard deviation, likewise.
    open_split: split name -> the whole split.
    num_examples: split name -> its size (read without opening the split).
  """

  spec: DatasetSpec
  class_names: tuple[str, ...]
  channels: int
  image_size: int
  mean: tuple[float, ...]
  std: tuple[float, ...]
  open_split: Callable[[str], Split]
  num_examples: Callable[[str], int]


def normalisation(options: DataOptions, spec: DatasetSpec, train: Callable[[], Split], channels: int):
  """(mean, std): the config's, else the dataset's, else computed from (up to STATS_SAMPLE of) the training
  images."""
  if options.mean:
    if len(options.mean) != channels or len(options.std) != channels:
      raise ConfigError(
        f"config.data.mean and config.data.std need {channels} values (one per channel), not "
        f"{len(options.mean)} and {len(options.std)}."
      )
    return tuple(options.mean), tuple(options.std)
  if spec.mean:
    return spec.mean, spec.std
  split = train()
  sample = split.subset(np.linspace(0, len(split) - 1, min(len(split), STATS_SAMPLE)).astype(np.int64))
  images = sample.take(np.arange(len(sample)))[0]
  if not isinstance(images, np.ndarray):
    images = [decoding.decode(image, channels) for image in images]
  pixels = np.concatenate([np.asarray(image, np.float64).reshape(-1, channels) / 255 for image in images])
  return tuple(np.round(pixels.mean(0), 4).tolist()), tuple(np.round(pixels.std(0), 4).tolist())
