"""Datasets tfds does not serve, read from an image-folder layout: `ROOT/<split>/<class>/<image file>`.

Tiny-ImageNet, FGVC-Aircraft and Stanford Cars are read this way (see `prepare_tiny_imagenet` for the one
whose official archive needs rearranging). Labels are the indices of the sorted class directory names of
the training split, so every split and every host agrees on them. The file list of a split is put in one
fixed pseudo-random order (not sorted by class), so "the first N examples" (`data.max_*_examples`) and the
per-process slices hold every class.
"""

import dataclasses
import os

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
_ORDER_SEED = 20240501  # Fixed: the order of a split's files must not depend on the run's seed.


@dataclasses.dataclass(frozen=True)
class FolderSplit:
  """The files of one split.

  Attributes:
    paths: image file paths, in the split's fixed order.
    labels: int32 [len(paths)], indices into `classes`.
    classes: the class directory names, sorted.
  """

  paths: tuple[str, ...]
  labels: np.ndarray
  classes: tuple[str, ...]


class FolderLayoutError(FileNotFoundError):
  """The image folder is missing or not laid out as ROOT/<split>/<class>/<image>."""


def class_names(root: str, split: str) -> tuple[str, ...]:
  """The sorted class directory names of ROOT/split."""
  directory = os.path.join(root, split)
  if not os.path.isdir(directory):
    raise FolderLayoutError(f"{directory} does not exist.")
  names = tuple(sorted(e.name for e in os.scandir(directory) if e.is_dir()))
  if not names:
    raise FolderLayoutError(f"{directory} has no class directories.")
  return names


def list_split(root: str, split: str, classes: tuple[str, ...] | None = None) -> FolderSplit:
  """Every image of ROOT/split/<class>/, labelled by `classes` (default: the split's own class names).

  Raises:
    FolderLayoutError: the split is missing, empty, or has a class that is not in `classes`.
  """
  own = class_names(root, split)
  classes = classes or own
  unknown = sorted(set(own) - set(classes))
  if unknown:
    raise FolderLayoutError(
      f"{os.path.join(root, split)} has classes the training split lacks: {', '.join(unknown[:5])}."
    )
  paths, labels = [], []
  for name in own:
    directory = os.path.join(root, split, name)
    files = sorted(f for f in os.listdir(directory) if f.lower().endswith(IMAGE_EXTENSIONS))
    paths += [os.path.join(directory, f) for f in files]
    labels += [classes.index(name)] * len(files)
  if not paths:
    raise FolderLayoutError(f"{os.path.join(root, split)} holds no images ({', '.join(IMAGE_EXTENSIONS)}).")
  order = np.random.default_rng(_ORDER_SEED).permutation(len(paths))
  return FolderSplit(tuple(paths[i] for i in order), np.asarray(labels, np.int32)[order], classes)
