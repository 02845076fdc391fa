"""The data recipe's options: `config.data` (the dataset and its augmentation) and `config.semisup`'s input
side (the labeled subset and the two views of the unlabeled images)."""

import dataclasses
import os

from adamix_jax.config import ConfigError
from adamix_jax.data.datasets import DATASETS, DatasetSpec
from adamix_jax.data.rand_augment import CutoutOptions, Policy
from adamix_jax.options import Options, each, non_negative, one_of, option, ordered_range, positive, unit_interval

AUGMENTATIONS = ("crop_flip", "random_resized_crop")
RESIZE_METHODS = ("bilinear", "bicubic")
MAX_WORKERS = 16


def known_dataset(name: str) -> str | None:
  """A built-in dataset or one registered from Python (`data.register_arrays`) in this process."""
  if name in DATASETS:
    return None
  return f"is not known. Valid choices: {', '.join(sorted(DATASETS))} (or arrays registered with data.register_arrays)"


@dataclasses.dataclass(frozen=True)
class DataOptions(Options):
  """`config.data` (base_config documents each key)."""

  section = "data"
  name: str = option("name", known_dataset)
  data_dir: str = option("data_dir")
  download: bool = option("download")
  train_split: str = option("train_split")
  eval_split: str = option("eval_split")
  mean: tuple[float, ...] = option("mean", each(unit_interval))
  std: tuple[float, ...] = option("std", each(positive))
  channels: int = option("channels", one_of(0, 1, 3))
  augment: str = option("augment", one_of(AUGMENTATIONS))
  crop_padding: int = option("crop_padding", non_negative)
  crop_scale: tuple[float, float] = option("crop_scale", ordered_range())
  image_size: int = option("image_size", non_negative)
  resize_method: str = option("resize_method", one_of(RESIZE_METHODS))
  eval_resize: int = option("eval_resize", non_negative)
  flip: bool = option("flip")
  randaugment: Policy = option("randaugment")
  cutout: CutoutOptions = option("cutout")
  max_train_examples: int = option("max_train_examples", non_negative)
  max_eval_examples: int = option("max_eval_examples", non_negative)
  input_slices: int = option("input_slices", non_negative)
  workers: int = option("workers", non_negative)

  @property
  def spec(self) -> DatasetSpec:
    return DATASETS[self.name]

  @property
  def input_size(self) -> int:
    """The side of the model's square input (image_size, or the dataset's own; 0 until the data is read)."""
    return self.image_size or self.spec.image_size

  @property
  def worker_count(self) -> int:
    """Host threads for decoding and augmentation (`workers`, or one per CPU core, at most MAX_WORKERS)."""
    return self.workers or min(MAX_WORKERS, os.cpu_count() or 1)

  def splits(self, spec: DatasetSpec) -> tuple[str, str]:
    """(training split, evaluation split): the config's, else the dataset's own."""
    return self.train_split or spec.train_split, self.eval_split or spec.eval_split

  def check(self):
    spec = self.spec
    if len(self.mean) != len(self.std):
      raise ConfigError(
        f"{self.key('mean')} has {len(self.mean)} values but {self.key('std')} has {len(self.std)}: give one "
        "per channel in both, or neither."
      )
    if spec.source == "image_folder" and not spec.name:
      return  # A user's folder: the images' size is known once they are read (`data_info` checks it then).
    if spec.image_size == 0 and self.image_size == 0:
      raise ConfigError(
        f"The images of {self.key('name')} = {self.name!r} vary in size: set {self.key('image_size')} (the side of "
        f"the model's square input, e.g. 224) and {self.key('augment')} = 'random_resized_crop'."
      )
    if self.augment == "crop_flip" and self.input_size != spec.image_size:
      raise ConfigError(
        f"{self.key('augment')} = 'crop_flip' keeps the images' own size ({spec.image_size or 'varying'}), but "
        f"{self.key('image_size')} = {self.image_size}. Use 'random_resized_crop', or image_size 0."
      )
    if self.eval_resize and self.eval_resize < self.input_size:
      raise ConfigError(
        f"{self.key('eval_resize')} = {self.eval_resize} is smaller than the {self.input_size}-pixel centre crop."
      )


@dataclasses.dataclass(frozen=True)
class StrongViewOptions(Options):
  """`config.semisup.strong`: the strong view of an unlabeled image (crop and flip, RandAugment, Cutout)."""

  section = "semisup.strong"
  crop_padding: int = option("crop_padding", non_negative)
  randaugment: Policy = option("randaugment")
  cutout: CutoutOptions = option("cutout")


@dataclasses.dataclass(frozen=True)
class SemisupOptions(Options):
  """`config.semisup`'s input side: which examples are labeled, and the unlabeled stream."""

  section = "semisup"
  num_labeled: int = option("num_labeled", non_negative)  # Class-balanced, from the seed; 0: every label.
  labeled_indices: str = option("labeled_indices")  # Or a file of indices (.json, .txt, .npy).
  unlabeled_ratio: int = option("unlabeled_ratio", positive)  # Unlabeled images per labeled one in a step.
  weak_crop_padding: int = option("weak_crop_padding", non_negative)
  strong: StrongViewOptions = option("strong")

  @property
  def labeled_subset(self) -> bool:
    """Whether the run trains on a labeled subset (num_labeled or labeled_indices set)."""
    return bool(self.num_labeled or self.labeled_indices)

  def check(self):
    if self.num_labeled and self.labeled_indices:
      raise ConfigError(
        f"{self.key('num_labeled')} = {self.num_labeled} and {self.key('labeled_indices')} = "
        f"{self.labeled_indices!r} both choose the labeled set. Set one of them."
      )
    if self.labeled_indices and not os.path.isfile(self.labeled_indices):
      raise ConfigError(
        f"{self.key('labeled_indices')} = {self.labeled_indices!r} is not a file. Give a .json list, a .txt with "
        "one index per line, or a .npy of training-split indices."
      )
