"""The data recipe's options: `config.data` (the dataset and its augmentation) and `config.semisup`'s input
side (the labeled subset and the two views of the unlabeled images)."""

import dataclasses
import os

from adamix_jax.config import ConfigError
from adamix_jax.data.augment import AUGMENTATIONS, RESIZE_METHODS
from adamix_jax.data.datasets import DATASETS, DatasetSpec
from adamix_jax.data.rand_augment import CutoutOptions, Policy
from adamix_jax.options import Options, non_negative, one_of, option, ordered_range, positive


@dataclasses.dataclass(frozen=True)
class DataOptions(Options):
  """`config.data` (base_config documents each key)."""

  section = "data"
  name: str = option("name", one_of(DATASETS))
  data_dir: str = option("data_dir")
  download: bool = option("download")
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
  cache: bool = option("cache")
  shuffle_buffer: int = option("shuffle_buffer", non_negative)
  input_slices: int = option("input_slices", non_negative)

  @property
  def spec(self) -> DatasetSpec:
    return DATASETS[self.name]

  @property
  def input_size(self) -> int:
    """The side of the model's square input: image_size, or the dataset's own."""
    return self.image_size or self.spec.image_size

  def check(self):
    spec = self.spec
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
