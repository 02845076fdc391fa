"""Images read from a folder layout: `ROOT/<split>/<class>/<image file>`.

A user's own images (`data.name = "image_folder"`, ROOT = `data.data_dir`) and Tiny-ImageNet, FGVC-Aircraft
and Stanford Cars (ROOT = DATA_DIR/<name>; see `prepare_tiny_imagenet` for the one whose official archive
needs rearranging) are read this way. Labels are the indices of the sorted class directory names of the
training split, so every split and every host agrees on them. The file list of a split is put in one fixed
pseudo-random order (not sorted by class), so "the first N examples" (`data.max_*_examples`) and the
per-process slices hold every class.
"""

import concurrent.futures
import dataclasses
import os

import numpy as np

from adamix_jax.data import decoding

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
    if not files:
      raise FolderLayoutError(
        f"{directory} holds no images ({', '.join(IMAGE_EXTENSIONS)}): every class needs at least one; remove "
        "the folder or add its images."
      )
    paths += [os.path.join(directory, f) for f in files]
    labels += [classes.index(name)] * len(files)
  order = np.random.default_rng(_ORDER_SEED).permutation(len(paths))
  return FolderSplit(tuple(paths[i] for i in order), np.asarray(labels, np.int32)[order], classes)


class UnreadableImageError(ValueError):
  """An image of the folder cannot be read, or the images disagree in a way the config must settle."""


def scan(paths: tuple[str, ...], workers: int) -> np.ndarray:
  """int64 [N, 3]: (height, width, channels) of every file, read from the headers in `workers` threads.

  Raises:
    UnreadableImageError: a file is not an image PIL can read (the message names it).
  """

  def read(path):
    try:
      return decoding.header(path)
    except OSError as error:
      raise UnreadableImageError(
        f"{path} is not a readable image ({error}). Remove or replace it, then start again."
      ) from None

  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    return np.asarray(list(pool.map(read, paths, chunksize=64)), np.int64).reshape(-1, 3)


def channel_count(shapes: np.ndarray, root: str, paths: tuple[str, ...]) -> int:
  """The one channel count of a split's images (from `scan`).

  Raises:
    UnreadableImageError: grey and colour images are mixed; says how many of each and how to choose.
  """
  counts = {c: int((shapes[:, 2] == c).sum()) for c in (1, 3)}
  if counts[1] and counts[3]:
    grey = paths[int(np.flatnonzero(shapes[:, 2] == 1)[0])]
    raise UnreadableImageError(
      f"{root} mixes {counts[1]} grey and {counts[3]} colour images (e.g. {grey} is grey): set "
      "config.data.channels = 3 to read them all as RGB, or 1 for grey."
    )
  return 1 if counts[1] else 3
